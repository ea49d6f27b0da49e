"""Verification of a stored ledger from scratch: chain mode and full mode, time and peak RSS.

    python -m bench.verify [--quick] [--entries N]

The ledger (1,000,000 entries by default) is built once through the writer and cached under
.bench-cache/. Each verification runs in a fresh process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

import orjson

from bench.common import arguments, built_ledger, log, report
from node.ledger.verify import verify_store


def verify_once(db: str, mode: str) -> None:
    """Child process: verify and print seconds and the peak RSS of it and its worker processes, as JSON."""
    (result,) = verify_store(Path(db), mode)  # type: ignore[arg-type]
    # ru_maxrss survives exec on Linux (it would report the parent's peak); VmHWM is this process's own
    own = _vm_hwm_kib()
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(orjson.dumps({"seconds": result.seconds, "entries": result.entries, "rss_mb": own / 1024,
                        "worker_rss_mb": workers / 1024}).decode())  # fmt: skip


def _vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_child(db: str, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.verify", "--child", db, mode], capture_output=True, text=True, check=True
    )
    return dict(orjson.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = arguments(__doc__, "20,000 entries, for a smoke test")
    parser.add_argument("--entries", type=int, help="ledger size (default 1,000,000)")
    parser.add_argument("--child", nargs=2, metavar=("DB", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        verify_once(*args.child)
        return
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    settings = built_ledger(entries)
    db = str(settings.db_path)
    log(f"verifying {entries} entries (chain)")
    chain = run_child(db, "chain")
    log(f"verifying {entries} entries (full)")
    full = run_child(db, "full")
    assert chain["entries"] == full["entries"] == entries
    report(
        "bench.verify",
        {
            "entries": entries,
            "verify_s": round(chain["seconds"], 2),
            "verify_per_s": round(entries / chain["seconds"]),
            "peak_rss_mb": round(chain["rss_mb"], 1),
            "worker_peak_rss_mb": round(chain["worker_rss_mb"], 1),
            "verify_full_s": round(full["seconds"], 2),
            "verify_full_per_s": round(entries / full["seconds"]),
            "full_peak_rss_mb": round(full["rss_mb"], 1),
        },
    )


if __name__ == "__main__":
    main()

"""Where the CPU time of a profiled benchmark goes, per step and per entry, from py-spy's raw output.

    py-spy record --format raw -r 200 --subprocesses -o append.raw -- python -m bench.append
    python -m bench.profile append.raw --process "node.cli run" --entries 100000 [--exclude REGEX]

Each sample (one thread, 1/rate s of CPU) goes to the step of its innermost frame that names one
(see STEPS; the first matching pattern of that frame wins); samples of other processes (the last
``process`` frame must match ``--process``) and stacks with a frame matching ``--exclude`` are
dropped. The figure per step is samples / rate / entries, in microseconds of CPU per entry, on
all threads together, so it adds up to more than the wall time per entry on several cores.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = "waiting (loop poll, idle pool thread, harness)"
OTHER = "event loop, awaits and the rest"
IMPORTS = r"_find_and_load|exec_module|_call_with_frames_removed"

# innermost frame first; a C function shows as its Python caller (crypto_sign as KeyPair.sign,
# sqlite3 as aiosqlite's worker thread, zlib in aiohttp's executor as _WorkItem.run)
STEPS: list[tuple[str, list[str]]] = [
    ("sign (Ed25519)", [r"^sign_hash ", r"^_sign_all ", r"^KeyPair\.sign "]),
    ("signature check (Ed25519)", [r"^verify_hash_signature ", r"^_first_bad "]),
    ("checkpoint sign/check", [r"^sign_checkpoint ", r"^verify_checkpoint ", r"^ChainVerifier\.check_checkpoint "]),
    ("hash (entry bytes + SHA-256)", [r"^entry_hash ", r"^content_bytes "]),
    ("canonical payload encoding", [r"^encode_content ", r"^canonical \(protocol", r"^_walk "]),
    ("signature digest", [r"^next_sig_digest "]),
    ("chain checks (links, hex)", [r"^ChainVerifier\.extend ", r"^check_link ", r"^check_hash "]),
    ("SQLite thread (row, indexes, commit)", [r"aiosqlite/core\.py"]),
    (
        "models (pydantic parse/validate)",
        [
            r"^BaseModel\.model_validate",
            r"^validate \(node/api/json",
            r"^parse \(node/net/shapes",
            r"^bound ",
            r"^_bound ",
            r"pydantic/",
        ],
    ),
    (
        "wire conversions (rows to dicts, receipts)",
        [
            r"^row_to_wire ",
            r"^receipt ",
            r"^page_body ",
            r"^checkpoint_to_wire ",
            r"^within_budget ",
            r"^wire_size ",
            r"^brackets ",
            r"^_text_bytes ",
            r"^_brackets ",
        ],
    ),
    (
        "writer preparation (lists, tuples, ids)",
        [r"^Writer\._prepare ", r"^uuid7s ", r"^Ledger\._prepare ", r"^Writer\._commit\.<locals>"],
    ),
    ("JSON (orjson)", [r"^read_json ", r"^json_response ", r"^_json \(node/net"]),
    ("gzip", [r"zlib", r"[Cc]ompress", r"node/net/reader\.py", r"^_WorkItem\.run "]),
    ("HTTP (aiohttp)", [r"aiohttp/"]),
]
IDLE_LEAVES = [
    r"^EpollSelector\.select ",
    r"^_worker \(concurrent",
    r"^_drain ",
    r"^BaseSelectorEventLoop\._read_from_self ",
]
_STEPS = [(name, [re.compile(p) for p in patterns]) for name, patterns in STEPS]
_IDLE = [re.compile(p) for p in IDLE_LEAVES]


def step_of(frames: list[str]) -> str:
    """The step a stack (outermost frame first) is charged to."""
    if frames and any(p.search(frames[-1]) for p in _IDLE):
        return IDLE
    for frame in reversed(frames):
        for name, patterns in _STEPS:
            if any(p.search(frame) for p in patterns):
                return name
    return OTHER


def breakdown(raw: Path, process: str, exclude: str | None) -> Counter[str]:
    """Samples per step of the processes matching ``process``."""
    counts: Counter[str] = Counter()
    dropped = re.compile(f"{IMPORTS}|{exclude}" if exclude else IMPORTS)
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        if not processes or not re.search(process, processes[-1]):
            continue
        rest = [f for f in frames if not f.startswith("process ")]
        if any(dropped.search(f) for f in rest):
            continue
        counts[step_of(rest)] += int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw", type=Path, help="py-spy record --format raw output")
    parser.add_argument("--process", required=True, help="regex on the command line of the profiled process")
    parser.add_argument("--entries", type=int, required=True, help="entries that process handled")
    parser.add_argument("--rate", type=float, default=200, help="py-spy's sampling rate (-r)")
    parser.add_argument("--exclude", help="regex: drop stacks with a matching frame (another phase)")
    args = parser.parse_args()
    counts = breakdown(args.raw, args.process, args.exclude)
    total = sum(counts.values())
    per_entry = 1e6 / args.rate / args.entries
    print(f"{args.raw}: {total} samples, {total * per_entry:.1f} us of CPU per entry")
    for name, n in counts.most_common():
        print(f"  {name:45s} {n:6d} {100 * n / max(total, 1):5.1f}%  {n * per_entry:7.2f} us/entry")


if __name__ == "__main__":
    main()

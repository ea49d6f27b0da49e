"""Every benchmark runs at --quick size and ends with one JSON line carrying its agreed keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from scenarios.procs import REPO

KEYS = {
    "bench.append": {"append_batch_per_s", "http_single_per_s", "http_single_p99_ms", "http_batch_per_s"},
    "bench.verify": {"entries", "verify_s", "peak_rss_mb", "verify_full_s"},
    "bench.query": {"entries", "query_p95_ms"},
    "bench.federation": {
        "federated_p95_ms",
        "federated_hang_p95_ms",
        "timeout_ms",
        "trust_path_cold_ms",
        "trust_path_cached_ms",
    },
    "bench.registry": {"nodes", "heartbeat_p99_ms", "discover_p95_ms"},
    "bench.steps": {
        "append_hash_us",
        "append_sign_us",
        "sync_chain_extend_hash_and_canonical_us",
        "sync_verify_signature_full_mode_us",
        "sqlite_insert_row_pk_us",
    },
    "bench.sync": {
        "sync_checkpoint_per_s",
        "sync_full_per_s",
        "propagation_p50_ms",
        "propagation_p99_ms",
        "mesh_converge_s",
    },
}


@pytest.mark.parametrize("module", sorted(KEYS))
def test_quick_run_reports_its_figures(module: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick"], capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "BENCH_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"# {module} on ") and '"cores"' in lines[0]
    figures = orjson.loads(lines[-1])
    assert KEYS[module] <= set(figures)
    assert all(figures[key] > 0 for key in KEYS[module])

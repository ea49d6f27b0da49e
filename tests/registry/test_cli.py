"""``ledger-registry`` as an operator runs it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

from scenarios.procs import REPO


def registry_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60)  # fmt: skip


def test_the_registry_process_serves_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "run", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"ledger-registry listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        url = match.group(1)
        health = registry_cli("health", f"--url={url}")
        assert health.returncode == 0 and health.stdout.strip() == f"ok: {url} is healthy and ready", health.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert (tmp_path / "registry.db").is_file()
    down = registry_cli("health", f"--url={url}")
    assert down.returncode == 1 and down.stderr.startswith(f"ledger-registry: error: cannot reach {url}")
    assert len(down.stderr.strip().splitlines()) == 1


def test_bad_configuration_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "registry.cli", "run", "--port", "70000", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ, "LEDGER_REGISTRY_TTL_S": "-1"},
    )  # fmt: skip
    assert result.returncode == 1 and result.stderr.startswith("ledger-registry: error: invalid configuration:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_version_prints_the_package_version() -> None:
    result = subprocess.run([sys.executable, "-m", "registry.cli", "--version"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)  # fmt: skip
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert result.returncode == 0 and result.stdout.strip() == f"ledger-registry {version}"

"""``python -m scenarios status`` against running nodes: heads, lag, conflicts and trust as tables."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.cluster import ADMIN_TOKEN, node_env
from scenarios.procs import REPO, NodeProcess, start_node


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[NodeProcess]]:
    nodes = [start_node(tmp_path / name, name, env=node_env()) for name in ("node-a", "node-b")]
    yield nodes
    for node in nodes:
        node.terminate()


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scenarios", "status", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO, env={"COLUMNS": "200", "PATH": ""})  # fmt: skip


def test_status_shows_every_node(running: list[NodeProcess]) -> None:
    a, b = running
    result = status("--url", a.url, "--url", b.url, "--token", ADMIN_TOKEN)
    assert result.returncode == 0, result.stderr
    for table in ("heads", "lag per peer", "open conflicts", "trust edges"):
        assert table in result.stdout
    assert f"{a.url} │ node-a " in result.stdout and f"{b.url} │ node-b " in result.stdout


def test_an_unreachable_node_or_a_wrong_token_fails_the_command(running: list[NodeProcess]) -> None:
    result = status("--url", running[0].url, "--url", "http://127.0.0.1:9", "--token", ADMIN_TOKEN)
    assert result.returncode == 1 and "cannot reach http://127.0.0.1:9" in result.stdout
    result = status("--url", running[0].url, "--token", "wrong-token-wrong-token")
    assert result.returncode == 1 and "unauthorized" in result.stdout

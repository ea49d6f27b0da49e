"""``python -m scenarios status`` against running nodes: heads, lag, conflicts and trust as tables."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import scenarios.status
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


def into_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m scenarios status ARGS`` with its stdout a pipe nobody reads any more (``| head -1``)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "scenarios", "status", *args], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO)  # fmt: skip
    finally:
        os.close(write)


def test_output_into_a_closed_pipe_ends_quietly(running: list[NodeProcess]) -> None:
    result = into_closed_pipe("--url", running[0].url, "--token", ADMIN_TOKEN)
    assert (result.returncode, result.stderr) == (0, "")


ERROR = "cannot reach http://a-peer-with-a-rather-long-host-name.invalid:8700/behind/a/prefix (unknown host)"
ANSWER = (
    {"ledgers": [{"ledger_id": "node-a", "head_seq": 3, "head_hash": "ab" * 32, "quarantined": False}]},
    {"peers": [{"ledger_id": "node-far", "state": "backing-off", "failures": 3, "ledgers": [{"lag": 0}],
                "last_error": ERROR}]},
    [],
    [],
)  # fmt: skip


async def test_tables_piped_are_as_wide_as_their_cells_and_empty_ones_say_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def gather(url: str, token: str | None) -> Any:
        return ANSWER

    out = io.StringIO()
    monkeypatch.setattr(scenarios.status, "_gather", gather)
    monkeypatch.setattr(scenarios.status, "console", Console(file=out, width=80))
    assert await scenarios.status.show({"node-a": "http://127.0.0.1:1"}, None) == 0
    text = out.getvalue()
    assert f"│ {ERROR} │" in text, text
    assert "open conflicts: none" in text and "trust edges: none" in text, text

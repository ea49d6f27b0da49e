"""``ledger-registry`` as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

from scenarios.procs import REPO, NodeProcess, start_node, start_process
from tests.conftest import eventually


def registry_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, env={**os.environ, **(env or {})})  # fmt: skip


def into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    finally:
        os.close(write)


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
        for args in (["health", f"--url={url}"], ["--help"]):  # stdout's reader gone, as in | head: a quiet exit
            closed = into_closed_pipe([sys.executable, "-m", "registry.cli", *args])
            assert (closed.returncode, closed.stderr) == (0, ""), closed
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


async def test_nodes_lists_the_registered_nodes(tmp_path: Path, processes: list[NodeProcess]) -> None:
    argv = [sys.executable, "-m", "registry.cli", "run", "--port", "0", "--data-dir", str(tmp_path / "r"),
            "--log-level", "debug"]  # fmt: skip
    registry = start_process(argv, tmp_path / "r", env={"LEDGER_REGISTRY_ENROLMENT": "open"})
    processes.append(registry)
    assert any("DEBUG" in line for line in registry.log), registry.log  # --log-level debug is applied
    env = {"LEDGER_DISCOVERY__REGISTRY_URLS": json.dumps([registry.url]), "LEDGER_DISCOVERY__HEARTBEAT_S": "1"}
    node = start_node(tmp_path / "a", "node-a", env=env)
    processes.append(node)

    async def listed() -> bool:
        result = await asyncio.to_thread(registry_cli, "nodes", f"--url={registry.url}", "--json")
        assert result.returncode == 0, result.stderr
        return [n["record"]["ledger_id"] for n in json.loads(result.stdout)] == ["node-a"]

    await eventually(listed, timeout=20)
    table = await asyncio.to_thread(registry_cli, "nodes", "--url", registry.url, env={"COLUMNS": "200"})
    assert table.returncode == 0 and "node-a" in table.stdout and node.url in table.stdout, table.stdout
    assert "online" in table.stdout
    offline = await asyncio.to_thread(registry_cli, "nodes", f"--url={registry.url}", "--status", "offline", "--json")
    assert json.loads(offline.stdout) == []
    bare = await asyncio.to_thread(registry_cli, "nodes", "--url", registry.url.removeprefix("http://"))
    assert bare.returncode == 2 and "needs http:// or https://" in bare.stderr


def test_a_url_without_a_scheme_is_a_usage_error_and_an_unanswered_one_says_why() -> None:
    bare = registry_cli("nodes", "--url", "127.0.0.1:19700")
    assert bare.returncode == 2 and len(bare.stderr.strip().splitlines()) == 1, bare.stderr
    assert bare.stderr.strip() == ("ledger-registry: error: registry URL '127.0.0.1:19700' (--url) needs http:// or "
                                   "https:// and a host; write http://127.0.0.1:19700")  # fmt: skip
    down = registry_cli("health", "--url", "http://127.0.0.1:9")
    assert down.returncode == 1, down.stderr
    assert down.stderr.strip() == "ledger-registry: error: cannot reach http://127.0.0.1:9 (connection refused)"

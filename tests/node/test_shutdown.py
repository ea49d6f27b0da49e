"""Every shutdown path is bounded: a node stops within its grace period after SIGTERM whatever its
peers do, and says so in its log."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from node.shutdown import Bounded
from protocol.signing import KeyPair
from scenarios.cluster import ADMIN_TOKEN, node_env
from scenarios.procs import GRACE_S, NodeProcess, start_node

SHIMS = Path(__file__).parent / "shims"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _add_peer(node: NodeProcess, url: str, ledger_id: str, public_key: str) -> None:
    body = {"url": url, "ledger_id": ledger_id, "public_key": public_key, "mode": "both"}
    request = urllib.request.Request(node.url + "/admin/peers", json.dumps(body).encode(), method="POST",
                                     headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def _state(node: NodeProcess, peer: str) -> str | None:
    with urllib.request.urlopen(node.url + "/ledger/sync/status", timeout=10) as response:
        peers = json.load(response)["peers"]
    return next((p["state"] for p in peers if p["ledger_id"] == peer), None)


def test_a_node_whose_peers_are_gone_stops_within_its_grace_period(tmp_path: Path) -> None:
    """One peer's host name no longer resolves (the lookup blocks for a minute), another peer was
    stopped: SIGTERM still stops the node within the grace period, and its log says it stopped."""
    shims = os.pathsep.join([str(SHIMS), os.environ.get("PYTHONPATH", "")])
    env = {**node_env(interval_s=0.2, backoff_max_s=1), "PYTHONPATH": shims, "LEDGER_LOG_LEVEL": "info"}
    node = start_node(tmp_path / "a", "node-a", env=env)
    try:
        other = start_node(tmp_path / "b", "node-b", env=node_env())
        with urllib.request.urlopen(other.url + "/network/info", timeout=10) as response:
            info = json.load(response)
        _add_peer(node, other.url, "node-b", info["public_key"])
        other.terminate()
        _add_peer(node, "http://node-c.gone:8700", "node-c", KeyPair(bytes([7] * 32)).public_key.hex())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _state(node, "node-c") != "syncing":
            time.sleep(0.05)  # polling a real process until a round with the unresolvable peer is under way
        assert _state(node, "node-c") == "syncing"  # its name is being looked up
        started = time.monotonic()
        assert node.terminate(GRACE_S) == 0  # NotStopped (with the node's stacks) otherwise
        assert time.monotonic() - started < GRACE_S
        said = "".join(node.log)
        assert "shutting down ledger=node-a" in said and "stopped ledger=node-a" in said.split("shutting down")[1]
    finally:
        if node.proc.poll() is None:
            node.proc.kill()


class _Stuck:
    """A service whose close does not finish until ``release`` and ignores cancellation meanwhile."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.closed = asyncio.Event()

    async def __aenter__(self) -> _Stuck:
        return self

    async def __aexit__(self, *exc: object) -> None:
        while not self.release.is_set():
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                continue
        self.closed.set()


async def test_a_service_that_does_not_close_in_time_is_named_and_left_behind(caplog: pytest.LogCaptureFixture) -> None:
    stuck = _Stuck()
    started = time.monotonic()
    async with Bounded("stuck service", stuck, 0.2):
        pass
    assert time.monotonic() - started < 2
    assert "shutdown: stuck service did not close within 0.2 s; left behind, waiting at:" in caplog.text
    assert "__aexit__" in caplog.text  # where it was waiting
    stuck.release.set()
    await stuck.closed.wait()

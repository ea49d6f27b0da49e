"""Background loops never end silently: a crash is shown, counted, logged and the loop restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from node.api.context import PEERS, SYNC
from node.interop.refs import References
from node.metrics import Metrics
from node.settings import TaskSettings
from node.supervise import Supervisor
from node.sync.engine import Peer
from tests.conftest import RunningNode, draft, eventually

MakeNode = Callable[..., Awaitable[RunningNode]]
SLOW_SYNC = {"interval_s": 3600, "live": False, "timeout_s": 5.0}  # rounds only when started or triggered


async def link(a: RunningNode, b: RunningNode) -> None:
    """Make ``b`` a pull peer of ``a``."""
    _, info, _ = await b.request("GET", "/network/info")
    status, body, _ = await a.request("POST", "/admin/peers", json={
        "url": b.url, "ledger_id": info["ledger_id"], "public_key": info["public_key"], "mode": "pull"})  # fmt: skip
    assert status == 201, body


def crash_first_round(monkeypatch: pytest.MonkeyPatch, node: RunningNode) -> None:
    """The node's next sync round raises an error none of our code expects; later rounds run as usual."""
    engine = node.app[SYNC]
    original = engine._round
    calls = 0

    async def round_(peer: Peer) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("injected fault")
        await original(peer)

    monkeypatch.setattr(engine, "_round", round_)


async def peer_status(node: RunningNode, ledger_id: str) -> dict[str, Any]:
    _, body, _ = await node.request("GET", "/ledger/sync/status")
    return next(p for p in body["peers"] if p["ledger_id"] == ledger_id)


async def task(node: RunningNode, name: str) -> dict[str, Any]:
    _, body, _ = await node.request("GET", "/admin/status")
    return next(t for t in body["tasks"] if t["name"] == name)


async def crashes_counted(node: RunningNode, name: str) -> float:
    _, text, _ = await node.request("GET", "/metrics")
    line = next((x for x in text.splitlines() if x.startswith(f'ledger_task_crashes_total{{task="{name}"}}')), None)
    return float(line.split()[-1]) if line else 0.0


async def holds(node: RunningNode, ledger_id: str, seq: int) -> bool:
    return (await node.request("GET", f"/ledger/ledgers/{ledger_id}/entries/{seq}"))[0] == 200


async def test_a_crashed_peer_loop_shows_restarting_and_syncs_after_the_restart(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    a = await make_node("node-a")
    b = await make_node("node-b", sync=SLOW_SYNC, tasks={"restart_initial_s": 3600, "restart_max_s": 3600})
    await a.request("POST", "/ledger/entries", json=[draft(i) for i in range(20)])
    await link(a, b)  # a serves its peers only
    crash_first_round(monkeypatch, b)
    await link(b, a)

    async def restarting() -> bool:
        return (await peer_status(b, "node-a"))["state"] == "restarting"

    await eventually(restarting)  # never "syncing" forever
    peer = await peer_status(b, "node-a")
    assert peer["last_error"] == "RuntimeError: injected fault" and peer["crashes"] == 1
    loop = await task(b, "sync:node-a")
    assert loop["state"] == "restarting" and loop["last_error"] == "RuntimeError: injected fault"
    assert loop["restart_at_ms"] is not None
    assert await crashes_counted(b, "sync:node-a") == 1
    crash_logs = [r for r in caplog.records if r.name == "node.supervise" and r.exc_info]
    assert len(crash_logs) == 1  # logged once, with its traceback

    status, _, _ = await b.request("POST", "/admin/sync/run")  # the operator cuts the backoff short
    assert status == 202
    await eventually(lambda: holds(b, "node-a", 20))
    peer = await peer_status(b, "node-a")
    assert peer["state"] == "idle" and peer["last_error"] is None and peer["crashes"] == 1
    assert (await task(b, "sync:node-a"))["state"] == "running"


async def test_a_crashed_peer_loop_restarts_by_itself_after_its_backoff(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await make_node("node-a")
    b = await make_node("node-b", sync=SLOW_SYNC, tasks={"restart_initial_s": 0.05, "restart_max_s": 1})
    await a.request("POST", "/ledger/entries", json=[draft(i) for i in range(5)])
    await link(a, b)  # a serves its peers only
    crash_first_round(monkeypatch, b)
    await link(b, a)
    await eventually(lambda: holds(b, "node-a", 5))
    assert await crashes_counted(b, "sync:node-a") == 1
    peer = await peer_status(b, "node-a")
    assert peer["state"] == "idle" and peer["crashes"] == 1
    assert peer["last_crash_error"] == "RuntimeError: injected fault"


async def test_the_reference_retry_loop_is_restarted_after_a_crash(
    make_node: MakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = References._retry_pending
    calls = 0

    async def retry_pending(self: References) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("injected fault")
        await original(self)

    monkeypatch.setattr(References, "_retry_pending", retry_pending)
    node = await make_node("node-a", tasks={"restart_initial_s": 0.05, "restart_max_s": 1})

    async def restarted() -> bool:
        loop = await task(node, "refs:retry")
        return loop["state"] == "running" and loop["crashes"] == 1 and calls == 2

    await eventually(restarted)
    assert (await task(node, "refs:retry"))["last_error"] == "RuntimeError: injected fault"
    assert await crashes_counted(node, "refs:retry") == 1


async def test_every_background_loop_is_supervised(make_node: MakeNode) -> None:
    a = await make_node("node-a")
    b = await make_node("node-b", discovery={"bootstrap": [a.url]})
    await eventually(lambda: b.app[PEERS].is_peer("node-a"))
    _, body, _ = await b.request("GET", "/admin/status")
    names = {t["name"]: t["state"] for t in body["tasks"]}
    assert {"sync:node-a", "live:node-a", "discovery:admission", "refs:retry", "refs:resolver-0"} <= set(names)
    assert names["discovery:bootstrap"] == "stopped"  # it returned: every bootstrap URL connected
    assert names["sync:node-a"] == "running"


async def test_a_loop_stopped_as_its_restart_is_asked_for_stops() -> None:
    """``retry_now`` (ending a restart backoff) and ``stop`` in the same turn: the loop must end, not
    restart. With ``asyncio.wait_for`` around the backoff, Python 3.11 returned the event's result
    instead of the cancellation, the loop ran again, and ``stop`` waited for it forever."""
    supervisor = Supervisor(Metrics("node-a"), TaskSettings(restart_initial_s=60))
    runs = 0

    async def crashing() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("injected fault")

    handle = supervisor.start("crashing", crashing)
    await eventually(lambda: handle.state == "restarting")
    handle.retry_now()
    async with asyncio.timeout(5):
        await supervisor.stop(handle)
    assert runs == 1 and handle.task is not None and handle.task.done()

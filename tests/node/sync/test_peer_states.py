"""Peer states that tell the truth: a peer that has not admitted this node yet is waiting, not failing;
a peer failing for ``sync.stale_after_s`` is stale and left out of automatic sync until woken."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from node.api.context import SYNC
from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.requests import sign_request
from protocol.signing import KeyPair
from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, RunningNode, cli, eventually
from tests.node.sync.test_replication import FAST, link

MakeNode = Callable[..., Awaitable[RunningNode]]


async def peer(node: RunningNode, ledger_id: str) -> dict[str, Any]:
    _, peers, _ = await node.request("GET", "/admin/peers")
    return next(p for p in peers if p["ledger_id"] == ledger_id)


async def test_a_peer_that_has_not_admitted_this_node_yet_is_waiting_not_failing(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=FAST)
    b = await make_node("node-b", sync=FAST)
    await link(a, b)  # b does not know a yet: its answers are 401

    async def waiting() -> bool:
        return (await peer(a, "node-b"))["state"] == "waiting"

    await eventually(waiting, timeout=10)
    seen = await peer(a, "node-b")
    assert seen["failures"] == 0 and "node-b has not admitted this node yet" in seen["last_error"]
    await link(b, a)

    async def idle() -> bool:
        found = await peer(a, "node-b")
        return bool(found["state"] == "idle" and found["last_success_ms"] and found["last_error"] is None)

    await eventually(idle, timeout=10)


async def test_a_peer_failing_longer_than_stale_after_is_left_out_of_automatic_sync(make_node: MakeNode) -> None:
    sync = {"interval_s": 0.05, "backoff_max_s": 0.05, "timeout_s": 1.0, "retries": 0, "live": False,
            "stale_after_s": 1.0}  # fmt: skip
    a = await make_node("node-a", sync=sync)
    gone = {"url": "http://127.0.0.1:9", "public_key": "ab" * 32, "mode": "both"}
    assert (await a.request("POST", "/admin/peers", json={**gone, "ledger_id": "node-x"}))[0] == 201

    async def stale(ledger_id: str) -> bool:
        return (await peer(a, ledger_id))["state"] == "stale"

    await eventually(lambda: stale("node-x"), timeout=10)
    x = await peer(a, "node-x")
    assert x["last_error"].startswith("stale: failing for") and "sync --run --peer node-x" in x["last_error"]
    # while a second unreachable peer is retried round after round, the stale one is not
    assert (await a.request("POST", "/admin/peers", json={**gone, "ledger_id": "node-y"}))[0] == 201

    async def retried() -> bool:
        return int((await peer(a, "node-y"))["failures"]) >= 5

    await eventually(retried, timeout=10)
    assert (await peer(a, "node-x"))["failures"] == x["failures"]
    assert (await a.request("POST", "/admin/sync/run", params={"peer": "node-x"}))[0] == 202  # woken: one round

    async def tried_again() -> bool:
        return int((await peer(a, "node-x"))["failures"]) == x["failures"] + 1

    await eventually(tried_again, timeout=10)
    assert await stale("node-x")


async def test_a_node_logs_peers_sync_rounds_and_shutdown_without_library_noise(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    env = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN, "LEDGER_NET__ALLOW_PRIVATE": "true", "LEDGER_SYNC__INTERVAL_S": "0.2",
           "LEDGER_LOG_LEVEL": "debug"}  # fmt: skip
    a = start_node(tmp_path / "a", "node-a", env=env)
    processes.append(a)
    b = start_node(tmp_path / "b", "node-b", env=env)
    processes.append(b)
    assert cli("peers", "connect", b.url, "--url", a.url).returncode == 0
    assert cli("peers", "connect", a.url, "--url", b.url).returncode == 0
    assert cli("append", "--url", a.url, "--stream", "s", "--type", "t").returncode == 0

    def holds() -> bool:
        try:
            with urllib.request.urlopen(b.url + "/ledger/ledgers/node-a/entries/1", timeout=5):
                return True
        except urllib.error.HTTPError:
            return False

    await eventually(lambda: asyncio.to_thread(holds), timeout=20)
    assert cli("peers", "remove", "node-a", "--url", b.url).returncode == 0
    assert a.terminate() == 0 and b.terminate() == 0
    log_a, log_b = "".join(a.log), "".join(b.log)
    assert "peer added ledger=node-b" in log_a and "peer removed ledger=node-a" in log_b
    assert "synced peer=node-a entries=1" in log_b or "synced peer=node-b entries=1" in log_a, log_a + log_b
    assert "shutting down ledger=node-a" in log_a and "stopped ledger=node-a" in log_a
    assert "aiosqlite" not in log_a + log_b


async def test_sync_run_cuts_a_backoff_already_being_waited_out(make_node: MakeNode) -> None:
    sync = {"interval_s": 0.05, "backoff_max_s": 3600, "timeout_s": 1.0, "retries": 0, "live": False}
    a = await make_node("node-a", sync=sync)
    gone = {"url": "http://127.0.0.1:9", "public_key": "ab" * 32, "mode": "both", "ledger_id": "node-x"}
    assert (await a.request("POST", "/admin/peers", json=gone))[0] == 201

    async def failed() -> bool:
        return int((await peer(a, "node-x"))["failures"]) >= 1

    await eventually(failed, timeout=10)
    engine = a.app[SYNC]
    x = next(p for p in engine.peers() if p.ledger_id == "node-x")
    x.next_attempt = time.monotonic() + 3600  # backing off for an hour; the next periodic wake-up waits it out
    failures = x.failures
    await eventually(lambda: _sleeping(engine), timeout=5)
    assert (await a.request("POST", "/admin/sync/run", params={"peer": "node-x"}))[0] == 202

    async def tried_again() -> bool:
        return int((await peer(a, "node-x"))["failures"]) > failures

    await eventually(tried_again, timeout=5)


def _sleeping(engine: Any) -> bool:
    """Whether node-x's loop is past its wake-up and waiting out the backoff."""
    x = next(p for p in engine.peers() if p.ledger_id == "node-x")
    return not x.wake.is_set() and x.state == "backing-off" and time.monotonic() - x.last_round > 0.2


async def test_a_peer_whose_operator_refused_this_node_says_so_instead_of_waiting(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=FAST)
    b = await make_node("node-b", sync=FAST)
    await link(a, b)  # a wants b; b's operator refuses a
    a_record = (await a.request("GET", "/network/info"))[1]["record"]
    assert (await b.request("POST", "/network/introduce", json=a_record))[1] == {"status": "candidate"}
    assert (await b.request("DELETE", "/admin/candidates/node-a"))[0] == 200

    async def refused() -> bool:
        return (await peer(a, "node-b"))["state"] == "refused"

    await eventually(refused, timeout=10)
    seen = await peer(a, "node-b")
    assert "node-b's operator refused this node" in seen["last_error"], seen


async def test_refusing_a_squatters_claim_does_not_turn_away_the_owner(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=FAST)
    b = await make_node("node-b", sync=FAST)
    await link(a, b)
    a_record = (await a.request("GET", "/network/info"))[1]["record"]
    assert (await b.request("POST", "/network/introduce", json=a_record))[1] == {"status": "candidate"}
    squatter = KeyPair(bytes([61] * 32))
    squatted = sign_record(squatter, ledger_id="node-a", name="node-a", endpoints=["http://127.0.0.1:9"],
                           issued_at=wall_ms()).model_dump()  # fmt: skip
    assert (await b.request("POST", "/network/introduce", json=squatted))[0] == 202
    assert (await b.request("DELETE", "/admin/candidates/node-a",
                            params={"public_key": squatter.public_key.hex()}))[0] == 200  # fmt: skip

    keys = load_key_file(a.settings.key_path)
    path = "/ledger/sync/heads"
    status, problem, _ = await b.request("GET", path, anonymous=True,
                                         headers=sign_request(keys, "node-a", "GET", path, b"", wall_ms()))  # fmt: skip
    assert status == 401 and problem["type"].endswith(":request-rejected"), problem  # not yet admitted, not refused

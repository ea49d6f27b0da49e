"""Admission of peers and pins with provenance, attacked the way a stranger would: real victim nodes
on 127.0.0.1 and hostile aiohttp servers of the test's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest
from aiohttp import web

from node.api.context import AUDIT, DISCOVERY, LEDGER, PEERS, TRUST
from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.records import NodeRecord, sign_record
from protocol.requests import sign_request
from protocol.signing import KeyPair
from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually

MakeNode = Callable[..., Awaitable[RunningNode]]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = {"interval_s": 0.2, "backoff_max_s": 0.5, "live": False, "retries": 0}
STRANGER = KeyPair(bytes([66] * 32))


@dataclass
class Hostile:
    """A server on 127.0.0.1:0 that counts every request it receives and answers each with ``answer``."""

    url: str = ""
    seen: list[str] = field(default_factory=list)
    answer: Callable[[web.Request], Awaitable[web.Response]] | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(f"{request.method} {request.path}")
        if self.answer is not None:
            return await self.answer(request)
        return web.json_response({})

    def count(self, path: str) -> int:
        return sum(1 for s in self.seen if s.endswith(" " + path))


@asynccontextmanager
async def hostile(answer: Callable[[web.Request], Awaitable[web.Response]] | None = None) -> AsyncIterator[Hostile]:
    server = Hostile(answer=answer)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    server.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield server
    finally:
        await runner.cleanup()


def record(keys: KeyPair, ledger_id: str, url: str) -> dict[str, Any]:
    return sign_record(keys, ledger_id=ledger_id, name=ledger_id, endpoints=[url], capabilities=["ledger", "sync"],
                       issued_at=wall_ms()).model_dump()  # fmt: skip


async def admin(node: RunningNode, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    status, answer, _ = await node.request(method, path, headers=AUTH, json=body)
    return status, answer


async def pins(node: RunningNode) -> dict[str, dict[str, Any]]:
    status, listed = await admin(node, "GET", "/admin/pins")
    assert status == 200, listed
    return {p["ledger_id"]: p for p in listed}


async def peer_ids(node: RunningNode) -> set[str]:
    _, status, _ = await node.request("GET", "/ledger/sync/status")
    return {p["ledger_id"] for p in status["peers"]}


async def rounds_with(node: RunningNode, peer: str, count: int) -> None:
    """Wait until ``node`` finished ``count`` more successful sync rounds with ``peer``."""
    seen: list[int] = []

    async def advanced() -> bool:
        _, status, _ = await node.request("GET", "/ledger/sync/status")
        last = next((p["last_success_ms"] for p in status["peers"] if p["ledger_id"] == peer), None)
        if last is not None and (not seen or last != seen[-1]):
            seen.append(last)
        return len(seen) > count

    await eventually(advanced, timeout=15)


async def public_key(node: RunningNode) -> str:
    return load_key_file(node.settings.key_path).public_key.hex()


async def add_peer(node: RunningNode, other: RunningNode, mode: str = "both") -> None:
    """Each operator admits the other node (signed requests are served only to pinned nodes)."""
    for here, there, how in ((node, other, mode), (other, node, "both")):
        body = {"url": there.url, "ledger_id": there.settings.ledger_id, "public_key": await public_key(there),
                "mode": how}  # fmt: skip
        status, answer = await admin(here, "POST", "/admin/peers", body)
        assert status == 201, answer


async def test_an_introduction_from_a_stranger_creates_no_peer_pins_nothing_and_is_sent_nothing(
    make_node: MakeNode,
) -> None:
    victim = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"interval_s": 0.2})
    honest = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    await add_peer(victim, honest)
    async with hostile() as stranger:
        status, answer, _ = await victim.request("POST", "/network/introduce",
                                                 json=record(STRANGER, "node-x", stranger.url))  # fmt: skip
        assert (status, answer) == (202, {"status": "candidate"})
        await rounds_with(victim, "node-b", 4)  # several sync and discovery rounds went by
        assert stranger.seen == []
    assert await peer_ids(victim) == {"node-b"}
    assert "node-x" not in await pins(victim)
    _, exchanged, _ = await victim.request("GET", "/network/ledgers")
    assert {r["ledger_id"] for r in exchanged} == {"node-a", "node-b"}  # itself and its admitted peer
    _, candidates = await admin(victim, "GET", "/admin/candidates")
    listed = {c["ledger_id"]: (c["status"], c["sources"]) for c in candidates}
    assert listed == {"node-x": ("candidate", ["introduce"]), "node-b": ("peer", ["exchange"])}
    _, public, _ = await victim.request("GET", "/network/discover")
    assert [n["ledger_id"] for n in public["nodes"]] == ["node-b"]  # candidates are shown to the operator only


async def test_a_strangers_push_for_node_d_is_refused_and_pins_nothing(make_node: MakeNode) -> None:
    victim = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    squatter = await make_node("node-d", admin_token=ADMIN_TOKEN, sync=FAST)  # a stranger's "node-d", its own key
    await squatter.request("POST", "/ledger/entries", json=[draft(i) for i in range(3)])
    keys = load_key_file(squatter.settings.key_path)
    path = "/ledger/sync/pull?ledger=node-d&after=0&limit=1000"
    _, page, _ = await squatter.request("GET", path, headers=sign_request(keys, "node-d", "GET", path, b"", wall_ms()))
    await victim.request("POST", "/network/introduce", json=record(keys, "node-d", squatter.url))
    body = orjson.dumps(page)
    headers = {**sign_request(keys, "node-d", "POST", "/ledger/sync/push", body, wall_ms()),
               "Content-Type": "application/json"}  # fmt: skip
    status, problem, _ = await victim.request("POST", "/ledger/sync/push", data=body, headers=headers)
    assert status in (401, 403) and problem["type"].endswith(":request-rejected")
    assert "node-d" not in await pins(victim)
    assert (await victim.request("GET", "/ledger/ledgers/node-d/entries/1"))[0] == 404
    # the real node-d is not refused afterwards
    real = await make_node(
        "node-d", data_dir=victim.settings.data_dir.parent / "real-d", admin_token=ADMIN_TOKEN, sync=FAST
    )
    await real.request("POST", "/ledger/entries", json=[draft(i) for i in range(2)])
    await add_peer(victim, real, "pull")
    await eventually(lambda: _holds(victim, "node-d", 2), timeout=10)


async def _holds(node: RunningNode, ledger_id: str, seq: int) -> bool:
    return (await node.request("GET", f"/ledger/ledgers/{ledger_id}/entries/{seq}"))[0] == 200


def _heads_of_5000(liar: KeyPair) -> Callable[[web.Request], Awaitable[web.Response]]:
    """node-m answering heads with 5,000 new ledgers (seq 1 each) and empty pages for every pull."""
    keys = [KeyPair(i.to_bytes(2, "big") * 16).public_key.hex() for i in range(50)]
    ledgers = [{"ledger_id": f"junk-{i:04d}", "public_key": keys[i % 50], "seq": 1, "hash": "ab" * 32}
               for i in range(5000)]  # fmt: skip
    heads = orjson.dumps({"ledger_id": "node-m", "ledgers": ledgers})

    async def answer(request: web.Request) -> web.Response:
        if request.path == "/ledger/sync/heads":
            return web.Response(body=heads, content_type="application/json")
        ledger = request.query.get("ledger", "node-m")
        return web.json_response({"ledger_id": ledger, "public_key": None, "entries": [], "checkpoints": []})

    return answer


@pytest.mark.parametrize(("replicate", "bound", "most"), [("all", 25, 25), ("peers", 1000, 0)])
async def test_a_peer_listing_5000_new_ledgers_gets_at_most_its_bound_pinned(
    make_node: MakeNode, replicate: str, bound: int, most: int
) -> None:
    liar = KeyPair(bytes([77] * 32))
    async with hostile(_heads_of_5000(liar)) as server:
        victim = await make_node("node-a", admin_token=ADMIN_TOKEN,
                                 sync={**FAST, "replicate": replicate, "max_vouched_ledgers": bound})  # fmt: skip
        body = {"url": server.url, "ledger_id": "node-m", "public_key": liar.public_key.hex(), "mode": "pull"}
        assert (await admin(victim, "POST", "/admin/peers", body))[0] == 201
        await eventually(lambda: server.count("/ledger/sync/heads") >= 3, timeout=30)
        _, status = await admin(victim, "GET", "/admin/status")
        junk = [row["ledger_id"] for row in status["ledgers"] if row["ledger_id"].startswith("junk-")]
        assert len(junk) == most
        assert server.count("/ledger/sync/pull") <= most * 3


async def test_a_weak_pin_is_replaced_by_an_operator_pin_and_the_squatters_data_is_gone(make_node: MakeNode) -> None:
    # a victim that admits whatever it finds (auto_admit on an open network: the mistake being fixed)
    victim = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"auto_admit": True})
    squatter = await make_node("node-d", admin_token=ADMIN_TOKEN, sync=FAST)
    await squatter.request("POST", "/ledger/entries", json=[draft(i) for i in range(5)])
    squatter_keys = load_key_file(squatter.settings.key_path)
    status, answer, _ = await victim.request("POST", "/network/introduce",
                                             json=record(squatter_keys, "node-d", squatter.url))  # fmt: skip
    assert (status, answer) == (202, {"status": "peer"})
    victim_key = await public_key(victim)  # the squatter serves the victim (it wants to be replicated)
    await admin(squatter, "POST", "/admin/peers", {"url": victim.url, "ledger_id": "node-a", "public_key": victim_key})
    await eventually(lambda: _holds(victim, "node-d", 5), timeout=10)
    held = (await pins(victim))["node-d"]
    assert (held["source"], held["entries"], held["public_key"]) == ("first-sight", 5, squatter_keys.public_key.hex())

    _, vouch = await admin(squatter, "POST", "/admin/trust", {"to": "node-a", "level": 1.0})
    assert (await admin(victim, "POST", "/admin/trust/attestations", [vouch]))[1]["kept"] == 1
    real = await make_node(
        "node-d", data_dir=victim.settings.data_dir.parent / "real-d", admin_token=ADMIN_TOKEN, sync=FAST
    )
    await real.request("POST", "/ledger/entries", json=[draft(100 + i) for i in range(2)])
    real_key = await public_key(real)
    status, answer = await admin(victim, "PUT", "/admin/pins/node-d", {"public_key": real_key})
    assert status == 200 and answer["source"] == "operator", answer
    replaced = (await pins(victim))["node-d"]
    assert (replaced["public_key"], replaced["source"], replaced["entries"]) == (real_key, "operator", 0)
    for seq in range(1, 6):
        assert not await _holds(victim, "node-d", seq)
    assert "node-d" not in await peer_ids(victim)  # the squatter's endpoint is no peer any more
    assert [a for a in victim.app[TRUST].attestations() if a["from"] == "node-d"] == []  # nor its word
    audit = [r for r in await victim.app[AUDIT].log(10) if r.action == "pin.replace"]
    assert len(audit) == 1 and audit[0].actor == "admin-token"
    assert audit[0].detail["old_key"] == squatter_keys.public_key.hex() and audit[0].detail["entries_dropped"] == 5
    await add_peer(victim, real, "pull")
    await eventually(lambda: _holds(victim, "node-d", 2), timeout=10)
    assert (await victim.request("GET", "/ledger/ledgers/node-d/entries/2"))[1]["payload"] == draft(101)["payload"]


async def test_pins_are_listed_with_provenance_set_and_removed_with_audit_records(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    other = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    await other.request("POST", "/ledger/entries", json=[draft(i) for i in range(3)])
    await add_peer(node, other, "pull")
    await eventually(lambda: _holds(node, "node-b", 3), timeout=10)
    listed = await pins(node)
    assert {lid: (p["source"], p["entries"], p["local"]) for lid, p in listed.items()} == {
        "node-a": ("config", 0, True), "node-b": ("operator", 3, False)}  # fmt: skip
    key = KeyPair(bytes([5] * 32)).public_key.hex()
    assert (await admin(node, "PUT", "/admin/pins/node-z", {"public_key": key}))[0] == 200
    assert (await pins(node))["node-z"]["source"] == "operator"
    assert (await admin(node, "PUT", "/admin/pins/node-a", {"public_key": key}))[0] == 400  # never the own ledger
    assert (await admin(node, "DELETE", "/admin/pins/node-a"))[0] == 400
    assert (await admin(node, "DELETE", "/admin/pins/node-b"))[0] == 204
    assert set(await pins(node)) == {"node-a", "node-z"}
    assert "node-b" not in await peer_ids(node) and not await _holds(node, "node-b", 1)
    assert (await admin(node, "DELETE", "/admin/pins/node-b"))[0] == 404
    actions = [(r.action, r.detail["ledger_id"]) for r in await node.app[AUDIT].log(10)]
    assert ("pin.remove", "node-b") in actions and ("pin.set", "node-z") in actions


async def test_auto_admit_forms_peers_and_without_it_the_operator_admits_or_refuses(make_node: MakeNode) -> None:
    closed = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"auto_admit": True})
    guarded = await make_node("node-c", admin_token=ADMIN_TOKEN, sync=FAST)
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    e = await make_node("node-e", admin_token=ADMIN_TOKEN, sync=FAST)
    b_record = (await b.request("GET", "/network/info"))[1]["record"]
    e_record = (await e.request("GET", "/network/info"))[1]["record"]
    assert (await closed.request("POST", "/network/introduce", json=b_record))[1] == {"status": "peer"}
    assert "node-b" in await peer_ids(closed)
    assert (await guarded.request("POST", "/network/introduce", json=b_record))[1] == {"status": "candidate"}
    assert (await guarded.request("POST", "/network/introduce", json=e_record))[1] == {"status": "candidate"}
    assert await peer_ids(guarded) == set()
    status, found = await admin(guarded, "POST", "/admin/candidates/node-b/admit")
    assert status == 200 and found["status"] == "peer"
    assert (await pins(guarded))["node-b"]["source"] == "operator"
    assert await peer_ids(guarded) == {"node-b"}
    assert (await guarded.request("POST", "/network/introduce", json=b_record))[1] == {"status": "peer"}
    status, found = await admin(guarded, "DELETE", "/admin/candidates/node-e")
    assert status == 200 and found["status"] == "refused"
    assert (await admin(guarded, "POST", "/admin/candidates/node-q/admit"))[0] == 404


async def test_a_trust_path_admits_a_candidate(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"interval_s": 0.2})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    b_record = (await b.request("GET", "/network/info"))[1]["record"]
    assert (await node.request("POST", "/network/introduce", json=b_record))[1] == {"status": "candidate"}
    assert (await admin(node, "POST", "/admin/trust", {"to": "node-b", "level": 0.8}))[0] == 201
    assert "node-b" in await peer_ids(node)
    assert (await pins(node))["node-b"]["source"] == "attested"
    own = {"url": node.url, "ledger_id": "node-a", "public_key": await public_key(node), "mode": "push"}
    assert (await admin(b, "POST", "/admin/peers", own))[0] == 201  # node-b's operator serves node-a
    await b.request("POST", "/ledger/entries", json=draft(1))
    await eventually(lambda: _holds(node, "node-b", 1), timeout=10)
    # below the threshold a trusted path does not admit
    c = await make_node("node-c", admin_token=ADMIN_TOKEN, sync=FAST)
    await admin(node, "POST", "/admin/trust", {"to": "node-c", "level": 0.2})
    c_record = (await c.request("GET", "/network/info"))[1]["record"]
    assert (await node.request("POST", "/network/introduce", json=c_record))[1] == {"status": "candidate"}


async def test_pinning_an_id_already_pinned_under_the_same_key_succeeds_even_concurrently(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    other = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    key = bytes.fromhex(await public_key(other))
    replicas, peers = node.app[LEDGER], node.app[PEERS]
    results = await asyncio.gather(
        peers.add(other.url, "node-b", key, "both", pin_source="operator"),
        *(replicas.pin("node-b", key, "peer") for _ in range(10)),
        *(replicas.pin("node-b", key, "first-sight") for _ in range(10)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert (await pins(node))["node-b"]["source"] == "operator"
    assert "node-b" in await peer_ids(node)
    # and through the API while a peer's heads pin it: no 503 storage-error
    third = KeyPair(bytes([21] * 32)).public_key
    statuses = await asyncio.gather(
        *(admin(node, "PUT", "/admin/pins/node-q", {"public_key": third.hex()}) for _ in range(5)),
        *(replicas.pin("node-q", third, "peer") for _ in range(5)),
    )
    assert [s[0] for s in statuses[:5]] == [200] * 5


async def test_a_registry_record_supersedes_a_first_sight_pin_but_not_an_operator_pin(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"auto_admit": True})
    squatter, rightful = KeyPair(bytes([31] * 32)), KeyPair(bytes([32] * 32))
    introduced = await node.request("POST", "/network/introduce", json=record(squatter, "node-d", "http://127.0.0.1:9"))
    assert introduced[1] == {"status": "peer"}
    assert (await pins(node))["node-d"]["source"] == "first-sight"
    discovery = node.app[DISCOVERY]
    found = await discovery.consider(NodeRecord.model_validate(record(rightful, "node-d", "http://127.0.0.1:8")),
                                     "registry")  # fmt: skip
    assert found is not None and found.status == "peer"
    held = (await pins(node))["node-d"]
    assert (held["public_key"], held["source"]) == (rightful.public_key.hex(), "registry")
    again = await node.request("POST", "/network/introduce", json=record(squatter, "node-d", "http://127.0.0.1:9"))
    assert again[0] == 409 and (await pins(node))["node-d"]["public_key"] == rightful.public_key.hex()
    # an operator pin is not superseded by a registry record
    assert (await admin(node, "PUT", "/admin/pins/node-d", {"public_key": squatter.public_key.hex()}))[0] == 200
    await discovery.consider(NodeRecord.model_validate(record(rightful, "node-d", "http://127.0.0.1:8")), "registry")
    assert (await pins(node))["node-d"]["public_key"] == squatter.public_key.hex()


async def test_figures_while_strangers_introduce_and_push_and_a_peer_floods_its_heads(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    """A victim process (under a 3 GiB address-space limit) takes 2,000 introductions and 500 pushes
    from strangers and 5,000-ledger heads from an admitted peer, while an honest peer writes to it:
    RSS growth < 300 MB, /health p95 < 250 ms, honest propagation < 2 s, nothing of a stranger kept."""
    env = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN, "LEDGER_DURABILITY": "normal", "LEDGER_SYNC__INTERVAL_S": "0.5",
           "LEDGER_DISCOVERY__MAX_CANDIDATES": "500", "LEDGER_SYNC__MAX_VOUCHED_LEDGERS": "50"}  # fmt: skip
    victim = await asyncio.to_thread(start_node, tmp_path / "a", "node-a", env=env, wrap=("prlimit", f"--as={3 << 30}"))
    processes.append(victim)
    honest = await asyncio.to_thread(start_node, tmp_path / "b", "node-b", env=env)
    processes.append(honest)
    liar = KeyPair(bytes([79] * 32))
    async with aiohttp.ClientSession() as session, hostile(_heads_of_5000(liar)) as peer, hostile() as strangers:

        async def call(node: NodeProcess, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            async with session.request(method, node.url + path, **kwargs) as response:
                raw = await response.read()
                return response.status, orjson.loads(raw) if raw else None

        for here, there in ((victim, honest), (honest, victim)):
            _, info = await call(there, "GET", "/network/info")
            body = {"url": there.url, "ledger_id": info["ledger_id"], "public_key": info["public_key"]}
            assert (await call(here, "POST", "/admin/peers", json=body, headers=AUTH))[0] == 201
        body = {"url": peer.url, "ledger_id": "node-m", "public_key": liar.public_key.hex(), "mode": "pull"}
        assert (await call(victim, "POST", "/admin/peers", json=body, headers=AUTH))[0] == 201
        rss_before = psutil.Process(victim.proc.pid).memory_info().rss
        rss_peak = rss_before
        latencies: list[float] = []
        propagation: list[float] = []
        done = asyncio.Event()

        async def introduce(start: int) -> None:
            for i in range(start, 2000, 8):
                keys = KeyPair(i.to_bytes(4, "big") * 8)
                await call(victim, "POST", "/network/introduce", json=record(keys, f"stranger-{i:04d}", strangers.url))

        async def push(start: int) -> None:
            page = orjson.dumps({"ledger_id": "node-d", "public_key": STRANGER.public_key.hex(), "entries": []})
            for i in range(start, 500, 4):
                headers = {**sign_request(STRANGER, f"stranger-{i:04d}", "POST", "/ledger/sync/push", page, wall_ms()),
                           "Content-Type": "application/json"}  # fmt: skip
                status, _ = await call(victim, "POST", "/ledger/sync/push", data=page, headers=headers)
                assert status in (401, 429)  # 429: the address is over its budget of failed authentications

        async def health() -> None:
            nonlocal rss_peak
            while not done.is_set():
                started = time.perf_counter()
                assert (await call(victim, "GET", "/health"))[0] == 200
                latencies.append(time.perf_counter() - started)
                rss_peak = max(rss_peak, psutil.Process(victim.proc.pid).memory_info().rss)
                await asyncio.sleep(0.02)

        async def honest_writes() -> None:
            for i in range(5):
                _, written = await call(honest, "POST", "/ledger/entries", json=draft(i), headers=AUTH)
                started = time.perf_counter()
                path = f"/ledger/ledgers/node-b/entries/{written['seq']}"
                await eventually(lambda path=path: _status_is(call(victim, "GET", path), 200), timeout=10)
                propagation.append(time.perf_counter() - started)

        watcher = asyncio.create_task(health())
        await asyncio.gather(*(introduce(k) for k in range(8)), *(push(k) for k in range(4)), honest_writes())
        await eventually(lambda: peer.count("/ledger/sync/heads") >= 3, timeout=30)
        done.set()
        await watcher
        _, candidates = await call(victim, "GET", "/admin/candidates", headers=AUTH)
        _, pinned = await call(victim, "GET", "/admin/pins", headers=AUTH)
        assert strangers.seen == []
    p95 = sorted(latencies)[int(len(latencies) * 0.95)]
    growth_mb = (rss_peak - rss_before) / 2**20
    print(f"rss growth {growth_mb:.0f} MB, /health p95 {p95 * 1000:.0f} ms over {len(latencies)},"
          f" propagation max {max(propagation):.2f} s")  # fmt: skip
    assert growth_mb < 300 and p95 < 0.25 and max(propagation) < 2.0
    assert len(candidates) <= 500 and not any(c["status"] == "peer" for c in candidates if "stranger" in c["ledger_id"])
    kept = {p["ledger_id"] for p in pinned}
    assert {"node-a", "node-b", "node-m"} <= kept and not any(lid.startswith("stranger") for lid in kept)
    assert "node-d" not in kept and len([lid for lid in kept if lid.startswith("junk-")]) == 50


async def _status_is(request: Awaitable[tuple[int, Any]], status: int) -> bool:
    return (await request)[0] == status


async def test_a_trust_path_through_a_trusted_node_admits_a_candidate_when_its_attestation_arrives(
    make_node: MakeNode,
) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    c = await make_node("node-c", admin_token=ADMIN_TOKEN, sync=FAST)
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    await add_peer(node, c)
    assert (await admin(node, "POST", "/admin/trust", {"to": "node-c", "level": 0.9}))[0] == 201
    b_record = (await b.request("GET", "/network/info"))[1]["record"]
    assert (await node.request("POST", "/network/introduce", json=b_record))[1] == {"status": "candidate"}
    await c.request("POST", "/network/introduce", json=b_record)  # node-c knows node-b before it attests it
    status, attestation = await admin(c, "POST", "/admin/trust", {"to": "node-b", "level": 0.8})
    assert status == 201
    assert (await admin(node, "POST", "/admin/trust/attestations", [attestation]))[0] == 200  # path a -> c -> b: 0.72
    assert "node-b" in await peer_ids(node)
    assert (await pins(node))["node-b"]["source"] == "attested"

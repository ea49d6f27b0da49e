"""The keyed state view: supersedes, the four strategies, order independence, manual resolution."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.settings import ConflictSettings
from node.storage.contract import StoredEntry
from node.sync.conflicts import StateView, register_merge_handler
from tests.conftest import ADMIN_TOKEN, RunningNode, eventually
from tests.node.sync.test_replication import FAST, link

MakeNode = Callable[..., Awaitable[RunningNode]]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def row(ledger: str, seq: int, ts: int, payload: dict[str, Any], supersedes: list[bytes] = (), key: str = "k") -> tuple:  # type: ignore[assignment,type-arg]
    digest = hashlib.sha256(f"{ledger}/{seq}/{ts}/{payload}".encode()).digest()
    meta = orjson.dumps({"supersedes": [h.hex() for h in supersedes]}).decode() if supersedes else None
    return StoredEntry(ledger, seq, f"id-{ledger}-{seq}", "s", "t", None, None, key, ts, orjson.dumps(payload).decode(),
                       meta, None, digest, b"")  # fmt: skip


def view(strategy: str, **extra: Any) -> StateView:
    return StateView(None, ConflictSettings(strategy=strategy, **extra), None)  # type: ignore[arg-type]


def test_an_entry_that_supersedes_the_head_replaces_it() -> None:
    v1 = row("a", 1, 100, {"v": 1})
    v2 = row("b", 1, 50, {"v": 2}, supersedes=[v1.hash])  # older clock, still the successor
    state = view("last-write-wins").resolve_heads("k", [v1, v2])
    assert state.status == "ok" and state.value == {"v": 2} and len(state.heads) == 1


def test_strategies_on_concurrent_writes() -> None:
    a = row("node-a", 1, 200, {"x": 1, "nested": {"p": 1}})
    b = row("node-b", 1, 100, {"y": 2, "nested": {"q": 2}})
    assert view("last-write-wins").resolve_heads("k", [a, b]).value == {"x": 1, "nested": {"p": 1}}
    priority = view("source-priority", source_priority=["node-b", "node-a"]).resolve_heads("k", [a, b])
    assert priority.value == {"y": 2, "nested": {"q": 2}} and priority.status == "resolved"
    merged = view("merge").resolve_heads("k", [a, b])
    assert merged.value == {"x": 1, "y": 2, "nested": {"p": 1, "q": 2}}  # oldest first, later wins
    manual = view("manual").resolve_heads("k", [a, b])
    assert manual.status == "conflict" and len(manual.heads) == 2


def test_ties_break_by_hash_and_custom_merge_handlers_register() -> None:
    a, b = row("node-a", 1, 100, {"v": "a"}), row("node-b", 1, 100, {"v": "b"})
    winner = max((a, b), key=lambda r: r.hash)
    assert view("last-write-wins").resolve_heads("k", [a, b]).winner == winner
    register_merge_handler("count", lambda payloads: {"n": len(payloads)})
    assert view("merge", merge_handler="count").resolve_heads("k", [a, b]).value == {"n": 2}


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50), st.booleans()), min_size=1, max_size=12),
       st.randoms(use_true_random=False))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_the_state_does_not_depend_on_arrival_order(spec: list[tuple[int, int, bool]], rnd: random.Random) -> None:
    rows: list[StoredEntry] = []
    for i, (ledger, ts, supersede) in enumerate(spec):
        earlier = [rows[-1].hash] if supersede and rows else []
        rows.append(row(f"node-{ledger}", i + 1, ts, {"i": i, "d": {str(ledger): ts}}, supersedes=earlier))
    for strategy in ("last-write-wins", "source-priority", "manual", "merge"):
        v = view(strategy, source_priority=["node-2", "node-0"])
        expected = v.resolve_heads("k", rows).fingerprint()
        shuffled = rows[:]
        rnd.shuffle(shuffled)
        assert v.resolve_heads("k", shuffled).fingerprint() == expected


async def put(node: RunningNode, payload: dict[str, Any], **fields: Any) -> dict[str, Any]:
    status, entry, _ = await node.request("POST", "/ledger/entries",
                                          json={"stream": "assets", "type": "set", "key": "asset-7",
                                                "payload": payload, **fields})  # fmt: skip
    assert status == 201, entry
    return dict(entry)


async def digest(node: RunningNode) -> str:
    return str((await node.request("GET", "/ledger/state/digest"))[1]["digest"])


@pytest.mark.parametrize("strategy", ["last-write-wins", "merge"])
async def test_nodes_converge_on_the_same_state(make_node: MakeNode, strategy: str) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, conflicts={"strategy": strategy})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST, conflicts={"strategy": strategy})
    first = await put(a, {"owner": "acme", "n": 1})
    await put(b, {"owner": "globex"})  # concurrent with a's write
    await link(a, b)
    await link(b, a)

    async def same() -> bool:
        return (
            await digest(a) == await digest(b)
            and len((await a.request("GET", "/ledger/state/asset-7"))[1]["heads"]) == 2
        )

    await eventually(same, timeout=20)
    _, state_a, _ = await a.request("GET", "/ledger/state/asset-7")
    _, state_b, _ = await b.request("GET", "/ledger/state/asset-7")
    assert state_a == state_b and state_a["status"] == "resolved"
    if strategy == "merge":
        assert state_a["value"] == {"owner": state_a["winner"]["payload"]["owner"], "n": 1}
    await put(b, {"owner": "initech"}, meta={"supersedes": [h["hash"] for h in state_b["heads"]]})
    await eventually(lambda: digest_is_settled(a, "initech"), timeout=20)
    assert first["key"] == "asset-7"


async def digest_is_settled(node: RunningNode, owner: str) -> bool:
    _, state, _ = await node.request("GET", "/ledger/state/asset-7")
    return bool(state["status"] == "ok" and state["value"]["owner"] == owner)


async def test_manual_conflicts_stay_open_until_resolved(make_node: MakeNode) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, conflicts={"strategy": "manual"})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST, conflicts={"strategy": "manual"})
    await put(a, {"owner": "acme"})
    theirs = await put(b, {"owner": "globex"})
    await link(a, b)
    await link(b, a)

    async def open_conflict() -> list[dict[str, Any]]:
        _, found, _ = await a.request("GET", "/admin/conflicts", params={"status": "open"}, headers=AUTH)
        return [c for c in found if c["kind"] == "key"]

    await eventually(open_conflict, timeout=20)
    (conflict,) = await open_conflict()
    _, state, _ = await a.request("GET", "/ledger/state/asset-7")
    assert state["status"] == "conflict"
    status, problem, _ = await a.request("POST", f"/admin/conflicts/{conflict['id']}/resolve", headers=AUTH,
                                         json={"winner": "0" * 64})  # fmt: skip
    assert status == 400 and "not a head" in problem["detail"]
    status, resolution, _ = await a.request("POST", f"/admin/conflicts/{conflict['id']}/resolve", headers=AUTH,
                                            json={"winner": theirs["hash"]})  # fmt: skip
    assert status == 201 and resolution["type"] == "resolution" and resolution["ledger_id"] == "node-a"
    assert await open_conflict() == []
    await eventually(lambda: digest_is_settled(b, "globex"), timeout=20)  # the resolution replicated
    assert await digest(a) == await digest(b)

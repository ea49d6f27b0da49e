"""Cross-ledger references: recorded, resolved locally or through peers, checked, followed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.conftest import ADMIN_TOKEN, RunningNode, draft, eventually
from tests.node.sync.test_replication import link

MakeNode = Callable[..., Awaitable[RunningNode]]
QUIET = {"interval_s": 3600, "live": False}


def ref(entry: dict[str, Any], type_: str = "source", **override: Any) -> dict[str, Any]:
    return {"ledger_id": entry["ledger_id"], "entry_id": entry["id"], "seq": entry["seq"], "hash": entry["hash"],
            "type": type_, **override}  # fmt: skip


async def put(node: RunningNode, **fields: Any) -> tuple[int, Any]:
    status, body, _ = await node.request("POST", "/ledger/entries", json=draft(1, **fields))
    return status, body


async def refs(node: RunningNode, entry: dict[str, Any], depth: int = 1) -> dict[str, Any]:
    status, body, _ = await node.request("GET", f"/ledger/entries/{entry['id']}/refs", params={"depth": str(depth)})
    assert status == 200, body
    return dict(body)


async def test_references_are_checked_locally_and_through_peers(make_node: MakeNode) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=QUIET)
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=QUIET, refs={"retry_s": 0.2})
    await link(b, a, "push")  # b pins a's key; with sync quiet, a's entries reach b only when asked
    await link(a, b, "push")
    _, x = await put(a)
    _, local = await put(b)
    _, y = await put(b, meta={"refs": [ref(x), ref(local, "related")]})
    walk = await refs(b, y)
    assert [(e["ref"]["ledger_id"], e["status"]) for e in walk["refs"]] == [
        ("node-a", "verified"),
        ("node-b", "verified"),
    ]
    assert walk["refs"][0]["entry"]["hash"] == x["hash"]  # fetched from a, verified under a's pinned key

    async def recorded() -> bool:  # statuses are stored off the write path
        return [s["status"] for s in (await refs(b, y))["status"]] == ["verified", "verified"]

    await eventually(recorded, timeout=10)
    _, z = await put(b, meta={"refs": [ref(y, "derived")]})
    deep = await refs(b, z, depth=2)
    assert [(e["hop"], e["ref"]["seq"]) for e in deep["refs"]] == [(1, y["seq"]), (2, x["seq"]), (2, local["seq"])]
    assert (await b.request("GET", f"/ledger/entries/{z['id']}/refs", params={"depth": "99"}))[0] == 400


async def test_broken_unknown_and_pending_references(make_node: MakeNode) -> None:
    a = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=QUIET, refs={"retry_s": 0.2})
    _, x = await put(a)
    future = {**x, "seq": x["seq"] + 1, "id": "01930000-0000-7000-8000-00000000abcd"}
    stranger = {**x, "ledger_id": "node-q"}
    _, y = await put(a, meta={"refs": [ref(x, hash="0" * 64), ref(stranger), ref(future)]})
    walk = await refs(a, y)
    assert [e["status"] for e in walk["refs"]] == ["broken", "unknown-ledger", "broken"]
    # the third points at seq x+1, which is y itself: another hash and id, so broken, not pending

    async def stored(wanted: list[str]) -> bool:
        return [s["status"] for s in (await refs(a, y))["status"]] == wanted

    await eventually(lambda: stored(["broken", "unknown-ledger", "broken"]), timeout=10)
    ahead = {**x, "seq": x["seq"] + 5}
    _, w = await put(a, meta={"refs": [ref(ahead)]})
    await eventually(lambda: refs_status(a, w, "pending"), timeout=10)
    for _ in range(4):
        await put(a)  # seq x+5 now exists, with another hash: the background retry finds it broken
    await eventually(lambda: refs_status(a, w, "broken"), timeout=10)


async def test_strict_mode_refuses_appends_with_unverifiable_references(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=QUIET, refs={"strict": True})
    _, x = await put(a)
    status, problem = await put(a, meta={"refs": [ref(x, hash="1" * 64)]})
    assert status == 422 and problem["type"].endswith(":append-rejected") and "broken" in problem["detail"]
    status, _ = await put(a, meta={"refs": [ref(x)]})
    assert status == 201


async def test_malformed_references_are_refused_naming_the_field(make_node: MakeNode) -> None:
    a = await make_node("node-a", sync=QUIET)
    _, x = await put(a)
    for bad, where in (([{**ref(x), "hash": "xyz"}], "meta.refs[0].hash"), ("everything", "meta.refs"),
                       ([{**ref(x), "type": "friend"}], "meta.refs[0].type")):  # fmt: skip
        status, problem = await put(a, meta={"refs": bad})
        assert status == 400 and problem["detail"].startswith(where), problem
    assert (await a.request("GET", "/ledger/stats"))[1]["entries"] == 1


async def refs_status(node: RunningNode, entry: dict[str, Any], wanted: str) -> bool:
    return [s["status"] for s in (await refs(node, entry))["status"]] == [wanted]

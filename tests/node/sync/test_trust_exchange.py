"""Trust attestations travel node to node during sync rounds: a path through a trusted node is found
without an operator copying attestations; an attestation for a ledger nobody knows is refused."""

from __future__ import annotations

from tests.conftest import ADMIN_TOKEN, RunningNode, eventually
from tests.node.sync.test_replication import MakeNode, link, start

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_an_attestation_reaches_a_node_through_sync_and_makes_a_path(make_node: MakeNode) -> None:
    a, b, c = [await start(make_node, name) for name in ("node-a", "node-b", "node-c")]
    await link(a, b)
    await link(b, a)
    await link(b, c)
    await link(c, b)  # node-a and node-c never meet
    assert (await a.request("POST", "/admin/trust", headers=AUTH, json={"to": "node-b", "level": 0.9}))[0] == 201
    assert (await b.request("POST", "/admin/trust", headers=AUTH, json={"to": "node-c", "level": 0.8}))[0] == 201

    async def path_found() -> bool:
        _, path, _ = await a.request("GET", "/network/trust/path", params={"to": "node-c"})
        return bool(path["path"] == ["node-a", "node-b", "node-c"])

    await eventually(path_found, timeout=10)
    _, path, _ = await a.request("GET", "/network/trust/path", params={"to": "node-c"})
    assert abs(path["score"] - 0.72) < 1e-9

    async def pairs(node: RunningNode) -> set[tuple[str, str]]:
        _, held, _ = await node.request("GET", "/network/trust")
        return {(x["from"], x["to"]) for x in held}

    async def only_node_bs() -> bool:
        return await pairs(c) == {("node-b", "node-c")}

    await eventually(only_node_bs, timeout=10)
    # node-c refused node-a's (no key of node-a is pinned there: node-a's ledger is empty, never replicated)
    assert await pairs(c) == {("node-b", "node-c")}


async def test_a_refused_attestation_gives_its_reason(make_node: MakeNode) -> None:
    a, b = await start(make_node, "node-a"), await start(make_node, "node-b")
    await link(a, b)
    await link(b, a)
    _, own, _ = await a.request("GET", "/network/trust")
    status, att, _ = await a.request("POST", "/admin/trust", headers=AUTH, json={"to": "node-b", "level": 0.5})
    assert status == 201
    forged = {**att, "level": 1.0}  # the signature no longer covers it
    status, answer, _ = await b.request("POST", "/admin/trust/attestations", headers=AUTH, json=[forged])
    assert status == 200 and answer["refused"] == 1
    assert answer["refusals"] == [{"index": 0, "reason": "attestation node-a->node-b: signature does not verify"}]
    assert own == []


async def test_trust_in_a_ledger_nobody_knows_is_refused_with_the_reason(make_node: MakeNode) -> None:
    a = await start(make_node, "node-a")
    status, problem, _ = await a.request("POST", "/admin/trust", headers=AUTH, json={"to": "node-zz", "level": 0.9})
    assert status == 422 and problem["type"].endswith("unknown-ledger")
    assert "no ledger node-zz is known here" in problem["detail"]
    _, held, _ = await a.request("GET", "/network/trust")
    assert held == []

"""The candidate list as a stranger would attack it: claims to another node's id, records dated in
the future, floods that would push the operator's decisions out, restarts that would forget them,
and trust that is withdrawn after it admitted a peer."""

from __future__ import annotations

import asyncio
from typing import Any

from node.api.context import AUDIT, DISCOVERY, LEDGER
from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.signing import KeyPair
from tests.conftest import ADMIN_TOKEN, eventually
from tests.security.test_admission import FAST, MakeNode, admin, peer_ids, pins, record

SQUATTER = KeyPair(bytes([71] * 32))


async def claims(node: Any, ledger_id: str) -> dict[str, str]:
    """The candidate list's claims to ``ledger_id``: public key -> status."""
    status, listed = await admin(node, "GET", "/admin/candidates")
    assert status == 200, listed
    return {c["record"]["public_key"]: c["status"] for c in listed if c["ledger_id"] == ledger_id}


async def test_a_strangers_claim_to_an_id_does_not_replace_the_owners_and_the_operator_chooses(
    make_node: MakeNode,
) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    owner = await make_node("node-d", admin_token=ADMIN_TOKEN, sync=FAST)
    owned = (await owner.request("GET", "/network/info"))[1]["record"]
    assert (await node.request("POST", "/network/introduce", json=owned))[1] == {"status": "candidate"}
    # a newer record of the same id under the stranger's key comes later
    squatted = record(SQUATTER, "node-d", "http://127.0.0.1:9")
    assert (await node.request("POST", "/network/introduce", json=squatted))[0] == 202
    listed = await claims(node, "node-d")
    assert listed == {owned["public_key"]: "candidate", SQUATTER.public_key.hex(): "candidate"}
    # two keys claim the id: admitting it needs the key
    status, problem = await admin(node, "POST", "/admin/candidates/node-d/admit")
    assert status == 409 and "public_key" in problem["detail"], problem
    assert "node-d" not in await peer_ids(node)
    status, found = await admin(node, "POST", f"/admin/candidates/node-d/admit?public_key={owned['public_key']}")
    assert status == 200 and found["status"] == "peer"
    assert (await pins(node))["node-d"]["public_key"] == owned["public_key"]
    assert await peer_ids(node) == {"node-d"}


async def test_a_record_dated_in_the_future_is_refused(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    future = sign_record(SQUATTER, ledger_id="node-d", name="node-d", endpoints=["http://127.0.0.1:9"],
                         capabilities=["ledger"], issued_at=wall_ms() + 86_400_000).model_dump()  # fmt: skip
    status, problem, kind = await node.request("POST", "/network/introduce", json=future)
    assert status == 422 and kind == "application/problem+json" and "future" in problem["detail"], problem
    assert await claims(node, "node-d") == {}


async def test_a_flood_never_pushes_out_a_refusal_and_refusing_the_flood_makes_room(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"max_candidates": 5})
    refused = KeyPair(bytes([72] * 32))
    await node.request("POST", "/network/introduce", json=record(refused, "node-r", "http://127.0.0.1:9"))
    assert (await admin(node, "DELETE", "/admin/candidates/node-r"))[0] == 200
    statuses = []
    for i in range(20):
        flood = KeyPair(bytes([80 + i] * 32))
        sent = record(flood, f"flood-{i}", "http://127.0.0.1:9")
        statuses.append((await node.request("POST", "/network/introduce", json=sent))[0])
    assert statuses == [202] * 5 + [503] * 15  # five pending claims; the refusal does not count
    _, listed = await admin(node, "GET", "/admin/candidates")
    assert len(listed) == 6 and next(c for c in listed if c["ledger_id"] == "node-r")["status"] == "refused"
    for i in range(5):  # the operator refuses the flood: room again (refusals are not counted)
        assert (await admin(node, "DELETE", f"/admin/candidates/flood-{i}"))[0] == 200
    owner = record(KeyPair(bytes([74] * 32)), "node-o", "http://127.0.0.1:9")
    assert (await node.request("POST", "/network/introduce", json=owner))[0] == 202


async def test_candidates_and_refusals_survive_a_restart_and_a_refused_one_is_not_admitted_by_trust(
    make_node: MakeNode,
) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"interval_s": 0.2})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    e = await make_node("node-e", admin_token=ADMIN_TOKEN, sync=FAST)
    for other in (b, e):
        rec = (await other.request("GET", "/network/info"))[1]["record"]
        assert (await node.request("POST", "/network/introduce", json=rec))[1] == {"status": "candidate"}
    assert (await admin(node, "DELETE", "/admin/candidates/node-e"))[0] == 200
    await node.stop()

    again = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"interval_s": 0.2},
                            data_dir=node.settings.data_dir)  # fmt: skip
    assert list((await claims(again, "node-b")).values()) == ["candidate"]
    assert list((await claims(again, "node-e")).values()) == ["refused"]
    for target in ("node-b", "node-e"):
        assert (await admin(again, "POST", "/admin/trust", {"to": target, "level": 0.9}))[0] == 201
    await eventually(lambda: _peers_are(again, {"node-b"}), timeout=10)
    assert list((await claims(again, "node-e")).values()) == ["refused"]


async def test_a_peer_admitted_by_trust_is_demoted_when_the_trust_is_revoked(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"interval_s": 0.2})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    operator_peer = await make_node("node-c", admin_token=ADMIN_TOKEN, sync=FAST)
    b_record = (await b.request("GET", "/network/info"))[1]["record"]
    assert (await node.request("POST", "/network/introduce", json=b_record))[1] == {"status": "candidate"}
    c_record = (await operator_peer.request("GET", "/network/info"))[1]["record"]
    await node.request("POST", "/network/introduce", json=c_record)
    assert (await admin(node, "POST", "/admin/candidates/node-c/admit"))[0] == 200
    assert (await admin(node, "POST", "/admin/trust", {"to": "node-b", "level": 0.8}))[0] == 201
    await eventually(lambda: _peers_are(node, {"node-b", "node-c"}), timeout=10)

    assert (await admin(node, "POST", "/admin/trust", {"to": "node-b", "level": 0}))[0] == 201  # revoked
    await eventually(lambda: _peers_are(node, {"node-c"}), timeout=10)  # the operator's peer stays
    assert list((await claims(node, "node-b")).values()) == ["candidate"]
    actions = [(r.action, r.detail.get("ledger_id")) for r in await node.app[AUDIT].log(20)]
    assert ("peer.demote", "node-b") in actions


async def _peers_are(node: Any, expected: set[str]) -> bool:
    return await peer_ids(node) == expected


async def test_a_flood_cannot_push_out_a_competing_claim_and_a_full_list_refuses_introductions(
    make_node: MakeNode,
) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"max_candidates": 5})
    owner = KeyPair(bytes([73] * 32))
    for keys in (owner, SQUATTER):
        await node.request("POST", "/network/introduce", json=record(keys, "node-g", "http://127.0.0.1:9"))
    answers = await asyncio.gather(*(
        node.request("POST", "/network/introduce", json=record(KeyPair(bytes([100 + i] * 32)), f"flood-{i}",
                                                               "http://127.0.0.1:9"))
        for i in range(40)
    ))  # fmt: skip
    statuses = sorted({status for status, _, _ in answers})
    assert statuses == [202, 503], statuses  # room for three, then refused; never a 500
    full = next(problem for status, problem, _ in answers if status == 503)
    assert full["type"].endswith(":candidates-full"), full
    assert set(await claims(node, "node-g")) == {owner.public_key.hex(), SQUATTER.public_key.hex()}


async def test_a_strangers_introduction_does_not_unseat_a_peer_that_trust_admitted(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, discovery={"interval_s": 0.2})
    b = await make_node("node-b", admin_token=ADMIN_TOKEN, sync=FAST)
    b_record = (await b.request("GET", "/network/info"))[1]["record"]
    await node.request("POST", "/network/introduce", json=b_record)
    assert (await admin(node, "POST", "/admin/trust", {"to": "node-b", "level": 0.8}))[0] == 201
    await eventually(lambda: _peers_are(node, {"node-b"}), timeout=10)
    status, _, _ = await node.request(
        "POST", "/network/introduce", json=record(SQUATTER, "node-b", "http://127.0.0.1:9")
    )
    assert status == 409
    await node.app[DISCOVERY].reconsider()  # an admission round
    assert await peer_ids(node) == {"node-b"}
    assert (await pins(node))["node-b"]["public_key"] == b_record["public_key"]


async def test_trust_admits_the_owner_over_a_key_a_peer_vouched_for(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    owner = await make_node("node-e", admin_token=ADMIN_TOKEN, sync=FAST)
    await node.app[LEDGER].pin("node-e", SQUATTER.public_key, "peer")  # a hostile peer listed node-e as its own
    owned = (await owner.request("GET", "/network/info"))[1]["record"]
    assert (await node.request("POST", "/network/introduce", json=owned))[0] == 409  # in conflict with that pin
    assert (await admin(node, "POST", "/admin/trust", {"to": "node-e", "level": 0.9}))[0] == 201
    await eventually(lambda: _peers_are(node, {"node-e"}), timeout=10)
    held = (await pins(node))["node-e"]
    assert (held["public_key"], held["source"]) == (owned["public_key"], "attested")

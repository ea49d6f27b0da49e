"""What a pinned key lets its holder do: a ledger pinned on a peer's word is data to replicate, not an
identity that may call this node or vouch for others; and an operator's URL is not stretched to the
endpoint a remote names."""

from __future__ import annotations

from aiohttp import web

from node.api.context import LEDGER, TRUST
from node.ledger.clock import wall_ms
from protocol.requests import sign_request
from protocol.signing import KeyPair
from protocol.trust import attest
from tests.conftest import ADMIN_TOKEN, eventually
from tests.security.test_admission import FAST, MakeNode, admin, hostile, peer_ids, record

VOUCHED = KeyPair(bytes([91] * 32))  # a ledger a hostile peer listed in its heads under its own key


async def test_a_ledger_pinned_on_a_peers_word_cannot_sign_requests(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    await node.app[LEDGER].pin("node-e", VOUCHED.public_key, "peer")
    for method, path, body in (("GET", "/ledger/sync/heads", b""),
                               ("GET", "/ledger/sync/pull?ledger=node-a&after=0&limit=10", b""),
                               ("POST", "/network/trust", b"[]")):  # fmt: skip
        headers = {**sign_request(VOUCHED, "node-e", method, path, body, wall_ms()), "Content-Type": "application/json"}
        status, problem, _ = await node.request(method, path, anonymous=True, data=body, headers=headers)
        assert status == 401 and "not a peer" in problem["detail"], (path, problem)


async def test_attestations_by_a_ledger_pinned_on_a_peers_word_do_not_count(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    await node.app[LEDGER].pin("node-e", VOUCHED.public_key, "peer")
    vouching = attest(VOUCHED, "node-e", "evil-2", 1.0, "full", 2**53 - 1, wall_ms())
    status, counts = await admin(node, "POST", "/admin/trust/attestations", [vouching.model_dump(by_alias=True)])
    assert status == 200 and counts["kept"] == 0 and counts["refused"] == 1, counts
    assert "pinned on a peer's word" in str(counts), counts
    assert node.app[TRUST].score("node-e", "evil-2", frozenset({"full"}))[0] == 0.0


async def test_connect_uses_the_operators_url_not_the_endpoint_the_remote_names(make_node: MakeNode) -> None:
    keys = KeyPair(bytes([92] * 32))
    async with hostile() as canary:
        naming = record(keys, "node-h", canary.url)  # its record names the canary's (private) address

        async def info(request: web.Request) -> web.Response:
            if request.path == "/network/info":
                return web.json_response({"ledger_id": "node-h", "public_key": keys.public_key.hex(), "record": naming})
            return web.json_response({})

        async with hostile(info) as remote:
            node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST, net={"allow_private": False})
            status, found, _ = await node.request("POST", "/network/connect", json={"url": remote.url})
            assert status in (200, 201), found
            assert "node-h" in await peer_ids(node)
            _, listed = await admin(node, "GET", "/admin/peers")
            assert [p["url"] for p in listed if p["ledger_id"] == "node-h"] == [remote.url]
            await eventually(lambda: remote.count("/ledger/sync/heads") >= 1, timeout=10)  # a sync round ran
            assert remote.count("/network/introduce") == 1  # the introduction went there too
            assert canary.seen == [], canary.seen


async def test_urls_outside_printable_ascii_are_refused_where_they_are_given(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    spelled = "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:9"  # full-width digits: 127.0.0.1 once normalised
    body = {"url": spelled, "ledger_id": "node-b", "public_key": "ab" * 32}
    for path, sent in (("/admin/peers", body), ("/network/connect", {"url": spelled})):
        status, problem = await admin(node, "POST", path, sent)
        assert status == 400 and problem["detail"].startswith("url"), (path, problem)


async def test_a_refused_attestation_never_quotes_a_member_it_was_sent(make_node: MakeNode) -> None:
    node = await make_node("node-a", admin_token=ADMIN_TOKEN, sync=FAST)
    sent = {**attest(VOUCHED, "node-e", "x", 1.0, "full", 2**53 - 1, wall_ms()).model_dump(by_alias=True),
            "ECHO<script>": 1}  # fmt: skip
    status, counts = await admin(node, "POST", "/admin/trust/attestations", [sent])
    assert status == 200 and counts["refused"] == 1 and "ECHO" not in str(counts), counts

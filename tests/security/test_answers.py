"""Hostile answers: what a peer's answer can put into this node's errors, status and logs, and
whether it can break the loops that read it.

A hostile aiohttp server of our own on 127.0.0.1 (the ``hostile`` fixture of test_outbound.py),
added as a peer by the operator, answers with member names that are its own text, member names
given twice, JSON nested 1,000 levels, and /network/info answers of 1 MB or of the wrong types.
Figures asserted: no byte of the hostile text in status, log or console snapshot; no crash of a
supervised loop; the peer exchange reaches the honest peer after the hostile one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from node.api.console import FEED
from node.api.context import TASKS
from node.errors import PeerFailed
from node.net.client import Outbound
from node.net.shapes import parse
from protocol.models import Heads, Page
from tests.conftest import RunningNode, eventually
from tests.security import test_outbound
from tests.security.test_outbound import AUTH, Hostile, add_hostile_peer, quick_net

MakeNode = Callable[..., Awaitable[RunningNode]]
hostile = test_outbound.hostile  # the fixture: aiohttp servers of ours on 127.0.0.1, counting hits

ECHO = "ECHO<script>alert(1)</script>-remote-controlled-text-" + "X" * 300
DEEP = b'{"a":' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}"  # 1,000 levels, with a ':' in it
KEY = "ab" * 32


def json_answer(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return handler


async def deep_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(b"data: " + DEEP + b"\n\n")
    return response


# --- errors name our fields, never the answer's text -----------------------------------------------


def test_errors_name_only_our_fields_and_indexes() -> None:
    """An unexpected member is reported as such, at the place it was found, without its name."""
    cases: list[tuple[type[Any], Any, str]] = [
        (Heads, {"ledger_id": "x", "ledgers": [{"ledger_id": "y", "public_key": KEY, "seq": 0, ECHO: 1}]},
         "malformed answer at ledgers[0] (an unexpected member)"),
        (Heads, {"ledger_id": "x", "ledgers": [], ECHO: 1}, "malformed answer at top (an unexpected member)"),
        (Page, {"ledger_id": "x", "entries": [], ECHO: 1}, "malformed answer at top (an unexpected member)"),
        (Heads, {"ledger_id": "x", "ledgers": [{"ledger_id": "y", "public_key": KEY, "seq": "1"}]},
         "malformed answer at ledgers[0].seq (int_type)"),
    ]  # fmt: skip
    for model, data, message in cases:
        with pytest.raises(PeerFailed) as failure:
            parse(model, data)
        assert str(failure.value) == message


async def test_status_and_log_never_echo_member_names(
    make_node: MakeNode, hostile: Callable[..., Awaitable[Hostile]], caplog: pytest.LogCaptureFixture
) -> None:
    """Heads naming an unexpected member, and heads naming a member twice, whose names are remote
    text: the public /ledger/sync/status and the log show the failure, never the name."""
    caplog.set_level(logging.DEBUG)
    extra = {"ledger_id": "evil", "ledgers": [{"ledger_id": "evil", "public_key": KEY, "seq": 0, ECHO: 1}]}
    twice = b'{"ledger_id": "evil", "ledgers": [], "%s": 1, "%s": 2}' % (ECHO.encode(), ECHO.encode())
    extra_server = await hostile({"/ledger/sync/heads": json_answer(orjson.dumps(extra))})
    twice_server = await hostile({"/ledger/sync/heads": json_answer(twice)})
    victim = await make_node("node-v", sync={"interval_s": 0.5})
    await add_hostile_peer(victim.session, victim.url, extra_server.url, "evil-extra")
    await add_hostile_peer(victim.session, victim.url, twice_server.url, "evil-twice")
    errors: dict[str, str | None] = {}

    async def failed() -> bool:
        status, body, _ = await victim.request("GET", "/ledger/sync/status")
        assert status == 200 and "ECHO" not in orjson.dumps(body).decode()
        errors.update({p["ledger_id"]: p["last_error"] for p in body["peers"]})
        return errors.get("evil-extra") is not None and errors.get("evil-twice") is not None

    await eventually(failed, timeout=10)
    print("figures: status errors", errors)
    assert "malformed answer at ledgers[0] (an unexpected member)" in str(errors["evil-extra"])
    assert "answer names a member twice" in str(errors["evil-twice"])
    assert "ECHO" not in caplog.text


# --- an answer nested 1,000 levels ----------------------------------------------------------------


async def test_deep_answers_fail_as_peer_failed(hostile: Callable[..., Awaitable[Hostile]]) -> None:
    """A request answered, or a stream event, nested 1,000 levels with a ':' in it (too deep for the
    check of member names) fails as PeerFailed from the client."""
    server = await hostile({"/deep": json_answer(DEEP), "/stream": deep_stream})
    async with Outbound(quick_net()) as net:
        with pytest.raises(PeerFailed, match="answer nested too deep"):
            await net.request("GET", server.url, "/deep")
        with pytest.raises(PeerFailed, match="answer nested too deep"):
            async for _ in net.stream(server.url, "/stream", {}):
                pass


async def test_exchange_goes_past_a_hostile_peer_to_an_honest_one(
    make_node: MakeNode, hostile: Callable[..., Awaitable[Hostile]]
) -> None:
    """Peer "a-evil" answers exchange, heads and stream nested 1,000 levels; peer "z-honest" (after
    it in every exchange round) answers an empty exchange. Every round reaches the honest peer, and
    no supervised loop crashes."""
    evil = await hostile({
        "/network/ledgers": json_answer(b"[" + DEEP + b"]"), "/ledger/sync/heads": json_answer(DEEP),
        "/ledger/sync/stream": deep_stream,
    })  # fmt: skip
    honest = await hostile({"/network/ledgers": json_answer(b"[]")})
    victim = await make_node("node-v", sync={"interval_s": 0.5}, discovery={"interval_s": 0.2})
    await add_hostile_peer(victim.session, victim.url, evil.url, "a-evil")
    await add_hostile_peer(victim.session, victim.url, honest.url, "z-honest")
    await eventually(lambda: honest.hits["/network/ledgers"] >= 3 and evil.hits["/ledger/sync/stream"] >= 2, timeout=15)
    tasks = {t["name"]: t for t in victim.app[TASKS].states()}
    print("figures: exchange rounds reaching the honest peer", honest.hits["/network/ledgers"],
          "hostile", evil.hits["/network/ledgers"], "streams", evil.hits["/ledger/sync/stream"])  # fmt: skip
    assert evil.hits["/network/ledgers"] >= 3
    for name in ("discovery:exchange", "live:a-evil", "sync:a-evil"):
        assert tasks[name]["crashes"] == 0, tasks[name]
    status, body, _ = await victim.request("GET", "/ledger/sync/status", headers=AUTH)
    evil_status = next(p for p in body["peers"] if p["ledger_id"] == "a-evil")
    assert "nested too deep" in str(evil_status["last_error"]), evil_status


# --- the console's probe of another node ----------------------------------------------------------

BIG = "Z" * 1_000_000
INFOS = {
    "1MB-strings": {"ledger_id": "ECHO-" + BIG, "public_key": "K" * 1_000_000, "head": {"seq": ECHO, "hash": ECHO}},
    "key-a-list": {"ledger_id": "evil", "public_key": ["K"], "head": {"seq": 1, "hash": None}},
    "head-of-strings": {"ledger_id": "evil", "public_key": KEY, "head": {"seq": ECHO, "hash": BIG}},
    "not-an-object": [ECHO],
}


@pytest.mark.parametrize("info", list(INFOS.values()), ids=list(INFOS))
async def test_console_probe_reads_a_bounded_info(
    make_node: MakeNode, hostile: Callable[..., Awaitable[Hostile]], info: Any
) -> None:
    """A peer whose /network/info answers 1 MB strings, a list for its key, a head of strings or a
    list: its probe fails with a short reason that never quotes the answer, nothing of the answer
    enters the snapshot, and a console viewer still gets its snapshots."""
    server = await hostile({"/network/info": json_answer(orjson.dumps(info))})
    victim = await make_node("node-v")
    await add_hostile_peer(victim.session, victim.url, server.url, "evil")
    snapshot = await victim.app[FEED].snapshot()
    raw = orjson.dumps(snapshot)
    item = next(n for n in snapshot["nodes"] if n["ledger_id"] == "evil")
    print(f"figures: snapshot {len(raw)} bytes, probe_error {item['probe_error']!r}")
    assert server.hits["/network/info"] == 1
    assert item["reachable"] is False and item["public_key"] is None and item["head"] is None
    assert str(item["probe_error"]).startswith("malformed answer at ") and len(item["probe_error"]) < 100
    assert b"ZZZZ" not in raw and b"KKKK" not in raw and b"ECHO" not in raw and len(raw) < 50_000
    async with victim.session.get(victim.url + "/console/events", headers=AUTH) as response:
        assert response.status == 200
        kind, data = "message", b""
        async for line in response.content:
            if line.startswith(b"event: "):
                kind = line[7:].strip().decode()
            elif line.startswith(b"data: "):
                data += line[6:].strip()
            elif line == b"\n" and data:
                break
        assert kind == "snapshot" and b"ECHO" not in data


async def test_console_probe_of_an_honest_peer_and_an_impostor(
    make_node: MakeNode, hostile: Callable[..., Awaitable[Hostile]]
) -> None:
    """A well-formed answer is still read (key and head), and one naming another ledger id is marked
    forged, naming the id it answers as."""
    a = await make_node("node-a")
    impostor = await hostile({"/network/info": json_answer(orjson.dumps(
        {"ledger_id": "node-x", "public_key": KEY, "head": {"seq": 3, "hash": "cd" * 32}}))})  # fmt: skip
    victim = await make_node("node-v")
    _, info, _ = await a.request("GET", "/network/info")
    body = {"url": a.url, "ledger_id": "node-a", "public_key": info["public_key"]}
    assert (await victim.request("POST", "/admin/peers", json=body, headers=AUTH))[0] == 201
    await add_hostile_peer(victim.session, victim.url, impostor.url, "evil")
    nodes = {n["ledger_id"]: n for n in (await victim.app[FEED].snapshot())["nodes"]}
    assert nodes["node-a"]["reachable"] and nodes["node-a"]["public_key"] == info["public_key"]
    assert nodes["node-a"]["head"] == {"seq": 0, "hash": None} and nodes["node-a"]["probe_error"] is None
    assert nodes["evil"]["probe_error"] == "answers as 'node-x'" and "forged" in nodes["evil"]["marks"]
    assert nodes["evil"]["head"] == {"seq": 3, "hash": "cd" * 32}

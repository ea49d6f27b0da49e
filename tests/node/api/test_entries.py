"""The ledger HTTP API against a real node on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from protocol.vectors import DIRECTORY
from tests.conftest import RunningNode, draft

pytestmark = pytest.mark.asyncio


async def append(node: RunningNode, body: Any) -> tuple[int, Any, str]:
    return await node.request("POST", "/ledger/entries", data=orjson.dumps(body),
                              headers={"Content-Type": "application/json"})  # fmt: skip


async def head(node: RunningNode) -> int:
    _, stats, _ = await node.request("GET", "/ledger/stats")
    return int(stats["head"]["seq"])


async def test_append_one_then_get_it_by_id_hash_and_seq(node: RunningNode) -> None:
    status, entry, ctype = await append(node, draft(1, issuer_oid="oid:acme:org:a", key="k1", meta={"note": "m"}))
    assert (status, ctype) == (201, "application/json")
    assert entry["seq"] == 1 and entry["prev_hash"] is None and len(entry["sig"]) == 128
    for path in (
        f"/ledger/entries/{entry['id']}",
        f"/ledger/hashes/{entry['hash']}",
        "/ledger/ledgers/node-a/entries/1",
    ):
        status, got, _ = await node.request("GET", path)
        assert status == 200 and got == entry, path


async def test_append_batch_is_atomic_and_returns_receipts(node: RunningNode) -> None:
    status, body, _ = await append(node, [draft(i) for i in range(5)])
    assert status == 201 and body["count"] == 5
    assert [r["seq"] for r in body["entries"]] == [1, 2, 3, 4, 5]
    bad = [draft(i) for i in range(4)] + [{"stream": "proofs", "type": "proof", "payload": "not an object"}]
    status, problem, ctype = await append(node, bad)
    assert status == 400 and ctype == "application/problem+json"
    assert problem["detail"].startswith("entries[4].payload")
    assert await head(node) == 5


@pytest.mark.parametrize(
    ("body", "status", "type_", "detail"),
    [
        (b"{not json", 400, "invalid-request", "body: malformed JSON"),
        (b'{"stream":"proofs","type":"proof","payload":{"x":NaN}}', 400, "invalid-request", "malformed JSON"),
        (b'{"stream":"proofs","type":"proof","payload":{"x":Infinity}}', 400, "invalid-request", "malformed JSON"),
        (b'{"stream":"Proofs!","type":"proof","payload":{}}', 400, "invalid-request", "stream:"),
        (b'{"stream":"proofs","type":7,"payload":{}}', 400, "invalid-request", "type:"),
        (b'{"stream":"proofs","type":"proof","payload":{},"extra":1}', 400, "invalid-request", "extra:"),
        (b'{"stream":"proofs","type":"proof","payload":{},"id":"not-a-uuid"}', 400, "invalid-request", "id:"),
        (b'{"stream":"proofs","type":"proof","payload":{"n":9007199254740993}}', 422, "not-canonical", "payload.n"),
        (b'{"stream":"proofs","type":"proof","payload":{"x":9007199254740992.0}}', 422, "not-canonical", "payload.x"),
        (b'{"stream":"proofs","type":"proof","payload":{},"meta":{"m":[1e300]}}', 422, "not-canonical", "meta.m[0]"),
        (b'{"stream":"proofs","type":"proof","payload":{"x":1,"x":2}}', 422, "duplicate-member", "body: JSON object"),
        (b'{"stream":"proofs","stream":"other","type":"proof","payload":{}}', 422, "duplicate-member", "'stream'"),
        (b'"just a string"', 400, "invalid-request", "expected an entry object or a list"),
        (b"[]", 400, "invalid-request", "empty batch"),
    ],
)
async def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(
    node: RunningNode, body: bytes, status: int, type_: str, detail: str
) -> None:
    got, problem, ctype = await node.request("POST", "/ledger/entries", data=body,
                                             headers={"Content-Type": "application/json"})  # fmt: skip
    assert (got, ctype) == (status, "application/problem+json"), problem
    assert problem["type"].endswith(":" + type_) and detail in problem["detail"]
    assert set(problem) == {"type", "title", "status", "detail"}
    assert await head(node) == 0


async def test_limits_are_enforced(node: RunningNode) -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"d": deep}
    status, problem, _ = await append(node, draft(payload={"deep": deep}))
    assert status == 413 and "nested deeper than 32" in problem["detail"]
    status, problem, _ = await append(node, draft(payload={"big": "x" * 16000, "more": ["y" * 16000] * 4}))
    assert status == 413 and "payload and meta are" in problem["detail"]
    status, problem, _ = await append(node, [draft(i) for i in range(1001)])
    assert status == 413 and problem["type"].endswith(":batch-too-large") and "exceeds 1000" in problem["detail"]
    status, problem, _ = await append(node, draft(subject_oid="o" * 257))
    assert status == 400 and problem["detail"].startswith("subject_oid")
    assert await head(node) == 0


async def test_body_size_limit(make_node: Callable[..., Awaitable[RunningNode]]) -> None:
    small = await make_node("node-small", limits={"max_body_bytes": 2048})
    status, problem, ctype = await append(small, draft(payload={"x": "y" * 4096}))
    assert (status, ctype) == (413, "application/problem+json") and problem["type"].endswith("http-413")


async def test_unknown_streams_are_refused_when_streams_are_configured(
    make_node: Callable[..., Awaitable[RunningNode]],
) -> None:
    limited = await make_node("node-streams", streams=["proofs"])
    assert (await append(limited, draft()))[0] == 201
    status, problem, _ = await append(limited, [draft(), draft(stream="assets")])
    assert status == 400 and "entries[1].stream: unknown stream 'assets'" == problem["detail"]


async def test_wrong_content_type_is_refused(node: RunningNode) -> None:
    status, problem, _ = await node.request("POST", "/ledger/entries", data=b"stream=x",
                                            headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 400 and "content type" in problem["detail"]


async def test_query_filters_order_and_cursor(node: RunningNode) -> None:
    await append(node, [draft(i, type="proof" if i % 2 else "transfer") for i in range(30)])
    status, page, _ = await node.request("GET", "/ledger/entries", params={"type": "proof", "limit": "4"})
    assert status == 200 and [e["payload"]["n"] for e in page["entries"]] == [1, 3, 5, 7]
    seen = [e["seq"] for e in page["entries"]]
    while page["next_cursor"]:
        _, page, _ = await node.request(
            "GET", "/ledger/entries", params={"type": "proof", "limit": "4", "cursor": page["next_cursor"]}
        )
        seen += [e["seq"] for e in page["entries"]]
    assert seen == list(range(2, 31, 2))
    _, page, _ = await node.request("GET", "/ledger/entries", params={"subject_oid": "oid:test:subject:3",
                                                                      "order": "desc"})  # fmt: skip
    assert [e["payload"]["n"] for e in page["entries"]] == [24, 17, 10, 3]


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit: must be between 1 and 1000"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "%%%"}, "cursor: malformed"),
        ({"cursor": "WzEsMiwzXQ"}, "cursor: malformed"),
        ({"since": "-5"}, "since"),
        ({"stream": "NOT VALID"}, "stream"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_query_parameters(node: RunningNode, params: dict[str, str], detail: str) -> None:
    status, problem, ctype = await node.request("GET", "/ledger/entries", params=params)
    assert (status, ctype) == (400, "application/problem+json") and detail in problem["detail"]


async def test_a_cursor_from_another_query_is_refused(node: RunningNode) -> None:
    await append(node, [draft(i) for i in range(6)])
    _, page, _ = await node.request("GET", "/ledger/entries", params={"limit": "2"})
    params = {"limit": "2", "order": "desc", "cursor": page["next_cursor"]}
    status, problem, _ = await node.request("GET", "/ledger/entries", params=params)
    assert status == 400 and "different query" in problem["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/ledger/entries/not-a-uuid", 400),
        ("/ledger/entries/01930000-0000-7000-8000-000000000009", 404),
        ("/ledger/hashes/abc", 400),
        ("/ledger/hashes/" + "0" * 64, 404),
        ("/ledger/ledgers/node-a/entries/0", 400),
        ("/ledger/ledgers/node-a/entries/99", 404),
        ("/ledger/ledgers/NODE/entries/1", 400),
    ],
)
async def test_bad_and_unknown_ids(node: RunningNode, path: str, status: int) -> None:
    got, problem, ctype = await node.request("GET", path)
    assert (got, ctype) == (status, "application/problem+json"), problem


async def test_stats_are_counters_of_what_was_written(node: RunningNode) -> None:
    await append(
        node, [draft(i, stream="proofs" if i < 7 else "assets", type="t" if i % 3 else "u") for i in range(10)]
    )
    _, stats, _ = await node.request("GET", "/ledger/stats")
    assert stats["entries"] == 10 and stats["streams"] == {"assets": 3, "proofs": 7}
    assert stats["types"] == {"t": 6, "u": 4}
    assert stats["first_timestamp"] <= stats["last_timestamp"]


async def test_info_health_ready_metrics_checkpoint(node: RunningNode) -> None:
    await append(node, [draft(i) for i in range(3)])
    _, info, _ = await node.request("GET", "/network/info")
    assert info["ledger_id"] == "node-a" and len(info["public_key"]) == 64 and info["head"]["seq"] == 3
    assert (await node.request("GET", "/health"))[0] == 200
    assert (await node.request("GET", "/ready"))[0] == 200
    _, cp, _ = await node.request("GET", "/ledger/checkpoint")
    assert cp["seq"] == 3 and cp["hash"] == info["head"]["hash"]
    status, text, ctype = await node.request("GET", "/metrics")
    assert status == 200 and ctype == "text/plain"
    assert "ledger_entries_appended_total 3.0" in text and "ledger_head_seq 3.0" in text


async def test_unknown_route_and_method_are_problems(node: RunningNode) -> None:
    status, problem, ctype = await node.request("GET", "/nowhere")
    assert (status, ctype) == (404, "application/problem+json")
    status, problem, ctype = await node.request("DELETE", "/ledger/entries")
    assert (status, ctype) == (405, "application/problem+json")


LIMIT_VECTORS: list[dict[str, Any]] = orjson.loads((DIRECTORY / "limits.json").read_bytes())


async def test_append_answers_each_limit_vector(node: RunningNode) -> None:
    """At each limit the draft is appended, one past it refused with the vector's code."""
    appended = 0
    for case in LIMIT_VECTORS:
        status, answer, _ = await node.request("POST", "/ledger/entries", data=case["draft"].encode(),
                                               headers={"Content-Type": "application/json"})  # fmt: skip
        if case["result"] == "accepted":
            assert status == 201, (case["name"], answer)
            appended += 1
        else:
            code = "invalid-request" if case["refused"] == "invalid-entry" else case["refused"]
            assert status in (400, 413) and answer["type"].endswith(":" + code), (case["name"], answer)
    assert await head(node) == appended

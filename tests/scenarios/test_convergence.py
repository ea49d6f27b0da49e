"""``make run`` reports convergence only when every node holds every ledger at the same head, and names
each peer link still waiting to be admitted."""

from __future__ import annotations

from scenarios.__main__ import _still_waiting
from scenarios.convergence import Head, disagreement, heads_of, waiting_links


def test_equal_heads_converge_and_equal_counts_with_other_hashes_do_not() -> None:
    a3, b3 = Head(3, "aa" * 32), Head(3, "bb" * 32)
    assert disagreement({"node-a": {"node-a": a3, "node-b": b3}, "node-b": {"node-a": a3, "node-b": b3}}) is None
    forked = disagreement({"node-a": {"node-a": a3}, "node-b": {"node-a": Head(3, "cc" * 32)}})
    assert forked == f"ledger node-a differs: node-a at seq 3 ({'aa' * 8}), node-b at seq 3 ({'cc' * 8})"
    behind = disagreement({"node-a": {"node-a": a3}, "node-b": {"node-a": Head(2, "dd" * 32)}})
    assert behind is not None and "node-b at seq 2" in behind
    missing = disagreement({"node-a": {"node-a": a3, "node-b": b3}, "node-b": {"node-b": b3}})
    assert missing == "node-b does not hold ledger node-a yet"


def test_heads_come_from_the_admin_status() -> None:
    status = {"ledgers": [{"ledger_id": "node-a", "head_seq": 0, "head_hash": None, "local": True}]}
    assert heads_of(status) == {"node-a": Head(0, None)}


def test_a_link_waiting_for_admission_is_named_and_explained() -> None:
    def peer(ledger_id: str, state: str) -> dict[str, object]:
        return {"ledger_id": ledger_id, "state": state, "failures": 0, "ledgers": [], "last_error": None}

    sync = {"node-a": {"peers": [peer("node-b", "idle"), peer("node-c", "idle")]},
            "node-b": {"peers": [peer("node-a", "waiting"), peer("node-c", "syncing")]}}  # fmt: skip
    assert waiting_links(sync) == ["node-b → node-a"]
    assert waiting_links({"node-a": {"peers": [peer("node-b", "idle")]}}) == []
    urls = {"node-a": "http://127.0.0.1:8701", "node-b": "http://127.0.0.1:8702"}
    said = _still_waiting(["node-b → node-a"], urls, "admin-token")
    assert said.startswith("node-b → node-a is still waiting after 60 s: node-a has not admitted node-b's key yet")
    assert "Nothing is lost" in said
    assert "ledger-node candidates --url http://127.0.0.1:8701 --token admin-token" in said

"""``make run`` reports convergence only when every node holds every ledger at the same head."""

from __future__ import annotations

from scenarios.convergence import Head, disagreement, heads_of


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

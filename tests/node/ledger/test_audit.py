"""The audit log: what was recorded comes back newest first, paged by id."""

from __future__ import annotations

from pathlib import Path

from node.ledger.store import Store


async def test_audit_log_is_newest_first_and_pages(tmp_path: Path) -> None:
    async with Store(tmp_path / "ledger.db") as store:
        for i in range(5):
            await store.audit("admin", "peer.add", {"ledger_id": f"node-{i}"})
        newest = await store.audit_log(2)
        assert [r.detail["ledger_id"] for r in newest] == ["node-4", "node-3"]
        older = await store.audit_log(10, before_id=newest[-1].id)
        assert [r.detail["ledger_id"] for r in older] == ["node-2", "node-1", "node-0"]
        assert all(r.actor == "admin" and r.action == "peer.add" and r.at_ms > 0 for r in older)

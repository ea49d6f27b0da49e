"""The audit log: what was recorded comes back newest first, paged by id."""

from __future__ import annotations

from pathlib import Path

from node.storage.sqlite import open_sqlite


async def test_audit_log_is_newest_first_and_pages(tmp_path: Path) -> None:
    async with open_sqlite(tmp_path / "ledger.db") as storage:
        store = storage.audit
        for i in range(5):
            await store.record("admin", "peer.add", {"ledger_id": f"node-{i}"})
        newest = await store.log(2)
        assert [r.detail["ledger_id"] for r in newest] == ["node-4", "node-3"]
        older = await store.log(10, before_id=newest[-1].id)
        assert [r.detail["ledger_id"] for r in older] == ["node-2", "node-1", "node-0"]
        assert all(r.actor == "admin" and r.action == "peer.add" and r.at_ms > 0 for r in older)

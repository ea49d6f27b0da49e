"""References between entries and the state of their lookups, in SQLite."""

from __future__ import annotations

from collections.abc import Sequence

from node.storage.contract import RefRecord
from node.storage.database import Database, now_ms

_COLUMNS = (
    "ledger_id, seq, position, target, target_seq, target_hash, target_id, type, status, detail, attempts, checked_at"
)


class SqliteRefs:
    """The RefRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, refs: Sequence[RefRecord]) -> None:
        async with self._db.transaction() as tx:
            await tx.executemany(
                f"INSERT INTO refs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [(r.ledger_id, r.seq, r.position, r.target, r.target_seq, r.target_hash, r.target_id, r.type,
                  r.status, r.detail, r.attempts, r.checked_at) for r in refs],
            )  # fmt: skip

    async def set_status(self, ledger_id: str, seq: int, position: int, status: str, detail: str | None) -> None:
        await self._db.execute(
            "UPDATE refs SET status = ?, detail = ?, attempts = attempts + 1, checked_at = ?"
            " WHERE ledger_id = ? AND seq = ? AND position = ?",
            (status, detail, now_ms(), ledger_id, seq, position),
        )

    async def of(self, ledger_id: str, seq: int) -> list[RefRecord]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM refs WHERE ledger_id = ? AND seq = ? ORDER BY position", (ledger_id, seq)
        )
        return [RefRecord(*row) for row in rows]

    async def pending(self, checked_before: int, limit: int) -> list[RefRecord]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM refs WHERE status = 'pending' AND checked_at < ? ORDER BY checked_at LIMIT ?",
            (checked_before, limit),
        )
        return [RefRecord(*row) for row in rows]

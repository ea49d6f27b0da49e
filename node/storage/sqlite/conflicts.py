"""Conflict evidence (forks, key conflicts with their heads, future timestamps) in SQLite."""

from __future__ import annotations

from collections.abc import Sequence

from node.storage.contract import ConflictRecord
from node.storage.database import Database, now_ms

# a key conflict's evidence is the JSON list of its heads' hashes, sorted
_SELECT = (
    "SELECT id, kind, ledger_id, seq, key, CASE WHEN kind = 'key' AND evidence = '' THEN"
    " (SELECT json_group_array(h) FROM (SELECT lower(hex(hash)) AS h FROM conflict_heads"
    " WHERE conflict_id = conflicts.id ORDER BY h)) ELSE evidence END,"
    " status, detected_at, resolved_at, resolution FROM conflicts"
)


class SqliteConflicts:
    """The ConflictRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self, kind: str, ledger_id: str | None, seq: int | None, key: str | None, evidence: str, *, quarantine: bool
    ) -> int:
        async with self._db.transaction() as tx:
            conflict_id = await tx.insert(
                "INSERT INTO conflicts (kind, ledger_id, seq, key, evidence, detected_at) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, ledger_id, seq, key, evidence, now_ms()),
            )
            if quarantine:
                await tx.execute("UPDATE ledgers SET quarantined = 1 WHERE ledger_id = ?", (ledger_id,))
            return conflict_id

    async def all(self, status: str | None = None) -> list[ConflictRecord]:
        """Conflicts, newest first."""
        where, args = (" WHERE status = ?", (status,)) if status else ("", ())
        rows = await self._db.fetchall(f"{_SELECT}{where} ORDER BY id DESC", args)
        return [ConflictRecord(*row) for row in rows]

    async def get(self, conflict_id: int) -> ConflictRecord | None:
        row = await self._db.fetchone(f"{_SELECT} WHERE id = ?", (conflict_id,))
        return None if row is None else ConflictRecord(*row)

    async def latest_for_key(self, key: str) -> ConflictRecord | None:
        """The newest conflict recorded for ``key``."""
        row = await self._db.fetchone(f"{_SELECT} WHERE kind = 'key' AND key = ? ORDER BY id DESC LIMIT 1", (key,))
        return None if row is None else ConflictRecord(*row)

    async def heads(self, conflict_id: int) -> set[bytes]:
        rows = await self._db.fetchall("SELECT hash FROM conflict_heads WHERE conflict_id = ?", (conflict_id,))
        return {bytes(row[0]) for row in rows}

    async def record_key_conflict(self, key: str, heads: Sequence[bytes], resolution: str | None) -> int:
        """A new conflict of ``key`` with its heads (resolved at once when ``resolution`` is given)."""
        async with self._db.transaction() as tx:
            now = now_ms()
            conflict_id = await tx.insert(
                "INSERT INTO conflicts (kind, key, evidence, status, detected_at, resolved_at, resolution)"
                " VALUES ('key', ?, '', ?, ?, ?, ?)",
                (key, "open" if resolution is None else "resolved", now, None if resolution is None else now,
                 resolution),
            )  # fmt: skip
            await tx.executemany(
                "INSERT OR IGNORE INTO conflict_heads VALUES (?, ?)", [(conflict_id, h) for h in heads]
            )
            return conflict_id

    async def add_heads(self, conflict_id: int, heads: Sequence[bytes]) -> None:
        """Heads that joined a recorded conflict; those held already are not stored again."""
        async with self._db.transaction() as tx:
            await tx.executemany(
                "INSERT OR IGNORE INTO conflict_heads VALUES (?, ?)", [(conflict_id, h) for h in heads]
            )

    async def resolve(self, conflict_id: int, resolution: str, *, status: str = "resolved") -> bool:
        """Close an open conflict; False when it is not open."""
        return bool(
            await self._db.execute(
                "UPDATE conflicts SET status = ?, resolved_at = ?, resolution = ? WHERE id = ? AND status = 'open'",
                (status, now_ms(), resolution, conflict_id),
            )
        )

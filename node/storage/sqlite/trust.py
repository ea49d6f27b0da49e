"""Trust attestations in SQLite: for each (source, target) the newest one stays."""

from __future__ import annotations

from collections.abc import Sequence

from node.storage.contract import AttestationRecord
from node.storage.database import Database


class SqliteTrust:
    """The TrustRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, records: Sequence[AttestationRecord]) -> None:
        """Keep attestations in one transaction; for each (source, target) the latest issued_at stays."""
        async with self._db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO trust VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET attestation = excluded.attestation,"
                " issued_at = excluded.issued_at WHERE excluded.issued_at > trust.issued_at",
                [(r.source, r.target, r.attestation, r.issued_at) for r in records],
            )

    async def all(self) -> list[AttestationRecord]:
        rows = await self._db.fetchall(
            "SELECT source, target, attestation, issued_at FROM trust ORDER BY source, target"
        )
        return [AttestationRecord(*row) for row in rows]

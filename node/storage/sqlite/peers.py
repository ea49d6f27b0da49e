"""Saved peers, candidate peers and sync marks (how far each peer's copy of each ledger reaches) in SQLite."""

from __future__ import annotations

from node.storage.contract import CandidateRecord, PeerRecord, SyncMark
from node.storage.database import Database, Transaction, now_ms


async def mark(tx: Transaction, peer: str, ledger_id: str, direction: str, seq: int, digest: bytes | None) -> None:
    """Move a sync mark inside an open transaction (a commit records where its segment came from)."""
    await tx.execute(
        "INSERT INTO sync_state VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
        " SET seq = excluded.seq, hash = excluded.hash, updated_at = excluded.updated_at",
        (peer, ledger_id, direction, seq, digest, now_ms()),
    )


class SqlitePeers:
    """The PeerRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, ledger_id: str, url: str, mode: str, source: str) -> None:
        await self._db.execute(
            "INSERT INTO peers VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
            " SET url = excluded.url, mode = excluded.mode, source = excluded.source",
            (ledger_id, url, mode, source, now_ms()),
        )

    async def delete(self, ledger_id: str) -> bool:
        return bool(await self._db.execute("DELETE FROM peers WHERE ledger_id = ?", (ledger_id,)))

    async def all(self) -> list[PeerRecord]:
        rows = await self._db.fetchall("SELECT ledger_id, url, mode, source, added_at FROM peers ORDER BY ledger_id")
        return [PeerRecord(*row) for row in rows]

    async def mark_synced(self, peer: str, ledger_id: str, direction: str, seq: int, digest: bytes | None) -> None:
        """Record how far a peer's copy of a ledger is known to reach."""
        async with self._db.transaction() as tx:
            await mark(tx, peer, ledger_id, direction, seq, digest)

    async def sync_marks(self) -> list[SyncMark]:
        rows = await self._db.fetchall(
            "SELECT peer, ledger_id, direction, seq, hash, updated_at FROM sync_state"
            " ORDER BY peer, ledger_id, direction"
        )
        return [SyncMark(*row) for row in rows]

    async def vouched_by(self, peer: str) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT DISTINCT s.ledger_id FROM sync_state s JOIN ledgers l ON l.ledger_id = s.ledger_id"
            " WHERE s.peer = ? AND s.direction = 'pull' AND l.pin_source = 'peer' ORDER BY s.ledger_id",
            (peer,),
        )
        return [str(row[0]) for row in rows]


class SqliteCandidates:
    """The CandidateRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, record: CandidateRecord, *, durable: bool) -> None:
        async with self._db.transaction(durable=durable) as tx:
            await tx.execute(
                "INSERT OR REPLACE INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?)",
                (record.ledger_id, record.public_key, record.record, record.sources, record.status, record.detail,
                 record.seen_ms),
            )  # fmt: skip

    async def delete(self, ledger_id: str, public_key: str) -> None:
        await self._db.execute("DELETE FROM candidates WHERE ledger_id = ? AND public_key = ?", (ledger_id, public_key))

    async def all(self) -> list[CandidateRecord]:
        rows = await self._db.fetchall(
            "SELECT ledger_id, public_key, record, sources, status, detail, seen_ms FROM candidates ORDER BY seen_ms"
        )
        return [CandidateRecord(*row) for row in rows]

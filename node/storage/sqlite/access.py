"""Issued credentials and the audit log in SQLite."""

from __future__ import annotations

from typing import Any

import orjson

from node.storage.contract import AuditRecord, CredentialRecord
from node.storage.database import Database, now_ms


class SqliteAudit:
    """The AuditRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Record that ``actor`` (a credential id, ``config`` or ``node``) did ``action``."""
        await self._db.execute(
            "INSERT INTO audit (at_ms, actor, action, detail) VALUES (?, ?, ?, ?)",
            (now_ms(), actor, action, orjson.dumps(detail).decode()),
        )

    async def log(self, limit: int, before_id: int | None = None) -> list[AuditRecord]:
        rows = await self._db.fetchall(
            "SELECT id, at_ms, actor, action, detail FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            (before_id if before_id is not None else 2**63 - 1, limit),
        )
        return [AuditRecord(i, at, actor, action, orjson.loads(detail)) for i, at, actor, action, detail in rows]


class SqliteCredentials:
    """The CredentialRepository over SQLite."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: CredentialRecord) -> None:
        await self._db.execute(
            "INSERT INTO credentials (id, name, scopes, secret_hash, created_ms, last_used_ms, revoked_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.id, record.name, record.scopes, record.secret_hash, record.created_ms, record.last_used_ms,
             record.revoked_ms),
        )  # fmt: skip

    async def all(self) -> list[CredentialRecord]:
        """Every credential ever issued here (revoked ones too), oldest first."""
        rows = await self._db.fetchall(
            "SELECT id, name, scopes, secret_hash, created_ms, last_used_ms, revoked_ms FROM credentials"
            " ORDER BY created_ms, id"
        )
        return [CredentialRecord(*row) for row in rows]

    async def revoke(self, credential_id: str, at_ms: int) -> bool:
        """Mark a credential revoked (kept for the audit trail); False if there is no such live one."""
        changed = await self._db.execute(
            "UPDATE credentials SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL", (at_ms, credential_id)
        )
        return changed == 1

    async def used(self, credential_id: str, at_ms: int) -> None:
        await self._db.execute("UPDATE credentials SET last_used_ms = ? WHERE id = ?", (at_ms, credential_id))

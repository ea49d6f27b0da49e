"""API credentials for clients: tokens with scopes, issued and revoked by an administrator.

A token reads ``lnt_<id>_<secret>``: ``id`` (12 hex digits) names the credential in lists and in the
audit log, ``secret`` is 32 random bytes (urlsafe base64). Only SHA-256 of the secret is stored; a
check hashes the presented secret and compares in constant time. Every credential is held in memory
(loaded on start, updated on issue and revoke), so a revocation is effective for the very next
request. The configured ``admin_token`` is the bootstrap credential: every scope, actor
``admin-token``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from node.errors import CredentialNotFound, InvalidRequest
from node.storage.contract import CredentialRecord, CredentialRepository

Scope = Literal["read", "append", "query", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
PREFIX = "lnt_"
ADMIN_ACTOR = "admin-token"
LAST_USED_EVERY_MS = 60_000  # last use is written at most once a minute per credential
_DUMMY_HASH = hashlib.sha256(b"no such credential").digest()


@dataclass(frozen=True, slots=True)
class Credential:
    """An issued credential (never its secret)."""

    id: str
    name: str
    scopes: frozenset[Scope]
    created_ms: int
    last_used_ms: int | None = None
    revoked_ms: int | None = None

    def allows(self, scope: Scope) -> bool:
        """Whether this credential carries ``scope`` (``admin`` carries every scope)."""
        return self.revoked_ms is None and (scope in self.scopes or "admin" in self.scopes)

    def wire(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "scopes": sorted(self.scopes), "created_ms": self.created_ms,
                "last_used_ms": self.last_used_ms, "revoked_ms": self.revoked_ms}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Issued:
    """A credential just issued, with its token: the only time the token is ever shown."""

    credential: Credential
    token: str


BOOTSTRAP = Credential(ADMIN_ACTOR, "admin_token setting", frozenset(SCOPES), 0)


def parse_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """Scope names as a set; InvalidRequest for an unknown or missing one."""
    scopes: set[Scope] = set()
    for name in names:
        if name not in SCOPES:
            raise InvalidRequest(f"scopes: unknown scope {name!r} (known: {', '.join(SCOPES)})")
        scopes.add(name)
    if not scopes:
        raise InvalidRequest("scopes: at least one scope is needed")
    return frozenset(scopes)


class Credentials:
    """Issue, list, revoke and check API tokens. ``await load()`` once before checking."""

    def __init__(self, store: CredentialRepository, admin_token: str | None) -> None:
        self._store = store
        self._admin = admin_token.encode() if admin_token else None
        self._held: dict[str, tuple[Credential, bytes]] = {}
        self._used: dict[str, int] = {}

    async def load(self) -> None:
        self._held = {row.id: (_credential(row), row.secret_hash) for row in await self._store.all()}

    async def issue(self, name: str, scopes: frozenset[Scope]) -> Issued:
        """A new credential; its token is returned now and never again."""
        credential_id = secrets.token_hex(6)
        while credential_id in self._held:
            credential_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        credential = Credential(credential_id, name, scopes, _now_ms())
        secret_hash = hashlib.sha256(secret.encode()).digest()
        await self._store.add(
            CredentialRecord(
                credential_id, name, ",".join(sorted(scopes)), secret_hash, credential.created_ms, None, None
            )
        )
        self._held[credential_id] = (credential, secret_hash)
        return Issued(credential, f"{PREFIX}{credential_id}_{secret}")

    def list(self) -> list[Credential]:
        """Every credential issued here, revoked ones included, with its last use."""
        return [self._with_use(c) for c, _ in self._held.values()]

    async def revoke(self, credential_id: str) -> Credential:
        """Revoke a credential: refused from the next request on. CredentialNotFound if unknown."""
        held = self._held.get(credential_id)
        if held is None:
            raise CredentialNotFound(f"no credential {credential_id}")
        if held[0].revoked_ms is None:
            at = _now_ms()
            await self._store.revoke(credential_id, at)
            credential = Credential(held[0].id, held[0].name, held[0].scopes, held[0].created_ms, None, at)
            self._held[credential_id] = (credential, held[1])
        return self._with_use(self._held[credential_id][0])

    def check(self, token: str) -> Credential | None:
        """The live credential ``token`` proves, or None (unknown, wrong secret, revoked, malformed)."""
        given = token.encode()
        if self._admin is not None and hmac.compare_digest(given, self._admin):
            return BOOTSTRAP
        credential_id, _, secret = token.removeprefix(PREFIX).partition("_")
        held = self._held.get(credential_id) if token.startswith(PREFIX) else None
        # hash and compare even when the id is unknown: the answer takes the same time either way
        matches = hmac.compare_digest(
            hashlib.sha256(secret.encode()).digest(), _DUMMY_HASH if held is None else held[1]
        )
        if held is None or not matches or held[0].revoked_ms is not None:
            return None
        return held[0]

    async def used(self, credential: Credential) -> None:
        """Note that ``credential`` was used now (written to the store at most once a minute)."""
        if credential is BOOTSTRAP:
            return
        now = _now_ms()
        last = self._used.get(credential.id)
        self._used[credential.id] = now
        if last is None or now - last >= LAST_USED_EVERY_MS:
            await self._store.used(credential.id, now)

    def _with_use(self, credential: Credential) -> Credential:
        used = self._used.get(credential.id, credential.last_used_ms)
        return Credential(credential.id, credential.name, credential.scopes, credential.created_ms, used,
                          credential.revoked_ms)  # fmt: skip


def _credential(row: CredentialRecord) -> Credential:
    scopes = frozenset(s for s in SCOPES if s in row.scopes.split(","))
    return Credential(row.id, row.name, scopes, row.created_ms, row.last_used_ms, row.revoked_ms)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000

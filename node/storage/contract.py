"""The storage contract: the records storage returns and the repository interfaces per aggregate.

Services see only these: frozen records with named fields, and small repositories (one per
aggregate) that a backend implements (``node/storage/sqlite/``). Every repository promises:
a read sees only committed writes (never another task's open transaction); each method that
writes is one transaction (all or nothing); library errors arrive as StorageError / StorageFull.
``tests/storage/contract.py`` checks these promises once for every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from protocol.entry import entry_hash


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry as stored: payload and meta as their canonical JSON text, hashes and signature as raw
    bytes, so re-hashing it never re-encodes its payload and serving it never parses it."""

    ledger_id: str
    seq: int
    id: str
    stream: str
    type: str
    issuer_oid: str | None
    subject_oid: str | None
    key: str | None
    timestamp: int
    payload: str
    meta: str | None
    prev_hash: bytes | None
    hash: bytes
    sig: bytes

    def to_wire(self) -> dict[str, Any]:
        """The entry as a JSON-ready dict (payload and meta embedded verbatim as orjson fragments)."""
        return {
            "v": 1,
            "ledger_id": self.ledger_id,
            "seq": self.seq,
            "id": self.id,
            "stream": self.stream,
            "type": self.type,
            "issuer_oid": self.issuer_oid,
            "subject_oid": self.subject_oid,
            "key": self.key,
            "timestamp": self.timestamp,
            "payload": orjson.Fragment(self.payload),
            "meta": None if self.meta is None else orjson.Fragment(self.meta),
            "prev_hash": None if self.prev_hash is None else self.prev_hash.hex(),
            "hash": self.hash.hex(),
            "sig": self.sig.hex(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain Python values (payload and meta parsed), for code that inspects them."""
        return {
            **self.to_wire(),
            "payload": orjson.loads(self.payload),
            "meta": None if self.meta is None else orjson.loads(self.meta),
        }

    def content_hash(self) -> bytes:
        """The entry hash recomputed from the content fields."""
        return entry_hash(
            self.ledger_id, self.seq, self.id, self.stream, self.type, self.issuer_oid, self.subject_oid, self.key,
            self.timestamp, self.payload, self.meta, self.prev_hash,
        )  # fmt: skip

    def receipt(self) -> dict[str, Any]:
        """The short acknowledgement of an appended entry."""
        return {"id": self.id, "seq": self.seq, "hash": self.hash.hex()}


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """A ledger this node holds (its own or a replica), with its head, pinned key and where the pin came from."""

    ledger_id: str
    public_key: bytes
    is_local: bool
    head_seq: int
    head_hash: bytes | None
    sig_digest: bytes
    first_timestamp: int | None
    last_timestamp: int | None
    verified_seq: int
    quarantined: bool = False
    pin_source: str = "first-sight"


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signed head as stored."""

    ledger_id: str
    seq: int
    hash: bytes
    sig_digest: bytes
    timestamp: int
    sig: bytes

    def to_wire(self) -> dict[str, Any]:
        return {
            "ledger_id": self.ledger_id,
            "seq": self.seq,
            "hash": self.hash.hex(),
            "sig_digest": self.sig_digest.hex(),
            "timestamp": self.timestamp,
            "sig": self.sig.hex(),
        }


@dataclass(frozen=True, slots=True)
class SyncSource:
    """Which peer's copy a committed segment came from (``pull``) or was acknowledged by (``push``)."""

    peer: str
    direction: str


@dataclass(frozen=True, slots=True)
class SyncMark:
    """How far ``peer``'s copy of ``ledger_id`` is known to reach, in one direction."""

    peer: str
    ledger_id: str
    direction: str
    seq: int
    hash: bytes | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A saved peer: its ledger id, base URL, sync mode and where it came from."""

    ledger_id: str
    url: str
    mode: str
    source: str
    added_at: int


@dataclass(frozen=True, slots=True)
class CandidateRecord:
    """A saved claim of a candidate peer: its signed record (JSON text), the sources that proposed
    it (comma-separated), what became of it and when it was last proposed."""

    ledger_id: str
    public_key: str
    record: str
    sources: str
    status: str
    detail: str | None
    seen_ms: int


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """Recorded evidence of a fork, a key conflict or a future timestamp. ``evidence`` is JSON text
    (for a key conflict: the sorted list of its heads' hashes)."""

    id: int
    kind: str
    ledger_id: str | None
    seq: int | None
    key: str | None
    evidence: str
    status: str
    detected_at: int
    resolved_at: int | None
    resolution: str | None


@dataclass(frozen=True, slots=True)
class AttestationRecord:
    """A trust attestation as kept: the newest one per (source, target)."""

    source: str
    target: str
    attestation: str
    issued_at: int


@dataclass(frozen=True, slots=True)
class RefRecord:
    """A reference from entry (ledger_id, seq) at ``position`` to an entry of another ledger, and
    whether it was found."""

    ledger_id: str
    seq: int
    position: int
    target: str
    target_seq: int
    target_hash: bytes
    target_id: str
    type: str
    status: str
    detail: str | None
    attempts: int
    checked_at: int


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recorded change: who (a credential id, ``config`` or ``node``), what, and its details."""

    id: int
    at_ms: int
    actor: str
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """An issued API token as stored: its secret only as SHA-256, scopes comma-separated."""

    id: str
    name: str
    scopes: str
    secret_hash: bytes
    created_ms: int
    last_used_ms: int | None
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class Filters:
    """Query filters; every one is served by an index."""

    ledger_id: str | None = None
    ledgers: tuple[str, ...] | None = None  # ledger_id is one of these (served by the primary key)
    stream: str | None = None
    type: str | None = None
    issuer_oid: str | None = None
    subject_oid: str | None = None
    key: str | None = None
    since: int | None = None  # timestamp >= since
    until: int | None = None  # timestamp < until


Audit = tuple[str, str, dict[str, Any]]  # (actor, action, detail)


# --- repositories ------------------------------------------------------------------------------


class EntryRepository(Protocol):
    """Entries of every held ledger, their checkpoints and stat counters."""

    async def commit(
        self,
        entries: Sequence[StoredEntry],
        checkpoints: Sequence[CheckpointRecord],
        counts: dict[tuple[str, str], int],
        *,
        sig_digest: bytes,
        sync: SyncSource | None = None,
        audit: Sequence[Audit] = (),
    ) -> None:
        """Append a chain segment of one ledger right after its stored head, with its checkpoints and
        counters, move the head, and record ``sync`` / ``audit``: all in one transaction. A segment
        built on a stale head commits nothing (StorageError)."""
        ...

    def index_lag(self) -> int:
        """Committed entries not yet in the secondary indexes (every read still sees them)."""
        ...

    async def index_now(self) -> None:
        """Bring the secondary indexes up to every commit made so far."""
        ...

    async def ids_taken(self, ledger_id: str, ids: Sequence[str]) -> set[str]: ...
    async def after(self, ledger_id: str, seq: int, limit: int) -> list[StoredEntry]: ...
    async def query(
        self, filters: Filters, *, descending: bool, after: tuple[int, str, int] | None, limit: int
    ) -> list[StoredEntry]: ...
    async def by_id(self, entry_id: str) -> StoredEntry | None: ...
    async def by_hash(self, digest: bytes) -> StoredEntry | None: ...
    async def by_seq(self, ledger_id: str, seq: int) -> StoredEntry | None: ...
    async def keyed(self, key: str) -> list[StoredEntry]: ...
    async def keys(self, after: str | None, limit: int) -> list[str]: ...
    async def stats(self, ledger_id: str) -> dict[str, dict[str, int]]: ...
    async def latest_checkpoint(self, ledger_id: str) -> CheckpointRecord | None: ...
    async def checkpoints_between(self, ledger_id: str, after: int, through: int) -> list[CheckpointRecord]: ...


class LedgerRepository(Protocol):
    """The held ledgers: pins (key and provenance) and heads."""

    async def all(self) -> list[LedgerRecord]:
        """Every ledger held, own first."""
        ...

    async def get(self, ledger_id: str) -> LedgerRecord | None: ...

    async def add(
        self, ledger_id: str, public_key: bytes, *, is_local: bool, genesis: bytes, pin_source: str
    ) -> LedgerRecord:
        """Pin ``ledger_id`` to ``public_key`` with an empty head unless pinned already; the record held."""
        ...

    async def upgrade_pin(self, ledger_id: str, public_key: bytes, source: str) -> None: ...

    async def replace_pin(
        self, ledger_id: str, public_key: bytes | None, source: str, genesis: bytes, audit: Audit
    ) -> int:
        """In one transaction: drop everything held of ``ledger_id`` (entries, checkpoints, stats,
        sync marks of it and by it, refs, its attestations), then pin it to ``public_key`` (or, with
        None, remove the pin and the peer), and audit it. Returns the entries dropped."""
        ...

    async def mark_local(self, ledger_id: str) -> None: ...
    async def set_verified(self, ledger_id: str, seq: int) -> None: ...


class PeerRepository(Protocol):
    """Saved peers and how far their copies are known to reach."""

    async def save(self, ledger_id: str, url: str, mode: str, source: str) -> None: ...
    async def delete(self, ledger_id: str) -> bool: ...
    async def all(self) -> list[PeerRecord]: ...
    async def mark_synced(self, peer: str, ledger_id: str, direction: str, seq: int, digest: bytes | None) -> None: ...
    async def sync_marks(self) -> list[SyncMark]: ...

    async def vouched_by(self, peer: str) -> list[str]:
        """Ledgers pinned on the word of ``peer`` (pin source ``peer``) that it sent entries of."""
        ...


class CandidateRepository(Protocol):
    """Candidate peers, one row per (ledger id, key) claim."""

    async def save(self, record: CandidateRecord, *, durable: bool) -> None:
        """Insert or replace the claim; ``durable=False`` for proposals (a crash may lose the last
        ones, which their sources propose again), True for the operator's decisions."""
        ...

    async def delete(self, ledger_id: str, public_key: str) -> None: ...
    async def all(self) -> list[CandidateRecord]: ...


class ConflictRepository(Protocol):
    """Conflict evidence: forks, key conflicts (with their heads), future timestamps."""

    async def record(
        self, kind: str, ledger_id: str | None, seq: int | None, key: str | None, evidence: str, *, quarantine: bool
    ) -> int:
        """Store evidence (and quarantine the ledger) in one transaction; its id."""
        ...

    async def all(self, status: str | None = None) -> list[ConflictRecord]: ...
    async def get(self, conflict_id: int) -> ConflictRecord | None: ...
    async def latest_for_key(self, key: str) -> ConflictRecord | None: ...
    async def heads(self, conflict_id: int) -> set[bytes]: ...
    async def record_key_conflict(self, key: str, heads: Sequence[bytes], resolution: str | None) -> int: ...
    async def add_heads(self, conflict_id: int, heads: Sequence[bytes]) -> None: ...
    async def resolve(self, conflict_id: int, resolution: str, *, status: str = "resolved") -> bool: ...


class TrustRepository(Protocol):
    """Trust attestations: the newest per (source, target) stays."""

    async def save(self, records: Sequence[AttestationRecord]) -> None: ...
    async def all(self) -> list[AttestationRecord]: ...


class RefRepository(Protocol):
    """References between entries and the state of their lookups."""

    async def add(self, refs: Sequence[RefRecord]) -> None:
        """Record references; those held already are kept as they are."""
        ...

    async def set_status(self, ledger_id: str, seq: int, position: int, status: str, detail: str | None) -> None: ...
    async def of(self, ledger_id: str, seq: int) -> list[RefRecord]: ...
    async def pending(self, checked_before: int, limit: int) -> list[RefRecord]: ...


class AuditRepository(Protocol):
    """The append-only audit log."""

    async def record(self, actor: str, action: str, detail: dict[str, Any]) -> None: ...

    async def log(self, limit: int, before_id: int | None = None) -> list[AuditRecord]:
        """Newest first, ``limit`` at most, older than ``before_id`` when given."""
        ...


class CredentialRepository(Protocol):
    """Issued API tokens (secrets only as hashes)."""

    async def add(self, record: CredentialRecord) -> None: ...
    async def all(self) -> list[CredentialRecord]: ...
    async def revoke(self, credential_id: str, at_ms: int) -> bool: ...
    async def used(self, credential_id: str, at_ms: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Repositories:
    """Every repository of one open backend; each service is handed only those it needs."""

    entries: EntryRepository
    ledgers: LedgerRepository
    peers: PeerRepository
    candidates: CandidateRepository
    conflicts: ConflictRepository
    trust: TrustRepository
    refs: RefRepository
    audit: AuditRepository
    credentials: CredentialRepository

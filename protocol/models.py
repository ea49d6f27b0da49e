"""Wire models of protocol v1 (frozen pydantic): drafts clients submit, signed entries, checkpoints.

Field rules live here once; handlers, the CLI and the sync code validate through these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

LEDGER_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
STREAM_PATTERN = r"^[a-z0-9_-]{1,64}$"
TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
HASH_PATTERN = r"^[0-9a-f]{64}$"
SIG_PATTERN = r"^[0-9a-f]{128}$"

LedgerId = Annotated[str, StringConstraints(pattern=LEDGER_ID_PATTERN)]
Stream = Annotated[str, StringConstraints(pattern=STREAM_PATTERN)]
EntryType = Annotated[str, StringConstraints(pattern=TYPE_PATTERN)]
EntryId = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Hash = Annotated[str, StringConstraints(pattern=HASH_PATTERN)]
Signature = Annotated[str, StringConstraints(pattern=SIG_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=256)]  # oids and keys
Seq = Annotated[int, Field(ge=1, le=2**53 - 1)]
Millis = Annotated[int, Field(ge=0, le=2**53 - 1)]

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class EntryDraft(BaseModel):
    """What a writer submits; the node adds ledger_id, seq, timestamp, links, hash and signature."""

    model_config = _FROZEN

    stream: Stream
    type: EntryType
    payload: dict[str, Any]
    meta: dict[str, Any] | None = None
    issuer_oid: Label | None = None
    subject_oid: Label | None = None
    key: Label | None = None
    id: EntryId | None = None


class Entry(BaseModel):
    """A signed entry as it travels between nodes and to clients."""

    model_config = _FROZEN

    v: Annotated[int, Field(ge=1, le=1)] = 1
    ledger_id: LedgerId
    seq: Seq
    id: EntryId
    stream: Stream
    type: EntryType
    issuer_oid: Label | None = None
    subject_oid: Label | None = None
    key: Label | None = None
    timestamp: Millis
    payload: dict[str, Any]
    meta: dict[str, Any] | None = None
    prev_hash: Hash | None = None
    hash: Hash
    sig: Signature


class Checkpoint(BaseModel):
    """The origin's signed head: ledger, seq, entry hash, running signature digest, time."""

    model_config = _FROZEN

    ledger_id: LedgerId
    seq: Seq
    hash: Hash
    sig_digest: Hash
    timestamp: Millis
    sig: Signature


class Head(BaseModel):
    """One ledger a node holds, as its peers see it."""

    model_config = _FROZEN

    ledger_id: LedgerId
    public_key: Annotated[str, StringConstraints(pattern=HASH_PATTERN)]
    seq: Annotated[int, Field(ge=0, le=2**53 - 1)]
    hash: Hash | None = None
    quarantined: bool = False


class Heads(BaseModel):
    """``GET /ledger/sync/heads``: every ledger held, a version vector of the node."""

    model_config = _FROZEN

    ledger_id: LedgerId  # the answering node
    ledgers: list[Head]


MAX_PAGE = 1000
ANSWER_BUDGET_BYTES = 2 * 1024 * 1024  # a page or query answer stops here (at least one entry): see protocol.md
ANSWER_BUDGET_BRACKETS = 32_768  # ... or here: bytes "[" and "{" in it, strings included (parse cost)


class Page(BaseModel):
    """``GET /ledger/sync/pull`` answer, and ``POST /ledger/sync/push`` body: one ledger's entries in
    seq order with the checkpoints among them."""

    model_config = _FROZEN

    ledger_id: LedgerId
    public_key: Annotated[str, StringConstraints(pattern=HASH_PATTERN)] | None = None
    entries: Annotated[list[Entry], Field(max_length=MAX_PAGE)]
    checkpoints: Annotated[list[Checkpoint], Field(max_length=MAX_PAGE)] = []
    head_seq: Annotated[int, Field(ge=0, le=2**53 - 1)] = 0
    has_more: bool = False


class Ref(BaseModel):
    """A cross-ledger reference in ``meta.refs``: which entry, pinned by position and hash."""

    model_config = _FROZEN

    ledger_id: LedgerId
    entry_id: EntryId
    seq: Seq
    hash: Hash
    type: Literal["source", "derived", "related", "transaction"]


MAX_REFS = 64

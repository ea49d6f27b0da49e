"""Errors of the node, each with a stable ``code`` (the problem ``type`` over HTTP).

NodeError
├── InvalidRequest       malformed input: bad JSON, bad query parameter, bad cursor
├── BatchTooLarge        an append batch over limits.max_batch (413)
├── EntryNotFound        no such entry here
├── DuplicateEntry       an entry id already used in this ledger
├── AppendRejected       a before_append hook refused the entry
├── StoreCorrupted       verification found a bad byte; names ledger_id and seq
├── SchemaTooNew         the database was written by a newer node
├── StorageError         SQLite failed (I/O error, locked); nothing was committed
│   └── StorageFull      the disk is full (507); reads go on
├── NotReady             the node is starting, verifying or shutting down
├── DataDirLocked        another process holds the data directory
├── KeyFileError         the key file is missing, unreadable or malformed
├── BackupError          a backup or restore cannot be made as asked (target not empty, key and store differ)
├── Unauthorized         credential missing, unknown, wrong or revoked (401)
├── Forbidden            a valid credential without the scope the route needs (403)
├── RateLimited          over the caller's request rate; retry after ``retry_after_s`` (429)
├── CredentialNotFound   no credential with that id (404)
├── UnknownLedger        a ledger this node does not know (not pinned, held or discovered) (422)
├── PeerUnavailable      a peer did not answer (in time); retried
└── PeerFailed           a peer answered wrongly (status, size, shape)
    ├── NotKnownThere    the peer answered 401: it has not admitted (pinned) this node
    └── UrlRefused       the URL policy refused to contact the URL
"""

from __future__ import annotations


class NodeError(Exception):
    """Base of every error the node raises on purpose."""

    code = "node-error"


class InvalidRequest(NodeError):
    """The request is malformed; the message names the offending field."""

    code = "invalid-request"


class BatchTooLarge(NodeError):
    """An append batch has more entries than ``limits.max_batch``; refused before any is validated."""

    code = "batch-too-large"


class EntryNotFound(NodeError):
    """No entry with that id, hash or (ledger_id, seq) is held here."""

    code = "entry-not-found"


class DuplicateEntry(NodeError):
    """An entry with this id already exists in the ledger (or twice in one batch)."""

    code = "duplicate-entry"


class AppendRejected(NodeError):
    """A before_append hook refused the batch; the message carries its reason."""

    code = "append-rejected"


class StoreCorrupted(NodeError):
    """Verification failed; ``ledger_id`` and ``seq`` name the first bad position."""

    code = "store-corrupted"

    def __init__(self, ledger_id: str, seq: int, reason: str) -> None:
        super().__init__(f"ledger {ledger_id} seq {seq}: {reason}")
        self.ledger_id = ledger_id
        self.seq = seq
        self.reason = reason

    def __reduce__(self) -> tuple[type[StoreCorrupted], tuple[str, int, str]]:
        # rebuilt from its fields when it crosses a process boundary (parallel verification)
        return (StoreCorrupted, (self.ledger_id, self.seq, self.reason))


class SchemaTooNew(NodeError):
    """The database schema is newer than this node understands."""

    code = "schema-too-new"


class StorageError(NodeError):
    """SQLite failed (disk full, I/O error, locked); the operation committed nothing."""

    code = "storage-error"


class StorageFull(StorageError):
    """The disk is full; the operation committed nothing. Reads go on; free space and retry."""

    code = "storage-full"


class NotReady(NodeError):
    """The node is not serving: starting, verifying, refusing a corrupted store, or stopping."""

    code = "not-ready"


class DataDirLocked(NodeError):
    """Another process (a running node, an import) holds the data directory."""

    code = "data-dir-locked"


class KeyFileError(NodeError):
    """The key file is missing, unreadable, has loose permissions or is malformed."""

    code = "key-file-error"


class BackupError(NodeError):
    """A backup or restore cannot be made as asked: the target is not empty, the source is not a backup,
    or key and store do not belong together; nothing was overwritten."""

    code = "backup-error"


class Unauthorized(NodeError):
    """The bearer credential is missing, unknown, wrong or revoked."""

    code = "unauthorized"


class Forbidden(NodeError):
    """The credential is valid but lacks the scope the route needs."""

    code = "forbidden"


class RateLimited(NodeError):
    """The caller (credential, client address or peer) is over its request rate; nothing was done."""

    code = "rate-limited"

    def __init__(self, detail: str, retry_after_s: float = 1.0) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class CredentialNotFound(NodeError):
    """No credential with that id was issued here."""

    code = "credential-not-found"


class RequestRejected(NodeError):
    """A node-to-node request is unsigned, badly signed, stale, replayed, or from a node we do not know."""

    code = "request-rejected"


class CandidatesFull(NodeError):
    """The candidate list has no room for a new proposal (nothing in it may be pushed out)."""

    code = "candidates-full"


class PeerRefused(NodeError):
    """A node-to-node request from a node this node's operator refused as a peer."""

    code = "peer-refused"


class UnknownLedger(NodeError):
    """A ledger id this node knows nothing of: no key pinned, nothing held, not discovered."""

    code = "unknown-ledger"


class IdentityConflict(NodeError):
    """A ledger id was presented with a public key other than the one pinned for it; nothing was used."""

    code = "identity-conflict"


class ForkDetected(NodeError):
    """Two validly signed entries share one (ledger_id, seq): evidence kept, ledger quarantined."""

    code = "fork-detected"


class LedgerQuarantined(NodeError):
    """The ledger is quarantined (a fork was seen); nothing of it is synced until an admin decides."""

    code = "ledger-quarantined"


class PeerUnavailable(NodeError):
    """A peer did not answer, or not in time; safe to retry."""

    code = "peer-unavailable"


class PeerFailed(NodeError):
    """A peer answered with an error, or with data that does not verify; retrying will not help now."""

    code = "peer-failed"


class NotKnownThere(PeerFailed):
    """The peer answered 401: it does not know this node's key (it has not admitted it, or not yet)."""

    code = "not-known-there"


class RefusedThere(PeerFailed):
    """The peer answered 403 peer-refused: its operator refused this node as a peer."""

    code = "refused-there"


class UrlRefused(PeerFailed):
    """The URL policy refuses to contact this URL (scheme, userinfo, query, or a non-public address)."""

    code = "url-refused"

"""Errors of the registry, each with a stable ``code`` (the problem ``type`` over HTTP).

RegistryError
├── InvalidRequest     malformed input; names the field
├── NodeNotFound       no record for that ledger id
├── KeyMismatch        the ledger id is bound to another key
├── StaleRecord        a record or rotation not newer than the one held
├── Unauthenticated    a request that must be signed is not, or not by the bound key
├── NotEnrolled        a first registration without the enrolment token for its ledger id
├── RateLimited        the client sent too many requests
└── StorageError       SQLite failed; nothing was written
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""

    code = "registry-error"


class InvalidRequest(RegistryError):
    """The request is malformed; the message names the offending field."""

    code = "invalid-request"


class NodeNotFound(RegistryError):
    """No node record is held for that ledger id."""

    code = "node-not-found"


class KeyMismatch(RegistryError):
    """The ledger id is bound to another public key (rotate it with a statement signed by the old key)."""

    code = "key-mismatch"


class StaleRecord(RegistryError):
    """A record or rotation whose issued_at is not newer than the one held (a replay or an old copy)."""

    code = "stale-record"


class Unauthenticated(RegistryError):
    """The request is unsigned, or not signed by the key the ledger id is bound to."""

    code = "unauthenticated"


class NotEnrolled(RegistryError):
    """The ledger id is not bound yet and the registration did not present the enrolment token the
    registry's operator issued for it."""

    code = "not-enrolled"


class RateLimited(RegistryError):
    """The client exceeded its request rate; retry later."""

    code = "rate-limited"


class StorageError(RegistryError):
    """SQLite failed; nothing was written."""

    code = "storage-error"

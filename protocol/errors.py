"""Errors raised by the protocol package.

    ProtocolError
    ├── InvalidEntry         an entry or draft breaks a field rule (names the field)
    │   └── LimitExceeded    a size, length, depth or count limit is exceeded
    ├── NotCanonical         a value has no RFC 8785 encoding (NaN, huge integer, lone surrogate)
    │   └── DuplicateMember  a JSON object names a member twice
    ├── RequestRefused       a signed request is stale or replayed
    └── VerificationFailed   a hash, link or signature does not check out
        ├── HashMismatch
        ├── ChainBroken
        │   └── TimestampDecreasing
        ├── DuplicateId
        ├── CheckpointMismatch
        └── BadSignature

Every class carries a stable ``code`` that HTTP layers turn into a problem ``type``.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the protocol package raises."""

    code = "protocol-error"


class InvalidEntry(ProtocolError):
    """An entry, draft or checkpoint breaks a rule of the protocol; the message names the field."""

    code = "invalid-entry"


class LimitExceeded(InvalidEntry):
    """A protocol limit (payload size, string length, nesting depth, batch size) is exceeded."""

    code = "limit-exceeded"


class NotCanonical(InvalidEntry):
    """A value cannot be encoded canonically: NaN/Infinity, an integer beyond 2^53-1, bad text."""

    code = "not-canonical"


class DuplicateMember(NotCanonical):
    """A JSON text names one member of an object twice: parsers disagree on its value, so it has none."""

    code = "duplicate-member"


class VerificationFailed(ProtocolError):
    """An entry or checkpoint fails verification."""

    code = "verification-failed"


class HashMismatch(VerificationFailed):
    """The stored or sent hash is not the hash of the entry's canonical content."""

    code = "hash-mismatch"


class ChainBroken(VerificationFailed):
    """``seq`` or ``prev_hash`` does not follow the entry before it."""

    code = "chain-broken"


class TimestampDecreasing(ChainBroken):
    """An entry's timestamp is lower than the timestamp of the entry before it."""

    code = "timestamp-decreasing"


class DuplicateId(VerificationFailed):
    """An entry's id already names another entry of the same ledger."""

    code = "duplicate-id"


class CheckpointMismatch(VerificationFailed):
    """A checkpoint does not state the entries it covers (seq, hash, digest or timestamp), or is a
    second checkpoint at one seq."""

    code = "checkpoint-mismatch"


class BadSignature(VerificationFailed):
    """A signature does not verify under the ledger's pinned public key."""

    code = "bad-signature"


class RequestRefused(ProtocolError):
    """A signed request's timestamp is outside the accepted window, or its nonce was already used."""

    code = "request-refused"

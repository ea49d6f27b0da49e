"""Hashing, signing and checking of entries and checkpoints (protocol v1).

An entry's hash is SHA-256 over the RFC 8785 encoding of its thirteen content fields (every field
but ``hash`` and ``sig``; optional fields present as null). Its signature is Ed25519 over the raw
32-byte hash in the ``ledger/entry/v1`` context. A checkpoint signs ``(ledger_id, seq, hash,
sig_digest, timestamp)``, where ``sig_digest`` is a running SHA-256 over every entry signature up to
``seq``: hash links plus one checkpoint signature then authenticate every entry and every
signature byte of a range, while entries can still be signed in parallel (see docs/protocol.md).

``payload_json`` and ``meta_json`` are the canonical encodings of payload and meta; hashing takes
them pre-encoded so that stored entries (which keep those bytes) re-hash without re-encoding.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from protocol import PROTOCOL_VERSION
from protocol.canonical import canonical
from protocol.errors import ChainBroken, HashMismatch
from protocol.signing import CHECKPOINT, ENTRY, KeyPair, verify

GENESIS_DIGEST = bytes(32)
_SORTED = orjson.OPT_SORT_KEYS


def content_bytes(
    ledger_id: str,
    seq: int,
    entry_id: str,
    stream: str,
    entry_type: str,
    issuer_oid: str | None,
    subject_oid: str | None,
    key: str | None,
    timestamp: int,
    payload_json: bytes | str,
    meta_json: bytes | str | None,
    prev_hash: bytes | None,
) -> bytes:
    """The canonical bytes an entry's hash is taken over."""
    return orjson.dumps(
        {
            "v": PROTOCOL_VERSION,
            "ledger_id": ledger_id,
            "seq": seq,
            "id": entry_id,
            "stream": stream,
            "type": entry_type,
            "issuer_oid": issuer_oid,
            "subject_oid": subject_oid,
            "key": key,
            "timestamp": timestamp,
            "payload": orjson.Fragment(payload_json),
            "meta": None if meta_json is None else orjson.Fragment(meta_json),
            "prev_hash": None if prev_hash is None else prev_hash.hex(),
        },
        option=_SORTED,
    )


def entry_hash(*fields: Any) -> bytes:
    """SHA-256 of :func:`content_bytes` (same arguments)."""
    return hashlib.sha256(content_bytes(*fields)).digest()


def sign_hash(keys: KeyPair, digest: bytes) -> bytes:
    """The origin's signature over an entry hash."""
    return keys.sign(ENTRY, digest)


def verify_hash_signature(public_key: bytes, digest: bytes, sig: bytes) -> None:
    """Raise BadSignature unless ``sig`` signs entry hash ``digest`` under ``public_key``."""
    verify(public_key, ENTRY, digest, sig)


def next_sig_digest(previous: bytes, sig: bytes) -> bytes:
    """Fold one entry signature into the running signature digest."""
    return hashlib.sha256(previous + sig).digest()


def checkpoint_bytes(ledger_id: str, seq: int, head_hash: bytes, sig_digest: bytes, timestamp: int) -> bytes:
    """The canonical bytes a checkpoint signature covers."""
    return canonical(
        {
            "ledger_id": ledger_id,
            "seq": seq,
            "hash": head_hash.hex(),
            "sig_digest": sig_digest.hex(),
            "timestamp": timestamp,
        }
    )


def sign_checkpoint(
    keys: KeyPair, ledger_id: str, seq: int, head_hash: bytes, sig_digest: bytes, timestamp: int
) -> bytes:
    """Sign a checkpoint for the head ``(seq, head_hash)``."""
    return keys.sign(CHECKPOINT, checkpoint_bytes(ledger_id, seq, head_hash, sig_digest, timestamp))


def verify_checkpoint(
    public_key: bytes,
    ledger_id: str,
    seq: int,
    head_hash: bytes,
    sig_digest: bytes,
    timestamp: int,
    sig: bytes,
) -> None:
    """Raise BadSignature unless the checkpoint is signed by ``public_key``."""
    verify(public_key, CHECKPOINT, checkpoint_bytes(ledger_id, seq, head_hash, sig_digest, timestamp), sig)


def check_link(seq: int, prev_hash: bytes | None, head_seq: int, head_hash: bytes | None) -> None:
    """Raise ChainBroken unless an entry at ``seq`` linking to ``prev_hash`` extends the head."""
    if seq != head_seq + 1:
        raise ChainBroken(f"seq {seq} does not follow {head_seq}")
    if prev_hash != head_hash:
        raise ChainBroken(f"seq {seq}: prev_hash does not match the hash of seq {head_seq}")


def check_hash(seq: int, computed: bytes, claimed: bytes) -> None:
    """Raise HashMismatch unless the computed and claimed hashes are equal."""
    if computed != claimed:
        raise HashMismatch(f"seq {seq}: hash does not match the entry's content")

"""Stored entries on the wire: size bounds for the answer budget, and sync page bodies.

An answer never exceeds its budget of bytes and brackets; the bounds here are computed from a
stored entry's text without serialising it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.storage.contract import CheckpointRecord, LedgerRecord, StoredEntry


def wire_size(e: StoredEntry) -> int:
    """An upper bound of the bytes ``e.to_wire()`` takes as JSON (free-text labels counted as if
    every character were escaped), so a page cut by it never exceeds its budget."""
    size = 560 + len(e.ledger_id) + len(e.id) + len(e.stream) + len(e.type)  # keys, numbers, hashes, signature
    size += _text_bytes(e.payload) + (4 if e.meta is None else _text_bytes(e.meta))
    for label in (e.issuer_oid, e.subject_oid, e.key):
        if label is not None:
            size += 6 * len(label)
    return size


def brackets(e: StoredEntry) -> int:
    """An upper bound of the ``[`` and ``{`` bytes in ``e.to_wire()`` as JSON (strings included):
    what parsing it costs a reader."""
    count = 1
    for text in (e.payload, e.meta, e.issuer_oid, e.subject_oid, e.key):
        if text is not None:
            count += _brackets(text)
    return count


def within_budget(
    entries: list[StoredEntry], budget: int, brackets_budget: int, per_entry: int = 0
) -> list[StoredEntry]:
    """The longest prefix of ``entries`` whose wire size (plus ``per_entry`` bytes and one bracket
    each) fits ``budget`` bytes and ``brackets_budget`` brackets; at least one entry, so a page
    always moves forward."""
    used = opened = 0
    for i, e in enumerate(entries):
        used += wire_size(e) + per_entry
        opened += brackets(e) + 1
        if (used > budget or opened > brackets_budget) and i > 0:
            return entries[:i]
    return entries


def _text_bytes(text: str | bytes) -> int:
    return len(text) if isinstance(text, bytes) else len(text.encode())


def _brackets(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{")
    return text.count("[") + text.count("{")


def page_body(
    held: LedgerRecord, entries: list[StoredEntry], checkpoints: Sequence[CheckpointRecord]
) -> dict[str, Any]:
    """The wire form of a sync page of ledger ``held``: pull answers, push bodies."""
    return {
        "ledger_id": held.ledger_id,
        "public_key": held.public_key.hex(),
        "entries": [e.to_wire() for e in entries],
        "checkpoints": [cp.to_wire() for cp in checkpoints],
        "head_seq": held.head_seq,
        "has_more": bool(entries) and entries[-1].seq < held.head_seq,
    }

"""Verification of received entries against a held state: the rules of docs/protocol.md section 5.

One function per rule, applied by every path that takes in entries (sync pulls and pushes, import)
and, on stored rows, by ``ledger-node verify``:

- ``check_link``: seq follows, prev_hash is the previous entry's hash (``protocol.entry``);
- ``check_timestamp``: timestamps never decrease along a chain;
- ``protocol.limits.encode_content``: payload and meta have a canonical form within the limits;
- ``check_hash``: the hash is SHA-256 of the content bytes (``protocol.entry``);
- ``check_checkpoint``: a checkpoint states exactly the entry it covers (seq, hash, signature
  digest, timestamp) and is signed; one checkpoint per seq;
- ``check_unique_ids``: an entry's id names no other entry of its ledger;
- entries no checkpoint covers (after the last one of a range) are accepted by their own
  signatures: ``ChainVerifier.uncovered`` lists them for the caller to check.

``ChainVerifier`` applies them in order, one entry or checkpoint at a time; ``verify_range`` is the
whole procedure for one range, without storage, as the vectors use it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.entry import (
    GENESIS_DIGEST,
    check_hash,
    check_link,
    entry_hash,
    next_sig_digest,
    verify_checkpoint,
    verify_hash_signature,
)
from protocol.errors import BadSignature, CheckpointMismatch, DuplicateId, TimestampDecreasing
from protocol.limits import DEFAULT_LIMITS, Limits, encode_content
from protocol.models import Checkpoint, Entry


@dataclass(frozen=True, slots=True)
class ChainState:
    """A verified head: its seq and hash, the signature digest through it and its timestamp."""

    seq: int
    hash: bytes | None
    digest: bytes
    timestamp: int


EMPTY = ChainState(0, None, GENESIS_DIGEST, 0)


def check_timestamp(seq: int, timestamp: int, previous: int) -> None:
    """Raise TimestampDecreasing if the entry at ``seq`` is dated before the entry before it."""
    if timestamp < previous:
        raise TimestampDecreasing(f"seq {seq}: timestamp {timestamp} is lower than the previous entry's {previous}")


def check_checkpoint(public_key: bytes, cp: Checkpoint, state: ChainState) -> None:
    """Raise unless ``cp`` is the origin's signed statement of ``state``, the entry it covers.

    Its seq, hash and signature digest are the entry's and the chain's through it, and its timestamp
    is that entry's timestamp (CheckpointMismatch); its signature verifies (BadSignature).
    """
    if (cp.seq, bytes.fromhex(cp.hash), bytes.fromhex(cp.sig_digest)) != (state.seq, state.hash, state.digest):
        raise CheckpointMismatch(f"checkpoint at seq {cp.seq} does not match the entries before it")
    if cp.timestamp != state.timestamp:
        raise CheckpointMismatch(f"checkpoint at seq {cp.seq}: timestamp differs from the entry's")
    verify_checkpoint(public_key, cp.ledger_id, cp.seq, bytes.fromhex(cp.hash), bytes.fromhex(cp.sig_digest),
                      cp.timestamp, bytes.fromhex(cp.sig))  # fmt: skip


def check_checkpoint_seqs(entry_seqs: Sequence[int], checkpoint_seqs: Sequence[int]) -> None:
    """Raise CheckpointMismatch unless the checkpoints sent with a range are in increasing seq order,
    one per seq at most, each at the seq of one of the range's entries."""
    seqs = set(entry_seqs)
    previous = 0
    for seq in checkpoint_seqs:
        if seq == previous:
            raise CheckpointMismatch(f"checkpoints: two at seq {seq}")
        if seq < previous or seq not in seqs:
            raise CheckpointMismatch(f"checkpoints: seq {seq} is out of order or covers no entry sent")
        previous = seq


def check_unique_ids(entries: Iterable[tuple[int, str]], taken: Collection[str] = ()) -> None:
    """Raise DuplicateId if two of ``(seq, id)`` share an id, or one is among ``taken`` (held ids)."""
    seen: set[str] = set()
    for seq, entry_id in entries:
        if entry_id in seen or entry_id in taken:
            raise DuplicateId(f"seq {seq}: id {entry_id} already names another entry of this ledger")
        seen.add(entry_id)


class ChainVerifier:
    """The running verification of one ledger's chain from a held state, one item at a time.

    ``extend`` applies every per-entry rule and, with ``full``, checks the entry's signature;
    otherwise the entry waits in ``uncovered`` until a checkpoint covers it (``check_checkpoint``).
    Entries still uncovered when the range ends must have their signatures checked by the caller.
    """

    def __init__(self, public_key: bytes, state: ChainState, *, full: bool, limits: Limits = DEFAULT_LIMITS) -> None:
        self.public_key = public_key
        self.state = state
        self.full = full
        self.limits = limits
        self.uncovered: list[tuple[int, bytes, bytes]] = []  # (seq, hash, sig) since the last checkpoint
        self._last_checkpoint = -1

    @property
    def seq(self) -> int:
        return self.state.seq

    @property
    def head(self) -> bytes | None:
        return self.state.hash

    @property
    def digest(self) -> bytes:
        return self.state.digest

    def extend(self, e: Entry) -> tuple[Any, ...]:
        """Check that ``e`` extends the state; return its twelve content fields (payload and meta as
        canonical text, prev_hash as bytes), its hash and its signature."""
        state = self.state
        check_link(e.seq, None if e.prev_hash is None else bytes.fromhex(e.prev_hash), state.seq, state.hash)
        check_timestamp(e.seq, e.timestamp, state.timestamp)
        row = check_entry(e, self.limits)
        claimed, sig = row[-2], row[-1]
        if self.full:
            check_entry_signature(self.public_key, e.seq, claimed, sig)
        else:
            self.uncovered.append((e.seq, claimed, sig))
        self.state = ChainState(e.seq, claimed, next_sig_digest(state.digest, sig), e.timestamp)
        return row

    def check_checkpoint(self, cp: Checkpoint) -> None:
        """Check a checkpoint at the current state; it then covers every entry since the last one."""
        if cp.seq == self._last_checkpoint:
            raise CheckpointMismatch(f"checkpoints: two at seq {cp.seq}")
        check_checkpoint(self.public_key, cp, self.state)
        self._last_checkpoint = cp.seq
        self.uncovered.clear()


def check_entry(e: Entry, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, ...]:
    """Check one entry on its own, as every receiver and the append path do: its payload and meta
    within ``limits`` and canonical, its hash recomputed from its content. Returns its twelve content
    fields (payload and meta as canonical text, prev_hash as bytes), its hash and its signature;
    raises the ProtocolError of the rule broken. Its place in a chain and its signature are checked
    apart (``ChainVerifier``, ``check_entry_signature``)."""
    prev = None if e.prev_hash is None else bytes.fromhex(e.prev_hash)
    payload_bytes, meta_bytes = encode_content(e.payload, e.meta, limits, f"seq {e.seq}: ")
    payload, meta = payload_bytes.decode(), None if meta_bytes is None else meta_bytes.decode()
    claimed, sig = bytes.fromhex(e.hash), bytes.fromhex(e.sig)
    fields = (e.ledger_id, e.seq, e.id, e.stream, e.type, e.issuer_oid, e.subject_oid, e.key, e.timestamp,
              payload, meta, prev)  # fmt: skip
    check_hash(e.seq, entry_hash(*fields), claimed)
    return (*fields, claimed, sig)


def check_entry_signature(public_key: bytes, seq: int, digest: bytes, sig: bytes) -> None:
    """Raise BadSignature naming ``seq`` unless ``sig`` is the origin's over entry hash ``digest``."""
    try:
        verify_hash_signature(public_key, digest, sig)
    except BadSignature as exc:
        raise BadSignature(f"seq {seq}: signature does not verify") from exc


def verify_range(
    public_key: bytes,
    entries: Sequence[Entry],
    checkpoints: Sequence[Checkpoint],
    state: ChainState = EMPTY,
    *,
    taken_ids: Collection[str] = (),
    full: bool = False,
) -> ChainState:
    """Verify one range of a ledger as a receiver does (sync page, import) and return the new head.

    ``entries`` extend ``state`` in seq order, ``checkpoints`` are among them (``check_checkpoint_seqs``),
    ``taken_ids`` are the ids already held for the ledger. Raises the ProtocolError of the first rule
    broken.
    """
    check_checkpoint_seqs([e.seq for e in entries], [c.seq for c in checkpoints])
    check_unique_ids(((e.seq, e.id) for e in entries), taken_ids)
    chain = ChainVerifier(public_key, state, full=full)
    by_seq = {c.seq: c for c in checkpoints}
    for e in entries:
        chain.extend(e)
        if e.seq in by_seq:
            chain.check_checkpoint(by_seq[e.seq])
    for seq, digest, sig in chain.uncovered:  # after the last checkpoint: each by its own signature
        check_entry_signature(public_key, seq, digest, sig)
    return chain.state

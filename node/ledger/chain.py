"""Incremental verification of a ledger's chain as entries arrive (sync pages, imports).

A ``ChainVerifier`` starts from a held state (seq, hash, signature digest) and extends it one
received entry at a time (its payload and meta through ``protocol.limits.encode_content``, the
check the append path applies); checkpoints are checked against the state they claim. Entries that no
checkpoint covers yet are listed in ``uncovered`` so the caller can check their signatures before
committing them.
"""

from __future__ import annotations

from node.storage.contract import CheckpointRecord, StoredEntry
from protocol.entry import check_hash, check_link, entry_hash, next_sig_digest, verify_checkpoint, verify_hash_signature
from protocol.errors import VerificationFailed
from protocol.limits import DEFAULT_LIMITS, encode_content
from protocol.models import Checkpoint, Entry


class ChainVerifier:
    """The running verification state of one ledger: head seq, head hash, signature digest."""

    def __init__(self, public_key: bytes, seq: int, head: bytes | None, digest: bytes, *, full: bool) -> None:
        self.public_key = public_key
        self.seq, self.head, self.digest = seq, head, digest
        self.full = full
        self.uncovered: list[tuple[int, bytes, bytes]] = []  # (seq, hash, sig) since the last checkpoint

    def extend(self, e: Entry) -> StoredEntry:
        """Check that ``e`` extends the state and hashes right; returns its stored row."""
        check_link(e.seq, None if e.prev_hash is None else bytes.fromhex(e.prev_hash), self.seq, self.head)
        row = verify_entry(self.public_key, e, signature=self.full)
        claimed, sig = row.hash, row.sig
        if not self.full:
            self.uncovered.append((e.seq, claimed, sig))
        self.seq, self.head, self.digest = e.seq, claimed, next_sig_digest(self.digest, sig)
        return row

    def check_checkpoint(self, cp: Checkpoint) -> CheckpointRecord:
        """Check a checkpoint at the current state; it then covers every entry since the last one."""
        row = to_checkpoint_record(cp)
        verify_checkpoint(self.public_key, row.ledger_id, row.seq, row.hash, row.sig_digest, row.timestamp, row.sig)
        if row.seq != self.seq or row.hash != self.head or row.sig_digest != self.digest:
            raise VerificationFailed(f"checkpoint at seq {row.seq} does not match the entries before it")
        self.uncovered.clear()
        return row


def verify_entry(public_key: bytes, e: Entry, *, signature: bool = True) -> StoredEntry:
    """Check one received entry on its own: its content within the limits and canonical, its hash
    recomputed from that content, and (unless ``signature`` is off, when the caller checks it later
    in bulk) the origin's signature over the hash. Returns its stored row; raises a ProtocolError
    (InvalidEntry, NotCanonical, VerificationFailed, BadSignature) otherwise."""
    prev = None if e.prev_hash is None else bytes.fromhex(e.prev_hash)
    # the same check and encoding as the append path: what an origin may sign, a receiver accepts
    payload_bytes, meta_bytes = encode_content(e.payload, e.meta, DEFAULT_LIMITS, f"seq {e.seq}: ")
    payload, meta = payload_bytes.decode(), None if meta_bytes is None else meta_bytes.decode()
    claimed, sig = bytes.fromhex(e.hash), bytes.fromhex(e.sig)
    fields = (e.ledger_id, e.seq, e.id, e.stream, e.type, e.issuer_oid, e.subject_oid, e.key, e.timestamp,
              payload, meta, prev)  # fmt: skip
    check_hash(e.seq, entry_hash(*fields), claimed)
    if signature:
        verify_hash_signature(public_key, claimed, sig)
    return StoredEntry(*fields, claimed, sig)


def to_checkpoint_record(cp: Checkpoint) -> CheckpointRecord:
    return CheckpointRecord(cp.ledger_id, cp.seq, bytes.fromhex(cp.hash), bytes.fromhex(cp.sig_digest), cp.timestamp,
                         bytes.fromhex(cp.sig))  # fmt: skip

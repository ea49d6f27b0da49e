"""Incremental verification of a ledger's chain as entries arrive (sync pages, imports), and of one
received entry on its own (references, federated answers).

The rules are ``protocol.chain``'s; this adapter starts a ``ChainVerifier`` from a held state
(seq, hash, signature digest, head timestamp) and returns what the store takes: each verified
entry as a StoredEntry, each verified checkpoint as a CheckpointRecord. Entries that no checkpoint
covers yet are listed in ``uncovered`` so the caller can check their signatures before committing them.
"""

from __future__ import annotations

from node.storage.contract import CheckpointRecord, StoredEntry
from protocol import chain
from protocol.models import Checkpoint, Entry


class ChainVerifier(chain.ChainVerifier):
    """The running verification state of one ledger: head seq, head hash, signature digest, timestamp.

    ``timestamp`` is the head entry's (0 when unknown: a probe of one entry, the empty ledger).
    """

    def __init__(
        self, public_key: bytes, seq: int, head: bytes | None, digest: bytes, *, full: bool, timestamp: int = 0
    ) -> None:
        super().__init__(public_key, chain.ChainState(seq, head, digest, timestamp), full=full)

    def extend_entry(self, e: Entry) -> StoredEntry:
        """Check that ``e`` extends the state and hashes right; returns its stored record."""
        return StoredEntry(*self.extend(e))

    def checkpoint_record(self, cp: Checkpoint) -> CheckpointRecord:
        """Check a checkpoint at the current state (it then covers every entry since the last one);
        returns its stored record."""
        self.check_checkpoint(cp)
        return to_checkpoint_record(cp)


def verify_entry(public_key: bytes, e: Entry, *, signature: bool = True) -> StoredEntry:
    """Check one received entry on its own: its content within the limits and canonical, its hash
    recomputed from that content, and (unless ``signature`` is off, when the caller checks it later
    in bulk) the origin's signature over the hash. Returns its stored record; raises a ProtocolError
    (InvalidEntry, NotCanonical, VerificationFailed, BadSignature) otherwise."""
    row = StoredEntry(*chain.check_entry(e))
    if signature:
        chain.check_entry_signature(public_key, e.seq, row.hash, row.sig)
    return row


def to_checkpoint_record(cp: Checkpoint) -> CheckpointRecord:
    return CheckpointRecord(cp.ledger_id, cp.seq, bytes.fromhex(cp.hash), bytes.fromhex(cp.sig_digest), cp.timestamp,
                            bytes.fromhex(cp.sig))  # fmt: skip

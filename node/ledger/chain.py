"""Incremental verification of a ledger's chain as entries arrive (sync pages, imports).

The rules are ``protocol.chain``'s; this adapter starts a ``ChainVerifier`` from a held state
(seq, hash, signature digest, head timestamp) and returns what the store takes: each verified
entry as a row, each verified checkpoint as a checkpoint row. Entries that no checkpoint covers yet
are listed in ``uncovered`` so the caller can check their signatures before committing them.
"""

from __future__ import annotations

from node.ledger.rows import Row
from node.ledger.store import CheckpointRow
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

    def extend(self, e: Entry) -> Row:
        """Check that ``e`` extends the state and hashes right; returns its stored row."""
        return super().extend(e)

    def checkpoint_row(self, cp: Checkpoint) -> CheckpointRow:
        """Check a checkpoint at the current state (it then covers every entry since the last one);
        returns its stored row."""
        self.check_checkpoint(cp)
        return to_checkpoint_row(cp)


def to_checkpoint_row(cp: Checkpoint) -> CheckpointRow:
    return CheckpointRow(cp.ledger_id, cp.seq, bytes.fromhex(cp.hash), bytes.fromhex(cp.sig_digest), cp.timestamp,
                         bytes.fromhex(cp.sig))  # fmt: skip

"""Building blocks of the vectors: signed chains, checkpoints and forged variants of them.

Public so that tests (and other implementations' fixtures) build valid and invalid ledgers the way
the published vectors are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from protocol.canonical import reference
from protocol.chain import EMPTY, ChainState
from protocol.entry import entry_hash, next_sig_digest, sign_checkpoint, sign_hash
from protocol.errors import NotCanonical
from protocol.models import Checkpoint, Entry
from protocol.signing import KeyPair


@dataclass(frozen=True, slots=True)
class Signed:
    """One entry as its origin signed it, and the chain's state through it."""

    entry: Entry
    state: ChainState
    content_args: tuple[Any, ...]  # the arguments of protocol.entry.content_bytes


def sign_chain(keys: KeyPair, ledger_id: str, drafts: list[dict[str, Any]], start: ChainState = EMPTY) -> list[Signed]:
    """Sign ``drafts`` (id, stream, type, timestamp, payload and optional fields) as entries extending
    ``start``. Nothing is checked: a draft may break any rule, and the result is still signed."""
    signed: list[Signed] = []
    state = start
    for seq, d in enumerate(drafts, start=start.seq + 1):
        meta = d.get("meta")
        args = (ledger_id, seq, d["id"], d.get("stream", "s"), d.get("type", "t"), d.get("issuer_oid"),
                d.get("subject_oid"), d.get("key"), d["timestamp"], _encode(d["payload"]),
                None if meta is None else _encode(meta), state.hash)  # fmt: skip
        digest = entry_hash(*args)
        sig = sign_hash(keys, digest)
        fields = {"v": 1, "ledger_id": ledger_id, "seq": seq, "id": d["id"], "stream": args[3], "type": args[4],
                  "issuer_oid": args[5], "subject_oid": args[6], "key": args[7], "timestamp": d["timestamp"],
                  "payload": d["payload"], "meta": meta, "prev_hash": None if state.hash is None else state.hash.hex(),
                  "hash": digest.hex(), "sig": sig.hex()}  # fmt: skip
        state = ChainState(seq, digest, next_sig_digest(state.digest, sig), d["timestamp"])
        signed.append(Signed(Entry.model_construct(**fields), state, args))
    return signed


def checkpoint_of(keys: KeyPair, state: ChainState, ledger_id: str, timestamp: int | None = None) -> Checkpoint:
    """The origin's checkpoint over ``state`` (dated ``timestamp``, by default the entry's)."""
    assert state.hash is not None
    ts = state.timestamp if timestamp is None else timestamp
    sig = sign_checkpoint(keys, ledger_id, state.seq, state.hash, state.digest, ts)
    return Checkpoint(ledger_id=ledger_id, seq=state.seq, hash=state.hash.hex(), sig_digest=state.digest.hex(),
                      timestamp=ts, sig=sig.hex())  # fmt: skip


def wire(entry: Entry) -> dict[str, Any]:
    """An entry as it is sent: every field present."""
    return dict(entry.__dict__)


def _encode(value: Any) -> bytes:
    # no protocol rule: forged vectors need values the rules refuse, encoded as an older node did
    try:
        return reference(value)
    except NotCanonical:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

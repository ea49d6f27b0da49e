"""This node's signed record, and the checks every discovered record passes before it is used."""

from __future__ import annotations

import node
from node.errors import IdentityConflict, PeerFailed
from node.ledger.clock import wall_ms
from node.ledger.service import Ledger
from node.settings import NodeSettings
from protocol.errors import BadSignature
from protocol.records import NodeRecord, sign_record

CAPABILITIES = ["ledger", "query", "sync"]
MAX_AHEAD_MS = 600_000  # a record dated further ahead of this node's clock is refused


def own_record(ledger: Ledger, settings: NodeSettings, url: str) -> NodeRecord:
    """This node's record, freshly signed."""
    return sign_record(
        ledger.keys,
        ledger_id=ledger.ledger_id,
        name=settings.discovery.name or ledger.ledger_id,
        endpoints=[url],
        capabilities=CAPABILITIES,
        metadata={"version": node.__version__, "streams": settings.streams or [], "region": settings.discovery.region},
        issued_at=wall_ms(),
    )


async def checked(ledger: Ledger, record: NodeRecord) -> NodeRecord:
    """Raise unless ``record`` is signed by the key it names, is not dated more than
    ``MAX_AHEAD_MS`` ahead (a record from the future would stay the newest of its claim) and its key
    is the one pinned (if any)."""
    if record.issued_at > wall_ms() + MAX_AHEAD_MS:
        raise PeerFailed(f"record of {record.ledger_id}: issued_at is more than 10 minutes in the future")
    try:
        record.verify()
    except BadSignature as exc:
        raise PeerFailed(f"record of {record.ledger_id}: signature does not verify") from exc
    if record.ledger_id == ledger.ledger_id:
        if record.public_key != ledger.keys.public_key.hex():
            raise IdentityConflict(f"a record claims this node's ledger id {record.ledger_id} with another key")
        return record
    held = await ledger.held(record.ledger_id)
    if held is not None and held.public_key.hex() != record.public_key:
        raise IdentityConflict(f"record of {record.ledger_id}: another key than the one pinned")
    return record

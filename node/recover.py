"""Taking a restored node's own entries back from its peers (``ledger-node restore --from-peer``).

A backup holds the node's ledger up to the moment it was taken; entries the node wrote after it may
already be held by its peers. They are the node's own, signed by its key and chained to the backed-up
head, so they are taken back exactly as an import takes them: every entry must extend the chain of
the restored store and verify under the node's key, or nothing more is taken from that peer. This runs
before the restored node starts, so its next append continues its ledger instead of forking it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson

from node.errors import NodeError
from node.ledger.transfer import FORMAT, import_ledger
from node.net.client import Outbound
from node.settings import NetSettings, SyncSettings
from node.storage.contract import Repositories
from node.sync.peers import PeerClient
from protocol.errors import ProtocolError
from protocol.models import MAX_PAGE, Page
from protocol.signing import KeyPair


@dataclass(frozen=True, slots=True)
class Recovered:
    """What one peer gave back: entries taken, the own head after them, or why it stopped."""

    url: str
    entries: int
    head_seq: int
    problem: str | None = None


async def recover_own(
    storage: Repositories, keys: KeyPair, ledger_id: str, urls: Sequence[str], *, net: NetSettings, sync: SyncSettings
) -> list[Recovered]:
    """Ask each peer in turn for the own ledger beyond the restored head and take what verifies."""
    results: list[Recovered] = []
    async with Outbound(net, sync.timeout_s) as outbound:
        for url in urls:
            outbound.operator(url)  # the operator named this URL
            client = PeerClient(outbound, url, keys, ledger_id, sync)
            taken = 0
            head = await _head(storage, ledger_id)
            try:
                heads = await client.heads()
                theirs = next((h.seq for h in heads.ledgers if h.ledger_id == ledger_id), 0)
                while head < theirs:
                    page = await client.pull(ledger_id, head, MAX_PAGE)
                    if not page.entries:
                        break
                    report = await import_ledger(storage, _lines(ledger_id, keys, page))
                    taken += report.imported
                    head = report.head_seq
            except (NodeError, ProtocolError) as exc:
                results.append(Recovered(url, taken, head, str(exc)))
                continue
            results.append(Recovered(url, taken, head))
    return results


async def _head(storage: Repositories, ledger_id: str) -> int:
    held = await storage.ledgers.get(ledger_id)
    return 0 if held is None else held.head_seq


def _lines(ledger_id: str, keys: KeyPair, page: Page) -> Iterator[bytes]:
    """``page`` as the lines of an export: the header, then each entry followed by the checkpoints
    taken at its seq."""
    yield orjson.dumps({"format": FORMAT, "ledger_id": ledger_id, "public_key": keys.public_key.hex()})
    at: dict[int, list[bytes]] = {}
    for cp in page.checkpoints:
        at.setdefault(cp.seq, []).append(orjson.dumps({"checkpoint": cp.model_dump()}))
    for entry in page.entries:
        yield orjson.dumps({"entry": entry.model_dump()})
        yield from at.get(entry.seq, [])

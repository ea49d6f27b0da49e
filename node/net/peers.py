"""The peer directory: the one list of this node's peers (ledger id, URL, sync mode, source).

It is the single source of who the peers are. Adding a peer pins its ledger key (with the provenance
of whoever decided) and saves it in the peer repository; removing one deletes it there. Listeners
(the sync engine) are told of every addition and removal, in order, and start or stop their per-peer
work; replacing a peer (the same ledger id again) is told as a removal then an addition. Services
that only read the list (federation, references) receive it as a ``PeerView``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from node.errors import IdentityConflict
from node.ledger.pins import PinSource
from node.ledger.service import Ledger
from node.settings import PeerSettings
from node.storage.contract import PeerRepository

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KnownPeer:
    """A peer in the directory: its ledger id, base URL, sync mode and where it came from."""

    ledger_id: str
    url: str
    mode: str
    source: str


class PeerView(Protocol):
    """The directory as read by services that only use the peer list."""

    def all(self) -> list[KnownPeer]: ...
    def get(self, ledger_id: str) -> KnownPeer | None: ...
    def is_peer(self, ledger_id: str) -> bool: ...


class PeerListener(Protocol):
    """Told of every change of the directory, after it is saved."""

    async def peer_added(self, peer: KnownPeer) -> None: ...
    async def peer_removed(self, peer: KnownPeer) -> None: ...


class PeerDirectory:
    """Owns the set of peers; ``load`` it once the ledger is open, before listeners subscribe."""

    def __init__(self, ledger: Ledger, store: PeerRepository) -> None:
        self._ledger = ledger
        self._store = store
        self._peers: dict[str, KnownPeer] = {}
        self._listeners: list[PeerListener] = []
        self._changing = asyncio.Lock()  # listeners see the changes one at a time, in order

    async def load(self, configured: Sequence[PeerSettings]) -> None:
        """Add the configured peers (pinned as ``config``), then the saved ones whose key is still pinned."""
        for peer in configured:
            await self.add(peer.url, peer.ledger_id, bytes.fromhex(peer.public_key), peer.mode, "config",
                           pin_source="config", actor="config")  # fmt: skip
        for saved in await self._store.all():
            if saved.ledger_id not in self._peers and await self._ledger.held(saved.ledger_id) is not None:
                self._peers[saved.ledger_id] = KnownPeer(saved.ledger_id, saved.url, saved.mode, saved.source)

    def subscribe(self, listener: PeerListener) -> list[KnownPeer]:
        """Tell ``listener`` of every change from now on; the peers listed now."""
        self._listeners.append(listener)
        return self.all()

    def unsubscribe(self, listener: PeerListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def all(self) -> list[KnownPeer]:
        """Every peer, by ledger id."""
        return sorted(self._peers.values(), key=lambda p: p.ledger_id)

    def get(self, ledger_id: str) -> KnownPeer | None:
        return self._peers.get(ledger_id)

    def is_peer(self, ledger_id: str) -> bool:
        return ledger_id in self._peers

    async def add(
        self, url: str, ledger_id: str, public_key: bytes, mode: str, source: str = "admin", *,
        pin_source: PinSource = "operator", actor: str = "node",
    ) -> KnownPeer:  # fmt: skip
        """Pin the peer's ledger key (from ``pin_source``), save the peer (replacing one of that id) and
        tell the listeners. IdentityConflict for this node's own ledger id or a key pinned otherwise."""
        if ledger_id == self._ledger.ledger_id:
            raise IdentityConflict(f"{ledger_id} is this node's own ledger id")
        await self._ledger.pin(ledger_id, public_key, pin_source, actor=actor)
        peer = KnownPeer(ledger_id, url, mode, source)
        async with self._changing:
            await self._store.save(ledger_id, url, mode, source)
            old = self._peers.pop(ledger_id, None)
            if old is not None:
                for listener in self._listeners:
                    await listener.peer_removed(old)
            self._peers[ledger_id] = peer
            log.info("peer added ledger=%s url=%s mode=%s source=%s", ledger_id, url, mode, source)
            for listener in self._listeners:
                await listener.peer_added(peer)
        return peer

    async def remove(self, ledger_id: str) -> bool:
        """Forget the peer (listed or only saved); whether there was one."""
        async with self._changing:
            peer = self._peers.pop(ledger_id, None)
            if peer is not None:
                for listener in self._listeners:
                    await listener.peer_removed(peer)
                log.info("peer removed ledger=%s", ledger_id)
            return await self._store.delete(ledger_id) or peer is not None

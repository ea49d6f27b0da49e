"""The sync engine: keeps this node's copies of its peers' ledgers current, and theirs of ours.

Each peer has one loop (so one sync in flight per peer and ledger), woken periodically, by
``trigger`` (``/admin/sync/run``) and by the peer's live head stream (coalesced: an event wakes
the loop only when it names a head newer than the one held here, at most once per round, and
not before ``net.live_gap_s`` after a round that took nothing). A round asks the peer for its
heads, then, holding one of the semaphore's slots that bound how many peers sync at once, pulls
every ledger it has more of (pages verified and committed whole, with the per-peer checkpoint in
the same transaction), checks equal heads for forks, and pushes what the peer lacks. The heads
request is made outside the semaphore, so peers that never answer cannot hold its slots. A peer
that fails is backed off exponentially with jitter, capped, and every failure is visible in
``status()`` by what failed, never by what the peer answered. Both loops of a peer run under the
node's supervisor (``node.supervise``): an unexpected exception shows the peer as ``restarting``
with the error until the loop is back, never as ``syncing`` forever. Who the peers are is the peer
directory's (``node.net.peers``): the engine listens to it and starts or stops a peer's loops as it
is added or removed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from node.errors import (
    ForkDetected,
    IdentityConflict,
    LedgerQuarantined,
    NodeError,
    NotKnownThere,
    NotReady,
    PeerFailed,
    PeerUnavailable,
    RefusedThere,
    RequestRejected,
)
from node.interop.trust import TrustGraph
from node.ledger.clock import wall_ms
from node.ledger.replicas import Ingested
from node.ledger.service import Ledger
from node.ledger.wire import page_body
from node.metrics import Metrics
from node.net.client import Outbound
from node.net.peers import KnownPeer, PeerDirectory
from node.settings import NodeSettings
from node.storage.contract import LedgerRecord, PeerRepository, StoredEntry
from node.supervise import Supervised, Supervisor
from node.sync.peers import HeadEvent, PeerClient
from protocol.errors import ProtocolError
from protocol.models import Heads, Page

log = logging.getLogger(__name__)

OPERATOR_SOURCES = frozenset({"config", "admin", "operator", "connect", "bootstrap"})  # URLs an operator gave
MAX_ERROR_CHARS = 300
# A peer found through discovery is often contacted before it has admitted this node in turn (its own
# discovery round comes later): its 401s in this window after adding it are waiting, not failure.
ADMISSION_GRACE_S = 120.0
MAX_SHARED_ATTESTATIONS = 1000  # per request (what POST /network/trust takes)
TRUST_RETRY_S = 30.0  # an attestation a peer refused (it did not know the author yet) is offered again after


@dataclass
class Peer:
    """A peer and what the engine knows of it."""

    ledger_id: str
    url: str
    mode: str
    source: str
    client: PeerClient
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retry: asyncio.Event = field(default_factory=asyncio.Event)  # the operator asked for a round now
    state: str = "idle"  # idle | syncing | waiting (not admitted there yet) | backing-off | stale | untrusted
    failures: int = 0
    next_attempt: float = 0.0
    last_success_ms: int | None = None
    last_error: str | None = None
    remote: dict[str, int] = field(default_factory=dict)  # their head seq per ledger
    tasks: list[Supervised] = field(default_factory=list)  # the sync loop first, then the live follow
    last_round: float = 0.0  # monotonic start of the last round
    took: bool = True  # whether the last round took entries (else the next waits net.live_gap_s)
    seen: dict[str, int] = field(default_factory=dict)  # the newest seq its stream announced, per ledger
    added_ms: int = field(default_factory=wall_ms)
    moved: int = 0  # entries pulled and pushed in the current round
    checked: dict[str, tuple[int, str | None]] = field(default_factory=dict)  # heads behind ours, fork-checked
    trust_sent: dict[tuple[str, str], int] = field(default_factory=dict)  # (from, to) -> issued_at it took
    trust_version: int = -1  # the trust graph's version when attestations were last offered
    trust_retry_at: float = 0.0  # refused attestations are offered again after this (monotonic)


class SyncEngine:
    """Owns the peer loops, started and stopped as the peer directory changes; use as an async
    context manager after the ledger is open and the directory loaded."""

    def __init__(
        self,
        ledger: Ledger,
        settings: NodeSettings,
        metrics: Metrics,
        trust: TrustGraph,
        net: Outbound,
        directory: PeerDirectory,
        store: PeerRepository,
        supervisor: Supervisor,
    ) -> None:
        self._ledger = ledger
        self._directory = directory
        self._store = store
        self._supervisor = supervisor
        self._net = net
        self._trust = trust
        self._settings = settings
        self._sync = settings.sync
        self._metrics = metrics
        self._peers: dict[str, Peer] = {}
        self._gate = asyncio.Semaphore(settings.sync.max_concurrency)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._vouched_by: dict[str, set[str]] = {}  # per peer: ledgers pinned here on its word
        self._pulling: dict[str, asyncio.Lock] = {}  # per ledger: held by the one round pulling it
        self._skipped: dict[str, dict[str, int]] = {}  # per ledger: peers whose rounds skipped it, their seq
        self._closing = False

    async def __aenter__(self) -> SyncEngine:
        self._ledger.hooks.after_append.append(self._announce)
        for peer in self._directory.subscribe(self):
            self._start(peer)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._directory.unsubscribe(self)
        for peer in list(self._peers.values()):
            await self._stop(peer)
        self.close_streams()

    def close_streams(self) -> None:
        """End every live head stream served to peers (on shutdown, before handlers are awaited), and
        every stream a peer opens from now on."""
        self._closing = True
        for queue in self._subscribers:
            queue.put_nowait({"closing": True})

    # --- peers ---------------------------------------------------------------------------------

    async def peer_added(self, peer: KnownPeer) -> None:
        """The directory added a peer: start its loops."""
        self._start(peer)

    async def peer_removed(self, peer: KnownPeer) -> None:
        """The directory removed (or is replacing) a peer: stop its loops."""
        running = self._peers.pop(peer.ledger_id, None)
        if running is not None:
            await self._stop(running)

    def peers(self) -> list[Peer]:
        """The peers synced with now, with their state."""
        return sorted(self._peers.values(), key=lambda p: p.ledger_id)

    def trigger(self, ledger_id: str | None = None) -> None:
        """Wake one peer's loop (or all) now, skipping any backoff."""
        for peer in self._peers.values():
            if ledger_id is None or peer.ledger_id == ledger_id:
                peer.next_attempt = 0.0
                peer.wake.set()
                peer.retry.set()
                for task in peer.tasks:
                    task.retry_now()

    def _start(self, known: KnownPeer) -> None:
        if known.source in OPERATOR_SOURCES:
            self._net.operator(known.url)
        client = PeerClient(self._net, known.url, self._ledger.keys, self._ledger.ledger_id, self._sync)
        peer = Peer(known.ledger_id, known.url, known.mode, known.source, client)
        self._peers[known.ledger_id] = peer
        peer.tasks.append(self._supervisor.start(f"sync:{peer.ledger_id}", lambda: self._loop(peer)))
        if self._sync.live:
            peer.tasks.append(self._supervisor.start(f"live:{peer.ledger_id}", lambda: self._follow(peer)))

    async def _stop(self, peer: Peer) -> None:
        await self._supervisor.stop(*peer.tasks)

    # --- the loop ------------------------------------------------------------------------------

    async def _loop(self, peer: Peer) -> None:
        peer.wake.set()  # the first round (and the first after a restart) starts at once
        if peer.state == "syncing":  # restarted after a crash: no round is running until the next begins
            peer.state = "idle"
        while True:
            # periodic rounds are a safety net behind the live streams: sync.poll_peers of them per
            # interval in all, so idle polling stays bounded however many peers there are; a stale peer
            # is synced only when woken (trigger, or its head stream came back)
            period = self._sync.interval_s * max(1.0, len(self._peers) / self._sync.poll_peers)
            try:  # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that
                # arrives as the event is set, and the peer's loop would outlive its removal
                async with asyncio.timeout(None if peer.state == "stale" else period * random.uniform(0.9, 1.1)):
                    await peer.wake.wait()
            except TimeoutError:
                pass
            gap = 0.0 if peer.took else self._settings.net.live_gap_s  # a stream of empty promises waits
            pause = max(peer.next_attempt, peer.last_round + gap) - time.monotonic()
            if pause > 0 and not peer.retry.is_set():  # backing off: the round is delayed, not dropped
                try:
                    async with asyncio.timeout(pause):
                        await peer.retry.wait()  # unless the operator asks for it now
                except TimeoutError:
                    pass
            peer.wake.clear()
            peer.retry.clear()  # whatever woke the loop meanwhile is served by this round
            await self.run_once(peer)

    async def run_once(self, peer: Peer) -> None:
        """One sync round with ``peer``; failures are recorded, never raised."""
        was = peer.state
        peer.state = "syncing"
        peer.last_round, peer.took, peer.moved = time.monotonic(), False, 0
        try:
            await self._round(peer)
        except (PeerUnavailable, PeerFailed, ProtocolError, NodeError) as exc:
            self._failed(peer, was, exc)
        else:
            if peer.state == "untrusted":
                return
            if peer.moved:
                log.info("synced peer=%s entries=%d seconds=%.2f", peer.ledger_id, peer.moved,
                         time.monotonic() - peer.last_round)  # fmt: skip
            if was in ("backing-off", "stale"):
                log.info("peer reachable again peer=%s after failures=%d", peer.ledger_id, peer.failures)
            peer.failures, peer.next_attempt, peer.state = 0, 0.0, "idle"
            peer.last_success_ms = wall_ms()
            peer.last_error = None
            held = {row.ledger_id: row.head_seq for row in await self._ledger.ledgers()}
            for lid, remote in peer.remote.items():
                self._metrics.sync_lag.labels(peer.ledger_id, lid).set(max(0, remote - held.get(lid, 0)))
        self._metrics.sync_retries.labels(peer.ledger_id).set(peer.client.retries)

    def _failed(self, peer: Peer, was: str, exc: Exception) -> None:
        """Record a failed round: waiting while a new peer has not admitted this node yet, else a failure
        backed off exponentially, and stale once the peer has failed for ``sync.stale_after_s``."""
        since = peer.last_success_ms or peer.added_ms
        if (
            isinstance(exc, NotKnownThere)
            and peer.last_success_ms is None
            and wall_ms() - since < ADMISSION_GRACE_S * 1000
        ):
            peer.next_attempt = time.monotonic() + min(self._sync.interval_s, self._sync.backoff_max_s)
            peer.state = "waiting"
            peer.last_error = f"{peer.ledger_id} has not admitted this node yet; asking again every round"
            if was != "waiting":
                log.info("waiting for peer=%s to admit this node", peer.ledger_id)
            return
        if isinstance(exc, RefusedThere):  # not a failure to retry soon: a decision of the other operator
            peer.next_attempt = time.monotonic() + self._sync.backoff_max_s
            peer.state = "refused"
            peer.last_error = (
                f"{peer.ledger_id}'s operator refused this node as a peer; asking again every "
                f"{self._sync.backoff_max_s:g} s (they may admit it: ledger-node candidates admit)"
            )
            if was != "refused":
                log.warning("refused by peer=%s: its operator refused this node", peer.ledger_id)
            return
        peer.failures += 1
        delay = min(self._sync.backoff_max_s, self._sync.interval_s * 2 ** min(peer.failures, 16))
        peer.next_attempt = time.monotonic() + delay * random.uniform(0.5, 1.0)
        peer.state, peer.last_error = "backing-off", f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        self._metrics.sync_failures.labels(peer.ledger_id, type(exc).__name__).inc()
        if wall_ms() - since >= self._sync.stale_after_s * 1000:
            peer.state = "stale"
            hours = (wall_ms() - since) / 3_600_000
            peer.last_error = (f"stale: failing for {hours:.1f} h, left out of automatic sync "
                               f"('ledger-node sync --run --peer {peer.ledger_id}' tries again); "
                               f"{peer.last_error}")[:MAX_ERROR_CHARS]  # fmt: skip
            if was != "stale":
                log.warning("peer stale peer=%s failing_for_h=%.1f: left out of automatic sync", peer.ledger_id,
                            hours)  # fmt: skip
            return
        log.warning("sync failed peer=%s failures=%d error=%s", peer.ledger_id, peer.failures, exc)

    async def _round(self, peer: Peer) -> None:
        if not self._trust.allows_sync(peer.ledger_id):
            peer.state = "untrusted"  # checked every round: a drop or an expiry stops sync within one
            return
        heads = await peer.client.heads()  # outside the gate: a peer that does not answer holds no slot
        if heads.ledger_id != peer.ledger_id:
            raise PeerFailed(f"{peer.url} answers as {heads.ledger_id}, not {peer.ledger_id}")
        peer.remote = {h.ledger_id: h.seq for h in heads.ledgers}
        async with self._gate:
            await self._exchange(peer, heads)
        await self._share_trust(peer)

    async def _share_trust(self, peer: Peer) -> None:
        """Offer the peer the attestations this node holds that it has not taken from this node yet
        (each the newest for its pair; signed by its author, verified there under the author's pinned
        key), so a trust path through other nodes is known without an operator. Costs nothing while
        the trust graph does not change; what the peer refused (it has no key pinned for the author
        yet) is offered again after TRUST_RETRY_S. A failure is logged, never the round's."""
        now = time.monotonic()
        if peer.trust_version == self._trust.version and now < peer.trust_retry_at:
            return
        version = self._trust.version
        fresh = [  # not the peer's own (it holds them), not one it took from here already
            a for a in self._trust.attestations()
            if a["from"] != peer.ledger_id and peer.trust_sent.get((str(a["from"]), str(a["to"]))) != a["issued_at"]
        ]  # fmt: skip
        if not fresh:
            peer.trust_version, peer.trust_retry_at = version, now + TRUST_RETRY_S
            return
        batch = fresh[:MAX_SHARED_ATTESTATIONS]
        try:
            answer = await peer.client.share_trust(batch)
        except (PeerUnavailable, PeerFailed) as exc:
            log.debug("sharing trust with peer=%s failed: %s", peer.ledger_id, exc)
            peer.trust_retry_at = now + TRUST_RETRY_S
            return
        refused = {r.index: r.reason for r in answer.refusals}
        for index, att in enumerate(batch):
            if index not in refused:
                peer.trust_sent[(str(att["from"]), str(att["to"]))] = int(str(att["issued_at"]))
        if refused:
            log.info("peer=%s refused %d attestations, first: %s", peer.ledger_id, len(refused),
                     next(iter(refused.values())))  # fmt: skip
        more = len(fresh) > len(batch)
        peer.trust_version = -1 if more else version
        peer.trust_retry_at = now + TRUST_RETRY_S

    async def _exchange(self, peer: Peer, heads: Heads) -> None:
        """Pull what the peer has more of, push what it lacks."""
        if peer.mode in ("pull", "both"):
            local = {row.ledger_id: row for row in await self._ledger.ledgers()}
            for head in heads.ledgers:
                if (
                    head.ledger_id == self._ledger.ledger_id
                    or head.quarantined
                    or not self._trust.allows_sync(head.ledger_id)
                ):
                    continue
                ours = local.get(head.ledger_id)
                if ours is not None and head.seq <= ours.head_seq:  # nothing to pull; a fork to look for?
                    same = (
                        head.seq == ours.head_seq and ours.head_hash is not None and ours.head_hash.hex() == head.hash
                    )
                    if head.seq == 0 or same or peer.checked.get(head.ledger_id) == (head.seq, head.hash):
                        continue
                looked = await self._pull(peer, head.ledger_id, bytes.fromhex(head.public_key), head.seq, head.hash)
                if looked and ours is not None and head.seq <= ours.head_seq:
                    peer.checked[head.ledger_id] = (head.seq, head.hash)  # that head is looked at once
        if peer.mode in ("push", "both"):
            for held in await self._ledger.ledgers():
                theirs = peer.remote.get(held.ledger_id, 0)
                # a peer in mode both pulls other ledgers itself, from one peer at a time: pushing them
                # too would send each entry from every peer that holds it; the own ledger is pushed
                # (one hop, the first copy)
                relayed = peer.mode == "push" or held.ledger_id == self._ledger.ledger_id
                if held.head_seq > theirs and not held.quarantined and held.ledger_id != peer.ledger_id and relayed:
                    await self._push(peer, held.ledger_id, theirs)

    async def _vouched(self, peer: str, ledger_id: str, public_key: bytes, seq: int) -> LedgerRecord:
        """The pin of ``ledger_id`` as vouched for by admitted ``peer`` (its heads or a push); raise
        RequestRejected when policy does not let this peer add it (see docs/discovery.md):
        ``sync.replicate`` must ask for it, and a peer gets at most ``sync.max_vouched_ledgers``
        ledgers pinned that this node did not hold; IdentityConflict when pinned to another key."""
        held = await self._ledger.held(ledger_id)
        if ledger_id == peer and held is not None:  # its own ledger: pinned when it was admitted, not on its word
            if held.public_key != public_key:
                raise IdentityConflict(f"{peer} answers for its ledger with another key than the one pinned")
            return held
        if held is None and ledger_id != peer:
            if self._sync.replicate == "peers" and not self._directory.is_peer(ledger_id):
                raise RequestRejected(f"ledger {ledger_id} is not one of this node's peers; not replicated here")
            if seq == 0:
                raise RequestRejected(f"ledger {ledger_id} is empty; nothing to replicate")
            vouched = self._vouched_by.get(peer)
            if vouched is None:
                vouched = self._vouched_by[peer] = set(await self._store.vouched_by(peer))
            if len(vouched) >= self._sync.max_vouched_ledgers:
                raise RequestRejected(f"{peer} vouched for {len(vouched)} ledgers here already; {ledger_id} refused")
            vouched.add(ledger_id)
        return await self._ledger.pin(ledger_id, public_key, "peer")

    async def _pull(
        self, peer: Peer, ledger_id: str, public_key: bytes, their_seq: int, their_hash: str | None
    ) -> bool:
        """Pull ``ledger_id`` from ``peer`` up to ``their_seq``, unless another peer's round is pulling it
        right now: a ledger is pulled from one peer at a time, and the next round (or the head
        stream) asks again from the head that round brought, so an entry crosses to this node once,
        not once per peer that holds it. False when skipped for that reason (nothing was looked at)."""
        lock = self._pulling.setdefault(ledger_id, asyncio.Lock())
        if lock.locked():
            self._metrics.sync_skipped.inc()
            self._skipped.setdefault(ledger_id, {})[peer.ledger_id] = their_seq
            return False
        async with lock:
            try:
                await self._pull_locked(peer, ledger_id, public_key, their_seq, their_hash)
            finally:
                await self._wake_skipped(ledger_id)
        return True

    async def _wake_skipped(self, ledger_id: str) -> None:
        """Once a pull of ``ledger_id`` ends, wake the peers whose rounds skipped it and that hold more
        of it than it brought (their next round takes the rest at once, not at the next poll)."""
        waiting = self._skipped.pop(ledger_id, None)
        if not waiting:
            return
        held = await self._ledger.held(ledger_id)
        head = held.head_seq if held is not None else 0
        for peer_id, seq in waiting.items():
            other = self._peers.get(peer_id)
            if other is not None and seq > head:
                other.wake.set()

    async def _pull_locked(
        self, peer: Peer, ledger_id: str, public_key: bytes, their_seq: int, their_hash: str | None
    ) -> None:
        try:
            held = await self._vouched(peer.ledger_id, ledger_id, public_key, their_seq)
        except IdentityConflict as exc:
            log.warning("identity conflict from peer=%s ledger=%s: %s", peer.ledger_id, ledger_id, exc)
            self._metrics.sync_rejects.labels(peer.ledger_id, "identity-conflict").inc()
            return
        except RequestRejected as exc:
            log.debug("not replicated from peer=%s: %s", peer.ledger_id, exc)
            self._metrics.sync_rejects.labels(peer.ledger_id, "not-replicated").inc()
            return
        if held.quarantined:
            return
        after = held.head_seq
        if their_seq <= after:  # nothing to pull (an empty ledger neither)
            if 0 < their_seq and their_hash is not None:
                ours = await self._ledger.get_by_seq(ledger_id, their_seq)
                if ours.hash.hex() != their_hash:  # same seq, other hash: fetch theirs as evidence
                    page = await peer.client.pull(ledger_id, their_seq - 1, 1)
                    await self._ingest(peer, ledger_id, page)
            return
        # the next page is fetched while this one is verified and committed; a failure drops it
        fetch = asyncio.create_task(peer.client.pull(ledger_id, after, self._sync.page_size))
        target = f"{ledger_id} from {peer.ledger_id}, seq {after + 1} to {their_seq}"
        try:
            with self._ledger.activities.run("sync", target, their_seq - after) as activity:
                while True:
                    page = await fetch
                    if not page.entries:
                        return
                    last = page.entries[-1].seq
                    more = last < their_seq
                    if more:
                        fetch = asyncio.create_task(peer.client.pull(ledger_id, last, self._sync.page_size))
                    result = await self._ingest(peer, ledger_id, page)
                    if result.head_seq <= after:
                        raise PeerFailed(f"{peer.url}: page of ledger {ledger_id} after {after} moved nothing")
                    activity.advance(result.head_seq - after)
                    after = result.head_seq
                    if not more:
                        return
        finally:
            if not fetch.done():
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)

    async def _ingest(self, peer: Peer, ledger_id: str, page: Page) -> Ingested:
        started = time.perf_counter()
        try:
            result = await self._ledger.ingest(
                ledger_id, page.entries, page.checkpoints, peer=peer.ledger_id, full=self._sync.verify == "full"
            )
        except (ProtocolError, ForkDetected, LedgerQuarantined) as exc:
            self._metrics.sync_rejects.labels(peer.ledger_id, exc.code).inc()
            if isinstance(exc, ForkDetected):
                self._metrics.conflicts.labels("fork").inc()
                await self._trust.attest(ledger_id, 0.0, "full")  # the offender's trust drops to 0
            raise
        self._metrics.sync_received.labels(peer.ledger_id).inc(result.accepted)
        peer.took = peer.took or result.accepted > 0
        peer.moved += result.accepted
        if page.entries:
            lag_ms = wall_ms() - page.entries[-1].timestamp
            self._metrics.propagation_seconds.observe(max(0.0, lag_ms / 1000))
        log.debug("pulled ledger=%s peer=%s entries=%d in %.3fs", ledger_id, peer.ledger_id, result.accepted,
                  time.perf_counter() - started)  # fmt: skip
        return result

    async def _push(self, peer: Peer, ledger_id: str, after: int) -> None:
        while True:
            rows, checkpoints, held = await self._ledger.page(ledger_id, after, self._sync.page_size)
            if not rows:
                break
            answer = await peer.client.push(page_body(held, rows, checkpoints))
            if answer.head_seq < rows[-1].seq:
                raise PeerFailed(f"{peer.url}: push of ledger {ledger_id} was not taken (head {answer.head_seq})")
            self._metrics.sync_sent.labels(peer.ledger_id).inc(answer.accepted)
            peer.moved += answer.accepted
            await self._store.mark_synced(peer.ledger_id, ledger_id, "push", rows[-1].seq, rows[-1].hash)
            after = rows[-1].seq
        peer.remote[ledger_id] = after

    async def receive_push(self, sender: str, page: Page) -> Ingested:
        """An admitted, trusted peer pushes a page of some ledger: pin (as vouched), verify, commit.
        NotReady once this node is stopping (the peer retries elsewhere or later)."""
        if self._closing:
            raise NotReady("this node is stopping; pushes are refused")
        if not self._directory.is_peer(sender) or not self._trust.allows_sync(sender):
            raise RequestRejected(f"{sender} is not a trusted peer of this node; pushes are refused")
        if page.public_key is not None:
            seq = page.entries[-1].seq if page.entries else 0
            await self._vouched(sender, page.ledger_id, bytes.fromhex(page.public_key), seq)
        result = await self._ledger.ingest(
            page.ledger_id, page.entries, page.checkpoints, peer=sender, full=self._sync.verify == "full"
        )
        self._metrics.sync_received.labels(sender).inc(result.accepted)
        return result

    # --- live propagation ----------------------------------------------------------------------

    async def _announce(self, rows: Sequence[StoredEntry]) -> None:
        """after_append hook: tell subscribers the new head."""
        last = rows[-1]
        event = {"ledger_id": last.ledger_id, "seq": last.seq, "hash": last.hash.hex()}
        for queue in self._subscribers:
            if queue.qsize() < 1000:
                queue.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.add(queue)
        if self._closing:  # a peer reconnecting while this node shuts down would hold the shutdown
            queue.put_nowait({"closing": True})
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    async def _follow(self, peer: Peer) -> None:
        """Follow the peer's head stream; a head newer than ours wakes the peer's loop (once per round)."""
        failures = 0
        while True:
            try:
                async for event in peer.client.stream():
                    # a (re)connection (None), after which a round catches up on missed heads, or a new head
                    failures = 0
                    if peer.mode != "push" and not peer.wake.is_set() and await self._newer(peer, event):
                        peer.wake.set()
            except (PeerUnavailable, PeerFailed) as exc:
                log.debug("live stream peer=%s: %s", peer.ledger_id, exc)
            failures += 1
            await asyncio.sleep(min(self._sync.backoff_max_s, 0.2 * 2 ** min(failures, 10)) * random.uniform(0.5, 1))

    async def _newer(self, peer: Peer, event: HeadEvent | None) -> bool:
        """Whether a stream event is worth a round: a reconnection, or a head newer than the one held
        (an event no newer than one the stream announced before costs no lookup)."""
        if event is None:
            peer.seen.clear()
            return True
        if event.ledger_id == self._ledger.ledger_id or event.seq <= peer.seen.get(event.ledger_id, -1):
            return False
        if len(peer.seen) >= 10_000:
            peer.seen.clear()
        peer.seen[event.ledger_id] = event.seq
        held = await self._ledger.held(event.ledger_id)
        return event.seq > (held.head_seq if held is not None else 0)

    # --- status --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """Per peer and ledger: local and remote seq, lag, last success and error, retries, state."""
        held = {row.ledger_id: row for row in await self._ledger.ledgers()}
        marks = {(m.peer, m.ledger_id, m.direction): m.seq for m in await self._store.sync_marks()}
        peers = []
        for peer in self.peers():
            ledgers = []
            for lid in sorted(set(peer.remote) | {lid for (p, lid, _) in marks if p == peer.ledger_id}):
                local = held[lid].head_seq if lid in held else 0
                remote = peer.remote.get(lid, 0)
                ledgers.append({
                    "ledger_id": lid, "local_seq": local, "remote_seq": remote, "lag": max(0, remote - local),
                    "pulled_through": marks.get((peer.ledger_id, lid, "pull")),
                    "pushed_through": marks.get((peer.ledger_id, lid, "push")),
                    "quarantined": bool(lid in held and held[lid].quarantined),
                })  # fmt: skip
                self._metrics.sync_lag.labels(peer.ledger_id, lid).set(max(0, remote - local))
            state, error, loop = peer.state, peer.last_error, peer.tasks[0]
            if loop.state != "running":  # the loop crashed (restarting) or ended: whatever it was doing is over
                state, error = loop.state, loop.last_error
            peers.append({
                "ledger_id": peer.ledger_id, "url": peer.url, "mode": peer.mode, "source": peer.source,
                "state": state, "failures": peer.failures, "retries": peer.client.retries,
                "crashes": loop.crashes, "last_crash_error": loop.last_error,
                "last_success_ms": peer.last_success_ms, "last_error": error, "ledgers": ledgers,
            })  # fmt: skip
        return {"ledger_id": self._ledger.ledger_id, "peers": peers}

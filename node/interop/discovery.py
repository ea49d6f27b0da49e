"""Discovery: finds other nodes through registries, mDNS, bootstrap URLs and peer exchange,
verifies each record (its signature, and the key pinned for its ledger id) and keeps it as a
candidate. Records that claim a pinned ledger id with another key are reported as identity
conflicts and never used.

Admission: a candidate becomes a sync peer only by a decision someone accountable made: the
operator (``admit``, ``POST /network/connect``, bootstrap URLs in the configuration), a trust path
from this node scoring at least ``trust.sync_threshold`` (checked when a candidate is considered,
every discovery round and when this node attests trust), or ``discovery.auto_admit`` (a closed
network). Admission pins the candidate's key with the provenance of that decision (see
``node.ledger.pins``). Trust names ledger ids, not keys: where two keys claim an id, only the
operator chooses (or the registry, which binds an id on its operator's enrolment). A peer that only
a trust path admitted is demoted to a candidate when that path falls below the threshold.

The node keeps working without a registry: known peers stay, mDNS and exchange go on, and the
registry loop re-registers (and catches up) when a registry answers again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from types import TracebackType
from typing import Any

import orjson

from node.errors import CandidatesFull, EntryNotFound, IdentityConflict, NodeError, PeerFailed, PeerUnavailable
from node.interop.candidates import Candidates, Found
from node.interop.records import checked, own_record
from node.interop.registry_client import NotRegistered, RegistryClient
from node.interop.trust import TrustGraph
from node.ledger.clock import wall_ms
from node.ledger.pins import PinSource, stronger
from node.ledger.service import Ledger
from node.metrics import Metrics
from node.net.client import Outbound
from node.net.peers import PeerDirectory
from node.net.shapes import parse, parse_list
from node.settings import NodeSettings
from node.storage.contract import AuditRepository, CandidateRepository, LedgerRecord
from node.supervise import Supervised, Supervisor
from protocol.records import NodeRecord
from protocol.trust import SYNC_TYPES

log = logging.getLogger(__name__)

MAX_EXCHANGED = 1000  # records in one peer-exchange answer
WEAK_PINS = frozenset({"peer", "first-sight"})  # pins whose key no one accountable chose
NOT_ENROLLED_HINT = (
    "; the registry binds an id only with an enrolment token: ask its operator for one (ledger-registry enrol "
    "<ledger id>) and set discovery.registry_token (LEDGER_DISCOVERY__REGISTRY_TOKEN)"
)


class Discovery:
    """Owns the discovery loops; ``start(url)`` begins announcing once the node's URL is known."""

    def __init__(
        self,
        ledger: Ledger,
        settings: NodeSettings,
        peers: PeerDirectory,
        metrics: Metrics,
        trust: TrustGraph,
        net: Outbound,
        audit: AuditRepository,
        candidates: CandidateRepository,
        supervisor: Supervisor,
    ) -> None:
        self._ledger = ledger
        self._audit = audit
        self._supervisor = supervisor
        self._net = net
        self._settings = settings
        self._conf = settings.discovery
        self._directory = peers
        self._metrics = metrics
        self._trust = trust
        self._found = Candidates(self._conf.max_candidates, candidates, int(self._conf.candidate_ttl_s * 1000))
        self._tasks: list[Supervised] = []
        self._registry: RegistryClient | None = None
        self.record: NodeRecord | None = None
        self._mdns: Any = None

    async def __aenter__(self) -> Discovery:
        await self._found.load()
        if self._conf.registry_urls:
            token = self._conf.registry_token
            self._registry = RegistryClient(self._net, self._conf.registry_urls, self._ledger.keys,
                                            self._ledger.ledger_id, self._settings.sync.timeout_s,
                                            None if token is None else token.get_secret_value())  # fmt: skip
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._supervisor.stop(*self._tasks)
        if self._mdns is not None:
            try:
                async with asyncio.timeout(15):
                    await self._mdns.close()
            except TimeoutError:
                log.warning("mdns did not shut down in time")
        if self._registry is not None and self.record is not None:
            try:
                async with asyncio.timeout(3):
                    await self._registry.deregister()
            except (NodeError, TimeoutError) as exc:
                log.info("could not deregister: %s", exc)

    def start(self, url: str) -> None:
        """Sign this node's record for ``url`` and start every configured source."""
        if self.record is not None:
            return
        self.record = own_record(self._ledger, self._settings, self._conf.advertise_url or url)
        start = self._supervisor.start
        if self._registry is not None:
            self._tasks.append(start("discovery:registry", self._registry_loop))
        if self._conf.bootstrap:
            self._tasks.append(start("discovery:bootstrap", self._bootstrap))
        if self._conf.peer_exchange:
            self._tasks.append(start("discovery:exchange", self._exchange_loop))
        self._tasks.append(start("discovery:admission", self._admission_loop))
        if self._conf.mdns:
            from node.interop.mdns import Mdns  # zeroconf only when asked for

            self._mdns = Mdns(self.record, self._conf.mdns_interfaces, self.consider, self._net)
            self._tasks.append(start("discovery:mdns", self._mdns.run))

    # --- what was found ------------------------------------------------------------------------

    def discovered(self) -> list[dict[str, Any]]:
        """Every candidate with its sources and status (admin: the pending list)."""
        for found in self._found.all():
            if found.status == "peer" and not self._directory.is_peer(found.record.ledger_id):
                found.status = "candidate"  # removed by the operator since
        return [f.to_wire() for f in self._found.all()]

    def refused(self, ledger_id: str) -> bool:
        """Whether the operator refused every claim to ``ledger_id`` (refusing a squatter's claim does
        not turn away the owner whose claim is still pending)."""
        claims = self._found.claims(ledger_id)
        return bool(claims) and all(c.status == "refused" for c in claims) and not self._directory.is_peer(ledger_id)

    def knows(self, ledger_id: str) -> bool:
        """Whether a record of ``ledger_id`` was found (a candidate, a peer or a refused one)."""
        return bool(self._found.claims(ledger_id))

    def records(self) -> list[dict[str, Any]]:
        """Verified records this node vouches for in peer exchange: its own and its admitted peers'."""
        own = [self.record.model_dump()] if self.record is not None else []
        return own + [f.record.model_dump() for f in self._peers()]

    def _peers(self) -> list[Found]:
        return [f for f in self._found.all() if f.status == "peer" and self._directory.is_peer(f.record.ledger_id)]

    async def _admissible(self, found: Found) -> bool:
        """Whether an automatic decision may pick this claim: the only contender for its id, or the
        only one the registry proposed (trust and first sight name ids, not keys). Refused claims do
        not contend; a claim in conflict with the pin contends only while that pin is weak (no one
        accountable chose its key), so a stranger's introduction cannot unseat a peer."""
        held = await self._ledger.held(found.record.ledger_id)
        weak = held is None or held.pin_source in WEAK_PINS
        contenders = [c for c in self._found.claims(found.record.ledger_id)
                      if c.status != "refused" and (weak or c.status != "identity-conflict")]  # fmt: skip
        if found not in contenders:
            return False
        if len(contenders) == 1:
            return True
        from_registry = [c for c in contenders if "registry" in c.sources]
        return from_registry == [found]

    async def consider(self, record: NodeRecord, source: str) -> Found | None:
        """Verify a proposed record and keep it as a candidate; admit it when a trust path or
        ``auto_admit`` allows (see the module docstring). None for this node's own or a bad record,
        or when the candidate list has no room (an introduction is told: CandidatesFull)."""
        try:
            return await self._consider(record, source)
        except CandidatesFull as exc:
            if source == "introduce":
                raise
            log.info("candidate from %s not kept: %s", source, exc)
            return None

    async def _consider(self, record: NodeRecord, source: str) -> Found | None:
        found = self._found.get(record.ledger_id, record.public_key)
        if found is not None and found.record.issued_at >= record.issued_at:
            found.seen_ms = wall_ms()  # proposed again: not expired (saved with its next change)
            if source not in found.sources:
                found.sources.add(source)
                await self._found.save(found)
            return found
        try:
            await checked(self._ledger, record)
        except IdentityConflict as exc:
            found = await self._report_conflict(record, source, exc)
            # the registry (binding ids on enrolment) or a trust path replaces a weaker pin of another key
            await self._admit_automatically(found, over=await self._ledger.held(record.ledger_id))
            return found
        except PeerFailed as exc:
            log.warning("discarded record from %s: %s", source, exc)
            self._metrics.discovery_rejects.labels(source, "bad-record").inc()
            if source == "introduce":
                raise  # the caller is told why (422)
            return None
        if record.ledger_id == self._ledger.ledger_id:
            return None
        sources = (found.sources if found is not None else set()) | {source}
        refused = found is not None and found.status == "refused"
        found = await self._found.put(Found(record, sources, "refused" if refused else "candidate"))
        if self._directory.is_peer(record.ledger_id) and await self._pinned_to(found):
            if self._conf.auto_admit:  # a newer record of a peer: its endpoint may have moved
                await self._admit(found, await self._automatic(found) or "first-sight", source)
            found.status = "peer"
        elif not refused:
            pin_source = await self._automatic(found)
            if pin_source is not None:
                await self._admit(found, pin_source, source)
        return found

    async def _pinned_to(self, found: Found) -> bool:
        held = await self._ledger.held(found.record.ledger_id)
        return held is not None and held.public_key.hex() == found.record.public_key

    async def _automatic(self, found: Found) -> PinSource | None:
        """The provenance under which a candidate is admitted without an operator, or None."""
        if not await self._admissible(found):
            return None
        score, _ = self._trust.score(self._ledger.ledger_id, found.record.ledger_id, SYNC_TYPES)
        if score >= self._settings.trust.sync_threshold and score > 0:
            return "attested"
        if self._conf.auto_admit:
            return "registry" if "registry" in found.sources else "first-sight"
        return None

    async def _admit(
        self, found: Found, pin_source: PinSource, source: str, actor: str = "node", url: str | None = None
    ) -> None:
        """Pin the claim's key, make it a peer at ``url`` (default: its record's first endpoint)."""
        record = found.record
        url = url or record.endpoints[0]
        known = {p.ledger_id: p.url for p in self._directory.all()}
        if known.get(record.ledger_id) != url:
            await self._directory.add(url, record.ledger_id, bytes.fromhex(record.public_key), "both", source,
                                      pin_source=pin_source, actor=actor)  # fmt: skip
        found.status, found.detail = "peer", None
        await self._found.save(found, durable=True)
        log.info("admitted ledger=%s source=%s pin=%s", record.ledger_id, source, pin_source)

    def _claim(self, ledger_id: str, public_key: str | None) -> Found:
        """The claim the operator names: by key, or the only one to ``ledger_id``."""
        claims = self._found.claims(ledger_id)
        if public_key is not None:
            claims = [c for c in claims if c.record.public_key == public_key.lower()]
        if not claims:
            raise EntryNotFound(f"no candidate {ledger_id}" + (f" with key {public_key}" if public_key else ""))
        if len(claims) > 1:
            keys = ", ".join(c.record.public_key for c in claims)
            raise IdentityConflict(f"{len(claims)} keys claim {ledger_id} ({keys}): name one with public_key")
        return claims[0]

    async def admit(self, ledger_id: str, actor: str, public_key: str | None = None) -> Found:
        """The operator admits a candidate (by key where several claim its id): its key is pinned
        with operator provenance (replacing a weaker pin), and it becomes a peer."""
        found = self._claim(ledger_id, public_key)
        await self._admit(found, "operator", "admin", actor)
        await self._audit.record(actor, "candidate.admit", {"ledger_id": ledger_id,
                                                       "public_key": found.record.public_key})  # fmt: skip
        return found

    async def refuse(self, ledger_id: str, actor: str, public_key: str | None = None) -> list[Found]:
        """The operator refuses a candidate (every claim to its id, or the one of ``public_key``): it
        stays listed as refused, across restarts, and is never admitted automatically (an admitted
        peer is removed with DELETE /admin/peers)."""
        claims = [self._claim(ledger_id, public_key)] if public_key else self._found.claims(ledger_id)
        if not claims:
            raise EntryNotFound(f"no candidate {ledger_id}")
        for found in claims:  # all at once, before any await: no claim is admitted half-way
            found.status = "refused"
        for found in claims:
            await self._found.save(found, durable=True)
        keys = [f.record.public_key for f in claims]
        await self._audit.record(actor, "candidate.refuse", {"ledger_id": ledger_id, "public_keys": keys})
        return claims

    async def reconsider(self) -> None:
        """Admit the candidates a trust path now allows, and demote the peers that only a trust path
        admitted and that no longer have one (after trust changed)."""
        for found in self._found.all():
            if found.status == "candidate" and not self._directory.is_peer(found.record.ledger_id):
                await self._admit_automatically(found)
            elif found.status == "identity-conflict":  # admitted if that is stronger than the pin it meets
                await self._admit_automatically(found, over=await self._ledger.held(found.record.ledger_id))
            elif found.status == "peer" and await self._automatic(found) is None:
                await self._demote(found)

    async def _admit_automatically(self, found: Found, over: LedgerRecord | None = None) -> None:
        """Admit ``found`` if an automatic decision allows it, and, ``over`` a held pin of another key,
        only with a stronger provenance than that pin's."""
        if found.status == "refused" or found.record.ledger_id == self._ledger.ledger_id:
            return
        pin_source = await self._automatic(found)
        if pin_source is None or (over is not None and not stronger(pin_source, over.pin_source)):
            return
        try:
            await self._admit(found, pin_source, sorted(found.sources)[0])
        except (NodeError, ValueError) as exc:
            log.info("could not admit %s: %s", found.record.ledger_id, exc)

    async def _demote(self, found: Found) -> None:
        ledger_id = found.record.ledger_id
        held = await self._ledger.held(ledger_id)
        if held is None or held.pin_source != "attested" or held.public_key.hex() != found.record.public_key:
            return  # the operator, the configuration or the registry admitted it: theirs to remove
        await self._directory.remove(ledger_id)
        found.status, found.detail = "candidate", "trust path below trust.sync_threshold"
        await self._found.save(found, durable=True)
        await self._audit.record("node", "peer.demote", {"ledger_id": ledger_id, "reason": found.detail})
        log.info("demoted ledger=%s: %s", ledger_id, found.detail)

    async def _report_conflict(self, record: NodeRecord, source: str, exc: Exception) -> Found:
        log.warning("identity conflict from %s: %s", source, exc)
        self._metrics.discovery_rejects.labels(source, "identity-conflict").inc()
        held = self._found.get(record.ledger_id, record.public_key)
        if held is not None and held.status == "refused":
            return held
        return await self._found.put(Found(record, {source}, "identity-conflict", str(exc)))

    async def connect(self, url: str, source: str = "connect", pin_source: PinSource = "operator") -> Found:
        """Fetch a node's signed record from its /network/info, admit it (the operator or the
        configuration asked for this URL), and introduce ourselves to it (so it can consider us). The
        operator gave ``url`` (bootstrap, POST /network/connect): the peer is reached there, never at
        another endpoint its record names (a remote must not steer this node to an address the
        operator did not give)."""
        self._net.operator(url)
        record = await self._fetch_record(url)
        found = await self.consider(record, source)
        if found is None:
            raise IdentityConflict(f"{url} is this node")
        if found.status == "identity-conflict":
            raise IdentityConflict(found.detail or "identity conflict")
        await self._admit(found, pin_source, source, url=url)
        await self._introduce(url)
        return found

    async def _introduce(self, url: str) -> None:
        assert self.record is not None
        try:
            await self._net.request(
                "POST", url, "/network/introduce", body=orjson.dumps(self.record.model_dump()), accept=(409,)
            )
        except (PeerUnavailable, PeerFailed) as exc:
            log.info("could not introduce this node to %s: %s", url, exc)

    # --- sources -------------------------------------------------------------------------------

    async def _registry_loop(self) -> None:
        assert self._registry is not None and self.record is not None
        registered = False
        refused = ""
        while True:
            try:
                if not registered:
                    self.record = own_record(self._ledger, self._settings, self.record.endpoints[0])
                    await self._registry.register(self.record)
                    registered = True
                    log.info("registered with %s", self._registry.active)
                    await self._discover_from_registry()
                await self._registry.heartbeat()
            except NotRegistered:
                registered = False
                continue
            except PeerUnavailable as exc:
                registered = False  # after an outage, register again (the registry may have lost us)
                log.info("registry unavailable: %s", exc)
            except PeerFailed as exc:  # it answered, and refused
                registered = False
                if str(exc) != refused:  # said once per distinct refusal, not every round
                    refused = str(exc)
                    hint = NOT_ENROLLED_HINT if "(not-enrolled)" in refused else ""
                    log.warning("registry refused this node: %s%s", exc, hint)
            if registered and random.random() < self._conf.heartbeat_s / self._conf.interval_s:
                await self._discover_from_registry()
            await asyncio.sleep(self._conf.heartbeat_s * random.uniform(0.8, 1.2))

    async def _discover_from_registry(self) -> None:
        assert self._registry is not None
        try:
            records = await self._registry.discover()
        except (PeerUnavailable, PeerFailed) as exc:
            log.info("registry discovery failed: %s", exc)
            return
        for record in records:
            await self.consider(record, "registry")

    async def _bootstrap(self) -> None:
        pending = list(self._conf.bootstrap)
        delay = 0.5
        while pending:
            for url in list(pending):
                try:
                    await self.connect(url, "bootstrap", "first-sight")
                    pending.remove(url)
                except NodeError as exc:
                    log.info("bootstrap %s: %s", url, exc)
            if pending:
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._conf.interval_s)

    async def _exchange_loop(self) -> None:
        while True:
            await asyncio.sleep(self._conf.interval_s * random.uniform(0.8, 1.2))
            for peer in self._directory.all():
                try:
                    answer = await self._net.request("GET", peer.url, "/network/ledgers")
                    for record in parse_list(NodeRecord, answer.data, MAX_EXCHANGED):
                        await self.consider(record, "exchange")
                except NodeError as exc:
                    log.debug("peer exchange with %s: %s", peer.ledger_id, exc)

    async def _admission_loop(self) -> None:
        while True:
            await asyncio.sleep(self._conf.interval_s * random.uniform(0.8, 1.2))
            await self.reconsider()

    async def _fetch_record(self, url: str) -> NodeRecord:
        info = (await self._net.request("GET", url, "/network/info")).data
        if not isinstance(info, dict):
            raise PeerFailed(f"{url}: /network/info is not an object")
        return parse(NodeRecord, info.get("record"), "record.")

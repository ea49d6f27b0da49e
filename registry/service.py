"""The registry: binds ledger ids to keys, keeps signed node records, tracks liveness, answers discovery.

A ledger id is bound to a key by its first registration, and only when that registration presents
the enrolment token the registry's operator issued for the id (``enrolment = "token"``, the
default; ``"open"`` binds on first registration, for a closed network). Later records must be
signed by the bound key and newer than the one held (an old copy replayed is refused); a rotation
statement signed by the old key moves the binding; deregistration removes the record but keeps the
binding; only the operator releases a binding (``release``), so the rightful owner can enrol again.
Tokens are stored as SHA-256 and compared in constant time.

Heartbeats (signed requests, checked by the API) keep a node online; a sweeper marks nodes offline
after ``ttl_s`` without one, and the next heartbeat brings them back.

Every node is held in memory (discovery and heartbeats never touch the disk on their path);
registrations, rotations and removals are written through to SQLite at once, liveness is written
in one transaction per sweep, so a restart keeps every record and liveness to within a sweep.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson

from protocol.errors import BadSignature
from protocol.records import KeyRotation, NodeRecord
from registry.errors import KeyMismatch, NodeNotFound, NotEnrolled, StaleRecord, Unauthenticated
from registry.settings import RegistrySettings
from registry.store import RegistryStore, StoredNode

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class _Node:
    record: dict[str, Any]
    record_json: str
    bound_key: str
    issued_at: int
    region: str
    status: str
    last_heartbeat: int
    registered_at: int

    @classmethod
    def stored(cls, n: StoredNode) -> _Node:
        return cls(orjson.loads(n.record), n.record, n.public_key, n.issued_at, n.region, n.status, n.last_heartbeat,
                   n.registered_at)  # fmt: skip

    def to_wire(self) -> dict[str, Any]:
        return {"record": self.record, "bound_key": self.bound_key, "status": self.status,
                "last_heartbeat": self.last_heartbeat, "registered_at": self.registered_at}  # fmt: skip


class Registry:
    """Use as ``async with Registry(store, settings) as registry``; runs the sweeper while open."""

    def __init__(self, store: RegistryStore, settings: RegistrySettings, clock: Callable[[], int] = wall_ms) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._nodes: dict[str, _Node] = {}
        self._order: list[str] = []  # ledger ids, sorted, for paging
        self._dirty: set[str] = set()  # liveness not yet written
        self._sweeper: asyncio.Task[None] | None = None
        self._bindings: dict[str, tuple[str, int]] = {}  # ledger id -> (key hex, bound_at)
        self._tokens: dict[str, str] = {}  # ledger id -> SHA-256 hex of its enrolment token

    async def __aenter__(self) -> Registry:
        for stored in await self._store.all():
            self._nodes[stored.ledger_id] = _Node.stored(stored)
        self._bindings = {b.ledger_id: (b.public_key, b.bound_at) for b in await self._store.bindings()}
        self._tokens = {e.ledger_id: e.token_hash for e in await self._store.enrolments()}
        self._order = sorted(self._nodes)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="registry:sweeper")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        await self._flush()

    async def register(self, record: NodeRecord, token: str | None = None) -> dict[str, Any]:
        """Store a signed record; bind its ledger id to its key on an enrolled first registration."""
        try:
            record.verify()
        except BadSignature as exc:
            raise Unauthenticated("record: signature does not verify under its public_key") from exc
        bound = self._bindings.get(record.ledger_id)
        if bound is not None and bound[0] != record.public_key:
            raise KeyMismatch(f"ledger {record.ledger_id} is bound to another key; rotate it first")
        held = self._nodes.get(record.ledger_id)
        if held is not None and record.issued_at <= held.issued_at:
            raise StaleRecord(f"record: issued_at {record.issued_at} is not newer than the one held")
        now = self._clock()
        if bound is None:
            self._check_enrolment(record.ledger_id, token)
            await self._store.bind(record.ledger_id, record.public_key, now)
            self._bindings[record.ledger_id] = (record.public_key, now)
            log.info("bound ledger=%s key=%s", record.ledger_id, record.public_key[:16])
        text = record.model_dump_json()
        await self._store.upsert(record.ledger_id, record.public_key, text, record.issued_at, record.metadata.region,
                                 now)  # fmt: skip
        node = _Node(orjson.loads(text), text, record.public_key, record.issued_at, record.metadata.region,
                     "online", now, held.registered_at if held else now)  # fmt: skip
        self._put(record.ledger_id, node)
        log.info("registered ledger=%s new=%s", record.ledger_id, held is None)
        return node.to_wire()

    def _check_enrolment(self, ledger_id: str, token: str | None) -> None:
        if self._settings.enrolment == "open":
            return
        configured = self._settings.enrolments.get(ledger_id)
        expected = [d for d in (self._tokens.get(ledger_id),) if d is not None]
        if configured is not None:
            expected.append(_digest(configured.get_secret_value()))
        given = _digest(token or "")
        # every candidate digest is compared, whatever matched first
        if token is None or not any([hmac.compare_digest(given, d) for d in expected]):
            raise NotEnrolled(
                f"ledger {ledger_id} is not enrolled: its first registration needs the enrolment token the"
                " registry's operator issued for it (Authorization: Bearer <token>)"
            )

    async def enrol(self, ledger_id: str) -> str:
        """Issue a new enrolment token for ``ledger_id`` (replacing an earlier one); stored hashed."""
        token = secrets.token_urlsafe(32)
        await self._store.save_enrolment(ledger_id, _digest(token), self._clock())
        self._tokens[ledger_id] = _digest(token)
        log.info("enrolment issued ledger=%s", ledger_id)
        return token

    async def release(self, ledger_id: str) -> None:
        """Forget the binding, record and issued enrolment of ``ledger_id`` (the operator's decision)."""
        if ledger_id not in self._bindings and ledger_id not in self._nodes and ledger_id not in self._tokens:
            raise NodeNotFound(f"no binding, record or enrolment for {ledger_id}")
        await self._store.release(ledger_id)
        self._bindings.pop(ledger_id, None)
        self._tokens.pop(ledger_id, None)
        if self._nodes.pop(ledger_id, None) is not None:
            self._order.remove(ledger_id)
        self._dirty.discard(ledger_id)
        log.info("released ledger=%s", ledger_id)

    def bindings(self) -> list[dict[str, Any]]:
        """Every ledger id bound or enrolled: its key, when bound, the record's status."""
        ids = sorted(set(self._bindings) | set(self._tokens) | set(self._settings.enrolments))
        return [
            {"ledger_id": lid, "bound_key": self._bindings[lid][0] if lid in self._bindings else None,
             "bound_at": self._bindings[lid][1] if lid in self._bindings else None,
             "status": self._nodes[lid].status if lid in self._nodes else "unregistered"}
            for lid in ids
        ]  # fmt: skip

    def bound_key(self, ledger_id: str) -> bytes:
        bound = self._bindings.get(ledger_id)
        return bytes.fromhex(bound[0] if bound is not None else self._get(ledger_id).bound_key)

    def heartbeat(self, ledger_id: str) -> dict[str, Any]:
        node = self._get(ledger_id, "register again")
        node.last_heartbeat, node.status = self._clock(), "online"
        self._dirty.add(ledger_id)
        return {"ledger_id": ledger_id, "status": "online", "last_heartbeat": node.last_heartbeat}

    async def deregister(self, ledger_id: str) -> None:
        self._get(ledger_id)
        await self._store.delete(ledger_id)
        del self._nodes[ledger_id]
        self._order.remove(ledger_id)
        self._dirty.discard(ledger_id)
        log.info("deregistered ledger=%s", ledger_id)

    async def rotate(self, rotation: KeyRotation) -> dict[str, Any]:
        """Move a ledger id to a new key on the old key's signed statement."""
        held = self._get(rotation.ledger_id)
        if held.bound_key != rotation.old_public_key:
            raise KeyMismatch("rotation: old_public_key is not the key this ledger id is bound to")
        try:
            rotation.verify()
        except BadSignature as exc:
            raise Unauthenticated("rotation: not signed by the old key") from exc
        if rotation.issued_at <= held.issued_at:
            raise StaleRecord("rotation: issued_at is not newer than the record held")
        now = self._clock()
        await self._store.upsert(rotation.ledger_id, rotation.new_public_key, held.record_json, rotation.issued_at,
                                 held.region, now)  # fmt: skip
        await self._store.bind(rotation.ledger_id, rotation.new_public_key, now)
        self._bindings[rotation.ledger_id] = (rotation.new_public_key, now)
        held.bound_key, held.issued_at, held.status, held.last_heartbeat = (
            rotation.new_public_key, rotation.issued_at, "online", now,
        )  # fmt: skip
        log.info("rotated key ledger=%s", rotation.ledger_id)
        return held.to_wire()

    def get(self, ledger_id: str) -> dict[str, Any]:
        return self._get(ledger_id).to_wire()

    def discover(
        self,
        *,
        capability: str | None = None,
        region: str | None = None,
        status: str | None = None,
        stream: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Nodes matching every filter, in ledger id order, after ``after``; and the next cursor."""
        found: list[dict[str, Any]] = []
        start = bisect.bisect_right(self._order, after) if after else 0
        for ledger_id in self._order[start:]:
            node = self._nodes[ledger_id]
            if status is not None and node.status != status:
                continue
            if region is not None and node.region != region:
                continue
            if capability is not None and capability not in node.record["capabilities"]:
                continue
            if stream is not None and stream not in node.record["metadata"]["streams"]:
                continue
            if len(found) == limit:
                return found, found[-1]["record"]["ledger_id"]
            found.append(node.to_wire())
        return found, None

    async def sweep(self) -> int:
        """Mark nodes offline whose last heartbeat is older than the TTL; write liveness changes."""
        cutoff = self._clock() - int(self._settings.ttl_s * 1000)
        swept = 0
        for ledger_id, node in self._nodes.items():
            if node.status == "online" and node.last_heartbeat < cutoff:
                node.status = "offline"
                self._dirty.add(ledger_id)
                swept += 1
        await self._flush()
        if swept:
            log.info("marked offline nodes=%d", swept)
        return swept

    async def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        changes = [
            (lid, self._nodes[lid].last_heartbeat, self._nodes[lid].status) for lid in dirty if lid in self._nodes
        ]
        if changes:
            await self._store.save_liveness(changes)

    def _put(self, ledger_id: str, node: _Node) -> None:
        if ledger_id not in self._nodes:
            bisect.insort(self._order, ledger_id)
        self._nodes[ledger_id] = node

    def _get(self, ledger_id: str, hint: str = "") -> _Node:
        node = self._nodes.get(ledger_id)
        if node is None:
            raise NodeNotFound(f"no node {ledger_id} is registered{'; ' + hint if hint else ''}")
        return node

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()

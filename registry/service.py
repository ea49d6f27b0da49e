"""The registry: binds ledger ids to keys, keeps signed node records, tracks liveness, answers discovery.

The first registration binds a ledger id to the record's key; later records must be signed by that
key and newer than the one held (an old copy replayed is refused); a rotation statement signed by
the old key moves the binding. Heartbeats (signed requests, checked by the API) keep a node online;
a sweeper marks nodes offline after ``ttl_s`` without one, and the next heartbeat brings them back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import orjson

from protocol.errors import BadSignature
from protocol.records import KeyRotation, NodeRecord
from registry.errors import KeyMismatch, NodeNotFound, StaleRecord, Unauthenticated
from registry.settings import RegistrySettings
from registry.store import RegistryStore, Row

log = logging.getLogger(__name__)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Registry:
    """Use as ``async with Registry(store, settings) as registry``; runs the sweeper while open."""

    def __init__(self, store: RegistryStore, settings: RegistrySettings, clock: Callable[[], int] = wall_ms) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._sweeper: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Registry:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="registry:sweeper")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)

    async def register(self, record: NodeRecord) -> dict[str, Any]:
        """Store a signed record; bind its ledger id to its key on first registration."""
        try:
            record.verify()
        except BadSignature as exc:
            raise Unauthenticated("record: signature does not verify under its public_key") from exc
        held = await self._store.get(record.ledger_id)
        if held is not None:
            if held[1] != record.public_key:
                raise KeyMismatch(f"ledger {record.ledger_id} is bound to another key; rotate it first")
            if record.issued_at <= held[3]:
                raise StaleRecord(f"record: issued_at {record.issued_at} is not newer than the one held")
        await self._store.upsert(record.ledger_id, record.public_key, record.model_dump_json(), record.issued_at,
                                 record.metadata.region, self._clock())  # fmt: skip
        log.info("registered ledger=%s new=%s", record.ledger_id, held is None)
        return await self.get(record.ledger_id)

    async def bound_key(self, ledger_id: str) -> bytes:
        held = await self._store.get(ledger_id)
        if held is None:
            raise NodeNotFound(f"no node {ledger_id} is registered")
        return bytes.fromhex(held[1])

    async def heartbeat(self, ledger_id: str) -> dict[str, Any]:
        if await self._store.get(ledger_id) is None:
            raise NodeNotFound(f"no node {ledger_id} is registered; register again")
        await self._store.heartbeat(ledger_id, self._clock())
        return await self.get(ledger_id)

    async def deregister(self, ledger_id: str) -> None:
        if await self._store.get(ledger_id) is None:
            raise NodeNotFound(f"no node {ledger_id} is registered")
        await self._store.delete(ledger_id)
        log.info("deregistered ledger=%s", ledger_id)

    async def rotate(self, rotation: KeyRotation) -> dict[str, Any]:
        """Move a ledger id to a new key on the old key's signed statement."""
        held = await self._store.get(rotation.ledger_id)
        if held is None:
            raise NodeNotFound(f"no node {rotation.ledger_id} is registered")
        if held[1] != rotation.old_public_key:
            raise KeyMismatch("rotation: old_public_key is not the key this ledger id is bound to")
        try:
            rotation.verify()
        except BadSignature as exc:
            raise Unauthenticated("rotation: not signed by the old key") from exc
        if rotation.issued_at <= held[3]:
            raise StaleRecord("rotation: issued_at is not newer than the record held")
        await self._store.upsert(rotation.ledger_id, rotation.new_public_key, held[2], rotation.issued_at, held[4],
                                 self._clock())  # fmt: skip
        log.info("rotated key ledger=%s", rotation.ledger_id)
        return await self.get(rotation.ledger_id)

    async def get(self, ledger_id: str) -> dict[str, Any]:
        held = await self._store.get(ledger_id)
        if held is None:
            raise NodeNotFound(f"no node {ledger_id} is registered")
        return _entry(held)

    async def discover(
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
        cursor = after
        while len(found) <= limit:
            rows = await self._store.page(status, region, cursor, self._settings.max_page)
            for row in rows:
                entry = _entry(row)
                record = entry["record"]
                if capability is not None and capability not in record["capabilities"]:
                    continue
                if stream is not None and stream not in record["metadata"]["streams"]:
                    continue
                found.append(entry)
            if len(rows) < self._settings.max_page:
                break
            cursor = rows[-1][0]
        page = found[:limit]
        return page, page[-1]["record"]["ledger_id"] if len(found) > limit else None

    async def sweep(self) -> int:
        """Mark nodes offline whose last heartbeat is older than the TTL."""
        swept = await self._store.sweep(self._clock() - int(self._settings.ttl_s * 1000))
        if swept:
            log.info("marked offline nodes=%d", swept)
        return swept

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")


def _entry(row: Row) -> dict[str, Any]:
    ledger_id, public_key, record, issued_at, region, status, last_heartbeat, registered_at = row
    return {"record": orjson.loads(record), "bound_key": public_key, "status": status,
            "last_heartbeat": last_heartbeat, "registered_at": registered_at}  # fmt: skip

"""Cross-ledger references: ``meta.refs = [{ledger_id, entry_id, seq, hash, type}]``.

Every reference of an entry that is appended here or arrives by sync is recorded and resolved: the
referenced entry is looked up in the local store (already verified), else fetched from a peer that
holds its ledger and verified under that ledger's pinned key; then its id and hash must match.
Status: ``verified``, ``broken`` (the entry at that position has another hash or id),
``unknown-ledger`` (no key is pinned for it here) or ``pending`` (nobody could show it yet; retried
in the background). In strict mode a local append whose references cannot all be verified now is
refused. ``follow`` walks references across ledgers to a bounded depth, never visiting an entry
twice, so cycles end.

Resolution never runs on the after_append hook: the hook records the references as ``pending`` and
queues them. A resolver runs ``refs.concurrency`` lookups at once, each peer fetch limited to
``refs.lookup_timeout_s``, and all references of one entry to ``refs.deadline_s`` together; what is
not resolved by then stays ``pending`` for the retry loop (every ``refs.retry_s``), which feeds the
same queue. The queue holds at most ``refs.max_queued`` lookups; beyond that, references wait in the
store for the retry loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from node.errors import EntryNotFound, InvalidRequest, NodeError
from node.ledger.chain import verify_entry
from node.ledger.clock import wall_ms
from node.ledger.service import Ledger
from node.net.client import Outbound
from node.net.peers import PeerView
from node.net.shapes import parse
from node.settings import RefSettings
from node.storage.contract import RefRecord, RefRepository, StoredEntry
from node.supervise import Supervised, Supervisor
from protocol.errors import ProtocolError
from protocol.models import MAX_REFS, Entry, EntryDraft, Ref

log = logging.getLogger(__name__)

Target = tuple[str, dict[str, Any] | None, str | None]  # status, the entry as wire, detail
MAX_WALK = 1024  # references one GET /ledger/entries/{id}/refs reports at most


@dataclass(frozen=True, slots=True)
class Lookup:
    """One reference to resolve: where it is recorded, what it names, and its entry's deadline."""

    ledger_id: str
    seq: int
    position: int
    ref: Ref
    deadline: float  # time.monotonic() by which the entry's references must be settled

    @property
    def where(self) -> tuple[str, int, int]:
        return (self.ledger_id, self.seq, self.position)


def refs_in(meta: dict[str, Any] | None, where: str = "meta.refs") -> list[Ref]:
    """The references in a meta object; InvalidRequest naming the bad one."""
    raw = (meta or {}).get("refs")
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_REFS:
        raise InvalidRequest(f"{where}: a list of at most {MAX_REFS} references")
    refs = []
    for i, item in enumerate(raw):
        try:
            refs.append(Ref.model_validate(item))
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            raise InvalidRequest(f"{where}[{i}].{'.'.join(map(str, error['loc']))}: {error['msg']}") from exc
    return refs


class References:
    def __init__(
        self,
        ledger: Ledger,
        peers: PeerView,
        settings: RefSettings,
        net: Outbound,
        store: RefRepository,
        supervisor: Supervisor,
    ) -> None:
        self._ledger = ledger
        self._store = store
        self._supervisor = supervisor
        self._peers = peers
        self._settings = settings
        self._net = net
        self._queue: asyncio.Queue[Lookup] = asyncio.Queue()
        self._queued: set[tuple[str, int, int]] = set()  # lookups in the queue or running
        self._tasks: list[Supervised] = []

    async def __aenter__(self) -> References:
        self._ledger.hooks.before_append.append(self._check_drafts)
        self._ledger.hooks.after_append.append(self.record)
        self._tasks = [self._supervisor.start("refs:retry", self._retry_pending)]
        self._tasks += [
            self._supervisor.start(f"refs:resolver-{i}", self._resolver) for i in range(self._settings.concurrency)
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._supervisor.stop(*self._tasks)
        self._tasks = []

    async def _check_drafts(self, drafts: Sequence[EntryDraft]) -> str | None:
        """before_append: the refs must be well-formed; in strict mode, verifiable now (all of the
        batch's references within ``refs.deadline_s``)."""
        deadline = time.monotonic() + self._settings.deadline_s
        for i, draft in enumerate(drafts):
            refs = refs_in(draft.meta, f"entries[{i}].meta.refs" if len(drafts) > 1 else "meta.refs")
            if self._settings.strict:
                for j, ref in enumerate(refs):
                    status, _, detail = await self.resolve_by(ref, deadline)
                    if status != "verified":
                        return f"meta.refs[{j}]: {status} ({detail or ref.ledger_id + '/' + str(ref.seq)})"
        return None

    async def resolve_by(self, ref: Ref, deadline: float) -> Target:
        """``resolve`` within a deadline (``time.monotonic()``); ``pending`` when it passes first."""
        remaining = deadline - time.monotonic()
        if remaining > 0:
            try:
                async with asyncio.timeout(remaining):
                    return await self.resolve(ref)
            except TimeoutError:
                pass
        return "pending", None, f"not resolved within refs.deadline_s ({self._settings.deadline_s:g} s)"

    async def record(self, rows: Sequence[StoredEntry]) -> None:
        """after_append: record the references of committed entries (own or replicated) as pending and
        queue them for the resolver; nothing is looked up here."""
        now = wall_ms()
        deadline = time.monotonic() + self._settings.deadline_s
        for row in rows:
            if row.meta is None:
                continue
            try:
                refs = refs_in(orjson.loads(row.meta))
            except InvalidRequest as exc:  # a replicated entry may carry anything in meta
                log.info("entry %s/%s has malformed refs: %s", row.ledger_id, row.seq, exc)
                continue
            if not refs:
                continue
            await self._store.add([
                RefRecord(row.ledger_id, row.seq, i, r.ledger_id, r.seq, bytes.fromhex(r.hash), r.entry_id, r.type,
                          "pending", None, 0, now)
                for i, r in enumerate(refs)
            ])  # fmt: skip
            for i, ref in enumerate(refs):
                self._enqueue(Lookup(row.ledger_id, row.seq, i, ref, deadline))

    def _enqueue(self, lookup: Lookup) -> bool:
        """Queue a lookup unless it is queued already or the queue is full (it then stays pending in
        the store for the retry loop)."""
        if lookup.where in self._queued or len(self._queued) >= self._settings.max_queued:
            return False
        self._queued.add(lookup.where)
        self._queue.put_nowait(lookup)
        return True

    async def _resolver(self) -> None:
        """One of ``refs.concurrency`` workers: resolve queued lookups within their entry's deadline."""
        while True:
            lookup = await self._queue.get()
            try:
                status, _, detail = await self.resolve_by(lookup.ref, lookup.deadline)
                await self._store.set_status(*lookup.where, status, detail)
            except NodeError as exc:
                log.warning("resolving reference %s/%s[%d] failed: %s", *lookup.where, exc)
            except Exception:
                log.exception("resolving reference %s/%s[%d] failed", *lookup.where)
            finally:
                self._queued.discard(lookup.where)
                self._queue.task_done()

    async def resolve(self, ref: Ref) -> Target:
        """Find and check the referenced entry: local store first, then peers holding its ledger."""
        held = await self._ledger.held(ref.ledger_id)
        if held is None and ref.ledger_id != self._ledger.ledger_id:
            return "unknown-ledger", None, f"no key is pinned for {ref.ledger_id}"
        try:
            row = await self._ledger.get_by_seq(ref.ledger_id, ref.seq)
            return _compare(ref, row.to_dict())
        except EntryNotFound:
            pass
        key = held.public_key if held is not None else self._ledger.keys.public_key
        for peer in self._peers.all():
            entry = await self._fetch(peer.url, ref, key)
            if entry is not None:
                return _compare(ref, entry)
        return "pending", None, "no node could show the entry yet"

    async def _fetch(self, url: str, ref: Ref, key: bytes) -> dict[str, Any] | None:
        try:
            answer = await self._net.request("GET", url, f"/ledger/ledgers/{ref.ledger_id}/entries/{ref.seq}",
                                             timeout_s=self._settings.lookup_timeout_s)  # fmt: skip
            entry = parse(Entry, answer.data)
        except NodeError as exc:
            log.debug("reference %s/%s not shown by %s: %s", ref.ledger_id, ref.seq, url, exc)
            return None
        try:
            verify_entry(key, entry)
        except ProtocolError as exc:
            log.warning("peer %s served a bad copy of %s/%s: %s", url, ref.ledger_id, ref.seq, exc)
            return None
        if entry.ledger_id != ref.ledger_id or entry.seq != ref.seq:
            return None
        return entry.model_dump()

    async def follow(self, entry_id: str, depth: int) -> dict[str, Any]:
        """The entry and the references reachable from it, ``depth`` hops at most, each entry once; at
        most ``MAX_WALK`` references, all looked up within ``refs.deadline_s`` (later ones answer
        ``pending``), so one request cannot fan out without bound."""
        if not 1 <= depth <= self._settings.max_depth:
            raise InvalidRequest(f"depth: between 1 and {self._settings.max_depth}")
        root = (await self._ledger.get(entry_id)).to_dict()
        seen = {(root["ledger_id"], root["seq"])}
        edges: list[dict[str, Any]] = []
        frontier = [root]
        deadline = time.monotonic() + self._settings.deadline_s
        for hop in range(1, depth + 1):
            nxt = []
            for entry in frontier:
                for ref in refs_in(entry["meta"]):
                    if len(edges) >= MAX_WALK:
                        return {"entry": root, "refs": edges, "truncated": True}
                    status, target, detail = await self.resolve_by(ref, deadline)
                    edge = {"from": {"ledger_id": entry["ledger_id"], "seq": entry["seq"]}, "hop": hop,
                            "ref": ref.model_dump(), "status": status, "detail": detail}  # fmt: skip
                    key = (ref.ledger_id, ref.seq)
                    if status == "verified" and target is not None and key not in seen:
                        seen.add(key)
                        edge["entry"] = target
                        nxt.append(target)
                    edges.append(edge)
            frontier = nxt
        return {"entry": root, "refs": edges, "truncated": False}

    async def statuses(self, ledger_id: str, seq: int) -> list[dict[str, Any]]:
        return [{"position": r.position, "ledger_id": r.target, "seq": r.target_seq, "type": r.type, "status": r.status,
                 "detail": r.detail, "attempts": r.attempts} for r in await self._store.of(ledger_id, seq)]  # fmt: skip

    async def _retry_pending(self) -> None:
        """Every ``retry_s``, queue pending references not checked for ``retry_s`` (each entry's
        references get a fresh deadline)."""
        while True:
            await asyncio.sleep(self._settings.retry_s)
            try:
                due = await self._store.pending(wall_ms() - int(self._settings.retry_s * 1000), 200)
            except NodeError as exc:
                log.warning("retrying references failed: %s", exc)
                continue
            deadlines: dict[tuple[str, int], float] = {}
            for r in due:
                deadline = deadlines.setdefault((r.ledger_id, r.seq), time.monotonic() + self._settings.deadline_s)
                ref = Ref(ledger_id=r.target, entry_id=r.target_id, seq=r.target_seq, hash=r.target_hash.hex(),
                          type=r.type)  # fmt: skip
                if not self._enqueue(Lookup(r.ledger_id, r.seq, r.position, ref, deadline)) and len(self._queued) >= (
                    self._settings.max_queued
                ):
                    break


def _compare(ref: Ref, entry: dict[str, Any]) -> Target:
    if entry["hash"] != ref.hash:
        return "broken", None, f"{ref.ledger_id}/{ref.seq} has hash {entry['hash'][:16]}…, not {ref.hash[:16]}…"
    if entry["id"] != ref.entry_id:
        return "broken", None, f"{ref.ledger_id}/{ref.seq} has id {entry['id']}, not {ref.entry_id}"
    return "verified", entry, None

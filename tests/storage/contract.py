"""The storage contract, written once: abstract test cases per repository.

A backend subclasses each ``*Contract`` together with a class that provides the ``storage``
fixture (its Repositories over a fresh, real database); see test_sqlite.py. Nothing here knows
which backend runs: only the interfaces of node/storage/contract.py are used.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from node.errors import StorageError
from node.storage.contract import (
    AttestationRecord,
    CheckpointRecord,
    CredentialRecord,
    Filters,
    RefRecord,
    Repositories,
    StoredEntry,
    SyncSource,
)
from protocol.entry import GENESIS_DIGEST

KEY_A, KEY_B = bytes([1]) * 32, bytes([2]) * 32


def chain(ledger_id: str, start: int, count: int, *, prev: bytes | None = None, ts: int = 1_000) -> list[StoredEntry]:
    """``count`` entries of ``ledger_id`` from seq ``start`` (storage checks links by seq and head
    only; hashes here are stand-ins)."""
    entries = []
    for seq in range(start, start + count):
        digest = hashlib.sha256(f"{ledger_id}/{seq}".encode()).digest()
        entries.append(StoredEntry(
            ledger_id, seq, f"{ledger_id}-{seq:06d}", "even" if seq % 2 == 0 else "odd", "t" if seq % 3 else "three",
            f"issuer-{seq % 2}", f"subject-{seq}", f"key-{seq % 4}", ts + seq, orjson.dumps({"n": seq}).decode(),
            None if seq % 5 else '{"m":1}', prev, digest, bytes([seq % 256]) * 64,
        ))  # fmt: skip
        prev = digest
    return entries


def checkpoint(e: StoredEntry) -> CheckpointRecord:
    return CheckpointRecord(e.ledger_id, e.seq, e.hash, bytes(32), e.timestamp, bytes(64))


def counts(entries: list[StoredEntry]) -> dict[tuple[str, str], int]:
    result: dict[tuple[str, str], int] = {}
    for e in entries:
        result["stream", e.stream] = result.get(("stream", e.stream), 0) + 1
        result["type", e.type] = result.get(("type", e.type), 0) + 1
    return result


async def commit(storage: Repositories, entries: list[StoredEntry], **kwargs: object) -> None:
    await storage.entries.commit(entries, [checkpoint(entries[-1])], counts(entries), sig_digest=bytes(32),
                                 **kwargs)  # type: ignore[arg-type]  # fmt: skip


async def pinned(storage: Repositories, ledger_id: str = "node-a", key: bytes = KEY_A, **kwargs: object) -> None:
    await storage.ledgers.add(ledger_id, key, is_local=bool(kwargs.get("is_local", False)), genesis=GENESIS_DIGEST,
                              pin_source=str(kwargs.get("pin_source", "operator")))  # fmt: skip


def matches(e: StoredEntry, f: Filters) -> bool:
    """The query filters applied to one entry: the oracle the stores are compared with."""
    return (
        all(getattr(f, c) is None or getattr(e, c) == getattr(f, c)
            for c in ("ledger_id", "stream", "type", "issuer_oid", "subject_oid", "key"))
        and (f.ledgers is None or e.ledger_id in f.ledgers)
        and (f.since is None or e.timestamp >= f.since)
        and (f.until is None or e.timestamp < f.until)
    )  # fmt: skip


class Backend:
    """What a backend provides: ``open_storage(path)`` yielding Repositories over a fresh database."""

    def open_storage(self, path: Path) -> AsyncIterator[Repositories]:
        raise NotImplementedError

    @pytest.fixture
    async def storage(self, tmp_path: Path) -> AsyncIterator[Repositories]:
        async for repos in self.open_storage(tmp_path / "storage"):
            yield repos


class EntryContract(Backend):
    async def test_a_committed_segment_reads_back_whole_by_every_key(self, storage: Repositories) -> None:
        await pinned(storage)
        entries = chain("node-a", 1, 10)
        await commit(storage, entries)
        assert await storage.entries.after("node-a", 0, 100) == entries
        assert await storage.entries.after("node-a", 4, 3) == entries[4:7]
        assert await storage.entries.by_id("node-a-000003") == entries[2]
        assert await storage.entries.by_hash(entries[5].hash) == entries[5]
        assert await storage.entries.by_seq("node-a", 10) == entries[9]
        assert await storage.entries.by_id("nope") is None
        assert await storage.entries.by_hash(bytes(32)) is None
        assert await storage.entries.by_seq("node-a", 11) is None
        held = await storage.ledgers.get("node-a")
        assert held is not None and (held.head_seq, held.head_hash) == (10, entries[-1].hash)
        assert (held.first_timestamp, held.last_timestamp) == (entries[0].timestamp, entries[-1].timestamp)

    async def test_a_segment_on_a_stale_head_commits_nothing(self, storage: Repositories) -> None:
        await pinned(storage)
        entries = chain("node-a", 1, 5)
        await commit(storage, entries)
        with pytest.raises(StorageError):
            await commit(storage, chain("node-a", 3, 5))  # starts inside the held chain
        with pytest.raises(StorageError):
            await commit(storage, chain("node-a", 7, 2))  # leaves a gap
        assert await storage.entries.after("node-a", 0, 100) == entries
        assert (await storage.entries.stats("node-a"))["stream"] == {"even": 2, "odd": 3}

    async def test_a_commit_records_its_sync_source_and_audit_in_the_same_transaction(
        self, storage: Repositories
    ) -> None:
        await pinned(storage)
        entries = chain("node-a", 1, 3)
        await commit(storage, entries, sync=SyncSource("node-p", "pull"), audit=[("node", "append", {"count": 3})])
        (mark,) = await storage.peers.sync_marks()
        assert (mark.peer, mark.ledger_id, mark.direction, mark.seq, mark.hash) == (
            "node-p", "node-a", "pull", 3, entries[-1].hash)  # fmt: skip
        (record,) = await storage.audit.log(10)
        assert (record.actor, record.action, record.detail) == ("node", "append", {"count": 3})

    async def test_queries_filter_order_and_page_by_position(self, storage: Repositories) -> None:
        await pinned(storage)
        await pinned(storage, "node-b", KEY_B)
        a, b = chain("node-a", 1, 20), chain("node-b", 1, 20)
        await commit(storage, a)
        await commit(storage, b)
        everything = sorted(a + b, key=lambda e: (e.timestamp, e.ledger_id, e.seq))
        assert await storage.entries.query(Filters(), descending=False, after=None, limit=100) == everything
        assert await storage.entries.query(Filters(), descending=True, after=None, limit=3) == everything[::-1][:3]
        last = everything[9]
        page = await storage.entries.query(Filters(), descending=False, after=(last.timestamp, last.ledger_id,
                                                                               last.seq), limit=5)  # fmt: skip
        assert page == everything[10:15]
        for filters, keep in (
            (Filters(ledger_id="node-b"), lambda e: e.ledger_id == "node-b"),
            (Filters(ledgers=("node-a",)), lambda e: e.ledger_id == "node-a"),
            (Filters(stream="even"), lambda e: e.stream == "even"),
            (Filters(type="three"), lambda e: e.type == "three"),
            (Filters(issuer_oid="issuer-1"), lambda e: e.issuer_oid == "issuer-1"),
            (Filters(subject_oid="subject-7"), lambda e: e.subject_oid == "subject-7"),
            (Filters(key="key-2", stream="even"), lambda e: e.key == "key-2"),
            (Filters(since=1_005, until=1_010), lambda e: 1_005 <= e.timestamp < 1_010),
        ):
            expected = [e for e in everything if keep(e)]
            assert await storage.entries.query(filters, descending=False, after=None, limit=100) == expected, filters

    async def test_every_read_sees_every_commit_indexed_or_not(self, storage: Repositories) -> None:
        """Half of each ledger indexed, half committed since: every filter, both orders and every page
        boundary answer exactly what a scan of all the entries answers; then the same once indexed."""
        await pinned(storage)
        await pinned(storage, "node-b", KEY_B)
        a, b = chain("node-a", 1, 30), chain("node-b", 1, 30, ts=1_010)
        await commit(storage, a[:15])
        await commit(storage, b[:15])
        await storage.entries.index_now()
        assert storage.entries.index_lag() == 0
        await commit(storage, a[15:])
        await commit(storage, b[15:])
        everything = sorted(a + b, key=lambda e: (e.timestamp, e.ledger_id, e.seq))
        cases = [Filters(), Filters(ledger_id="node-b"), Filters(ledgers=("node-a",)), Filters(stream="even"),
                 Filters(type="three"), Filters(issuer_oid="issuer-1"), Filters(subject_oid="subject-22"),
                 Filters(key="key-2", stream="even"), Filters(since=1_012, until=1_031),
                 Filters(stream="odd", ledger_id="node-a", since=1_020)]  # fmt: skip

        async def answers_like_a_scan() -> None:
            for filters in cases:
                expected = [e for e in everything if matches(e, filters)]
                for descending in (False, True):
                    want = expected[::-1] if descending else expected
                    assert await storage.entries.query(filters, descending=descending, after=None, limit=100) == want
                    got: list[StoredEntry] = []
                    while True:  # pages of 4 from every cursor position
                        last = got[-1] if got else None
                        at = None if last is None else (last.timestamp, last.ledger_id, last.seq)
                        page = await storage.entries.query(filters, descending=descending, after=at, limit=4)
                        if not page:
                            break
                        got.extend(page)
                    assert got == want, (filters, descending)
            for e in (a[3], a[20], b[29]):
                assert await storage.entries.by_hash(e.hash) == e
            assert {e.seq for e in await storage.entries.keyed("key-1") if e.ledger_id == "node-a"} == {
                s for s in range(1, 31) if s % 4 == 1}  # fmt: skip
            assert await storage.entries.keys(None, 10) == ["key-0", "key-1", "key-2", "key-3"]
            assert await storage.entries.keys("key-0", 2) == ["key-1", "key-2"]

        await answers_like_a_scan()
        await storage.entries.index_now()
        assert storage.entries.index_lag() == 0
        await answers_like_a_scan()

    async def test_ids_keys_stats_and_checkpoints(self, storage: Repositories) -> None:
        await pinned(storage)
        first, second = chain("node-a", 1, 6), chain("node-a", 7, 6)
        await commit(storage, first)
        await commit(storage, second)
        assert await storage.entries.ids_taken("node-a", ["node-a-000002", "fresh", "node-a-000012"]) == {
            "node-a-000002", "node-a-000012"}  # fmt: skip
        assert await storage.entries.ids_taken("node-b", ["node-a-000002"]) == set()
        assert await storage.entries.keys(None, 10) == ["key-0", "key-1", "key-2", "key-3"]
        assert await storage.entries.keys("key-1", 1) == ["key-2"]
        assert {e.seq for e in await storage.entries.keyed("key-1")} == {1, 5, 9}
        stats = await storage.entries.stats("node-a")
        assert stats == {"stream": {"even": 6, "odd": 6}, "type": {"t": 8, "three": 4}}
        assert await storage.entries.latest_checkpoint("node-a") == checkpoint(second[-1])
        assert await storage.entries.checkpoints_between("node-a", 0, 12) == [checkpoint(first[-1]),
                                                                            checkpoint(second[-1])]  # fmt: skip
        assert await storage.entries.checkpoints_between("node-a", 6, 12) == [checkpoint(second[-1])]
        assert await storage.entries.latest_checkpoint("node-b") is None

    async def test_an_entry_record_round_trips_every_field(self, storage: Repositories) -> None:
        await pinned(storage)
        odd = StoredEntry("node-a", 1, "x", "s", "t", None, None, None, 0, '{"a":[1,{"b":"\\u00e9"}]}', None, None,
                          bytes(32), bytes(64))  # fmt: skip
        await commit(storage, [odd])
        (back,) = await storage.entries.after("node-a", 0, 1)
        assert back == odd and back.to_wire()["prev_hash"] is None


class LedgerContract(Backend):
    async def test_a_pin_is_added_once_and_listed_own_first(self, storage: Repositories) -> None:
        await pinned(storage, "node-z", KEY_B, pin_source="peer")
        await pinned(storage, "node-m", KEY_A, is_local=True, pin_source="config")
        again = await storage.ledgers.add(
            "node-z", KEY_A, is_local=False, genesis=GENESIS_DIGEST, pin_source="operator"
        )
        assert (again.public_key, again.pin_source, again.head_seq) == (KEY_B, "peer", 0)  # the first pin stays
        assert [(r.ledger_id, r.is_local) for r in await storage.ledgers.all()] == [("node-m", True), ("node-z", False)]
        assert await storage.ledgers.get("node-q") is None

    async def test_upgrade_mark_local_and_verified(self, storage: Repositories) -> None:
        await pinned(storage, pin_source="first-sight")
        await storage.ledgers.upgrade_pin("node-a", KEY_B, "operator")  # another key: not upgraded
        await storage.ledgers.upgrade_pin("node-a", KEY_A, "registry")
        await storage.ledgers.mark_local("node-a")
        await storage.ledgers.set_verified("node-a", 7)
        held = await storage.ledgers.get("node-a")
        assert held is not None and (held.pin_source, held.is_local, held.verified_seq) == ("registry", True, 7)

    async def test_replacing_a_pin_drops_everything_held_under_it(self, storage: Repositories) -> None:
        await pinned(storage, pin_source="peer")
        await commit(storage, chain("node-a", 1, 4), sync=SyncSource("node-p", "pull"))
        await storage.peers.save("node-a", "http://a", "both", "admin")
        await storage.refs.add([ref("node-a", 1, 0)])
        await storage.trust.save([AttestationRecord("node-a", "node-b", "{}", 1)])
        dropped = await storage.ledgers.replace_pin("node-a", KEY_B, "operator", GENESIS_DIGEST,
                                                    ("admin", "pin.replace", {"ledger_id": "node-a"}))  # fmt: skip
        assert dropped == 4
        held = await storage.ledgers.get("node-a")
        assert held is not None and (held.public_key, held.pin_source, held.head_seq, held.head_hash) == (
            KEY_B, "operator", 0, None)  # fmt: skip
        assert await storage.entries.after("node-a", 0, 10) == []
        assert await storage.entries.latest_checkpoint("node-a") is None
        assert await storage.entries.stats("node-a") == {"stream": {}, "type": {}}
        assert await storage.peers.sync_marks() == [] and await storage.refs.of("node-a", 1) == []
        assert await storage.trust.all() == []
        assert [p.ledger_id for p in await storage.peers.all()] == ["node-a"]  # the peer stays on a replacement
        (record,) = await storage.audit.log(1)
        assert record.action == "pin.replace" and record.detail["entries_dropped"] == 4
        await storage.ledgers.replace_pin("node-a", None, "operator", GENESIS_DIGEST, ("admin", "pin.remove", {}))
        assert await storage.ledgers.get("node-a") is None and await storage.peers.all() == []

    async def test_the_own_ledger_is_never_replaced(self, storage: Repositories) -> None:
        await pinned(storage, is_local=True, pin_source="config")
        await storage.ledgers.replace_pin("node-a", KEY_B, "operator", GENESIS_DIGEST, ("admin", "pin.replace", {}))
        await storage.ledgers.replace_pin("node-a", None, "operator", GENESIS_DIGEST, ("admin", "pin.remove", {}))
        held = await storage.ledgers.get("node-a")
        assert held is not None and held.public_key == KEY_A and held.is_local


class PeerContract(Backend):
    async def test_peers_are_saved_updated_listed_and_deleted(self, storage: Repositories) -> None:
        await storage.peers.save("node-b", "http://b", "pull", "config")
        await storage.peers.save("node-a", "http://a", "both", "admin")
        await storage.peers.save("node-b", "http://b2", "both", "registry")
        assert [(p.ledger_id, p.url, p.mode, p.source) for p in await storage.peers.all()] == [
            ("node-a", "http://a", "both", "admin"), ("node-b", "http://b2", "both", "registry")]  # fmt: skip
        assert await storage.peers.delete("node-a") is True
        assert await storage.peers.delete("node-a") is False
        assert [p.ledger_id for p in await storage.peers.all()] == ["node-b"]

    async def test_sync_marks_move_and_vouching_follows_pulled_peer_pins(self, storage: Repositories) -> None:
        await pinned(storage, "node-c", KEY_A, pin_source="peer")
        await pinned(storage, "node-d", KEY_B, pin_source="operator")
        await storage.peers.mark_synced("node-p", "node-c", "pull", 3, b"h3")
        await storage.peers.mark_synced("node-p", "node-c", "pull", 5, b"h5")
        await storage.peers.mark_synced("node-p", "node-d", "pull", 1, None)
        await storage.peers.mark_synced("node-p", "node-c", "push", 2, b"h2")
        marks = [(m.peer, m.ledger_id, m.direction, m.seq, m.hash) for m in await storage.peers.sync_marks()]
        assert marks == [("node-p", "node-c", "pull", 5, b"h5"), ("node-p", "node-c", "push", 2, b"h2"),
                         ("node-p", "node-d", "pull", 1, None)]  # fmt: skip
        assert await storage.peers.vouched_by("node-p") == ["node-c"]  # node-d was pinned by the operator
        assert await storage.peers.vouched_by("node-q") == []


class ConflictContract(Backend):
    async def test_evidence_is_kept_and_a_fork_quarantines(self, storage: Repositories) -> None:
        await pinned(storage)
        fork = await storage.conflicts.record("fork", "node-a", 3, None, '{"held":1}', quarantine=True)
        late = await storage.conflicts.record("future-timestamp", "node-a", 4, None, "{}", quarantine=False)
        assert [c.id for c in await storage.conflicts.all()] == [late, fork]  # newest first
        found = await storage.conflicts.get(fork)
        assert found is not None and (found.kind, found.ledger_id, found.seq, found.evidence, found.status) == (
            "fork", "node-a", 3, '{"held":1}', "open")  # fmt: skip
        held = await storage.ledgers.get("node-a")
        assert held is not None and held.quarantined

    async def test_key_conflicts_gather_heads_and_resolve_once(self, storage: Repositories) -> None:
        h1, h2, h3 = bytes([3]) * 32, bytes([1]) * 32, bytes([2]) * 32
        first = await storage.conflicts.record_key_conflict("k", [h1, h2], None)
        await storage.conflicts.add_heads(first, [h2, h3])
        assert await storage.conflicts.heads(first) == {h1, h2, h3}
        latest = await storage.conflicts.latest_for_key("k")
        assert latest is not None and latest.id == first and latest.status == "open"
        assert orjson.loads(latest.evidence) == sorted(h.hex() for h in (h1, h2, h3))
        assert await storage.conflicts.resolve(first, "entry node-a/9") is True
        assert await storage.conflicts.resolve(first, "again") is False
        resolved = await storage.conflicts.get(first)
        assert resolved is not None and (resolved.status, resolved.resolution) == ("resolved", "entry node-a/9")
        assert resolved.resolved_at is not None
        second = await storage.conflicts.record_key_conflict("k", [h1], "last-write-wins")
        assert [c.id for c in await storage.conflicts.all("open")] == []
        assert (await storage.conflicts.latest_for_key("k")).id == second  # type: ignore[union-attr]
        assert await storage.conflicts.latest_for_key("other") is None


class TrustContract(Backend):
    async def test_the_newest_attestation_per_pair_stays(self, storage: Repositories) -> None:
        await storage.trust.save([AttestationRecord("a", "b", "v2", 2), AttestationRecord("a", "c", "v1", 1)])
        await storage.trust.save([AttestationRecord("a", "b", "v1", 1)])  # older: ignored
        await storage.trust.save([AttestationRecord("a", "c", "v3", 3)])
        assert await storage.trust.all() == [AttestationRecord("a", "b", "v2", 2), AttestationRecord("a", "c", "v3", 3)]


def ref(ledger_id: str, seq: int, position: int, checked_at: int = 100) -> RefRecord:
    return RefRecord(ledger_id, seq, position, "node-t", 7, bytes(32), "target-id", "source", "pending", None, 0,
                     checked_at)  # fmt: skip


class RefContract(Backend):
    async def test_refs_are_kept_updated_and_found_pending(self, storage: Repositories) -> None:
        await storage.refs.add([ref("node-a", 1, 1), ref("node-a", 1, 0), ref("node-a", 2, 0, checked_at=50)])
        await storage.refs.add([RefRecord("node-a", 1, 0, "other", 1, bytes(32), "x", "source", "found", None, 9, 1)])
        assert await storage.refs.of("node-a", 1) == [ref("node-a", 1, 0), ref("node-a", 1, 1)]  # existing kept
        await storage.refs.set_status("node-a", 1, 1, "found", "ok")
        (_, updated) = await storage.refs.of("node-a", 1)
        assert (updated.status, updated.detail, updated.attempts) == ("found", "ok", 1) and updated.checked_at > 100
        assert await storage.refs.pending(checked_before=101, limit=10) == [ref("node-a", 2, 0, 50),
                                                                           ref("node-a", 1, 0)]  # fmt: skip
        assert await storage.refs.pending(checked_before=101, limit=1) == [ref("node-a", 2, 0, 50)]


class AuditContract(Backend):
    async def test_the_log_is_newest_first_and_pages(self, storage: Repositories) -> None:
        for i in range(5):
            await storage.audit.record("admin", "peer.add", {"ledger_id": f"node-{i}"})
        newest = await storage.audit.log(2)
        assert [r.detail["ledger_id"] for r in newest] == ["node-4", "node-3"]
        older = await storage.audit.log(10, before_id=newest[-1].id)
        assert [r.detail["ledger_id"] for r in older] == ["node-2", "node-1", "node-0"]
        assert all(r.actor == "admin" and r.action == "peer.add" and r.at_ms > 0 for r in older)


class CredentialContract(Backend):
    async def test_credentials_are_added_used_and_revoked_once(self, storage: Repositories) -> None:
        one = CredentialRecord("c1", "ci", "read,append", bytes(32), 10, None, None)
        two = CredentialRecord("c0", "ops", "admin", bytes([1]) * 32, 20, None, None)
        await storage.credentials.add(two)
        await storage.credentials.add(one)
        assert await storage.credentials.all() == [one, two]  # oldest first
        await storage.credentials.used("c1", 15)
        assert await storage.credentials.revoke("c1", 30) is True
        assert await storage.credentials.revoke("c1", 40) is False
        assert await storage.credentials.revoke("nope", 40) is False
        first = (await storage.credentials.all())[0]
        assert (first.last_used_ms, first.revoked_ms) == (15, 30)

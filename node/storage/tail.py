"""The unindexed tail: entries committed but not yet in the secondary indexes, indexed in memory.

The acknowledging transaction writes an entry by its primary key (and its id); an indexer adds it
to the secondary indexes later, in large batches, and moves the ledger's watermark. Until then the
entry's indexed fields are here, per ledger in seq order (which is time order: timestamps never
decrease along a chain) and per filter value, so a query finds the tail's matches with a dictionary
lookup and a bisection instead of a scan. A query reads the tail first and the indexes second and
merges them: an entry the indexer moves in between is found by both, never by neither.

The tail is bounded by the backend (backpressure on commits), and rebuilt from the store at start.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from node.storage.contract import Filters, StoredEntry

Position = tuple[int, str, int]  # (timestamp, ledger_id, seq): the query order

TERMS = ("stream", "type", "issuer_oid", "subject_oid", "key")
"""The equality filters with a secondary index (and a dictionary here)."""


class TailKey(NamedTuple):
    """The indexed fields of one committed, not yet indexed entry (made for every entry committed,
    so a named tuple: a third of a frozen dataclass's cost to build)."""

    ledger_id: str
    seq: int
    timestamp: int
    stream: str
    type: str
    issuer_oid: str | None
    subject_oid: str | None
    key: str | None
    hash: bytes

    @classmethod
    def of(cls, e: StoredEntry) -> TailKey:
        return cls(e.ledger_id, e.seq, e.timestamp, e.stream, e.type, e.issuer_oid, e.subject_oid, e.key, e.hash)

    @property
    def position(self) -> Position:
        return (self.timestamp, self.ledger_id, self.seq)


def _position(k: TailKey) -> Position:
    return k.position


def _timestamp(k: TailKey) -> int:
    return k.timestamp


def _seq(k: TailKey) -> int:
    return k.seq


@dataclass(frozen=True, slots=True)
class Pending:
    """One ledger's unindexed range: seq ``after`` (its watermark) exclusive to ``through``."""

    ledger_id: str
    after: int
    through: int

    @property
    def count(self) -> int:
        return self.through - self.after


class Tail:
    """The unindexed entries of every ledger, looked up like the indexes they are waiting for.

    A commit only appends its keys to its ledger's list; the dictionaries by filter value and by
    hash catch up on the first lookup that needs them, so a burst of writes that nobody queries
    pays for one list append per entry."""

    def __init__(self) -> None:
        self._ledgers: dict[str, list[TailKey]] = {}
        self._mapped: dict[str, int] = {}  # per ledger: how many of its keys the dictionaries hold
        # (column, value) -> ledger id -> keys in seq order
        self._terms: dict[tuple[str, str], dict[str, list[TailKey]]] = {}
        self._hashes: dict[bytes, TailKey] = {}
        self.size = 0

    def add(self, keys: Sequence[TailKey]) -> None:
        """Keys of one committed segment of one ledger (or of the store's tail at start), in seq order."""
        if keys:
            self._ledgers.setdefault(keys[0].ledger_id, []).extend(keys)
            self.size += len(keys)

    def _catch_up(self) -> None:
        """Put the keys added since the last lookup into the dictionaries."""
        terms, hashes = self._terms, self._hashes
        for ledger_id, held in self._ledgers.items():
            start = self._mapped.get(ledger_id, 0)
            if start == len(held):
                continue
            for k in held[start:]:
                for column, value in zip(TERMS, (k.stream, k.type, k.issuer_oid, k.subject_oid, k.key), strict=True):
                    if value is not None:
                        terms.setdefault((column, value), {}).setdefault(ledger_id, []).append(k)
                hashes[k.hash] = k
            self._mapped[ledger_id] = len(held)

    def drop(self, ledger_id: str, through: int | None = None) -> None:
        """Forget a ledger's keys through seq ``through`` (indexed now), or all of them (None)."""
        held = self._ledgers.get(ledger_id)
        if not held:
            return
        cut = len(held) if through is None else bisect_right(held, through, key=_seq)
        if cut == 0:
            return
        mapped = self._mapped.get(ledger_id, 0)
        unmap = held[: min(cut, mapped)]
        if cut < len(held):
            self._ledgers[ledger_id] = held[cut:]
        else:
            del self._ledgers[ledger_id]
        self._mapped[ledger_id] = max(0, mapped - cut)
        if unmap:
            last = unmap[-1].seq
            for column in TERMS:
                for value in {getattr(k, column) for k in unmap} - {None}:
                    by_ledger = self._terms[(column, value)]
                    keys = by_ledger[ledger_id]
                    rest = keys[bisect_right(keys, last, key=_seq) :]
                    if rest:
                        by_ledger[ledger_id] = rest
                    else:
                        del by_ledger[ledger_id]
                        if not by_ledger:
                            del self._terms[(column, value)]
            for k in unmap:
                if self._hashes.get(k.hash) is k:
                    del self._hashes[k.hash]
        self.size -= cut

    def pending(self) -> list[Pending]:
        """Every ledger's unindexed range, the longest first."""
        ranges = [Pending(lid, keys[0].seq - 1, keys[-1].seq) for lid, keys in self._ledgers.items()]
        return sorted(ranges, key=lambda p: -p.count)

    def lag(self, ledger_id: str | None = None) -> int:
        """Entries not yet indexed, of one ledger or of all."""
        return self.size if ledger_id is None else len(self._ledgers.get(ledger_id, ()))

    def by_hash(self, digest: bytes) -> TailKey | None:
        self._catch_up()
        return self._hashes.get(digest)

    def keyed(self, key: str) -> list[TailKey]:
        self._catch_up()
        return list(itertools.chain.from_iterable(self._terms.get(("key", key), {}).values()))

    def keys(self, after: str | None) -> list[str]:
        """Distinct entry keys in the tail after ``after``, in order."""
        self._catch_up()
        return sorted(value for column, value in self._terms if column == "key" and value > (after or ""))

    def match(self, filters: Filters, *, descending: bool, after: Position | None, limit: int) -> list[TailKey]:
        """Up to ``limit`` keys matching ``filters`` in query order after the position ``after``."""
        terms = [(column, value) for column in TERMS if (value := getattr(filters, column)) is not None]
        if terms:  # the term with the fewest keys leads; the others filter
            self._catch_up()
            lists = [self._terms.get(term, {}) for term in terms]
            source = min(lists, key=lambda by_ledger: sum(map(len, by_ledger.values())))
        else:
            source = self._ledgers
        wanted = _ledgers_of(filters)
        runs = [
            itertools.islice(_run(keys, filters, terms, descending, after), limit)
            for lid, keys in source.items()
            if wanted is None or lid in wanted
        ]
        merged = heapq.merge(*runs, key=_position, reverse=descending)
        return list(itertools.islice(merged, limit))


def _ledgers_of(filters: Filters) -> set[str] | None:
    wanted = None if filters.ledgers is None else set(filters.ledgers)
    if filters.ledger_id is not None:
        wanted = {filters.ledger_id} if wanted is None else wanted & {filters.ledger_id}
    return wanted


def _run(
    keys: Sequence[TailKey],
    filters: Filters,
    terms: list[tuple[str, str]],
    descending: bool,
    after: Position | None,
) -> Iterator[TailKey]:
    """One ledger's matching keys in query order: bisected to the time range and the cursor."""
    start = 0 if filters.since is None else bisect_left(keys, filters.since, key=_timestamp)
    end = len(keys) if filters.until is None else bisect_left(keys, filters.until, key=_timestamp)
    if after is not None:
        if descending:
            end = min(end, bisect_left(keys, after, key=_position))
        else:
            start = max(start, bisect_right(keys, after, key=_position))
    span = range(end - 1, start - 1, -1) if descending else range(start, end)
    for i in span:
        k = keys[i]
        if all(getattr(k, column) == value for column, value in terms):
            yield k

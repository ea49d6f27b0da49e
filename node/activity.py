"""What the node is doing right now, with progress: syncs of a ledger from a peer and verifications
(the ``_active_tasks`` view of CouchDB). Listed in ``/admin/status`` and the console.

An activity is started as a context manager and advanced as work is done; it disappears when the
block ends, however it ends. ``advance`` may be called from a worker thread (verification runs in
one): it only adds to an integer.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Activity:
    """One piece of work running now: its kind (``sync``, ``verify``), what it works on, how far."""

    id: int
    kind: str
    target: str
    total: int | None  # entries to do; None when not known in advance
    started_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)
    done: int = 0

    def advance(self, entries: int) -> None:
        self.done += entries

    def to_wire(self) -> dict[str, Any]:
        progress = None if not self.total else round(min(1.0, self.done / self.total), 4)
        return {"id": self.id, "kind": self.kind, "target": self.target, "started_ms": self.started_ms,
                "done": self.done, "total": self.total, "progress": progress}  # fmt: skip


class Activities:
    """The registry of running activities of one node."""

    def __init__(self) -> None:
        self._running: dict[int, Activity] = {}
        self._ids = itertools.count(1)

    @contextmanager
    def run(self, kind: str, target: str, total: int | None = None) -> Iterator[Activity]:
        activity = Activity(next(self._ids), kind, target, total)
        self._running[activity.id] = activity
        try:
            yield activity
        finally:
            del self._running[activity.id]

    def listed(self) -> list[dict[str, Any]]:
        """Every running activity, oldest first."""
        return [a.to_wire() for a in list(self._running.values())]

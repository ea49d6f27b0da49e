"""In-process extension points of the ledger, for the sync and interop layers.

- ``before_append(drafts)`` runs before a batch reaches the writer; returning a string rejects the
  whole batch with that reason.
- ``after_append(rows)`` is told of every committed batch, in commit order, off the write path;
  each hook runs in a task of its own, so a slow hook delays only itself.
- ``before_query(filters)`` may raise a NodeError to refuse a query; ``after_query(filters, rows)``
  is told of each answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from node.storage.contract import Filters, StoredEntry
from protocol.models import EntryDraft

BeforeAppend = Callable[[Sequence[EntryDraft]], Awaitable[str | None]]
AfterAppend = Callable[[Sequence[StoredEntry]], Awaitable[None]]
BeforeQuery = Callable[[Filters], Awaitable[None]]
AfterQuery = Callable[[Filters, Sequence[StoredEntry]], Awaitable[None]]


@dataclass
class Hooks:
    """Registered hooks; register by appending to the lists."""

    before_append: list[BeforeAppend] = field(default_factory=list)
    after_append: list[AfterAppend] = field(default_factory=list)
    before_query: list[BeforeQuery] = field(default_factory=list)
    after_query: list[AfterQuery] = field(default_factory=list)

"""The supervisor of the node's background loops: none of them ends silently.

Every long-lived task (a peer's sync loop and live follow, the discovery loops, the reference
resolver and retry loop) runs under ``Supervisor.start``. A loop's own errors stay the loop's
business; an exception that escapes it is logged once with its traceback, counted in
``ledger_task_crashes_total{task}``, and the loop is restarted after a capped exponential backoff
(``tasks.restart_initial_s`` doubling up to ``tasks.restart_max_s``; a loop that ran longer than the
cap before crashing starts again from the initial delay). ``retry_now`` cuts a backoff short (an
operator's ``/admin/sync/run``). Each loop's state (``running``, ``restarting`` with the error,
``stopped`` when it returned) is in ``/admin/status`` and, for a peer, in ``/ledger/sync/status``.

The owner of a loop still owns its lifetime: it cancels it with ``stop`` on exit.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from node.metrics import Metrics
from node.settings import TaskSettings

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 300

TaskState = Literal["running", "restarting", "stopped"]


@dataclass(eq=False)
class Supervised:
    """One supervised loop and what is known of it."""

    name: str
    state: TaskState = "running"
    crashes: int = 0
    last_error: str | None = None
    last_crash_ms: int | None = None
    restart_at_ms: int | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    _retry: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def retry_now(self) -> None:
        """End a restart backoff now (no effect on a running loop)."""
        self._retry.set()

    def to_wire(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "crashes": self.crashes,
            "last_error": self.last_error,
            "last_crash_ms": self.last_crash_ms,
            "restart_at_ms": self.restart_at_ms if self.state == "restarting" else None,
        }


class Supervisor:
    """Runs named loops, restarting each after an unexpected exception (see the module docstring)."""

    def __init__(self, metrics: Metrics, settings: TaskSettings) -> None:
        self._metrics = metrics
        self._settings = settings
        self._tasks: dict[str, Supervised] = {}

    def start(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> Supervised:
        """Run ``loop()`` as the task ``name`` under supervision; a loop that returns is ``stopped``."""
        handle = Supervised(name)
        handle.task = asyncio.create_task(self._run(handle, loop), name=name)
        self._tasks[name] = handle
        return handle

    async def stop(self, *handles: Supervised) -> None:
        """Cancel the loops and wait for them to end; they leave the status."""
        tasks = [h.task for h in handles if h.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for handle in handles:
            if self._tasks.get(handle.name) is handle:
                del self._tasks[handle.name]

    def get(self, name: str) -> Supervised | None:
        return self._tasks.get(name)

    def states(self) -> list[dict[str, Any]]:
        """Every supervised loop's state, by name."""
        return [self._tasks[name].to_wire() for name in sorted(self._tasks)]

    async def _run(self, handle: Supervised, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        consecutive = 0
        while True:
            handle.state = "running"
            started = time.monotonic()
            try:
                await loop()
            except Exception as exc:
                if time.monotonic() - started > self._settings.restart_max_s:
                    consecutive = 0  # it ran well for a while: a new incident, not a crash loop
                consecutive += 1
                delay = self._crashed(handle, exc, consecutive)
            else:
                handle.state = "stopped"
                return
            handle._retry.clear()
            try:  # not wait_for, which in Python 3.11 can drop a cancellation (see SyncEngine._loop)
                async with asyncio.timeout(delay):
                    await handle._retry.wait()
            except TimeoutError:
                pass

    def _crashed(self, handle: Supervised, exc: Exception, consecutive: int) -> float:
        """Record, count and log a crash (with its traceback, once); the delay before the restart."""
        delay = min(self._settings.restart_max_s, self._settings.restart_initial_s * 2.0 ** (consecutive - 1))
        delay *= random.uniform(0.75, 1.0)
        now_ms = time.time_ns() // 1_000_000
        handle.crashes += 1
        handle.last_error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        handle.last_crash_ms = now_ms
        handle.restart_at_ms = now_ms + int(delay * 1000)
        handle.state = "restarting"
        self._metrics.task_crashes.labels(handle.name).inc()
        log.error("task crashed task=%s crashes=%d restart_in_s=%.1f", handle.name, handle.crashes, delay,
                  exc_info=exc)  # fmt: skip
        return delay

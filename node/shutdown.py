"""Bounded shutdown: each service closes within its own deadline, and one that does not is named in
the log and left behind, so a node always exits after SIGTERM (``docs/reliability.md``)."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Bounded(Generic[T]):
    """``async with Bounded("engine", SyncEngine(...), 5) as engine``: entered as the service is;
    its exit runs as a task of its own, awaited at most ``deadline_s`` seconds. Past that the exit
    is cancelled (not awaited: a close that ignores cancellation must not hold the node either),
    and the log says which service hung and where it was waiting."""

    def __init__(self, name: str, service: AbstractAsyncContextManager[T], deadline_s: float) -> None:
        self.name = name
        self._service = service
        self._deadline_s = deadline_s

    async def __aenter__(self) -> T:
        return await self._service.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        started = time.monotonic()
        closing = asyncio.create_task(self._service.__aexit__(exc_type, exc, tb), name=f"close {self.name}")
        done, _ = await asyncio.wait({closing}, timeout=self._deadline_s)
        if not done:
            where = "".join(f"\n  {f.f_code.co_filename}:{f.f_lineno} {f.f_code.co_name}" for f in closing.get_stack())
            log.error("shutdown: %s did not close within %g s; left behind, waiting at:%s", self.name,
                      self._deadline_s, where)  # fmt: skip
            closing.cancel()
            return
        log.info("shutdown: %s closed in %.2f s", self.name, time.monotonic() - started)
        error = closing.exception()
        if error is not None:
            log.error("shutdown: %s failed to close: %r", self.name, error)

"""An exclusive lock on a data directory, so a node and an offline import never write together."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from node.errors import DataDirLocked


class DataDirLock:
    """Holds ``<data_dir>/LOCK`` with flock for the life of the context; the OS frees it on crash."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "LOCK"
        self._fd: int | None = None

    def __enter__(self) -> DataDirLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirLocked(f"{self._path.parent}: in use by another process (pid {holder})") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

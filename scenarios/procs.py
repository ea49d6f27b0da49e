"""Start and stop real ``ledger-node`` processes on ephemeral ports (tests, benchmarks, scenarios)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class NodeProcess:
    """A ``ledger-node run`` process; ``url`` is where the runner reaches it, ``peer_url`` where other
    nodes do (they differ for a node inside a network lab host)."""

    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: list[str] = field(default_factory=list)
    peer_url: str = ""

    def __post_init__(self) -> None:
        self.peer_url = self.peer_url or self.url

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def start_node(
    data_dir: Path,
    ledger_id: str = "node-a",
    *extra: str,
    env: dict[str, str] | None = None,
    wrap: Sequence[str] = (),
    port: int = 0,
    timeout: float = 120,
) -> NodeProcess:
    """Start a node (on a free port by default) and wait for its 'listening on' line (it verifies its
    store first). ``env`` adds ``LEDGER_*`` settings for this process only; ``wrap`` prefixes the
    command (``netlab.sh exec 1`` runs it inside a lab host)."""
    argv = [*wrap, sys.executable, "-m", "node.cli", "run", "--ledger-id", ledger_id, "--data-dir", str(data_dir),
            "--port", str(port), *extra]  # fmt: skip
    return start_process(argv, data_dir, env=env, timeout=timeout)


def start_process(
    argv: Sequence[str],
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    log_file: Path | None = None,
) -> NodeProcess:
    """Start a ``ledger-node`` or ``ledger-registry`` process and wait for its 'listening on' line;
    with ``log_file``, every line it writes is appended there too."""
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip
    assert proc.stdout is not None
    log: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        log.append(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            if log_file is not None:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                with log_file.open("a") as handle:
                    handle.writelines(log)
            threading.Thread(target=_drain, args=(proc, log, log_file), daemon=True).start()
            return NodeProcess(proc, match.group(1), data_dir, log)
    proc.kill()
    raise RuntimeError(f"{' '.join(argv[:4])}... did not start:\n" + "".join(log[-20:]))


def _drain(proc: subprocess.Popen[bytes], log: list[str], log_file: Path | None = None) -> None:
    """Keep reading the output so the process never blocks on a full pipe; keep the last lines (and
    every line in ``log_file``)."""
    assert proc.stdout is not None
    handle = log_file.open("a", buffering=1) if log_file is not None else None
    try:
        for line in proc.stdout:
            text = line.decode(errors="replace")
            log.append(text)
            del log[:-200]
            if handle is not None:
                handle.write(text)
    finally:
        if handle is not None:
            handle.close()

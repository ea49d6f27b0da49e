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
GRACE_S = 15.0  # a node stops within this after SIGTERM, or the scenario fails with its stacks
KEPT_LINES = 20_000  # of a process's output (a task dump is long)


@dataclass
class NodeProcess:
    """A ``ledger-node run`` process; ``url`` is where the runner reaches it, ``peer_url`` where other
    nodes do (they differ for a node inside a network lab host)."""

    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log: list[str] = field(default_factory=list)
    peer_url: str = ""
    reader: threading.Thread | None = None  # keeps reading its output
    stopping_at: int = 0  # its log's length when SIGTERM was sent

    def __post_init__(self) -> None:
        self.peer_url = self.peer_url or self.url

    @property
    def name(self) -> str:
        return self.data_dir.name

    def kill(self) -> None:
        """SIGKILL: no cleanup, as in a crash."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self, grace: float = GRACE_S) -> int:
        """SIGTERM and wait ``grace`` seconds for a clean exit; returns the exit code. A process still
        running then is made to dump its stacks (SIGUSR1: every asyncio task; SIGABRT: every thread,
        by faulthandler), killed, and NotStopped raised with the dump."""
        if self.proc.poll() is None:
            self.stopping_at = len(self.log)
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_stopped(grace)

    def wait_stopped(self, grace: float) -> int:
        """The exit code, once the process exits within ``grace`` s (see ``terminate``)."""
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        for sig, wait in ((signal.SIGUSR1, 2.0), (signal.SIGABRT, 5.0)):
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.reader is not None:
            self.reader.join(timeout=5)  # the dump's last lines
        said = self.log[self.stopping_at :]  # what it logged since SIGTERM: where it stopped, then its stacks
        shown = "".join(said[:40]) + ("...\n" + "".join(said[40:])[-20_000:] if len(said) > 40 else "")
        raise NotStopped(f"{self.name} did not stop within {grace:g} s of SIGTERM; its log since, and its stacks:\n"
                         + shown)  # fmt: skip

    def peak_rss_mb(self) -> float | None:
        """The process's peak resident set (VmHWM) in MiB, while it runs (Linux)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        return round(int(match.group(1)) / 1024, 1) if match else None


class NotStopped(RuntimeError):
    """A process did not exit within its grace period after SIGTERM (its stacks are in the message)."""


def stop_all(processes: Sequence[NodeProcess], grace: float = GRACE_S) -> list[str]:
    """SIGTERM every process still running at once, then wait for each within ``grace``; the
    failures (with each hung process's stacks), an empty list when all stopped."""
    failures = []
    for node in processes:
        if node.proc.poll() is None:
            node.stopping_at = len(node.log)
            node.proc.send_signal(signal.SIGTERM)
    for node in processes:
        try:
            node.wait_stopped(grace)
        except NotStopped as exc:
            failures.append(str(exc))
        except BaseException:  # interrupted while waiting: nothing may be left running
            for other in processes:
                if other.proc.poll() is None:
                    other.proc.kill()
            raise
    return failures


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
    started = False
    try:
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
                reader = threading.Thread(target=_drain, args=(proc, log, log_file), daemon=True)
                reader.start()
                started = True
                return NodeProcess(proc, match.group(1), data_dir, log, reader=reader)
    finally:
        if not started:  # failed, or interrupted: nothing left running
            proc.kill()
            proc.wait(timeout=10)
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
            del log[:-KEPT_LINES]
            if handle is not None:
                handle.write(text)
    finally:
        if handle is not None:
            handle.close()

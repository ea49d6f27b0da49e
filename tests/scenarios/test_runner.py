"""The scenario runner stops every process it started, whatever failed, and a process that does not
stop within its grace period fails the scenario with its stacks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from scenarios.procs import NodeProcess, start_process
from scenarios.runner import SCENARIOS, Context, run

# a process that says it listens, ignores SIGTERM and dumps its stack on SIGABRT (faulthandler)
STUBBORN = """
import faulthandler, signal, time
faulthandler.enable()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # as a node whose event loop is blocked
print("listening on http://127.0.0.1:9", flush=True)
def waiting_forever():
    while True:
        time.sleep(1)
waiting_forever()
"""


@pytest.fixture
def started() -> Iterator[list[NodeProcess]]:
    processes: list[NodeProcess] = []
    yield processes
    for proc in processes:  # whatever the test found, nothing is left running
        if proc.proc.poll() is None:
            proc.proc.kill()


def _register(name: str, body: type[BaseException] | None, started: list[NodeProcess]) -> None:
    async def scenario(ctx: Context) -> None:
        ctx.grace_s = 1.0
        proc = start_process([sys.executable, "-c", STUBBORN], ctx.work)
        ctx.processes.append(proc)
        started.append(proc)
        ctx.check("started", True)
        if body is not None:
            raise body("the scenario failed halfway")

    SCENARIOS[name] = (f"test scenario {name}", scenario)


def test_a_process_that_does_not_stop_fails_the_scenario_with_its_stack(started: list[NodeProcess]) -> None:
    _register("test-stubborn", None, started)
    try:
        report = asyncio.run(run("test-stubborn", 1, 0))
    finally:
        del SCENARIOS["test-stubborn"]
    assert not report.passed
    failed = [c for c in report.checks if not c.ok]
    assert failed and failed[0].name == "every node stopped within its grace period"
    assert "did not stop within 1 s of SIGTERM" in failed[0].detail and "waiting_forever" in failed[0].detail
    assert started[0].proc.poll() is not None


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_every_process_is_stopped_whatever_failed(started: list[NodeProcess], error: type[BaseException]) -> None:
    _register("test-failing", error, started)
    try:
        if error is KeyboardInterrupt:
            with pytest.raises(KeyboardInterrupt):
                asyncio.run(run("test-failing", 1, 0))
        else:
            report = asyncio.run(run("test-failing", 1, 0))
            assert not report.passed and "the scenario failed halfway" in str(report.checks)
    finally:
        del SCENARIOS["test-failing"]
    assert started[0].proc.poll() is not None

"""The scenario runner: each scenario declares its topology, steps and checks, runs real registry and
node processes on 127.0.0.1, and reports timings, counts and one line per check."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from scenarios.cluster import AUTH, add_peer, holds, node_env
from scenarios.netlab import Lab, LabUnavailable
from scenarios.procs import NodeProcess, start_node, start_process

LAB_PORT = 8700


async def until(
    condition: Callable[[], Awaitable[bool]], timeout: float, stop: asyncio.Event | None = None
) -> float | None:
    """Seconds (rounded to 10 ms) until ``condition`` holds; None after ``timeout`` or once ``stop`` is set."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout and not (stop and stop.is_set()):
        if await condition():
            return round(time.perf_counter() - started, 2)
        await asyncio.sleep(0.1)  # polling real processes, bounded by the timeout
    return None


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Context:
    """What a scenario works with: its directory, sizes, processes, a session, its report."""

    work: Path
    nodes: int
    entries: int
    session: aiohttp.ClientSession
    netlab: bool = False
    lab: Lab | None = None
    processes: list[NodeProcess] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def start(self, name: str, env: dict[str, str] | None = None, **sync: Any) -> NodeProcess:
        """Start (or restart) node ``name`` with ``sync`` settings and extra ``LEDGER_*`` variables."""
        node = start_node(self.work / name, name, env={**node_env(**sync), **(env or {})})
        self.processes.append(node)
        return node

    async def lab_up(self, hosts: int) -> Lab:
        """Bring up ``../shared/netlab`` with ``hosts`` hosts; the scenario is skipped where it cannot be."""
        self.lab = await Lab.up(self.work, hosts)
        return self.lab

    async def start_in_lab(
        self, name: str, host: int, env: dict[str, str] | None = None, directory: str | None = None, **sync: Any
    ) -> NodeProcess:
        """Start (or restart) node ``name`` inside lab host ``host``, listening on its lab address, with
        its data in ``directory`` (default: its name)."""
        assert self.lab is not None, "lab_up() first"
        address = self.lab.address(host)
        env = {**node_env(**sync), **self.lab.env(), **(env or {})}
        data_dir = self.work / (directory or name)
        node = await asyncio.to_thread(
            start_node, data_dir, name, "--host", address, port=LAB_PORT, wrap=self.lab.wrap(host), env=env
        )
        node.peer_url, node.url = node.url, await self.lab.relay(host, LAB_PORT)
        self.processes.append(node)
        return node

    def start_registry(self, port: int = 0) -> NodeProcess:
        argv = [sys.executable, "-m", "registry.cli", "run", "--port", str(port), "--data-dir",
                str(self.work / "registry"), "--ttl", "3"]  # fmt: skip
        # open enrolment: the scenarios' network is closed, every node in it is the runner's
        env = {"LEDGER_REGISTRY_SWEEP_INTERVAL_S": "0.5", "LEDGER_REGISTRY_ENROLMENT": "open"}
        registry = start_process(argv, self.work / "registry", env=env)
        self.processes.append(registry)
        return registry

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(name, ok, detail))

    async def mesh(self, nodes: list[NodeProcess]) -> None:
        for a in nodes:
            for b in nodes:
                if a is not b:
                    await add_peer(self.session, a, b, "both")

    async def write(self, node: NodeProcess, count: int, tag: str = "w", batch: int = 100) -> int:
        written = 0
        for first in range(0, count, batch):
            body = [{"stream": "scenario", "type": tag, "payload": {"i": i}}
                    for i in range(first, min(count, first + batch))]  # fmt: skip
            async with self.session.post(node.url + "/ledger/entries", json=body) as response:
                if response.status == 201:
                    written += len(body)
        return written

    async def wait(self, condition: Callable[[], Awaitable[bool]], timeout: float) -> float | None:
        return await until(condition, timeout)

    async def all_hold(self, nodes: list[NodeProcess], heads: dict[str, int]) -> bool:
        results = [await holds(self.session, n, lid, seq) for n in nodes for lid, seq in heads.items() if seq]
        return all(results)

    async def any_hold(self, nodes: list[NodeProcess], heads: dict[str, int]) -> bool:
        return any([await holds(self.session, n, lid, seq) for n in nodes for lid, seq in heads.items()])

    async def get(self, node: NodeProcess, path: str) -> Any:
        """The JSON ``node`` answers for ``path`` (None unless 200)."""
        async with self.session.get(node.url + path) as response:
            return await response.json() if response.status == 200 else None

    async def digest(self, node: NodeProcess) -> str:
        return str((await self.get(node, "/ledger/state/digest"))["digest"])

    async def admin(self, node: NodeProcess, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, node.url + path, json=body, headers=AUTH) as response:
            return await response.json() if response.content_type == "application/json" else None


Scenario = Callable[[Context], Awaitable[None]]
SCENARIOS: dict[str, tuple[str, Scenario]] = {}


def scenario(name: str, description: str) -> Callable[[Scenario], Scenario]:
    def register(func: Scenario) -> Scenario:
        SCENARIOS[name] = (description, func)
        return func

    return register


@dataclass
class Report:
    """What a scenario run found: passed (or skipped, with the reason), its figures and checks."""

    passed: bool
    skipped: str
    figures: dict[str, Any]
    checks: list[Check]


async def run(name: str, nodes: int, entries: int, netlab: bool = False) -> Report:
    """Run one scenario and print its report; it passed when every check passed or it was skipped
    (it needs the network lab and the lab cannot be built here; the report says why)."""
    description, func = SCENARIOS[name]
    started = time.perf_counter()
    skipped = ""
    with tempfile.TemporaryDirectory(prefix=f"scenario-{name}-") as work:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            ctx = Context(Path(work), nodes, entries, session, netlab)
            try:
                await func(ctx)
            except LabUnavailable as exc:
                skipped = str(exc)
            except Exception as exc:  # a scenario that cannot finish fails, with the reason
                ctx.check("completed", False, f"{type(exc).__name__}: {exc}")
            finally:
                for proc in reversed(ctx.processes):
                    if proc.proc.poll() is None:
                        proc.terminate()
                if ctx.lab is not None:
                    await ctx.lab.close()
    print(f"scenario {name}: {description}")
    print(f"  nodes={nodes} entries={entries} netlab={'yes' if ctx.lab else 'no'} "
          f"wall={time.perf_counter() - started:.2f}s")  # fmt: skip
    if skipped:
        print(f"  skipped: {skipped}")
        return Report(True, skipped, {}, [])
    for key, value in ctx.figures.items():
        print(f"  {key}={value}")
    for check in ctx.checks:
        print(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}{': ' + check.detail if check.detail else ''}")
    return Report(bool(ctx.checks) and all(c.ok for c in ctx.checks), "", ctx.figures, ctx.checks)

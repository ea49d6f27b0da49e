"""The scenario runner: each scenario declares its topology, steps and checks, runs real registry and
node processes on 127.0.0.1, and reports timings, counts and one line per check."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from scenarios.cluster import AUTH, add_peer, node_env
from scenarios.netlab import Lab, LabUnavailable
from scenarios.procs import GRACE_S, NodeProcess, NotStopped, start_node, start_process, stop_all

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
    grace_s: float = GRACE_S  # a node stops within this after SIGTERM, or the scenario fails with its stacks

    def start(self, name: str, env: dict[str, str] | None = None, **sync: Any) -> NodeProcess:
        """Start (or restart) node ``name`` with ``sync`` settings and extra ``LEDGER_*`` variables."""
        node = start_node(self.work / name, name, env={**node_env(**sync), **(env or {})})
        self.processes.append(node)
        return node

    async def start_many(self, names: list[str], env: dict[str, str] | None = None, **sync: Any) -> list[NodeProcess]:
        """Start (or restart) several nodes at once (each verifies its store and binds in parallel)."""
        started = await asyncio.gather(
            *(asyncio.to_thread(start_node, self.work / n, n, env={**node_env(**sync), **(env or {})}) for n in names),
            return_exceptions=True,
        )
        nodes = [n for n in started if isinstance(n, NodeProcess)]
        self.processes.extend(nodes)
        failed = next((n for n in started if isinstance(n, BaseException)), None)
        if failed is not None:
            raise failed
        return nodes

    async def stop(self, node: NodeProcess) -> None:
        """SIGTERM ``node`` and wait for it within its grace period (NotStopped with its stacks otherwise)."""
        await asyncio.to_thread(node.terminate, self.grace_s)

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

    async def mesh(self, nodes: list[NodeProcess], others: list[NodeProcess] | None = None) -> None:
        """Make every node of ``nodes`` a peer (mode both) of every other one, or of every node of
        ``others`` and back; a few calls at a time."""
        pairs = [(a, b) for a in nodes for b in nodes if a is not b] if others is None else [
            pair for a in nodes for b in others for pair in ((a, b), (b, a))]  # fmt: skip
        gate = asyncio.Semaphore(8)

        async def peer(a: NodeProcess, b: NodeProcess) -> None:
            async with gate:
                await add_peer(self.session, a, b, "both")

        await asyncio.gather(*(peer(a, b) for a, b in pairs))

    async def unpeer(self, nodes: list[NodeProcess], others: list[NodeProcess]) -> None:
        """Drop every node of ``others`` as a peer of every node of ``nodes``, and back (a partition)."""
        for one in nodes:
            for other in others:
                await self.admin(one, "DELETE", f"/admin/peers/{other.name}")
                await self.admin(other, "DELETE", f"/admin/peers/{one.name}")

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

    async def heads(self, node: NodeProcess) -> dict[str, tuple[int, str | None]]:
        """Seq and hash of every ledger ``node`` holds (one admin request)."""
        status = await self.admin(node, "GET", "/admin/status")
        return {x["ledger_id"]: (x["head_seq"], x["head_hash"]) for x in status["ledgers"]}

    async def all_hold(self, nodes: list[NodeProcess], heads: dict[str, int]) -> bool:
        for node in nodes:
            held = await self.heads(node)
            if any(seq and held.get(lid, (0, None))[0] < seq for lid, seq in heads.items()):
                return False
        return True

    async def any_hold(self, nodes: list[NodeProcess], heads: dict[str, int]) -> bool:
        for node in nodes:
            held = await self.heads(node)
            if any(held.get(lid, (0, None))[0] >= seq for lid, seq in heads.items()):
                return True
        return False

    async def same_heads(self, nodes: list[NodeProcess]) -> bool:
        """Whether every node holds the same ledgers at the same head seq and hash."""
        return len({tuple(sorted((await self.heads(n)).items())) for n in nodes}) == 1

    async def traffic(self, nodes: list[NodeProcess]) -> dict[str, tuple[float, float]]:
        """Per node: outbound requests made and bytes (sent and received) so far, from its metrics."""
        counts = {}
        for node in nodes:
            async with self.session.get(node.url + "/metrics") as response:
                text = await response.text()
            requests = sent = 0.0
            for line in text.splitlines():
                if line.startswith("ledger_outbound_requests_total "):
                    requests = float(line.rsplit(" ", 1)[1])
                elif line.startswith("ledger_outbound_bytes_total{"):
                    sent += float(line.rsplit(" ", 1)[1])
            counts[node.name] = (requests, sent)
        return counts

    async def measure(self, nodes: list[NodeProcess], label: str, seconds: float) -> None:
        """Requests and bytes per node per second over ``seconds`` of whatever the nodes do now."""
        before, started = await self.traffic(nodes), time.perf_counter()
        await asyncio.sleep(seconds)  # a measuring window, not a synchronisation
        self.rates(label, before, await self.traffic(nodes), time.perf_counter() - started)

    def rates(self, label: str, before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
              seconds: float) -> None:  # fmt: skip
        """Figures ``<label>_req_per_node_s`` and ``<label>_bytes_per_node_s``: mean (max) over the nodes."""
        deltas = [(after[n][0] - b[0], after[n][1] - b[1]) for n, b in before.items() if n in after]
        if not deltas or seconds <= 0:
            return
        req = [d[0] / seconds for d in deltas]
        size = [d[1] / seconds for d in deltas]
        self.figures[f"{label}_req_per_node_s"] = f"{sum(req) / len(req):.1f} (max {max(req):.1f})"
        self.figures[f"{label}_bytes_per_node_s"] = f"{sum(size) / len(size):.0f} (max {max(size):.0f})"

    def peak_rss(self) -> None:
        """Figure ``peak_rss_mb_per_node``: mean (max) of the running nodes' peak resident sets."""
        sizes = [r for r in (p.peak_rss_mb() for p in self.processes if p.proc.poll() is None) if r is not None]
        if sizes:
            self.figures["peak_rss_mb_per_node"] = f"{sum(sizes) / len(sizes):.0f} (max {max(sizes):.0f})"

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
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(headers=AUTH, timeout=timeout) as session:
            ctx = Context(Path(work), nodes, entries, session, netlab)
            try:
                await func(ctx)
                ctx.peak_rss()
            except LabUnavailable as exc:
                skipped = str(exc)
            except NotStopped as exc:
                ctx.check("every node stopped within its grace period", False, str(exc))
            except Exception as exc:  # a scenario that cannot finish fails, with the reason and where
                ctx.check("completed", False, f"{type(exc).__name__}: {exc} ({_where(exc)})")
            finally:  # every process started is stopped, whatever failed (an interrupt too)
                hung = stop_all(
                    list(reversed(ctx.processes)), ctx.grace_s
                )  # blocking: it must finish even when cancelled
                for failure in hung:
                    ctx.check("every node stopped within its grace period", False, failure)
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


def _where(exc: BaseException) -> str:
    """The innermost line of the scenarios that ``exc`` passed through (a bare TimeoutError names none)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/scenarios/" in f.filename]
    return (
        "at " + " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[::-1][:3]) if frames else ""
    )

"""``python -m scenarios``: the docker-compose topology as local processes (``compose up``), the state
of a running network (``status``), and the multi-node scenarios (``list``, ``run``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from scenarios import catalog  # noqa: F401 - registers the scenarios
from scenarios.compose import COMPOSE_FILE, LocalService, load, localize
from scenarios.procs import NodeProcess, start_process
from scenarios.runner import SCENARIOS, run
from scenarios.status import show


async def up(compose: Path, data: Path, samples: int, exit_when_converged: bool) -> int:
    services = localize(load(compose), data)
    running: list[tuple[LocalService, NodeProcess]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service in services:
            proc = await asyncio.to_thread(start_process, service.argv, service.data_dir, env=service.env)
            running.append((service, proc))
            print(f"started {service.name:<10} {proc.url}", flush=True)
        nodes = [(service.name, proc) for service, proc in running if "node.cli" in service.argv]
        async with aiohttp.ClientSession() as session:
            for name, proc in nodes:
                batch = [{"stream": "samples", "type": "sample", "payload": {"from": name, "n": i},
                          "subject_oid": f"oid:sample:{i}"} for i in range(samples)]  # fmt: skip
                async with session.post(proc.url + "/ledger/entries", json=batch) as response:
                    response.raise_for_status()
            print(f"appended {samples} sample entries on each of {len(nodes)} nodes; waiting for them to converge",
                  flush=True)  # fmt: skip
            converged = await _converge(session, nodes, samples, stop)
            await _status(session, nodes)
            if converged is not None:
                print(f"converged in {converged:.2f} s", flush=True)
            if exit_when_converged:
                return 0 if converged is not None else 1
            print("running; Ctrl-C stops every service", flush=True)
            await stop.wait()
        return 0
    finally:
        for service, proc in reversed(running):
            code = proc.terminate()
            print(f"stopped {service.name} (exit {code})", flush=True)


async def _converge(
    session: aiohttp.ClientSession, nodes: list[tuple[str, NodeProcess]], samples: int, stop: asyncio.Event
) -> float | None:
    started = loop_time = asyncio.get_running_loop().time()
    deadline = started + 60
    while loop_time < deadline and not stop.is_set():
        holds = []
        for _, proc in nodes:
            for other, _ in nodes:
                async with session.get(f"{proc.url}/ledger/ledgers/{other}/entries/{samples}") as response:
                    holds.append(response.status == 200)
        if all(holds):
            return asyncio.get_running_loop().time() - started
        await asyncio.sleep(0.2)  # polling the nodes' state, bounded by the deadline
        loop_time = asyncio.get_running_loop().time()
    return None


async def _status(session: aiohttp.ClientSession, nodes: list[tuple[str, NodeProcess]]) -> None:
    print(f"{'node':<8} {'url':<24} {'entries':>8} {'peers':>6} {'ledgers in sync'}")
    for name, proc in nodes:
        async with session.get(proc.url + "/ledger/stats") as response:
            stats = await response.json()
        async with session.get(proc.url + "/ledger/sync/status") as response:
            status = await response.json()
        held = sorted({x["ledger_id"] for p in status["peers"] for x in p["ledgers"] if x["local_seq"]})
        print(f"{name:<8} {proc.url:<24} {stats['entries']:>8} {len(status['peers']):>6} {', '.join(held)}")


def _status_targets(args: argparse.Namespace) -> tuple[dict[str, str], str | None]:
    if args.url:
        return {url: url for url in args.url}, args.token
    nodes = [s for s in localize(load(args.file), Path("data")) if "node.cli" in s.argv]
    return {s.name: s.url for s in nodes}, args.token or next((s.env["LEDGER_ADMIN_TOKEN"] for s in nodes
                                                                if s.env.get("LEDGER_ADMIN_TOKEN")), None)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scenarios", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    compose = sub.add_parser("compose", help="the docker-compose topology as local processes")
    compose.add_argument("action", choices=["up"])
    compose.add_argument("--file", type=Path, default=COMPOSE_FILE)
    compose.add_argument("--data", type=Path, default=Path("data"), help="data directories (default ./data)")
    compose.add_argument("--samples", type=int, default=3, help="sample entries appended on each node")
    compose.add_argument("--exit-when-converged", action="store_true", help="stop once the samples converged")
    status = sub.add_parser("status", help="every node of a running network: heads, lag, conflicts, trust")
    status.add_argument("--file", type=Path, default=COMPOSE_FILE, help="the topology whose nodes to ask")
    status.add_argument("--url", action="append", help="ask this node instead (repeatable)")
    status.add_argument(
        "--token",
        default=os.environ.get("LEDGER_ADMIN_TOKEN"),
        help="admin token (default $LEDGER_ADMIN_TOKEN, else the one the compose file gives)",
    )
    sub.add_parser("list", help="the scenarios")
    run_one = sub.add_parser("run", help="run one scenario (or all)")
    run_one.add_argument("name", help="a scenario name, or 'all'")
    run_one.add_argument("--nodes", type=int, default=3)
    run_one.add_argument("--entries", type=int, default=2000)
    run_one.add_argument(
        "--netlab",
        action="store_true",
        help="cut real links in ../shared/netlab namespaces instead of stopping processes",
    )
    args = parser.parse_args()
    if args.command == "list":
        for name, (description, _) in SCENARIOS.items():
            print(f"{name:<22} {description}")
        return
    try:
        if args.command == "status":
            sys.exit(asyncio.run(show(*_status_targets(args))))
        if args.command == "run":
            chosen = list(SCENARIOS) if args.name == "all" else [args.name]
            unknown = [n for n in chosen if n not in SCENARIOS]
            if unknown:
                raise ValueError(f"no scenario {unknown[0]}; see python -m scenarios list")
            results = [asyncio.run(run(n, args.nodes, args.entries, args.netlab)) for n in chosen]
            sys.exit(0 if all(r.passed for r in results) else 1)
        sys.exit(asyncio.run(up(args.file, args.data, args.samples, args.exit_when_converged)))
    except (OSError, ValueError, RuntimeError, aiohttp.ClientError) as exc:
        print(f"scenarios: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""``python -m scenarios``: the docker-compose topology as local processes (``compose up``), the state
of a running network (``status``), and the multi-node scenarios (``list``, ``run``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from protocol.terminal import exit_quietly_on_closed_stdout
from scenarios import catalog  # noqa: F401 - registers the scenarios
from scenarios.compose import COMPOSE_FILE, LocalService, load, local_ports, localize, localize_service, start_order
from scenarios.convergence import disagreement, heads_of, waiting_links
from scenarios.procs import NodeProcess, start_process
from scenarios.runner import SCENARIOS, run, until
from scenarios.status import show


async def up(compose: Path, data: Path, samples: int, exit_when_converged: bool, base_port: int | None = None) -> int:
    """Start the services in order (on ``base_port`` and the ports after it, or on free ports for 0), each
    logging to ``<data>/<service>/<service>.log``, append samples on each node, wait until every node holds
    every ledger at the same head and no peer link waits to be admitted (or say plainly what did not happen
    and what it means), print how to reach and use the network, and run until SIGINT or SIGTERM. A service
    that exits meanwhile is reported at once; at the end only the services still running are stopped and
    reported so."""
    topology = load(compose)
    ports = local_ports(topology, base_port)
    services: list[LocalService] = []
    running: list[tuple[LocalService, NodeProcess]] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exited: set[str] = set()
    watcher = asyncio.create_task(_watch(running, exited, stop))
    try:
        for spec in start_order(topology):
            service = localize_service(spec, topology, data, ports)
            log_file = _log_file(service)
            proc = await asyncio.to_thread(start_process, service.argv, service.data_dir, env=service.env,
                                           log_file=log_file)  # fmt: skip
            services.append(service)
            running.append((service, proc))
            ports[service.name] = urlsplit(proc.url).port or 0
            print(f"started {service.name:<10} {proc.url}  (log: {log_file})", flush=True)
        nodes = {proc.data_dir.name: proc for service, proc in running if "node.cli" in service.argv}
        token = _admin_token(services)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"} if token else None) as session:
            for name, proc in nodes.items():
                batch = [{"stream": "samples", "type": "sample", "payload": {"from": name, "n": i},
                          "subject_oid": f"oid:sample:{i}"} for i in range(samples)]  # fmt: skip
                async with session.post(proc.url + "/ledger/entries", json=batch) as response:
                    response.raise_for_status()
            print(f"appended {samples} sample entries on each of {len(nodes)} nodes; waiting until every node "
                  f"holds every ledger at the same head (at most {CONVERGE_S} s)", flush=True)  # fmt: skip
            last = ["no answer yet"]

            async def converged() -> bool:
                try:
                    heads = {name: heads_of(await _get(session, proc.url + "/admin/status"))
                             for name, proc in nodes.items()}  # fmt: skip
                except aiohttp.ClientError as exc:
                    last[0] = f"a node did not answer ({exc})"
                    return False
                found = disagreement(heads)
                last[0] = found or ""
                return found is None

            after = await until(converged, CONVERGE_S, stop)
            waiting = ["not asked yet"]

            async def settled() -> bool:
                try:
                    answers = {name: await _get(session, proc.url + "/ledger/sync/status")
                               for name, proc in nodes.items()}  # fmt: skip
                except aiohttp.ClientError as exc:
                    waiting[:] = [f"a node did not answer ({exc})"]
                    return False
                waiting[:] = waiting_links(answers)
                return not waiting

            # the heads can agree through other links while a new peer has not admitted a node yet; the table
            # below shows that link as waiting, so wait for it too, within the same deadline
            linked: float | None = None
            if after is not None:
                linked = 0.0 if await settled() else await until(settled, CONVERGE_S - after, stop)
            first = next(iter(nodes.values()))
            async with session.post(first.url + "/admin/credentials", json=CLIENT_CREDENTIAL) as response:
                response.raise_for_status()
                issued = await response.json()
        await show({name: proc.url for name, proc in nodes.items()}, token)
        if after is not None:
            print(f"converged in {after:.2f} s: every node holds {', '.join(sorted(nodes))} at the same head "
                  "(seq and hash)", flush=True)  # fmt: skip
            if linked is not None:
                print(f"every node syncs with each of its peers directly (none waiting to be admitted) after "
                      f"{after + linked:.2f} s", flush=True)  # fmt: skip
            elif not stop.is_set():
                print(_still_waiting(waiting, {n: p.url for n, p in nodes.items()}, token), flush=True)
        elif not stop.is_set():
            print(f"NOT converged within {CONVERGE_S} s: {last[0]}. The services keep running; see the status "
                  "tables above, the logs, and the command below", flush=True)  # fmt: skip
        print(_summary(running, token, issued, base_port), flush=True)
        if exit_when_converged:
            return 0 if after is not None else 1
        print("running; Ctrl-C stops every service", flush=True)
        await stop.wait()
        return 0
    finally:
        watcher.cancel()
        if not stop.is_set():  # an error ends the run: a service that died before it is reported as such
            _report_exits(running, exited)
        for service, proc in reversed(running):
            if service.name not in exited:
                code = proc.terminate()
                print(f"stopped {service.name} (exit {code})", flush=True)


WATCH_S = 0.5  # how often the services are looked at while the network runs


async def _watch(running: list[tuple[LocalService, NodeProcess]], exited: set[str], stop: asyncio.Event) -> None:
    """Report each service that exits on its own, at once, until ``stop`` is set (from then on the services
    exit because they are being stopped: a Ctrl-C reaches them too)."""
    while not stop.is_set():
        _report_exits(running, exited)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WATCH_S):  # not wait_for: see docs/reliability.md (a cancellation it drops)
                await stop.wait()


def _report_exits(running: list[tuple[LocalService, NodeProcess]], exited: set[str]) -> None:
    for service, proc in running:
        code = proc.proc.poll()
        if code is None or service.name in exited:
            continue
        exited.add(service.name)
        how = f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
        print(f"{service.name} {how} at {datetime.now(UTC):%H:%M:%S} UTC (log: {_log_file(service)})", flush=True)


def _log_file(service: LocalService) -> Path:
    return service.data_dir / f"{service.name}.log"


CONVERGE_S = 60
CLIENT_CREDENTIAL = {"name": "make-run client", "scopes": ["append", "read", "query"]}
APPEND_BODY = '{"stream": "notes", "type": "note", "payload": {"text": "hello"}}'


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
        response.raise_for_status()
        return await response.json()


def _still_waiting(links: list[str], urls: dict[str, str], token: str | None) -> str:
    """What each peer link still waiting at the deadline means, and what to do about it (``urls``: node
    name -> URL)."""
    auth = f" --token {token}" if token else ""
    lines = []
    for link in links:
        node, _, peer = link.partition(" → ")
        if peer not in urls:  # a node did not answer
            lines.append(f"the peer links could not all be checked within {CONVERGE_S} s: {link}")
            continue
        lines.append(f"{link} is still waiting after {CONVERGE_S} s: {peer} has not admitted {node}'s key yet, so "
                     f"{node} does not pull from {peer} directly; {peer}'s entries reach {node} through the other "
                     f"nodes, as the heads show. Nothing is lost: {peer} admits {node} on a discovery round "
                     f"(auto_admit), or see 'ledger-node candidates --url {urls[peer]}{auth}'")  # fmt: skip
    return "\n".join(lines)


def _summary(running: list[tuple[LocalService, NodeProcess]], token: str | None, issued: dict[str, Any],
             base_port: int | None) -> str:  # fmt: skip
    """Where each service is (its console is its URL in a browser), then commands that work when pasted as
    they are: the admin commands with the admin token, the client commands with the credential just issued,
    each group saying which token it uses and what that token may do."""
    lines = ["", "service   URL (open it in a browser for the console)   log"]
    for service, proc in running:
        lines.append(f"{service.name:<9} {proc.url + '/':<44} {service.data_dir / (service.name + '.log')}")
    nodes = [proc for service, proc in running if "node.cli" in service.argv]
    url = nodes[0].url
    program = _here(Path(sys.executable).parent / "ledger-node")
    admin = f" --url {url} --token {token}" if token else f" --url {url}"
    client = f" --url {url} --token {issued['token']}"
    if base_port == 0:  # free ports: the status command cannot find them from the compose file
        where = "".join(f" --url {p.url}" for p in nodes) + (f" --token {token}" if token else "")
    else:
        where = f" --base-port {base_port}" if base_port else ""
    scopes = ",".join(issued["scopes"])
    lines += [
        "",
        f"admin token (every scope; log in to the consoles with it): {token}",
        "with the admin token (status, peers and every other command), paste any of these as they are:",
        f"{program} status{admin}",
        f"{program} peers{admin}",
        f"{_here(Path(sys.executable))} -m scenarios status{where}",
        *(
            [f"or set it once for every ledger-node command: export LEDGER_URL={url} LEDGER_TOKEN={token}"]
            if token
            else []
        ),  # fmt: skip
        *_enrol_lines(running),
        "",
        f"a client credential {issued['id']} was issued just now with scopes {scopes}, not admin (status and "
        "peers refuse it); its token is shown only here. With it, paste any of these as they are:",
        f'{program} append{client} --stream notes --type note --payload \'{{"text": "hello"}}\'',
        f"{program} query{client} --stream notes",
        f'curl -H "Authorization: Bearer {issued["token"]}" -H "Content-Type: application/json" -d \'{APPEND_BODY}\' '
        f"{url}/ledger/entries",
        f"or set it once for the {scopes.replace(',', ', ')} commands: export LEDGER_URL={url} "
        f"LEDGER_TOKEN={issued['token']}",
    ]
    return "\n".join(lines)


def _enrol_lines(running: list[tuple[LocalService, NodeProcess]]) -> list[str]:
    """The registry's admin token and the command that enrols a 4th node's id with it (the registry binds
    an id to a key only on a registration presenting the id's enrolment token)."""
    registry = next(((s, p) for s, p in running if "registry.cli" in s.argv), None)
    token = registry[0].env.get("LEDGER_REGISTRY_ADMIN_TOKEN") if registry else None
    if registry is None or not token:
        return []
    program = _here(Path(sys.executable).parent / "ledger-registry")
    return [
        "",
        f"registry admin token (enrolments and bindings at {registry[1].url}): {token}",
        "a 4th node first gets an enrolment token for its id (README.md, 'Adding a node'), printed by:",
        f"{program} enrol node-d --url {registry[1].url} --token {token}",
    ]


def _here(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to paste), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _status_targets(args: argparse.Namespace) -> tuple[dict[str, str], str | None]:
    if args.url:
        return {url: url for url in args.url}, args.token
    services = localize(load(args.file), Path("data"), args.base_port)
    return {s.name: s.url for s in services if "node.cli" in s.argv}, args.token or _admin_token(services)


def _admin_token(services: list[LocalService]) -> str | None:
    """The admin token the compose file gives its nodes."""
    return next((s.env["LEDGER_ADMIN_TOKEN"] for s in services if s.env.get("LEDGER_ADMIN_TOKEN")), None)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scenarios", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    compose = sub.add_parser("compose", help="the docker-compose topology as local processes")
    compose.add_argument("action", choices=["up"])
    compose.add_argument("--file", type=Path, default=COMPOSE_FILE)
    compose.add_argument("--data", type=Path, default=Path("data"), help="data directories (default ./data)")
    compose.add_argument("--samples", type=int, default=3, help="sample entries appended on each node")
    compose.add_argument("--exit-when-converged", action="store_true", help="stop once the samples converged")
    compose.add_argument(
        "--base-port",
        type=int,
        help="first service on this port, the next ones after it; 0: free ports (default: published)",
    )
    status = sub.add_parser("status", help="every node of a running network: heads, lag, conflicts, trust")
    status.add_argument("--file", type=Path, default=COMPOSE_FILE, help="the topology whose nodes to ask")
    status.add_argument("--url", action="append", help="ask this node instead (repeatable)")
    status.add_argument("--base-port", type=int, help="the base port the network was started with")
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
            code = asyncio.run(show(*_status_targets(args)))
            sys.stdout.flush()  # here, not at exit, so that a closed pipe is seen below
            sys.exit(code)
        if args.command == "run":
            chosen = list(SCENARIOS) if args.name == "all" else [args.name]
            unknown = [n for n in chosen if n not in SCENARIOS]
            if unknown:
                raise ValueError(f"no scenario {unknown[0]}; see python -m scenarios list")
            results = [asyncio.run(run(n, args.nodes, args.entries, args.netlab)) for n in chosen]
            sys.exit(0 if all(r.passed for r in results) else 1)
        sys.exit(asyncio.run(up(args.file, args.data, args.samples, args.exit_when_converged, args.base_port)))
    except BrokenPipeError:  # stdout's reader went away (| head)
        exit_quietly_on_closed_stdout()
    except (OSError, ValueError, RuntimeError, aiohttp.ClientError) as exc:
        print(f"scenarios: error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

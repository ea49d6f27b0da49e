"""Commands that ask a running registry over HTTP: ``health`` and ``nodes`` (public), and its operator's
``enrol``, ``bindings`` and ``release`` (admin API, ``--token`` or ``$LEDGER_REGISTRY_ADMIN_TOKEN``)."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from protocol.signing import fingerprint
from protocol.terminal import print_table, unreachable, url_problem

DEFAULT_URL = "http://127.0.0.1:8600"


class CommandError(Exception):
    """The registry could not be reached or answered with a problem; one line for the user."""

    exit_code = 1


class UsageError(CommandError):
    """The command line is wrong (a URL without a scheme); exit code 2, as for argparse's own errors."""

    exit_code = 2


class RegistryClient:
    """GET requests to one registry; every failure becomes a CommandError."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None = None) -> None:
        self._session = session
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def request(self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None) -> Any:
        try:
            async with self._session.request(method, self._url + path, params=params, json=body,
                                             headers=self._headers) as response:  # fmt: skip
                raw = await response.read()
        except aiohttp.ClientError as exc:
            raise CommandError(unreachable(self._url, exc)) from exc
        except TimeoutError as exc:
            raise CommandError(f"{self._url} did not answer in time") from exc
        if response.status >= 400:
            try:
                detail = orjson.loads(raw).get("detail")
            except (orjson.JSONDecodeError, AttributeError):
                detail = None
            raise CommandError(f"{method} {path}: HTTP {response.status}" + (f": {detail}" if detail else ""))
        return orjson.loads(raw) if raw else None


def _ask(args: argparse.Namespace, work: Callable[[RegistryClient], Coroutine[Any, Any, None]]) -> None:
    problem = url_problem(args.url)
    if problem is not None:
        raise UsageError(f"registry URL {args.url!r} (--url) {problem}")

    async def run() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as session:
            await work(RegistryClient(session, args.url, getattr(args, "token", None)))

    asyncio.run(run())


def cmd_health(args: argparse.Namespace) -> None:
    async def work(client: RegistryClient) -> None:
        await client.get("/health")
        await client.get("/ready")

    _ask(args, work)
    print(f"ok: {args.url} is healthy and ready")


def cmd_nodes(args: argparse.Namespace) -> None:
    nodes: list[dict[str, Any]] = []

    async def work(client: RegistryClient) -> None:
        after: str | None = None
        while True:
            params = {"limit": "1000", "status": args.status, "after": after}
            page = await client.get("/registry/nodes", {k: v for k, v in params.items() if v is not None})
            nodes.extend(page["nodes"])
            after = page["next_after"]
            if after is None:
                break

    _ask(args, work)
    if args.json:
        print(orjson.dumps(nodes, option=orjson.OPT_INDENT_2).decode())
        return
    rows = [(node["record"]["ledger_id"], node["record"]["name"], node["status"], " ".join(node["record"]["endpoints"]),
             datetime.fromtimestamp(node["last_heartbeat"] / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S"),
             fingerprint(bytes.fromhex(node["bound_key"]))) for node in nodes]  # fmt: skip
    print_table(f"nodes registered at {args.url}", ["ledger", "name", "status", "endpoints", "last heartbeat (UTC)",
                                                    "key fingerprint"], rows)  # fmt: skip


def cmd_enrol(args: argparse.Namespace) -> None:
    async def work(client: RegistryClient) -> None:
        data = await client.request("POST", "/admin/enrolments", body={"ledger_id": args.ledger_id})
        print(f"enrolment token for {data['ledger_id']}: {data['token']}")
        print(f"give it to the node's operator: LEDGER_DISCOVERY__REGISTRY_TOKEN={data['token']}")

    _ask(args, work)


def cmd_bindings(args: argparse.Namespace) -> None:
    async def work(client: RegistryClient) -> None:
        data = await client.get("/admin/nodes")
        if args.json:
            print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
            return
        rows = [(node["ledger_id"], node["status"], node["bound_key"] or "(enrolled, not bound)") for node in data]
        print_table(f"ledger ids bound or enrolled at {args.url}", ["ledger", "status", "bound key"], rows)

    _ask(args, work)


def cmd_release(args: argparse.Namespace) -> None:
    async def work(client: RegistryClient) -> None:
        await client.request("DELETE", f"/admin/nodes/{args.ledger_id}")
        print(f"released {args.ledger_id}")

    _ask(args, work)


def add_commands(sub: Any) -> None:
    """Register the client commands on the registry CLI's subparsers."""

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], None], timeout: float
                ) -> argparse.ArgumentParser:  # fmt: skip
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--url", default=DEFAULT_URL, help=f"registry URL (default {DEFAULT_URL})")
        parser.add_argument("--timeout", type=float, default=timeout, help=f"seconds (default {timeout:g})")
        parser.set_defaults(func=func)
        return parser

    command("health", "exit 0 when the registry answers /health and /ready (for healthchecks)", cmd_health, 3)
    nodes = command("nodes", "the nodes registered: status, endpoints, last heartbeat, key", cmd_nodes, 30)
    nodes.add_argument("--status", choices=["online", "offline"], help="only nodes with this status")
    nodes.add_argument("--json", action="store_true", help="print the registry's records as JSON")

    def admin(name: str, help_text: str, func: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        parser = command(name, help_text + " (registry admin)", func, 30)
        parser.add_argument("--token", default=os.environ.get("LEDGER_REGISTRY_ADMIN_TOKEN"),
                            help="registry admin token (default $LEDGER_REGISTRY_ADMIN_TOKEN)")  # fmt: skip
        return parser

    admin("enrol", "issue an enrolment token for a ledger id; printed once", cmd_enrol).add_argument("ledger_id")
    bindings = admin("bindings", "every ledger id bound or enrolled, with its key and status", cmd_bindings)
    bindings.add_argument("--json", action="store_true", help="print the registry's answer as JSON")
    admin("release", "release a ledger id (binding, record, enrolment) so its owner can enrol again",
          cmd_release).add_argument("ledger_id")  # fmt: skip

"""``ledger-registry run``: the standalone registry service; ``enrol``, ``nodes``, ``release``: its operator's
commands over the admin API."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from pydantic import ValidationError

from registry.app import build_app
from registry.errors import RegistryError
from registry.settings import RegistrySettings

DEFAULT_URL = "http://127.0.0.1:8600"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ledger-registry", description="The registry of a ledger network.")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the registry", description="Serve node registration and discovery.")
    run.add_argument("--config", type=Path, help="TOML file with registry settings")
    run.add_argument("--data-dir", type=Path, help="directory for registry.db (default ./data/registry)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port; 0 picks a free one (default 8600)")
    run.add_argument("--ttl", type=float, dest="ttl_s", help="seconds without heartbeat before a node is offline")
    run.set_defaults(command="run")

    def admin(name: str, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--url", default=DEFAULT_URL, help=f"registry URL (default {DEFAULT_URL})")
        command.add_argument("--token", default=os.environ.get("LEDGER_REGISTRY_ADMIN_TOKEN"),
                             help="registry admin token (default $LEDGER_REGISTRY_ADMIN_TOKEN)")  # fmt: skip
        command.set_defaults(command=name)
        return command

    enrol = admin("enrol", "issue an enrolment token for a ledger id; print it (shown once)")
    enrol.add_argument("ledger_id")
    admin("nodes", "every ledger id bound or enrolled, with its key and status")
    release = admin("release", "release a ledger id (binding, record, enrolment) so its owner can enrol again")
    release.add_argument("ledger_id")
    args = parser.parse_args(argv)
    if args.command != "run":
        try:
            asyncio.run(_admin(args))
        except (aiohttp.ClientError, TimeoutError) as exc:
            _fail(f"cannot reach {args.url}: {type(exc).__name__}")
        return
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        settings = RegistrySettings.load(args.config, data_dir=args.data_dir, host=args.host, port=args.port,
                                         ttl_s=args.ttl_s)  # fmt: skip
        logging.getLogger().setLevel(settings.log_level.upper())
        asyncio.run(serve(settings))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        _fail(f"invalid configuration: {'.'.join(str(p) for p in error['loc'])}: {error['msg']}")
    except (RegistryError, OSError) as exc:
        _fail(str(exc))


async def _admin(args: argparse.Namespace) -> None:
    """One call of the registry's admin API, printed."""
    method, path = {"enrol": ("POST", "/admin/enrolments"), "nodes": ("GET", "/admin/nodes"),
                    "release": ("DELETE", f"/admin/nodes/{getattr(args, 'ledger_id', '')}")}[args.command]  # fmt: skip
    body = {"ledger_id": args.ledger_id} if args.command == "enrol" else None
    headers = {"Authorization": f"Bearer {args.token or ''}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.request(method, args.url.rstrip("/") + path, json=body, headers=headers) as response:
            raw = await response.read()
            data: Any = orjson.loads(raw) if raw else {}
            if response.status >= 400:
                detail = data.get("detail") if isinstance(data, dict) else response.reason
                _fail(f"{method} {path}: HTTP {response.status}: {detail}")
    if args.command == "enrol":
        print(f"enrolment token for {data['ledger_id']}: {data['token']}")
        print(f"give it to the node's operator: LEDGER_DISCOVERY__REGISTRY_TOKEN={data['token']}")
    elif args.command == "nodes":
        for node in data:
            print(f"{node['ledger_id']:<32} {node['status']:<13} {node['bound_key'] or '(enrolled, not bound)'}")
    else:
        print(f"released {args.ledger_id}")


def _fail(message: str) -> None:
    print(f"ledger-registry: error: {message}", file=sys.stderr)
    raise SystemExit(1)


async def serve(settings: RegistrySettings) -> None:
    runner = web.AppRunner(build_app(settings), handle_signals=False, access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        host, port = runner.addresses[0][:2]
        print(f"ledger-registry listening on http://{host}:{port}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()

"""``ledger-registry``: run the standalone registry service, and ask a running one or administer it
(registry/commands.py: ``health``, ``nodes``, ``enrol``, ``bindings``, ``release``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

import registry
from protocol.serving import ConnectionGuard, GuardedRunner
from protocol.terminal import run_command
from registry.app import METRICS, build_app
from registry.commands import CommandError
from registry.commands import add_commands as add_client_commands
from registry.errors import RegistryError
from registry.settings import RegistrySettings

log = logging.getLogger("registry.cli")


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: _main(argv))


def _main(argv: list[str] | None) -> None:
    parser = argparse.ArgumentParser(prog="ledger-registry", description="The registry of a ledger network.")
    parser.add_argument("--version", action="version", version=f"ledger-registry {registry.__version__}")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run the registry", description="Serve node registration and discovery.")
    run.add_argument("--config", type=Path, help="TOML file with registry settings")
    run.add_argument("--data-dir", type=Path, help="directory for registry.db (default ./data/registry)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port; 0 picks a free one (default 8600)")
    run.add_argument("--ttl", type=float, dest="ttl_s", help="seconds without heartbeat before a node is offline")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="default info (settings)")
    run.set_defaults(func=cmd_run)
    add_client_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s", stream=sys.stderr)
    try:
        args.func(args)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        _fail(f"invalid configuration: {'.'.join(str(p) for p in error['loc'])}: {error['msg']}")
    except BrokenPipeError:
        raise
    except CommandError as exc:
        _fail(str(exc), exc.exit_code)
    except (RegistryError, OSError) as exc:
        _fail(str(exc))


def cmd_run(args: argparse.Namespace) -> None:
    settings = RegistrySettings.load(args.config, data_dir=args.data_dir, host=args.host, port=args.port,
                                     ttl_s=args.ttl_s, log_level=args.log_level)  # fmt: skip
    logging.getLogger().setLevel(settings.log_level.upper())
    asyncio.run(serve(settings))


def _fail(message: str, code: int = 1) -> None:
    print(f"ledger-registry: error: {message}", file=sys.stderr)
    raise SystemExit(code)


async def serve(settings: RegistrySettings) -> None:
    app = build_app(settings)
    guard = ConnectionGuard(settings.server, log, app[METRICS], "registry")
    runner = GuardedRunner(app, settings.server, guard, handle_signals=False, access_log=None)
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

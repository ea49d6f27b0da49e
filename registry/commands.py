"""Commands that ask a running registry over HTTP: ``ledger-registry health``."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

DEFAULT_URL = "http://127.0.0.1:8600"


class CommandError(Exception):
    """The registry could not be reached or answered with a problem; one line for the user."""


class RegistryClient:
    """GET requests to one registry; every failure becomes a CommandError."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self._session = session
        self._url = url.rstrip("/")

    async def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with self._session.get(self._url + path, params=params) as response:
                raw = await response.read()
        except aiohttp.ClientError as exc:
            raise CommandError(f"cannot reach {self._url}: {exc}") from exc
        except TimeoutError as exc:
            raise CommandError(f"{self._url} did not answer in time") from exc
        if response.status >= 400:
            raise CommandError(f"{self._url}{path}: HTTP {response.status}")
        return orjson.loads(raw) if raw else None


def _ask(args: argparse.Namespace, work: Callable[[RegistryClient], Coroutine[Any, Any, None]]) -> None:
    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CommandError(f"registry URL {args.url!r} needs http:// or https:// and a host")

    async def run() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout)) as session:
            await work(RegistryClient(session, args.url))

    asyncio.run(run())


def cmd_health(args: argparse.Namespace) -> None:
    async def work(client: RegistryClient) -> None:
        await client.get("/health")
        await client.get("/ready")

    _ask(args, work)
    print(f"ok: {args.url} is healthy and ready")


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

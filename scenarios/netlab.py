"""Scenario hosts inside ``../shared/netlab``: bring the lab up and down, cut and heal links, slow them,
and reach a service inside a lab host from the runner.

Lab addresses (10.77.0.I) are unreachable from outside the lab by design. To reach a node the runner
starts a relay inside its lab host that listens on a Unix socket (socket files cross network
namespaces) and forwards to the node, and forwards a local TCP port to that socket: the runner talks
to ``127.0.0.1:P`` while the nodes talk to each other over the lab links.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

from scenarios.procs import REPO

NETLAB = REPO.parent / "shared" / "netlab" / "netlab.sh"
PREFIX = os.environ.get("NETLAB_PREFIX", "lns")  # a lab of its own, apart from the tests' lab


class LabUnavailable(Exception):
    """The lab cannot be built here; the message says why."""


class Lab:
    """A running lab of ``hosts`` hosts; ``close()`` stops every process inside and removes it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._relays: list[subprocess.Popen[bytes]] = []
        self._servers: list[asyncio.Server] = []

    @classmethod
    async def up(cls, work: Path, hosts: int) -> Lab:
        try:
            check = await asyncio.to_thread(_netlab, "check")
        except OSError as exc:
            raise LabUnavailable(f"netlab unavailable: {exc}") from exc
        if check.returncode != 0:
            raise LabUnavailable((check.stdout or check.stderr).strip() or "netlab unavailable")
        up = await asyncio.to_thread(_netlab, "up", str(hosts))
        if up.returncode != 0:
            await asyncio.to_thread(_netlab, "down")
            raise LabUnavailable(f"netlab could not be brought up: {up.stderr.strip()[-200:]}")
        return cls(work)

    @staticmethod
    def address(host: int) -> str:
        return f"10.77.0.{host}"

    @staticmethod
    def wrap(host: int) -> list[str]:
        """The command prefix that runs a program inside lab host ``host``."""
        return [str(NETLAB), "exec", str(host)]

    @staticmethod
    def env() -> dict[str, str]:
        return {"NETLAB_PREFIX": PREFIX}

    async def command(self, *args: str) -> None:
        """``partition I [J..]``, ``heal``, ``delay I MS``, ``loss I PCT``; raises if the lab refuses."""
        result = await asyncio.to_thread(_netlab, *args)
        if result.returncode != 0:
            raise RuntimeError(f"netlab {' '.join(args)}: {(result.stderr or result.stdout).strip()}")

    async def relay(self, host: int, port: int) -> str:
        """A runner-side URL for the service on ``port`` of lab host ``host``."""
        path = self.work / f"relay-{host}-{port}.sock"
        argv = [*self.wrap(host), sys.executable, "-m", "scenarios.netlab", str(path), self.address(host), str(port)]
        proc = subprocess.Popen(argv, cwd=REPO, env={**os.environ, **self.env()}, stdout=subprocess.DEVNULL)  # noqa: ASYNC220 - returns at once
        self._relays.append(proc)
        for _ in range(200):  # the relay creates its socket within a second or two; bounded
            if path.exists():
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the relay into lab host {host} exited with {proc.returncode}")
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"the relay into lab host {host} did not start")
        server = await asyncio.start_server(lambda r, w: _to_unix(r, w, str(path)), "127.0.0.1", 0)
        self._servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for proc in self._relays:
            proc.kill()
        await asyncio.to_thread(_netlab, "down")
        for proc in self._relays:
            proc.wait(timeout=10)


def _netlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(NETLAB), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **Lab.env()})  # fmt: skip


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, other: tuple[asyncio.StreamReader,
                  asyncio.StreamWriter]) -> None:  # fmt: skip
    try:
        await asyncio.gather(_pipe(reader, other[1]), _pipe(other[0], writer))
    finally:
        writer.close()
        other[1].close()


async def _to_unix(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
    try:
        other = await asyncio.open_unix_connection(path)
    except OSError:
        writer.close()
        return
    await _splice(reader, writer, other)


async def _serve(path: str, host: str, port: int) -> None:
    """Inside a lab host: accept on the Unix socket ``path``, forward to ``host:port``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            other = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await _splice(reader, writer, other)

    server = await asyncio.start_unix_server(handle, path)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scenarios.netlab", description="relay inside a lab host")
    parser.add_argument("socket", help="the Unix socket to listen on")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    asyncio.run(_serve(args.socket, args.host, args.port))


if __name__ == "__main__":
    main()

"""mDNS (zeroconf's asyncio API): announce this node as ``<ledger_id>._ledger._tcp.local.`` and
browse for others.

TXT: ``ledger_id``, ``fp`` (the key fingerprint), ``port``, ``caps``. A browsed service is only a
hint: its signed record is fetched from the advertised address's ``/network/info`` and must carry
the fingerprint the TXT announced before it is considered like any other discovered record. The
lookup goes through the node's outbound client, which lets mDNS reach link-local and private
addresses (where mDNS lives), never loopback unless ``net.allow_private``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from node.errors import NodeError
from node.net.client import Outbound
from node.net.shapes import parse
from protocol.records import NodeRecord
from protocol.signing import fingerprint

log = logging.getLogger(__name__)

SERVICE_TYPE = "_ledger._tcp.local."
Consider = Callable[[NodeRecord, str], Awaitable[Any]]


class Mdns:
    """Announces ``record`` and reports verified records of browsed services to ``consider``."""

    def __init__(self, record: NodeRecord, interfaces: list[str] | None, consider: Consider, net: Outbound) -> None:
        self._record = record
        self._net = net
        self._interfaces = interfaces
        self._consider = consider
        self._zc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def _label(self) -> str:
        """The instance and host label: the ledger id and the start of the key, so that another key
        claiming the same id shows up as a service of its own (reported as an identity conflict)
        rather than a name collision; at most 63 bytes, a DNS label. The TXT carries the full id."""
        return f"{self._record.ledger_id[:50]}-{self._record.public_key[:12]}"

    async def run(self) -> None:
        endpoint = urlsplit(self._record.endpoints[0])
        address = endpoint.hostname or "127.0.0.1"
        port = endpoint.port or 80
        self._zc = AsyncZeroconf(interfaces=self._interfaces or "all", ip_version=IPVersion.V4Only)
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            f"{self._label}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(_ipv4(address))],
            port=port,
            properties={
                "ledger_id": self._record.ledger_id,
                "fp": fingerprint(bytes.fromhex(self._record.public_key)),
                "port": str(port),
                "caps": ",".join(self._record.capabilities),
            },  # fmt: skip
            server=f"{self._label}.local.",
        )
        await self._zc.async_register_service(info)
        self._browser = AsyncServiceBrowser(self._zc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        log.info("mdns announcing %s on %s:%d", info.name, address, port)
        await asyncio.Event().wait()  # runs until cancelled

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change in (ServiceStateChange.Added, ServiceStateChange.Updated):
            task = asyncio.get_running_loop().create_task(self._resolve(name))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _resolve(self, name: str) -> None:
        if self._zc is None or name == f"{self._label}.{SERVICE_TYPE}":
            return
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if not await info.async_request(self._zc.zeroconf, 3000):
            return
        props = {k.decode(): (v or b"").decode() for k, v in info.properties.items()}
        addresses = info.parsed_addresses()
        if not addresses or info.port is None:
            return
        host = addresses[0] if ":" not in addresses[0] else f"[{addresses[0]}]"
        url = f"http://{host}:{info.port}"
        try:
            answer = await self._net.request("GET", url, "/network/info", timeout_s=5, lan=True)
            record = parse(NodeRecord, answer.data.get("record") if isinstance(answer.data, dict) else None)
        except NodeError as exc:
            log.info("mdns: %s at %s gave no usable record (%s)", name, url, exc)
            return
        if record.ledger_id != props.get("ledger_id") or fingerprint(bytes.fromhex(record.public_key)) != props.get(
            "fp"
        ):
            log.warning("mdns: %s announced %s/%s but serves a record of %s", name, props.get("ledger_id"),
                        props.get("fp"), record.ledger_id)  # fmt: skip
            return
        await self._consider(record, "mdns")

    async def close(self) -> None:
        """Cancel browsing, say goodbye, close; each step bounded so a stuck socket cannot hold shutdown."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        steps = []
        if self._browser is not None:
            steps.append(self._browser.async_cancel())
        if self._zc is not None:
            steps += [self._zc.async_unregister_all_services(), self._zc.async_close()]
        for step in steps:
            try:
                async with asyncio.timeout(3):
                    await step
            except (TimeoutError, OSError) as exc:
                log.warning("mdns shutdown step did not finish: %s", type(exc).__name__)


def _ipv4(host: str) -> str:
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        return socket.gethostbyname(host)

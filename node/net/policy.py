"""Which URLs the node contacts: the URL policy of the outbound client.

A URL is contacted only if its scheme is http or https, it names a host, it carries no userinfo
and (a node endpoint) no query or fragment. Every address its host stands for must be public,
unless ``net.allow_private`` is on or the operator configured the URL's origin (peers in the
configuration, bootstrap and registry URLs, peers added through the admin API, ``POST
/network/connect``): loopback, link-local, private, multicast, unspecified and reserved addresses
are refused otherwise. mDNS lookups may reach link-local and private addresses (where mDNS lives),
never loopback. Literal addresses are checked before a request; names when they are resolved, at
connection time (``PolicyResolver``), so a name cannot pass the check as one address and be
used as another.

The host is judged as the client will connect to it: aiohttp connects to yarl's form of the URL,
which rewrites a host through IDNA (``１２７.０.０.１`` and ``127。0。0。1`` become the literal
``127.0.0.1``, which aiohttp connects to without asking the resolver). So a URL must be printable
ASCII without spaces, and its host must be the host yarl connects to (IPv6 literals may differ
only in how they are written); anything else is refused, whoever configured it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from node.errors import UrlRefused

Origin = tuple[str, int]  # lower-case host, port

SCHEMES = {"http": 80, "https": 443}


class AddressRefused(OSError):
    """A name resolved only to addresses the policy refuses (raised inside the connector)."""


def address_class(address: str) -> str | None:
    """Why an address is not public (``"loopback"``, ``"private"`` ...), or None for a public one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unparseable"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name in ("loopback", "link_local", "multicast", "unspecified", "private", "reserved"):
        if getattr(ip, f"is_{name}"):
            return name.replace("_", "-")
    return None if ip.is_global else "non-global"


def origin_of(url: str) -> Origin:
    """The (host, port) a URL connects to, the host as the client connects to it; ValueError for a
    URL without a host."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("no host")
    host = URL(url).raw_host
    if host is None:
        raise ValueError("no host")
    return host, parts.port or SCHEMES.get(parts.scheme, 80)


class UrlPolicy:
    """The policy of one node: its setting, and the origins its operator configured."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._operator: set[Origin] = set()

    def mark_operator(self, url: str) -> None:
        """Remember ``url``'s origin as configured by the operator: its private addresses are allowed."""
        try:
            self._operator.add(origin_of(url))
        except ValueError:
            pass  # refused by check() when used

    def trusted(self, host: str, port: int) -> bool:
        return self.allow_private or (host.lower(), port) in self._operator

    def check(self, url: str, *, endpoint: bool = True, lan: bool = False) -> SplitResult:
        """The parsed URL if the node may contact it; UrlRefused naming the rule otherwise.

        ``endpoint``: a node or registry endpoint, which never carries a query or fragment (the
        client adds its own query). ``lan``: link-local and private addresses are allowed (mDNS).
        """
        if not url.isascii():
            raise UrlRefused("URL refused: not ASCII (the URL would be rewritten before connecting)")
        if any(c <= " " or c == "\x7f" for c in url):
            raise UrlRefused("URL refused: whitespace or control characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UrlRefused("URL refused: not a valid URL") from exc
        if parts.scheme not in SCHEMES:
            raise UrlRefused("URL refused: only http and https")
        if not parts.hostname:
            raise UrlRefused("URL refused: no host")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise UrlRefused("URL refused: userinfo is not allowed")
        if endpoint and ("?" in url or "#" in url):
            raise UrlRefused("URL refused: a node endpoint has no query or fragment")
        host = _connected_host(url, parts.hostname.lower())
        if self.trusted(host, port or SCHEMES[parts.scheme]):
            return parts
        kind = _literal_class(host)
        if kind is not None and not (lan and kind in ("private", "link-local")):
            raise UrlRefused(f"URL refused: {host} is a {kind} address")
        return parts


def _connected_host(url: str, written: str) -> str:
    """The host aiohttp connects to for ``url`` (yarl's ``raw_host``); UrlRefused unless it is the
    host as written (an IPv6 literal may be written in another form of the same address)."""
    try:
        host = URL(url).raw_host
    except (ValueError, TypeError) as exc:
        raise UrlRefused("URL refused: not a valid URL") from exc
    if not host:
        raise UrlRefused("URL refused: no host")
    if host != written and not _same_address(host, written):
        raise UrlRefused("URL refused: the host would be connected to as another host than written")
    return host


def _same_address(a: str, b: str) -> bool:
    """Whether two hosts are literals of one IP address (zones included)."""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False


def _literal_class(host: str) -> str | None:
    """address_class of a literal IP host; None for a public address or a name (checked on resolution)."""
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    return address_class(host.strip("[]"))


class PolicyResolver(AbstractResolver):
    """Resolves names and keeps only the addresses the policy allows for that origin."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await lookup(host, port, family)
        if self._policy.trusted(host, port):
            return results
        kept = [r for r in results if address_class(r["host"]) is None]
        if not kept:
            kinds = sorted({address_class(r["host"]) or "" for r in results})
            raise AddressRefused(f"{host} resolves only to {'/'.join(kinds)} addresses")
        return kept

    async def close(self) -> None:
        pass


async def lookup(host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
    """``getaddrinfo`` in a daemon thread of its own. A lookup of a name that no longer resolves can
    block for many seconds; in the loop's executor it would hold the node's exit (``asyncio.run``
    waits for the executor's threads), here it is abandoned when the node stops."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[list[ResolveResult]] = loop.create_future()

    def settle(result: list[ResolveResult] | BaseException) -> None:
        if future.done():
            return
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)

    def work() -> None:
        result: list[ResolveResult] | BaseException
        try:
            result = _addresses(host, port, family)
        except (OSError, UnicodeError) as exc:
            result = exc
        try:
            loop.call_soon_threadsafe(settle, result)
        except RuntimeError:  # the loop closed meanwhile: nobody waits for this lookup any more
            pass

    threading.Thread(target=work, name=f"resolve {host}", daemon=True).start()
    return await future


def _addresses(host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
    """What aiohttp's threaded resolver answers, computed in the calling thread."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family, flags=socket.AI_ADDRCONFIG)
    hosts: list[ResolveResult] = []
    numeric = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
    for found, _, proto, _, address in infos:
        if found == socket.AF_INET6:
            if len(address) < 3:
                continue  # IPv6 not supported by this build or host
            if address[3]:  # a scope: link-local IPv6
                resolved, service = socket.getnameinfo(address, numeric)
                where, at = resolved, int(service)
            else:
                where, at = str(address[0]), int(address[1])
        else:
            where, at = str(address[0]), int(address[1])
        hosts.append(ResolveResult(hostname=host, host=where, port=at, family=found, proto=proto, flags=numeric))
    return hosts

"""Loaded by node processes of tests/node/test_shutdown.py (on their PYTHONPATH): names ending in
``.gone`` stand for peers whose host names no longer resolve behind a name server that does not
answer (a container engine's DNS after the peer's container was removed): the lookup blocks."""

import socket
import time

_getaddrinfo = socket.getaddrinfo


def _blocking_getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if isinstance(host, str) and host.endswith(".gone"):
        time.sleep(60)  # the name server's silence
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _blocking_getaddrinfo

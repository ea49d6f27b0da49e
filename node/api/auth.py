"""Admin authentication: a bearer token compared in constant time.

Admin routes are registered only when a token is configured, and each admin handler is wrapped
here, so no path trick can reach one without the check.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from node.errors import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_token(token: str, handler: Handler) -> Handler:
    """Wrap ``handler`` so it runs only for ``Authorization: Bearer <token>``."""
    expected = token.encode()

    @functools.wraps(handler)  # keeps the name, docstring and @operation declaration
    async def guarded(request: web.Request) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        # compare_digest on bytes of equal and unequal length alike: no early exit on content
        # the scheme is case-insensitive (RFC 9110), the token is compared byte for byte
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise Unauthorized("admin endpoints need 'Authorization: Bearer <admin token>'")
        return await handler(request)

    return guarded

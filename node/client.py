"""A small HTTP client of a node's API, for the CLI and tools; server problems become ClientError."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import aiohttp
import orjson

from protocol.terminal import unreachable


class ClientError(Exception):
    """The node answered with a problem, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class NodeClient:
    """``async with NodeClient(url, token) as client: await client.get("/ledger/stats")``."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30) -> None:
        self._url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> NodeClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._request("GET", path, params=params)

    async def post(self, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return await self._request("POST", path, body=body, params=params)

    async def put(self, path: str, body: Any = None) -> Any:
        return await self._request("PUT", path, body=body)

    async def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self._request("DELETE", path, params=params)

    async def _request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        assert self._session is not None, "use NodeClient as an async context manager"
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else None
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            async with self._session.request(
                method, self._url + path, data=data, params=query, headers=headers
            ) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise _problem(response.status, raw)
                return orjson.loads(raw) if raw else None
        except aiohttp.ClientError as exc:
            raise ClientError(unreachable(self._url, exc)) from exc
        except TimeoutError as exc:
            raise ClientError(f"{self._url} did not answer in time") from exc


def _problem(status: int, raw: bytes) -> ClientError:
    try:
        body = orjson.loads(raw)
        code = str(body.get("type", "")).rsplit(":", 1)[-1]
        return ClientError(f"{body.get('detail', 'error')} ({code}, HTTP {status})", status, code)
    except (orjson.JSONDecodeError, AttributeError):
        return ClientError(f"HTTP {status}", status)

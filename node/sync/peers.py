"""The client side of node-to-node requests: signed, read through the node's outbound client,
retried with backoff.

Retries (tenacity: exponential backoff with jitter, capped) apply only to PeerUnavailable: a peer
that did not answer. A peer that answers with an error or with data that does not validate raises
PeerFailed at once. Answers are bounded by the outbound client (size after inflation) and by
``node.net.shapes`` (list lengths before validation).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from node.errors import PeerFailed, PeerUnavailable
from node.ledger.clock import wall_ms
from node.net.client import Answer, Outbound
from node.net.shapes import parse
from node.settings import SyncSettings
from protocol.models import Heads, LedgerId, Page
from protocol.requests import sign_request
from protocol.signing import KeyPair

log = logging.getLogger(__name__)


class PushAnswer(BaseModel):
    """What a peer answers to a push (the fields this node uses)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    accepted: Annotated[int, Field(ge=0, le=2**53 - 1)] = 0
    head_seq: Annotated[int, Field(ge=0, le=2**53 - 1)]


class Refusal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    index: Annotated[int, Field(ge=0, le=1000)]
    reason: Annotated[str, Field(max_length=1000)]


class ShareAnswer(BaseModel):
    """What a peer answers to shared attestations (the fields this node uses)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    refusals: Annotated[list[Refusal], Field(max_length=1000)] = []


class HeadEvent(BaseModel):
    """One event of a peer's head stream: a ledger's new head."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    ledger_id: LedgerId
    seq: Annotated[int, Field(ge=0, le=2**53 - 1)]


class PeerClient:
    """Talks to one peer on behalf of this node."""

    def __init__(self, net: Outbound, url: str, keys: KeyPair, own_ledger_id: str, settings: SyncSettings) -> None:
        self.url = url.rstrip("/")
        self._net = net
        self._keys = keys
        self._own = own_ledger_id
        self._settings = settings
        self.retries = 0  # retries made since creation (for status and metrics)
        self._heads: tuple[str, Heads] | None = None  # the last heads answered, with their tag

    async def heads(self) -> Heads:
        """The peer's heads; asked with the tag of the heads it answered last, so unchanged heads
        come back as a 304 without a body."""
        held = self._heads
        answer = await self._call("GET", "/ledger/sync/heads", etag=held[0] if held else None)
        if answer.status == 304 and held is not None:
            return held[1]
        heads = parse(Heads, answer.data)
        tag = answer.etag
        self._heads = (tag, heads) if tag else None
        return heads

    async def pull(self, ledger_id: str, after: int, limit: int) -> Page:
        query = {"ledger": ledger_id, "after": after, "limit": limit}
        page = parse(Page, (await self._call("GET", "/ledger/sync/pull", query=query)).data)
        if page.ledger_id != ledger_id:
            raise PeerFailed(f"{self.url}: asked for ledger {ledger_id}, got {page.ledger_id}")
        return page

    async def push(self, page: dict[str, Any]) -> PushAnswer:
        return parse(PushAnswer, (await self._call("POST", "/ledger/sync/push", body=orjson.dumps(page))).data)

    async def share_trust(self, attestations: list[dict[str, object]]) -> ShareAnswer:
        """Offer attestations (wire form); the peer verifies each under its author's pinned key."""
        answer = await self._call("POST", "/network/trust", body=orjson.dumps(attestations))
        return parse(ShareAnswer, answer.data)

    async def stream(self) -> AsyncIterator[HeadEvent | None]:
        """The peer's head events until the stream ends: None first (connected: whatever was committed
        while we were not listening is missed), then one HeadEvent per event."""
        path = "/ledger/sync/stream"
        headers = sign_request(self._keys, self._own, "GET", path, b"", wall_ms())
        async for event in self._net.stream(self.url, path, headers):
            yield None if event.get("connected") is True else parse(HeadEvent, event)

    async def _call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None, body: bytes = b"", etag: str | None = None
    ) -> Answer:
        target = path + ("?" + urlencode(query) if query else "")
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.retries + 1),
            wait=wait_exponential_jitter(multiplier=0.1, max=self._settings.backoff_max_s),
            retry=retry_if_exception_type(PeerUnavailable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    self.retries += 1
                headers = sign_request(self._keys, self._own, method, target, body, wall_ms())
                if etag is not None:
                    headers["If-None-Match"] = etag
                return await self._net.request(method, self.url, target, body=body, headers=headers, accept=(304,))
        raise AssertionError("unreachable")  # pragma: no cover

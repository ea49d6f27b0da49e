"""The one capped reader of answers: bytes counted after gzip inflation, stopped at the cap.

The outbound sessions never inflate on their own (``auto_decompress=False``); this reader inflates
gzip incrementally, asking zlib for no more than the bytes left under the cap, so a small
compressed answer that would inflate to gigabytes costs at most the cap. Any other content
encoding is refused. Errors name the failure and never carry the answer's bytes.
"""

from __future__ import annotations

import zlib

import aiohttp

from node.errors import PeerFailed

CHUNK = 1 << 16


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The answer's body, inflated if gzip; PeerFailed once it passes ``cap`` bytes (on the wire or
    inflated)."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip"):
        raise PeerFailed("answer in an unsupported content encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
    parts: list[bytes] = []
    wire = size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        wire += len(chunk)
        if wire > cap:
            raise PeerFailed(f"answer larger than {cap} bytes")
        if inflater is None:
            parts.append(chunk)
            size = wire
            continue
        data = chunk
        while data and not inflater.eof:
            try:
                out = inflater.decompress(data, cap - size + 1)  # never more than one byte past the cap
            except zlib.error as exc:
                raise PeerFailed("answer is not valid gzip") from exc
            size += len(out)
            if size > cap:
                raise PeerFailed(f"answer larger than {cap} bytes")
            parts.append(out)
            data = inflater.unconsumed_tail
    if inflater is not None and wire and not inflater.eof:
        raise PeerFailed("answer is truncated gzip")
    return b"".join(parts)

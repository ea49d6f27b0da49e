"""Entry ids: UUID version 7 (RFC 9562), time-ordered, so the id index grows at its end."""

from __future__ import annotations

import os


def uuid7(ms: int) -> str:
    """A version-7 UUID for millisecond time ``ms``, as the canonical lowercase string."""
    rand = int.from_bytes(os.urandom(10), "big")
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76
        | ((rand >> 62) & 0xFFF) << 64
        | 0b10 << 62
        | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

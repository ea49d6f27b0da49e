"""Entry ids: UUID version 7 (RFC 9562), time-ordered, so the id index grows at its end."""

from __future__ import annotations

import os

_VARIANT = "89ab"  # the two variant bits 10, followed by two random bits


def uuid7s(count: int, ms: int) -> list[str]:
    """``count`` version-7 UUIDs for millisecond time ``ms``, as canonical lowercase strings.

    74 random bits each (12 in rand_a, 62 in rand_b), drawn with one urandom call for all of them.
    """
    raw = os.urandom(10 * count).hex()
    prefix = f"{ms & 0xFFFF_FFFF_FFFF:012x}"
    head = f"{prefix[:8]}-{prefix[8:]}-7"
    return [
        f"{head}{raw[i : i + 3]}-{_VARIANT[int(raw[i + 3], 16) & 3]}{raw[i + 4 : i + 7]}-{raw[i + 7 : i + 19]}"
        for i in range(0, 20 * count, 20)
    ]

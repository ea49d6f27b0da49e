"""The number rule of docs/protocol.md section 2, written out independently of protocol/ so that tests
can check the code against it: every number, whole or not, lies within ±(2^53-1)."""

from __future__ import annotations

import math
from typing import Any

BOUND = 2**53 - 1


def within_rule(value: Any) -> bool:
    """True when every number in ``value`` (nested in lists and objects) is finite and within ±BOUND."""
    if isinstance(value, dict):
        return all(within_rule(v) for v in value.values())
    if isinstance(value, list):
        return all(within_rule(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isfinite(value) and -BOUND <= value <= BOUND
    return True

"""Reliability tests: small in CI; ``RELIABILITY=full`` (``make reliability``) runs them at full size.
Each records its figures; the run ends with one table of them."""

from __future__ import annotations

import os
from typing import Any

import pytest

FULL = os.environ.get("RELIABILITY") == "full"
FIGURES: list[tuple[str, Any, str]] = []


def size(small: int, full: int) -> int:
    """``small`` in CI, ``full`` under ``make reliability``."""
    return full if FULL else small


def record(name: str, value: Any, target: str = "") -> None:
    """A figure for the closing table: its name, value and what it must be."""
    FIGURES.append((name, value, target))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section(f"reliability figures ({'full' if FULL else 'CI'} size)")
    width = max(len(name) for name, _, _ in FIGURES)
    for name, value, target in FIGURES:
        terminalreporter.write_line(f"{name:<{width}}  {value!s:>12}  {target}")


@pytest.fixture
def figures() -> Any:
    return record

"""Published test vectors of protocol v1 (JSON files beside this module).

Regenerate with ``python -m protocol.vectors.generate``; the files must not change unless the
protocol does. ``tests/protocol/test_vectors.py`` checks the implementation against them.
"""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).parent

# The published test key: never use it for anything but vectors.
TEST_SEED = bytes(range(32))

from __future__ import annotations

import uuid

from node.ledger.ids import uuid7s


def test_uuid7s_are_valid_version_7_unique_and_time_ordered() -> None:
    early, late = uuid7s(500, 1_700_000_000_000), uuid7s(500, 1_700_000_000_001)
    for text in early + late:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert len(set(early + late)) == 1000
    assert max(early) < min(late)
    assert int(early[0][:8] + early[0][9:13], 16) == 1_700_000_000_000

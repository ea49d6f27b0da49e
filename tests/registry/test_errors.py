from __future__ import annotations

import registry.errors
from registry.api import status_of
from tests.node.test_errors import subclasses


def test_every_registry_error_has_a_distinct_code_and_a_4xx_or_5xx_status() -> None:
    classes = subclasses(registry.errors.RegistryError)
    assert len(classes) >= 8
    assert len({c.code for c in classes}) == len(classes)  # type: ignore[attr-defined]
    for cls in classes:
        assert 400 <= status_of(cls("x")) <= 599 and cls.__doc__

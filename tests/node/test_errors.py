"""Every error class has a stable code and maps to an HTTP status."""

from __future__ import annotations

import node.errors
import protocol.errors
from node.api.problems import status_of


def subclasses(base: type[Exception]) -> list[type[Exception]]:
    found = [base]
    for sub in base.__subclasses__():
        found += subclasses(sub)
    return found


def test_every_error_class_has_a_distinct_code_and_a_status() -> None:
    classes = subclasses(node.errors.NodeError) + subclasses(protocol.errors.ProtocolError)
    assert len(classes) >= 20
    codes = [c.code for c in classes]  # type: ignore[attr-defined]
    assert len(codes) == len(set(codes)), "codes must be unique"
    for cls in classes:
        exc = cls("ledger-x", 1, "reason") if cls is node.errors.StoreCorrupted else cls("detail")
        status = status_of(exc)
        assert 400 <= status <= 599, cls
        if cls is not node.errors.NodeError and cls is not protocol.errors.ProtocolError:
            assert cls.__doc__, f"{cls.__name__} needs a docstring"


def test_client_errors_are_4xx_and_server_faults_5xx() -> None:
    assert status_of(node.errors.InvalidRequest("x")) == 400
    assert status_of(protocol.errors.LimitExceeded("x")) == 413
    assert status_of(protocol.errors.HashMismatch("x")) == 422
    assert status_of(node.errors.StorageError("x")) == 503

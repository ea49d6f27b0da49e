"""Validation of answers with its cost bounded before it starts.

Validating a parsed answer costs about one step, and on failure one error object, per item: an
answer of millions of empty lists where objects belong would build millions of errors. So before
pydantic sees an answer, ``bound`` walks the model's shape once: every list is at most its field's
``max_length`` (else ``MAX_ITEMS``) long, and every object that stands for a model that forbids
extra fields has no more keys than the model has fields. What is left fails with a few errors per
item at most; only the first is reported, by location and error type, never with the value. A
location names only the model's own fields and list indexes: a member the model does not know
(its name is the answer's text) is reported as "an unexpected member", never by its name.
"""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from annotated_types import MaxLen
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from node.errors import PeerFailed
from protocol.models import Hash, LedgerId
from protocol.records import PublicKey

MAX_ITEMS = 10_000  # a list in an answer, when its model field names no bound (heads: ledgers held)

M = TypeVar("M", bound=BaseModel)


class InfoHead(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True)

    seq: Annotated[int, Field(ge=0, le=2**53 - 1)]
    hash: Hash | None = None


class NodeInfo(BaseModel):
    """What this node reads of another node's ``GET /network/info`` (its other members are ignored):
    every field bounded, so nothing of a hostile answer is kept beyond an id, a key and a head."""

    model_config = ConfigDict(frozen=True, strict=True)

    ledger_id: LedgerId
    public_key: PublicKey
    head: InfoHead | None = None


def parse(model: type[M], data: Any, where: str = "") -> M:
    """``data`` validated as ``model``; PeerFailed naming the first malformed field."""
    bound(model, data, where)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        raise PeerFailed(_failure(model, where, error["loc"], error["type"])) from exc


def _failure(model: type[BaseModel], where: str, loc: tuple[int | str, ...], kind: str) -> str:
    """``malformed answer at <location> (<error type>)``; see ``location``."""
    at, known = location(model, where, loc)
    return f"malformed answer at {at or 'top'} ({kind if known else 'an unexpected member'})"


def location(model: type[BaseModel], where: str, loc: tuple[int | str, ...]) -> tuple[str, bool]:
    """A validation error's location, cut before the first part that is not a field name of
    ``model`` (or of a model inside it) or a list index, so it never quotes a member name a remote
    sent; and whether it was whole."""
    names = _names(model)
    parts: list[str] = []
    whole = True
    for part in loc:
        if not isinstance(part, int) and part not in names:
            whole = False
            break
        parts.append(f"[{part}]" if isinstance(part, int) else part)
    return (where + ".".join(parts)).replace(".[", "[").rstrip("."), whole


def parse_list(model: type[M], data: Any, max_items: int, where: str = "") -> list[M]:
    """A JSON list of ``model`` items, at most ``max_items``; PeerFailed otherwise."""
    if not isinstance(data, list):
        raise PeerFailed(f"malformed answer at {where or 'top'} (list expected)")
    if len(data) > max_items:
        raise PeerFailed(f"malformed answer at {where or 'top'} (more than {max_items} items)")
    return [parse(model, item, f"{where}[{i}].") for i, item in enumerate(data)]


def bound(model: type[BaseModel], data: Any, path: str = "") -> None:
    """Refuse ``data`` whose lists or objects are larger than ``model`` allows (PeerFailed)."""
    if isinstance(data, dict):
        _bound(_shape(model), data, path)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    max_items: int  # when the value is a list
    items: _Shape | None  # when the field is a list of models: the items' shape
    object: _Shape | None  # when the field stands for a model: its shape


@dataclass(frozen=True, slots=True)
class _Shape:
    """What ``bound`` checks of one model, worked out once per model: a page holds a thousand entries,
    and reading a model's fields and annotations for each cost more than the checks themselves."""

    fields: tuple[_Field, ...]
    max_keys: int | None  # None when the model allows extra fields


@functools.cache
def _shape(model: type[BaseModel]) -> _Shape:
    fields = []
    for name, field in model.model_fields.items():
        limit = next((m.max_length for m in field.metadata if isinstance(m, MaxLen)), MAX_ITEMS)
        item = _model_in(get_args(field.annotation)[0] if get_origin(field.annotation) is list else None)
        sub = _model_in(field.annotation)
        fields.append(_Field(name, limit, None if item is None else _shape(item), None if sub is None else _shape(sub)))
    forbid = model.model_config.get("extra") == "forbid"
    return _Shape(tuple(fields), len(fields) if forbid else None)


def _bound(shape: _Shape, data: dict[str, Any], path: str) -> None:
    if shape.max_keys is not None and len(data) > shape.max_keys:  # one error per extra key
        raise PeerFailed(f"malformed answer at {path.rstrip('.') or 'top'} (an unexpected member)")
    for field in shape.fields:
        value = data.get(field.name)
        if isinstance(value, list):
            if len(value) > field.max_items:
                raise PeerFailed(f"malformed answer at {path}{field.name} (more than {field.max_items} items)")
            if field.items is not None:
                for i, element in enumerate(value):
                    if isinstance(element, dict):
                        _bound(field.items, element, f"{path}{field.name}[{i}].")
        elif isinstance(value, dict) and field.object is not None:
            _bound(field.object, value, f"{path}{field.name}.")


@functools.cache
def _names(model: type[BaseModel]) -> frozenset[str]:
    """The field names (and aliases) of ``model`` and of every model its fields hold."""
    names: set[str] = set()
    pending, seen = [model], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        for name, field in current.model_fields.items():
            names.update(n for n in (name, field.alias, field.validation_alias) if isinstance(n, str))
            pending.extend(_models_in(field.annotation))
    return frozenset(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every model an annotation names, at any depth (``list[M]``, ``dict[str, M]``, ``M | None`` ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation stands for (``M``, ``M | None``), or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None

"""Where a pin (``ledger_id -> public key``) came from, and which provenance outranks which.

Strongest first: ``config`` (the node's settings, its own ledger), ``operator`` (admin API, CLI,
an import), ``attested`` (admitted by a trust path from this node), ``registry`` (a record from a
registry, which binds ids only on its operator's enrolment), ``peer`` (vouched for by an admitted
peer's heads or push), ``first-sight`` (an introduction, mDNS or peer exchange, admitted because
the operator turned on automatic admission). A pin is replaced only by a strictly stronger one.
"""

from __future__ import annotations

from typing import Literal, get_args

PinSource = Literal["config", "operator", "attested", "registry", "peer", "first-sight"]
ORDER: tuple[PinSource, ...] = get_args(PinSource)


def rank(source: str) -> int:
    """Smaller is stronger; an unknown source ranks below every known one."""
    return ORDER.index(source) if source in ORDER else len(ORDER)


def stronger(new: str, held: str) -> bool:
    """Whether a pin from ``new`` outranks one from ``held``."""
    return rank(new) < rank(held)

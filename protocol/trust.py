"""Signed trust attestations (protocol v1): ``from`` says how far it trusts ``to``, for what, until when.

Signed by ``from``'s key in the ``ledger/trust/v1`` context over the canonical encoding of every
field but ``sig``. For one (from, to) pair the attestation with the latest ``issued_at`` holds; a
revocation is an attestation with level 0.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol.canonical import canonical
from protocol.models import LedgerId, Millis, Signature
from protocol.signing import TRUST, KeyPair, verify

TrustType = Literal["full", "partial", "query-only", "sync-only"]
SYNC_TYPES: frozenset[str] = frozenset({"full", "partial", "sync-only"})
QUERY_TYPES: frozenset[str] = frozenset({"full", "partial", "query-only"})


class TrustAttestation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, populate_by_name=True)

    source: LedgerId = Field(alias="from")
    target: LedgerId = Field(alias="to")
    level: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    type: TrustType
    expires_at: Millis
    issued_at: Millis
    sig: Signature

    def signed_bytes(self) -> bytes:
        return canonical({"kind": "trust", **self.model_dump(by_alias=True, exclude={"sig"})})

    def verify(self, public_key: bytes) -> None:
        """Raise BadSignature unless ``public_key`` (the key pinned for ``from``) signed it."""
        verify(public_key, TRUST, self.signed_bytes(), bytes.fromhex(self.sig))

    def wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


def attest(
    keys: KeyPair, source: str, target: str, level: float, type_: str, expires_at: int, issued_at: int
) -> TrustAttestation:
    unsigned = TrustAttestation.model_validate(
        {"from": source, "to": target, "level": float(level), "type": type_, "expires_at": expires_at,
         "issued_at": issued_at, "sig": "0" * 128}
    )  # fmt: skip
    return unsigned.model_copy(update={"sig": keys.sign(TRUST, unsigned.signed_bytes()).hex()})

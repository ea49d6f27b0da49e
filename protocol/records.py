"""Signed node records (protocol v1): how a node describes itself to a registry and to other nodes.

A record is signed by the node's key in the ``ledger/node-info/v1`` context over the canonical
encoding of every field but ``sig``. Anyone holding the record can check it against the key it
names and against the key they have pinned for its ``ledger_id``. A key rotation is a statement
signed by the old key naming the new one.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from protocol.canonical import canonical
from protocol.models import HASH_PATTERN, SIG_PATTERN, LedgerId, Millis, Signature
from protocol.signing import NODE_INFO, KeyPair, verify

# printable ASCII only: a URL library rewrites other characters (IDNA maps full-width digits and
# ideographic dots to ASCII), so a URL in them is not the URL a node would contact
Url = Annotated[str, StringConstraints(pattern=r"^https?://[!-.0-~]+(/[!-~]*)?$", max_length=2048)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Capability = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,31}$")]
PublicKey = Annotated[str, StringConstraints(pattern=HASH_PATTERN)]

_RECORD = ConfigDict(frozen=True, extra="forbid", strict=True)


class NodeMetadata(BaseModel):
    model_config = _RECORD

    version: Annotated[str, StringConstraints(max_length=32)] = ""
    streams: Annotated[
        list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]{1,64}$")]], Field(max_length=64)
    ] = []
    region: Annotated[str, StringConstraints(max_length=64)] = ""


class NodeRecord(BaseModel):
    """What a node says about itself, signed by its key."""

    model_config = _RECORD

    ledger_id: LedgerId
    name: Name
    endpoints: Annotated[list[Url], Field(min_length=1, max_length=4)]
    public_key: PublicKey
    capabilities: Annotated[list[Capability], Field(max_length=16)] = []
    metadata: NodeMetadata = NodeMetadata()
    issued_at: Millis
    sig: Annotated[str, StringConstraints(pattern=SIG_PATTERN)]

    def signed_bytes(self) -> bytes:
        return record_bytes(self.model_dump(exclude={"sig"}))

    def verify(self) -> None:
        """Raise BadSignature unless the record is signed by the key it names."""
        verify(bytes.fromhex(self.public_key), NODE_INFO, self.signed_bytes(), bytes.fromhex(self.sig))


def record_bytes(fields: dict[str, Any]) -> bytes:
    return canonical({"kind": "node-record", **fields})


def sign_record(keys: KeyPair, **fields: Any) -> NodeRecord:
    """A record for ``fields`` (all but ``public_key`` and ``sig``), signed by ``keys``."""
    unsigned = NodeRecord.model_validate({**fields, "public_key": keys.public_key.hex(), "sig": "0" * 128})
    sig = keys.sign(NODE_INFO, unsigned.signed_bytes())
    return unsigned.model_copy(update={"sig": sig.hex()})


class KeyRotation(BaseModel):
    """The old key's statement that ``ledger_id`` now belongs to ``new_public_key``."""

    model_config = _RECORD

    ledger_id: LedgerId
    old_public_key: PublicKey
    new_public_key: PublicKey
    issued_at: Millis
    sig: Signature

    def signed_bytes(self) -> bytes:
        return canonical({"kind": "key-rotation", **self.model_dump(exclude={"sig"})})

    def verify(self) -> None:
        verify(bytes.fromhex(self.old_public_key), NODE_INFO, self.signed_bytes(), bytes.fromhex(self.sig))


def sign_rotation(old: KeyPair, ledger_id: str, new_public_key: bytes, issued_at: int) -> KeyRotation:
    unsigned = KeyRotation(ledger_id=ledger_id, old_public_key=old.public_key.hex(),
                           new_public_key=new_public_key.hex(), issued_at=issued_at, sig="0" * 128)  # fmt: skip
    return unsigned.model_copy(update={"sig": old.sign(NODE_INFO, unsigned.signed_bytes()).hex()})

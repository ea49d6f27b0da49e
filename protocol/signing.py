"""Ed25519 keys and domain-separated signatures.

Every signed message is ``context || 0x00 || message``, with a context naming its purpose, so a
signature made for one purpose never verifies for another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from nacl.bindings import (
    crypto_sign,
    crypto_sign_BYTES,
    crypto_sign_open,
    crypto_sign_seed_keypair,
    crypto_sign_SEEDBYTES,
)
from nacl.exceptions import BadSignatureError, CryptoError

from protocol.errors import BadSignature, InvalidEntry

ENTRY = b"ledger/entry/v1"
CHECKPOINT = b"ledger/checkpoint/v1"
NODE_INFO = b"ledger/node-info/v1"
TRUST = b"ledger/trust/v1"
REQUEST = b"ledger/request/v1"

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = crypto_sign_BYTES


def message(context: bytes, payload: bytes) -> bytes:
    """The bytes actually signed for ``payload`` under ``context``."""
    return context + b"\x00" + payload


@dataclass(frozen=True)
class KeyPair:
    """An Ed25519 key pair made from a 32-byte seed. The seed never leaves this object's owner."""

    seed: bytes = field(repr=False)
    public_key: bytes = field(init=False)
    _secret: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.seed) != crypto_sign_SEEDBYTES:
            raise InvalidEntry("an Ed25519 seed is 32 bytes")
        public, secret = crypto_sign_seed_keypair(self.seed)
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "_secret", secret)

    def sign(self, context: bytes, payload: bytes) -> bytes:
        """Sign ``payload`` under ``context``; returns the 64-byte detached signature."""
        return crypto_sign(message(context, payload), self._secret)[:SIGNATURE_BYTES]


def verify(public_key: bytes, context: bytes, payload: bytes, signature: bytes) -> None:
    """Raise BadSignature unless ``signature`` is ``public_key``'s over ``payload`` in ``context``."""
    verify_message(public_key, message(context, payload), signature)


def verify_message(public_key: bytes, signed: bytes, signature: bytes) -> None:
    """Raise BadSignature unless ``signature`` is ``public_key``'s Ed25519 signature over ``signed``.

    The rule is libsodium's (``crypto_sign_open``): RFC 8032 verification without the cofactor,
    ``[S]B = R + [k]A`` compared as encodings, and refused outright: ``S`` not below the group
    order (a non-canonical signature), ``R`` or ``A`` of small order, ``A`` not canonically
    encoded. So a signature has one valid encoding, and no key verifies signatures it did not make.
    """
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        raise BadSignature("signature or public key has the wrong length")
    try:
        crypto_sign_open(signature + signed, public_key)
    except (BadSignatureError, CryptoError, ValueError) as exc:
        raise BadSignature("signature does not verify") from exc


def fingerprint(public_key: bytes) -> str:
    """A short, stable name for a public key: the first 16 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:32]

"""The implementation reproduces the published vectors, and the vectors verify."""

from __future__ import annotations

import orjson
import pytest

from protocol.canonical import canonical
from protocol.entry import (
    GENESIS_DIGEST,
    content_bytes,
    entry_hash,
    next_sig_digest,
    verify_checkpoint,
    verify_hash_signature,
)
from protocol.errors import BadSignature, InvalidEntry
from protocol.limits import encode_content
from protocol.models import Entry
from protocol.signing import KeyPair
from protocol.vectors import DIRECTORY, TEST_SEED
from protocol.vectors.generate import build

CHAIN = orjson.loads((DIRECTORY / "entries.json").read_bytes())


def test_files_on_disk_are_what_the_generator_writes() -> None:
    for name, content in build().items():
        assert (DIRECTORY / name).read_bytes() == content, f"{name} is stale: python -m protocol.vectors.generate"


def test_published_key() -> None:
    assert KeyPair(TEST_SEED).public_key.hex() == CHAIN["public_key"]


def test_entry_chain_verifies_from_its_fields() -> None:
    key = bytes.fromhex(CHAIN["public_key"])
    prev, digest = None, GENESIS_DIGEST
    for case in CHAIN["entries"]:
        e = Entry.model_validate(case["entry"])
        fields = (e.ledger_id, e.seq, e.id, e.stream, e.type, e.issuer_oid, e.subject_oid, e.key, e.timestamp,
                  canonical(e.payload), None if e.meta is None else canonical(e.meta), prev)  # fmt: skip
        assert content_bytes(*fields).decode() == case["content_bytes"]
        assert entry_hash(*fields).hex() == e.hash
        assert e.prev_hash == (None if prev is None else prev.hex())
        verify_hash_signature(key, bytes.fromhex(e.hash), bytes.fromhex(e.sig))
        digest = next_sig_digest(digest, bytes.fromhex(e.sig))
        assert digest.hex() == case["sig_digest"]
        prev = bytes.fromhex(e.hash)
    cp = CHAIN["checkpoint"]
    verify_checkpoint(key, cp["ledger_id"], cp["seq"], bytes.fromhex(cp["hash"]), bytes.fromhex(cp["sig_digest"]),
                      cp["timestamp"], bytes.fromhex(cp["sig"]))  # fmt: skip


def test_signatures_are_domain_separated() -> None:
    key = bytes.fromhex(CHAIN["public_key"])
    cp = CHAIN["checkpoint"]
    # the checkpoint signature is not a valid entry signature over the same head hash
    with pytest.raises(BadSignature):
        verify_hash_signature(key, bytes.fromhex(cp["hash"]), bytes.fromhex(cp["sig"]))


def test_a_flipped_bit_fails_the_signature() -> None:
    key = bytes.fromhex(CHAIN["public_key"])
    e = CHAIN["entries"][0]["entry"]
    sig = bytearray(bytes.fromhex(e["sig"]))
    sig[10] ^= 1
    with pytest.raises(BadSignature):
        verify_hash_signature(key, bytes.fromhex(e["hash"]), bytes(sig))


def test_refused_vectors_are_refused_for_the_reason_they_give() -> None:
    cases = orjson.loads((DIRECTORY / "refused.json").read_bytes())
    assert len(cases) >= 10
    for case in cases:
        with pytest.raises(InvalidEntry) as refused:
            encode_content(orjson.loads(case["payload"]), None)
        assert (refused.value.code, str(refused.value)) == (case["refused"], case["reason"]), case["payload"]

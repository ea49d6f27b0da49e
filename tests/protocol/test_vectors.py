"""The implementation reproduces the published vectors, and the vectors verify."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from protocol import jsontext
from protocol.canonical import canonical
from protocol.entry import (
    GENESIS_DIGEST,
    checkpoint_bytes,
    content_bytes,
    entry_hash,
    next_sig_digest,
    verify_checkpoint,
    verify_hash_signature,
)
from protocol.errors import BadSignature, InvalidEntry
from protocol.limits import encode_content
from protocol.models import Entry
from protocol.requests import request_bytes, verify_request
from protocol.signing import KeyPair, verify_message
from protocol.vectors import DIRECTORY, TEST_SEED
from protocol.vectors.cases import draft_verdict, import_verdict, range_verdict
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
        assert case["signed_bytes"] == (b"ledger/entry/v1\x00" + bytes.fromhex(e.hash)).hex()
        verify_message(key, bytes.fromhex(case["signed_bytes"]), bytes.fromhex(e.sig))
        digest = next_sig_digest(digest, bytes.fromhex(e.sig))
        assert digest.hex() == case["sig_digest"]
        prev = bytes.fromhex(e.hash)
    by_seq = {case["entry"]["seq"]: case for case in CHAIN["entries"]}
    assert [cp["seq"] for cp in CHAIN["checkpoints"]] == [2, 3]  # one in the middle, one over the head
    for cp in CHAIN["checkpoints"]:
        covered = by_seq[cp["seq"]]
        assert (cp["hash"], cp["sig_digest"], cp["timestamp"]) == (
            covered["entry"]["hash"], covered["sig_digest"], covered["entry"]["timestamp"])  # fmt: skip
        assert checkpoint_bytes(cp["ledger_id"], cp["seq"], bytes.fromhex(cp["hash"]), bytes.fromhex(cp["sig_digest"]),
                                cp["timestamp"]).decode() == cp["signed_bytes"]  # fmt: skip
        verify_checkpoint(key, cp["ledger_id"], cp["seq"], bytes.fromhex(cp["hash"]),
                          bytes.fromhex(cp["sig_digest"]), cp["timestamp"], bytes.fromhex(cp["sig"]))  # fmt: skip


def test_absent_optional_fields_hash_as_null() -> None:
    absent = CHAIN["absent_optional_fields"]
    assert not {"issuer_oid", "subject_oid", "key", "meta"} & set(absent)
    e = Entry.model_validate(absent)
    fields = (e.ledger_id, e.seq, e.id, e.stream, e.type, e.issuer_oid, e.subject_oid, e.key, e.timestamp,
              canonical(e.payload), None, bytes.fromhex(e.prev_hash or ""))  # fmt: skip
    assert entry_hash(*fields).hex() == e.hash == CHAIN["entries"][-1]["entry"]["hash"]


def test_signatures_are_domain_separated() -> None:
    key = bytes.fromhex(CHAIN["public_key"])
    cp = CHAIN["checkpoints"][-1]
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
            encode_content(jsontext.loads(case["payload"]), None)
        assert (refused.value.code, str(refused.value)) == (case["refused"], case["reason"]), case["payload"]


def _load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = orjson.loads((DIRECTORY / name).read_bytes())
    return cases


def _verdict(case: dict[str, Any]) -> dict[str, Any]:
    return {k: case[k] for k in ("result", "refused", "reason", "head", "imported") if k in case}


@pytest.mark.parametrize("case", _load("limits.json"), ids=lambda case: case["name"])
def test_limit_vectors_at_the_limit_are_accepted_and_one_past_refused(case: dict[str, Any]) -> None:
    assert draft_verdict(case["draft"]) == _verdict(case)
    assert case["result"] == ("accepted" if case["case"] == "at" else "refused")


def test_every_limit_on_a_draft_has_vectors() -> None:
    covered = {case["limit"] for case in _load("limits.json")}
    assert covered == {"max_payload_bytes", "max_depth", "max_string_chars", "max_key_chars", "max_field_chars"}


@pytest.mark.parametrize("case", _load("chains.json"), ids=lambda case: case["name"])
def test_chain_vectors_get_their_verdict(case: dict[str, Any]) -> None:
    assert range_verdict(case) == _verdict(case)
    assert case.get("refused", case["result"]) == case["expect"]


def test_negative_chain_vectors_cover_every_rule() -> None:
    codes = {case.get("refused") for case in _load("chains.json")}
    assert codes >= {"hash-mismatch", "chain-broken", "timestamp-decreasing", "duplicate-id", "bad-signature",
                     "checkpoint-mismatch", "not-canonical", "limit-exceeded", "duplicate-member"}  # fmt: skip


@pytest.mark.parametrize("case", _load("exports.json"), ids=lambda case: case["name"])
def test_export_vectors_get_their_verdict(case: dict[str, Any]) -> None:
    assert import_verdict(case) == _verdict(case)


def test_the_export_file_is_the_first_export_case() -> None:
    lines = (DIRECTORY / "export.jsonl").read_text().splitlines()
    first = _load("exports.json")[0]
    assert lines == first["lines"] and first["result"] == "accepted" and first["imported"] == 4


@pytest.mark.parametrize("case", _load("signatures.json"), ids=lambda case: case["name"])
def test_signature_vectors(case: dict[str, Any]) -> None:
    args = (bytes.fromhex(case["public_key"]), bytes.fromhex(case["message"]), bytes.fromhex(case["sig"]))
    if case["valid"]:
        verify_message(*args)
    else:
        with pytest.raises(BadSignature):
            verify_message(*args)


def test_signed_request_vector() -> None:
    r = orjson.loads((DIRECTORY / "request.json").read_bytes())
    key = bytes.fromhex(r["public_key"])
    signed = request_bytes(r["ledger_id"], r["method"], r["path"], r["body"].encode(), r["timestamp"], r["nonce"])
    assert signed.decode() == r["signed_bytes"]
    assert hashlib.sha256(r["body"].encode()).hexdigest() == r["body_sha256"] == orjson.loads(signed)["body_sha256"]
    h = r["headers"]
    verify_request(key, h["X-Ledger-Id"], r["method"], r["path"], r["body"].encode(), int(h["X-Ledger-Timestamp"]),
                   h["X-Ledger-Nonce"], bytes.fromhex(h["X-Ledger-Signature"]))  # fmt: skip
    for variant in r["variants"]:
        f = {**r, **variant["change"]}
        args = (key, f["ledger_id"], f["method"], f["path"], f["body"].encode(), f["timestamp"], f["nonce"],
                bytes.fromhex(h["X-Ledger-Signature"]))  # fmt: skip
        if variant["valid"]:
            verify_request(*args)
        else:
            with pytest.raises(BadSignature):
                verify_request(*args)

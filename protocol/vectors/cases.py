"""The cases behind limits.json, chains.json, signatures.json, exports.json and request.json, and
the verdicts of the reference implementation on them.

Every refused case names the rule it breaks (``expect``); the generator checks that the reference
implementation refuses it with that code, so a vector never passes for an unrelated reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp
from pydantic import ValidationError

from protocol import jsontext
from protocol.canonical import canonical
from protocol.chain import EMPTY, ChainState, verify_range
from protocol.errors import ProtocolError
from protocol.limits import DEFAULT_LIMITS, encode_content
from protocol.models import Checkpoint, Entry, EntryDraft, Page
from protocol.requests import request_bytes
from protocol.signing import CHECKPOINT, REQUEST, KeyPair, message, verify_message
from protocol.vectors.build import Signed, checkpoint_of, sign_chain, wire

LEDGER = "vector-ledger"
T0 = 1735689600000
ORDER = 2**252 + 27742317777372353535851937790883648493  # L, the order of the Ed25519 base point
OTHER_KEY = KeyPair(bytes([7]) * 32)


def _id(n: int) -> str:
    return f"01930000-0000-7000-8000-{n:012d}"


def _drafts(n: int, **override: Any) -> list[dict[str, Any]]:
    return [{"id": _id(i), "timestamp": T0 + i, "payload": {"n": i}, **override} for i in range(1, n + 1)]


# --- limits ---------------------------------------------------------------------------------------


def limit_cases() -> list[dict[str, Any]]:
    """For each limit on a draft: a draft exactly at it, and one just past it."""
    limits = DEFAULT_LIMITS
    cases = []

    def pair(limit: str, unit: str, at: dict[str, Any], past: dict[str, Any], expect: str) -> None:
        for which, draft in (("at", at), ("past", past)):
            text = orjson.dumps({"stream": "s", "type": "t", **draft}, option=orjson.OPT_INDENT_2).decode()
            item = {"name": f"{limit}-{which}", "limit": limit, "unit": unit, "case": which, "draft": text,
                    "expect": "accepted" if which == "at" else expect}  # fmt: skip
            cases.append({**item, **_checked(item, lambda case: draft_verdict(case["draft"]))})

    # canonical bytes of payload + meta: the draft's own text is larger (indented); é is 2 bytes
    big = {"a": "x" * 16000, "b": "x" * 16000, "c": "x" * 16000}
    rest = limits.max_payload_bytes - len(canonical(big)) - len(canonical({"d": ""}))
    pair("max_payload_bytes", "bytes of the canonical encodings of payload and meta together",
         {"payload": big, "meta": {"d": "é" * (rest // 2) + "x" * (rest % 2)}},
         {"payload": big, "meta": {"d": "é" * (rest // 2) + "x" * (rest % 2 + 1)}}, "limit-exceeded")  # fmt: skip

    def nested(levels: int) -> Any:
        value: Any = 1
        for level in range(levels - 1):  # the payload object itself is the first level
            value = [value] if level % 2 else {"d": value}
        return {"d": value}

    pair(
        "max_depth",
        "levels of objects and arrays, the payload or meta object itself being level 1",
        {"payload": nested(limits.max_depth)},
        {"payload": nested(limits.max_depth + 1)},
        "limit-exceeded",
    )
    half = limits.max_string_chars // 2
    pair("max_string_chars", "Unicode code points (an astral character is one, not two UTF-16 units)",
         {"payload": {"s": "😀" * half + "a" * half}}, {"payload": {"s": "😀" * half + "a" * (half + 1)}},
         "limit-exceeded")  # fmt: skip
    half = limits.max_key_chars // 2
    pair("max_key_chars", "Unicode code points of an object member name",
         {"payload": {"😀" * half + "k" * half: 1}}, {"payload": {"😀" * half + "k" * (half + 1): 1}},
         "limit-exceeded")  # fmt: skip
    pair("max_field_chars", "Unicode code points of issuer_oid, subject_oid and key",
         {"payload": {}, "issuer_oid": "é" * limits.max_field_chars},
         {"payload": {}, "issuer_oid": "é" * (limits.max_field_chars + 1)}, "invalid-entry")  # fmt: skip
    return cases


def draft_verdict(text: str) -> dict[str, Any]:
    """What a node answers to appending the draft ``text``: accepted, or the refusal."""
    try:
        draft = EntryDraft.model_validate(jsontext.loads(text))
        encode_content(draft.payload, draft.meta)
    except ValidationError as exc:
        return {"result": "refused", "refused": "invalid-entry", "reason": _first(exc)}
    except ProtocolError as exc:
        return {"result": "refused", "refused": exc.code, "reason": str(exc)}
    return {"result": "accepted"}


def _first(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    return ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]


# --- ranges of a chain ----------------------------------------------------------------------------


def chain_cases(keys: KeyPair) -> list[dict[str, Any]]:
    """Ranges a receiver gets (from a held state), each with its verdict."""
    base = sign_chain(keys, LEDGER, _drafts(4))
    cp2, cp3 = (checkpoint_of(keys, base[i].state, LEDGER) for i in (1, 2))
    cases: list[dict[str, Any]] = []

    def case(name: str, expect: str, entries: list[Any], checkpoints: list[Checkpoint], **extra: Any) -> None:
        page = {"ledger_id": LEDGER, "entries": [e if isinstance(e, dict) else wire(e) for e in entries],
                "checkpoints": [c.model_dump() for c in checkpoints]}  # fmt: skip
        item = {"name": name, "expect": expect, "public_key": keys.public_key.hex(), "held": _state(EMPTY),
                "taken_ids": [], "page": page, **extra}  # fmt: skip
        cases.append({**item, **_checked(item, range_verdict)})

    entries = [s.entry for s in base]
    case("checkpoint-in-the-middle-and-uncovered-tail", "accepted", entries, [cp2, cp3])
    case("from-a-held-state", "accepted", entries[2:], [cp3], held=_state(base[1].state),
         taken_ids=[_id(1), _id(2)])  # fmt: skip
    bare = {k: v for k, v in wire(entries[0]).items() if k not in ("issuer_oid", "subject_oid", "key", "meta")}
    case("absent-optional-fields-are-null", "accepted", [bare, *entries[1:]], [cp2, cp3])
    tampered = wire(entries[1]) | {"payload": {"n": 20}}
    case("payload-changed", "hash-mismatch", [entries[0], tampered, entries[2]], [cp3])
    case("seq-gap", "chain-broken", [entries[0], entries[2]], [cp3])
    wrong_prev = sign_chain(keys, LEDGER, _drafts(2)[1:], ChainState(1, bytes(32), base[0].state.digest, T0 + 1))
    case("prev-hash-not-the-previous-hash", "chain-broken", [entries[0], wrong_prev[0].entry], [])
    backwards = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0 + 5, "payload": {}},
                                          {"id": _id(2), "timestamp": T0 + 4, "payload": {}}])  # fmt: skip
    case("timestamp-decreasing", "timestamp-decreasing", [s.entry for s in backwards],
         [checkpoint_of(keys, backwards[1].state, LEDGER)])  # fmt: skip
    twice = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0, "payload": {}},
                                      {"id": _id(1), "timestamp": T0, "payload": {}}])  # fmt: skip
    case("id-twice-in-the-range", "duplicate-id", [s.entry for s in twice],
         [checkpoint_of(keys, twice[1].state, LEDGER)])  # fmt: skip
    reused = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0 + 3, "payload": {}}], base[1].state)
    case("id-already-held", "duplicate-id", [reused[0].entry], [checkpoint_of(keys, reused[0].state, LEDGER)],
         held=_state(base[1].state), taken_ids=[_id(1), _id(2)])  # fmt: skip
    bad_tail = wire(entries[3]) | {"sig": entries[2].sig}
    case("uncovered-entry-with-a-bad-signature", "bad-signature", [*entries[:3], bad_tail], [cp2, cp3])
    swapped = wire(entries[1]) | {"sig": entries[0].sig}
    case("signature-swapped-under-a-checkpoint", "checkpoint-mismatch", [entries[0], swapped, entries[2]], [cp3])
    case("checkpoint-dated-otherwise", "checkpoint-mismatch", entries[:3],
         [checkpoint_of(keys, base[2].state, LEDGER, timestamp=T0 + 99)])  # fmt: skip
    case("two-checkpoints-at-one-seq", "checkpoint-mismatch", entries[:3], [cp2, cp2, cp3])
    case("checkpoint-by-another-key", "bad-signature", entries[:3], [checkpoint_of(OTHER_KEY, base[2].state, LEDGER)])
    huge = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0, "payload": {"x": 2**53}}])
    case("number-outside-the-range-signed", "not-canonical", [huge[0].entry],
         [checkpoint_of(keys, huge[0].state, LEDGER)])  # fmt: skip
    deep = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0, "payload": _deep(33)}])
    case("payload-nested-too-deep-signed", "limit-exceeded", [deep[0].entry],
         [checkpoint_of(keys, deep[0].state, LEDGER)])  # fmt: skip
    # the duplicate carries the signed value, so a parser keeping either one accepts the entry
    page = orjson.dumps({"ledger_id": LEDGER, "entries": [wire(entries[0])], "checkpoints": []}).decode()
    text = page.replace('"payload":{"n":1}', '"payload":{"n":1,"n":1}')
    case("member-named-twice", "duplicate-member", [entries[0]], [], page_text=text)
    return cases


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"d": value}
    return value


def _state(state: ChainState) -> dict[str, Any]:
    return {"seq": state.seq, "hash": None if state.hash is None else state.hash.hex(),
            "sig_digest": state.digest.hex(), "timestamp": state.timestamp}  # fmt: skip


def range_verdict(case: dict[str, Any]) -> dict[str, Any]:
    """Verify a chains.json case as a receiver does: parse, validate, verify_range."""
    held = case["held"]
    state = ChainState(held["seq"], None if held["hash"] is None else bytes.fromhex(held["hash"]),
                       bytes.fromhex(held["sig_digest"]), held["timestamp"])  # fmt: skip
    try:
        data = jsontext.loads(case["page_text"]) if "page_text" in case else case["page"]
        page = Page.model_validate(data)
        head = verify_range(bytes.fromhex(case["public_key"]), page.entries, page.checkpoints, state,
                            taken_ids=set(case["taken_ids"]))  # fmt: skip
    except ValidationError as exc:
        return {"result": "refused", "refused": "invalid-entry", "reason": _first(exc)}
    except ProtocolError as exc:
        return {"result": "refused", "refused": exc.code, "reason": str(exc)}
    return {"result": "accepted", "head": _state(head)}


def _checked(case: dict[str, Any], verdict: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    got = verdict(case)
    if got.get("refused", got["result"]) != case["expect"]:
        raise AssertionError(f"vector {case['name']}: expected {case['expect']}, got {got}")
    return got


# --- signatures -----------------------------------------------------------------------------------


def signature_cases(keys: KeyPair) -> list[dict[str, Any]]:
    """Ed25519 cases under the protocol's rule (libsodium's strict verification)."""
    signed = message(CHECKPOINT, b"vector")
    sig = keys.sign(CHECKPOINT, b"vector")
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    high_s = r + (s + ORDER).to_bytes(32, "little")
    identity = (1).to_bytes(32, "little")  # the neutral point: of small order
    scalar = (5).to_bytes(32, "little")
    # with A the neutral point, [S]B = R + [k]A holds for R = [S]B whatever the message: a lax
    # verifier accepts this "signature" of anything
    forged = crypto_scalarmult_ed25519_base_noclamp(scalar) + scalar
    cases = [
        {"name": "valid", "public_key": keys.public_key.hex(), "message": signed.hex(), "sig": sig.hex(),
         "valid": True, "why": "signed by the key"},
        {"name": "non-canonical-s", "public_key": keys.public_key.hex(), "message": signed.hex(),
         "sig": high_s.hex(), "valid": False,
         "why": "S + L in place of S: the same point equation, refused because S is not below L"},
        {"name": "small-order-key", "public_key": identity.hex(), "message": signed.hex(), "sig": forged.hex(),
         "valid": False, "why": "the key is the neutral point (small order): refused whatever the signature"},
        {"name": "other-context", "public_key": keys.public_key.hex(), "message": message(REQUEST, b"vector").hex(),
         "sig": sig.hex(), "valid": False, "why": "the signature was made in the checkpoint context"},
    ]  # fmt: skip
    for case in cases:
        if _signature_valid(case) != case["valid"]:
            raise AssertionError(f"signature vector {case['name']} does not hold")
    return cases


def _signature_valid(case: dict[str, Any]) -> bool:
    try:
        verify_message(bytes.fromhex(case["public_key"]), bytes.fromhex(case["message"]), bytes.fromhex(case["sig"]))
    except ProtocolError:
        return False
    return True


# --- export files ---------------------------------------------------------------------------------


def export_cases(keys: KeyPair) -> list[dict[str, Any]]:
    """Export files (as lines) with the result of importing each into an empty node."""
    header = orjson.dumps({"format": "ledger-export/1", "ledger_id": LEDGER, "public_key": keys.public_key.hex()})
    cases: list[dict[str, Any]] = []

    def lines_of(chain: list[Signed], checkpoint_seqs: tuple[int, ...], change: Any = None) -> list[str]:
        out = [header.decode()]
        for s in chain:
            out.append(orjson.dumps({"entry": wire(s.entry) | (change or {}).get(s.entry.seq, {})}).decode())
            if s.state.seq in checkpoint_seqs:
                out.append(orjson.dumps({"checkpoint": checkpoint_of(keys, s.state, LEDGER).model_dump()}).decode())
        return out

    def case(name: str, expect: str, lines: list[str]) -> None:
        item = {"name": name, "expect": expect, "lines": lines}
        cases.append({**item, **_checked(item, import_verdict)})

    base = sign_chain(keys, LEDGER, _drafts(4))
    case("checkpoint-in-the-middle-and-uncovered-tail", "accepted", lines_of(base, (2, 3)))
    twice = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0, "payload": {}},
                                      {"id": _id(1), "timestamp": T0, "payload": {}}])  # fmt: skip
    case("id-twice", "duplicate-id", lines_of(twice, (2,)))
    doubled = lines_of(base, (2, 3))
    case("checkpoint-line-twice", "checkpoint-mismatch", doubled[:4] + doubled[3:])
    bad_tail = lines_of(base, (2, 3), {4: {"sig": base[2].entry.sig}})
    case("uncovered-entry-with-a-bad-signature", "bad-signature", bad_tail)
    huge = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0, "payload": {"x": 2**53}}])
    case("number-outside-the-range-signed", "not-canonical", lines_of(huge, (1,)))
    deep = sign_chain(keys, LEDGER, [{"id": _id(1), "timestamp": T0, "payload": _deep(33)}])
    case("payload-nested-too-deep-signed", "limit-exceeded", lines_of(deep, (1,)))
    named_twice = lines_of(base, (2, 3))
    named_twice[1] = named_twice[1].replace('"payload":{"n":1}', '"payload":{"n":1,"n":1}')
    case("member-named-twice", "duplicate-member", named_twice)
    return cases


def import_verdict(case: dict[str, Any]) -> dict[str, Any]:
    """Import an export file's lines into an empty node, as the reference importer verifies them."""
    try:
        lines = [jsontext.loads(line) for line in case["lines"]]
        header, items = lines[0], lines[1:]
        entries = [Entry.model_validate(item["entry"]) for item in items if "entry" in item]
        checkpoints = [Checkpoint.model_validate(item["checkpoint"]) for item in items if "checkpoint" in item]
        head = verify_range(bytes.fromhex(header["public_key"]), entries, checkpoints)
    except ValidationError as exc:
        return {"result": "refused", "refused": "invalid-entry", "reason": _first(exc)}
    except ProtocolError as exc:
        return {"result": "refused", "refused": exc.code, "reason": str(exc)}
    return {"result": "accepted", "imported": len(entries), "head": _state(head)}


# --- signed request -------------------------------------------------------------------------------


def request_case(keys: KeyPair) -> dict[str, Any]:
    """A signed push request with fixed timestamp and nonce, and variants that no longer verify."""
    fields: dict[str, Any] = {"ledger_id": LEDGER, "method": "POST", "path": f"/ledger/sync/push?ledger={LEDGER}",
              "body": '{"ledger_id":"vector-ledger","entries":[]}', "timestamp": T0,
              "nonce": bytes(range(16)).hex()}  # fmt: skip
    signed = request_bytes(fields["ledger_id"], fields["method"], fields["path"], fields["body"].encode(),
                           fields["timestamp"], fields["nonce"])  # fmt: skip
    sig = keys.sign(REQUEST, signed)
    variants: list[dict[str, Any]] = [
        {"change": {"path": f"/ledger/sync/push?ledger={LEDGER}&x=1"}, "valid": False},
        {"change": {"body": '{"ledger_id":"vector-ledger","entries":[] }'}, "valid": False},
        {"change": {"timestamp": T0 + 1}, "valid": False},
        {"change": {"method": "post"}, "valid": True},  # the method is signed in upper case
    ]
    for variant in variants:
        f = fields | variant["change"]
        again = request_bytes(f["ledger_id"], f["method"], f["path"], f["body"].encode(), f["timestamp"], f["nonce"])
        if _signature_valid({"public_key": keys.public_key.hex(), "message": message(REQUEST, again).hex(),
                             "sig": sig.hex()}) != variant["valid"]:  # fmt: skip
            raise AssertionError(f"request variant {variant} does not hold")
    return {
        "public_key": keys.public_key.hex(),
        **fields,
        "body_sha256": hashlib.sha256(fields["body"].encode()).hexdigest(),
        "signed_bytes": signed.decode(),
        "message": message(REQUEST, signed).hex(),
        "headers": {
            "X-Ledger-Id": LEDGER,
            "X-Ledger-Timestamp": str(T0),
            "X-Ledger-Nonce": fields["nonce"],
            "X-Ledger-Signature": sig.hex(),
        },  # fmt: skip
        "variants": variants,
    }

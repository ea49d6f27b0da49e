"""Write the protocol v1 test vectors: ``python -m protocol.vectors.generate [--check]``.

- ``canonical.json``: JSON inputs and their RFC 8785 bytes (as UTF-8 text) from the reference
  encoder.
- ``entries.json``: a three-entry chain of ledger ``vector-ledger`` signed with the published test
  seed (bytes 0..31): each entry's content bytes, hash, exact signed bytes, signature and running
  signature digest; a checkpoint in the middle of the chain and one over the head, with the bytes
  they sign; the last entry again with its optional fields absent (the same hash).
- ``refused.json``: payloads, as JSON text, that every node refuses, each with the error code and
  the reason this implementation gives (numbers outside ±(2^53-1) by value, duplicate names).
- ``limits.json``: for each limit on a draft, a draft exactly at it (accepted) and one past it.
- ``chains.json``: ranges of entries with checkpoints, as a receiver gets them (a page, or the lines
  of an import), each accepted (with the head it leads to) or refused (with the code and reason).
- ``signatures.json``: Ed25519 cases: what verifies, and the small-order key and non-canonical S
  that a lax verifier would accept and protocol v1 refuses.
- ``export.jsonl`` and ``exports.json``: an export file, and export files each with the result of
  importing it into an empty node.
- ``request.json``: a signed node-to-node request, its signed bytes and headers, and variants that
  fail.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from protocol import jsontext
from protocol.canonical import reference
from protocol.entry import (
    GENESIS_DIGEST,
    checkpoint_bytes,
    content_bytes,
    entry_hash,
    next_sig_digest,
    sign_checkpoint,
    sign_hash,
)
from protocol.errors import InvalidEntry
from protocol.limits import encode_content
from protocol.signing import ENTRY, KeyPair, message
from protocol.vectors import DIRECTORY, TEST_SEED
from protocol.vectors.cases import chain_cases, export_cases, limit_cases, request_case, signature_cases

CANONICAL_INPUTS: list[Any] = [
    {"b": 2, "a": 1},
    {"nested": {"z": [3, 2, 1], "a": None}, "flag": True, "off": False},
    {"numbers": [0, -0.0, 1.0, 1.5, -2.25, 56.0, 1e-7, 5e-324, 123456789012345, 0.1, 333333333.3333333]},
    {"bounds": [9007199254740991, -9007199254740991, 9007199254740991.0, -9007199254740991.0, 4503599627370495.5]},
    {"text": 'quote " backslash \\ newline \n tab \t bell \u0007 del \u007f'},
    {"unicode": "é ü 日本 😀 \u2028 \u2029"},
    {"\u20ac": "euro key", "\U0001f600": "astral key", "\ufb33": "hebrew key", "a": "ascii"},
    [],
    {},
    "plain string",
    [1, "two", [3, {"four": 4}]],
]

# payload texts refused by every node: the number rule applies to the value, not the text
REFUSED_PAYLOADS: list[str] = [
    '{"x":9007199254740992}',
    '{"x":-9007199254740992}',
    '{"x":9007199254740992.0}',
    '{"x":9.007199254740992e15}',
    '{"x":9007199254740993}',
    '{"x":9007199254740991.5}',
    '{"x":1e21}',
    '{"x":1e300}',
    '{"x":123456789012345678901234567890}',
    '{"a":[1,{"b":-1.7e308}]}',
    '{"x":1,"x":1}',
    '{"a":{"b":1,"c":{"b":2,"b":2}}}',
    '{"k":"v","\\u006b":"w"}',
]

ENTRY_DRAFTS: list[dict[str, Any]] = [
    {"id": "01930000-0000-7000-8000-000000000001", "stream": "proofs", "type": "proof",
     "issuer_oid": "oid:acme:org:vector", "subject_oid": "oid:acme:doc:1", "key": None,
     "timestamp": 1735689600000, "payload": {"amount": 12, "note": "first"}, "meta": None},
    {"id": "01930000-0000-7000-8000-000000000002", "stream": "assets", "type": "transfer",
     "issuer_oid": None, "subject_oid": "oid:acme:asset:7", "key": "asset-7",
     "timestamp": 1735689600001, "payload": {"from": "a", "to": "b", "share": 0.25}, "meta": {"tags": ["x"]}},
    {"id": "01930000-0000-7000-8000-000000000003", "stream": "proofs", "type": "proof",
     "issuer_oid": None, "subject_oid": None, "key": None,
     "timestamp": 1735689600001, "payload": {"text": "ünïcødé"}, "meta": None},
]  # fmt: skip
CHECKPOINT_SEQS = (2, 3)  # one in the middle of the chain, one over the head


def build() -> dict[str, bytes]:
    """Every vector file's bytes, by file name."""
    canonical_cases = [{"input": value, "canonical": reference(value).decode()} for value in CANONICAL_INPUTS]
    keys = KeyPair(TEST_SEED)
    ledger_id = "vector-ledger"
    prev: bytes | None = None
    digest = GENESIS_DIGEST
    entries: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    for seq, d in enumerate(ENTRY_DRAFTS, start=1):
        payload, meta = reference(d["payload"]), None if d["meta"] is None else reference(d["meta"])
        fields = (ledger_id, seq, d["id"], d["stream"], d["type"], d["issuer_oid"], d["subject_oid"], d["key"],
                  d["timestamp"], payload, meta, prev)  # fmt: skip
        h = entry_hash(*fields)
        sig = sign_hash(keys, h)
        digest = next_sig_digest(digest, sig)
        entries.append({
            "entry": {"v": 1, "ledger_id": ledger_id, "seq": seq, **d,
                      "prev_hash": None if prev is None else prev.hex(), "hash": h.hex(), "sig": sig.hex()},
            "content_bytes": content_bytes(*fields).decode(),
            "signed_bytes": message(ENTRY, h).hex(),
            "sig_digest": digest.hex(),
        })  # fmt: skip
        prev = h
        if seq in CHECKPOINT_SEQS:
            ts = d["timestamp"]
            checkpoints.append({
                "ledger_id": ledger_id, "seq": seq, "hash": h.hex(), "sig_digest": digest.hex(), "timestamp": ts,
                "signed_bytes": checkpoint_bytes(ledger_id, seq, h, digest, ts).decode(),
                "sig": sign_checkpoint(keys, ledger_id, seq, h, digest, ts).hex(),
            })  # fmt: skip
    last: dict[str, Any] = entries[-1]["entry"]
    absent = {name: value for name, value in last.items() if name not in ("issuer_oid", "subject_oid", "key", "meta")}
    refused = [_refusal(text) for text in REFUSED_PAYLOADS]
    chain = {"seed": TEST_SEED.hex(), "public_key": keys.public_key.hex(), "entries": entries,
             "checkpoints": checkpoints, "absent_optional_fields": absent}  # fmt: skip
    exports = export_cases(keys)
    return {
        "canonical.json": _dump(canonical_cases),
        "entries.json": _dump(chain),
        "refused.json": _dump(refused),
        "limits.json": _dump(limit_cases()),
        "chains.json": _dump(chain_cases(keys)),
        "signatures.json": _dump(signature_cases(keys)),
        "exports.json": _dump(exports),
        "export.jsonl": "".join(line + "\n" for line in exports[0]["lines"]).encode(),
        "request.json": _dump(request_case(keys)),
    }


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def _refusal(text: str) -> dict[str, str]:
    """A refused payload with the error code and reason the reference implementation gives."""
    try:
        encode_content(jsontext.loads(text), None)
    except InvalidEntry as exc:
        return {"payload": text, "refused": exc.code, "reason": str(exc)}
    raise AssertionError(f"{text} is accepted; it does not belong among the refused vectors")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the files on disk differ")
    args = parser.parse_args()
    stale = []
    for name, content in build().items():
        path = DIRECTORY / name
        if args.check:
            if not path.is_file() or path.read_bytes() != content:
                stale.append(name)
        else:
            path.write_bytes(content)
            print(f"wrote {path}")
    if stale:
        sys.exit(f"stale vectors: {', '.join(stale)}")


if __name__ == "__main__":
    main()

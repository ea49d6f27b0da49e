"""Microseconds per entry of each step of the append and sync paths, each measured alone.

    python -m bench.steps [--quick] [--entries N] [--base N]

Every step runs on the same bench entries (``bench.common.bench_draft``), on one thread, and is
timed over N entries (default 20,000), repeated 5 times; the median is reported in microseconds
per entry. The SQLite steps insert N rows in transactions of 1000 into a file database configured
as the node's (WAL, synchronous=NORMAL, so no fsync is counted; the node's default durability=full
adds one fsync per commit) that already holds ``--base`` rows (default 200,000), so each B-tree has
a realistic depth: first the primary key alone, then the primary key with each secondary index of
the schema, whose cost is the difference. These are costs of the steps, not a model of the
pipeline: signing runs on two threads and SQLite on its own thread in the node.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path
from typing import Any

import orjson

from bench.common import arguments, bench_draft, log, report
from node.ledger.chain import ChainVerifier
from node.ledger.wire import page_body
from node.ledger.writer import Draft
from node.storage.contract import LedgerRecord, StoredEntry
from node.storage.migrations import MIGRATIONS
from protocol.entry import (
    GENESIS_DIGEST,
    entry_hash,
    next_sig_digest,
    sign_checkpoint,
    sign_hash,
    verify_checkpoint,
    verify_hash_signature,
)
from protocol.limits import DEFAULT_LIMITS, encode_content
from protocol.models import EntryDraft, Page
from protocol.signing import KeyPair

REPEATS = 5
PAGE = 1000
KEYS = KeyPair(bytes(range(32)))
LEDGER = "bench"


def per_entry(step: Callable[[], Any], entries: int) -> float:
    """Median over REPEATS runs of ``step()`` (which handles ``entries`` entries), in µs per entry."""
    runs = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        step()
        runs.append(time.perf_counter() - started)
    return round(statistics.median(runs) / entries * 1e6, 2)


def chain_rows(n: int) -> list[StoredEntry]:
    """n signed entries of the bench ledger, as the writer stores them."""
    rows: list[StoredEntry] = []
    prev: bytes | None = None
    for i in range(n):
        d = bench_draft(i)
        payload = orjson.dumps(d.payload, option=orjson.OPT_SORT_KEYS).decode()
        fields = (LEDGER, i + 1, f"0190f0f0-0000-7000-8000-{i:012d}", d.stream, d.type, d.issuer_oid, d.subject_oid,
                  d.key, 1_760_000_000_000 + i, payload, None, prev)  # fmt: skip
        digest = entry_hash(*fields)
        rows.append(StoredEntry(*fields, digest, sign_hash(KEYS, digest)))
        prev = digest
    return rows


def append_steps(n: int, rows: list[StoredEntry]) -> dict[str, float]:
    drafts = [bench_draft(i) for i in range(n)]
    bodies = [orjson.dumps([d.model_dump(exclude_none=True) for d in drafts[s : s + PAGE]]) for s in range(0, n, PAGE)]
    prepared = [
        Draft(d.stream, d.type, r.payload, None, d.issuer_oid, d.subject_oid, d.key, None)
        for d, r in zip(drafts, rows, strict=True)
    ]
    hashes = [r.hash for r in rows]

    def http_parse() -> None:
        for body in bodies:
            [EntryDraft.model_validate(item) for item in orjson.loads(body)]

    def canonical() -> None:
        for d in drafts:
            payload, meta = encode_content(d.payload, d.meta, DEFAULT_LIMITS, "")
            Draft(d.stream, d.type, payload.decode(), None if meta is None else meta.decode(), d.issuer_oid,
                  d.subject_oid, d.key, d.id)  # fmt: skip

    def hash_() -> None:
        prev = None
        for i, d in enumerate(prepared):
            prev = entry_hash(LEDGER, i + 1, "0190f0f0-0000-7000-8000-000000000000", d.stream, d.type, d.issuer_oid,
                              d.subject_oid, d.key, 1_760_000_000_000, d.payload_json, d.meta_json, prev)  # fmt: skip

    def sign() -> None:
        for h in hashes:
            sign_hash(KEYS, h)

    def chain_digest() -> None:
        digest = GENESIS_DIGEST
        for r in rows:
            digest = next_sig_digest(digest, r.sig)

    def checkpoint() -> None:  # one per 1000 entries
        for r in rows[PAGE - 1 :: PAGE]:
            sign_checkpoint(KEYS, LEDGER, r.seq, r.hash, r.hash, r.timestamp)

    fields = [astuple(r) for r in rows]

    def rows_to_records() -> None:  # the writer builds the stored records from their fields
        [StoredEntry(*f) for f in fields]

    def answer() -> None:  # the batch answer: receipts, JSON
        for s in range(0, n, PAGE):
            orjson.dumps({"count": PAGE, "entries": [r.receipt() for r in rows[s : s + PAGE]]})

    return {
        "http_parse_json_and_models": per_entry(http_parse, n),
        "canonical_encoding": per_entry(canonical, n),
        "hash": per_entry(hash_, n),
        "sign": per_entry(sign, n),
        "sig_digest": per_entry(chain_digest, n),
        "checkpoint_sign": per_entry(checkpoint, n),
        "build_records": per_entry(rows_to_records, n),
        "http_answer_receipts": per_entry(answer, n),
    }


def sync_steps(n: int, rows: list[StoredEntry]) -> dict[str, float]:
    held = LedgerRecord(LEDGER, KEYS.public_key, True, n, rows[-1].hash, GENESIS_DIGEST, None, None, 0)
    pages = [rows[s : s + PAGE] for s in range(0, n, PAGE)]
    bodies = [orjson.dumps(page_body(held, page, [])) for page in pages]
    zipped = [gzip.compress(b, 6) for b in bodies]
    parsed = [Page.model_validate(orjson.loads(b)) for b in bodies]
    entries = [e for p in parsed for e in p.entries]

    def serve_rows_to_wire() -> None:
        for page in pages:
            orjson.dumps(page_body(held, page, []))

    def serve_gzip() -> None:
        for b in bodies:
            gzip.compress(b, 6)

    def receive_gunzip() -> None:
        for z in zipped:
            gzip.decompress(z)

    def receive_json() -> None:
        for b in bodies:
            orjson.loads(b)

    def receive_models() -> None:
        for b in bodies:
            Page.model_validate(orjson.loads(b))
        # minus receive_json below

    def chain_extend() -> None:  # hex decoding, canonical payload, hash, link, row tuple
        chain = ChainVerifier(KEYS.public_key, 0, None, GENESIS_DIGEST, full=False)
        for e in entries:
            chain.extend(e)

    def verify_signature() -> None:
        for e in entries:
            verify_hash_signature(KEYS.public_key, bytes.fromhex(e.hash), bytes.fromhex(e.sig))

    def verify_checkpoints() -> None:  # one per 1000 entries
        sig = sign_checkpoint(KEYS, LEDGER, 1000, rows[999].hash, GENESIS_DIGEST, 0)
        for _ in pages:
            verify_checkpoint(KEYS.public_key, LEDGER, 1000, rows[999].hash, GENESIS_DIGEST, 0, sig)

    json_us = per_entry(receive_json, n)
    return {
        "serve_rows_to_wire_json": per_entry(serve_rows_to_wire, n),
        "serve_gzip": per_entry(serve_gzip, n),
        "receive_gunzip": per_entry(receive_gunzip, n),
        "receive_json": json_us,
        "receive_models": round(per_entry(receive_models, n) - json_us, 2),
        "chain_extend_hash_and_canonical": per_entry(chain_extend, n),
        "verify_signature_full_mode": per_entry(verify_signature, n),
        "verify_checkpoint": per_entry(verify_checkpoints, n),
        "wire_entry_row": per_entry(lambda: [r.to_wire() for r in rows], n),
    }


def sqlite_steps(work: Path, n: int, base: int, records: list[StoredEntry]) -> dict[str, float]:
    rows = [astuple(r) for r in records]  # raw SQLite: the row as the backend binds it
    script = MIGRATIONS[0][2]
    table = re.search(r"CREATE TABLE entries \(.*?\) WITHOUT ROWID", script, re.S)
    assert table is not None
    found = re.findall(r"(CREATE (?:UNIQUE )?INDEX (entries_\w+) ON entries [^;]*)", script)
    indexes = {name: ddl for ddl, name in found}
    columns = len(rows[0])
    insert = f"INSERT INTO entries VALUES ({', '.join('?' * columns)})"

    def with_base(seq0: int, count: int) -> list[tuple[Any, ...]]:
        """``count`` rows with seq from seq0 (content cycled from ``rows``, unique ids)."""
        out = []
        for k in range(count):
            r = rows[k % len(rows)]
            seq = seq0 + k
            digest = hashlib.sha256(seq.to_bytes(8, "big")).digest()
            out.append((r[0], seq, f"{seq:036d}", *r[3:8], r[8] + seq, *r[9:12], digest, r[13]))
        return out

    base_rows = with_base(1, base)
    new_rows = with_base(base + 1, n)

    def measure(ddl: list[str], path: Path) -> float:
        """Seconds to insert ``new_rows`` in transactions of PAGE into a fresh table holding ``base_rows``."""
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "cache_size = -262144",
                           "temp_store = MEMORY", "wal_autocheckpoint = 20000"):  # fmt: skip
                conn.execute(f"PRAGMA {pragma}")
            conn.execute(table.group(0))
            for statement in ddl:
                conn.execute(statement)
            conn.execute("BEGIN")
            conn.executemany(insert, base_rows)
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # so no checkpoint of the base lands in the timing
            started = time.perf_counter()
            for s in range(0, n, PAGE):
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert, new_rows[s : s + PAGE])
                conn.execute("COMMIT")
            return time.perf_counter() - started
        finally:
            conn.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    configs = {"pk": [], **{name: [ddl] for name, ddl in indexes.items()}, "all": list(indexes.values())}
    runs: dict[str, list[float]] = {name: [] for name in configs}
    for attempt in range(3):  # interleaved, so a busy spell of the shared machine hits every configuration
        log(f"sqlite: round {attempt + 1}/3, primary key alone, with each of {len(indexes)} indexes, with all")
        for name, ddl in configs.items():
            runs[name].append(measure(ddl, work / f"steps-{name}.db"))
    us = {name: statistics.median(times) / n * 1e6 for name, times in runs.items()}
    figures = {"sqlite_insert_row_pk": round(us["pk"], 2)}
    for name in indexes:
        figures[f"sqlite_index_{name.removeprefix('entries_')}"] = round(us[name] - us["pk"], 2)
    figures["sqlite_all_indexes"] = round(us["all"] - us["pk"], 2)
    return figures


def main() -> None:
    parser = arguments(__doc__, "small sizes, for a smoke test")
    parser.add_argument("--entries", type=int, help="entries per step (default 20,000)")
    parser.add_argument("--base", type=int, help="rows held before the SQLite steps (default 200,000)")
    args = parser.parse_args()
    n = args.entries or (2_000 if args.quick else 20_000)
    base = args.base if args.base is not None else (5_000 if args.quick else 200_000)
    log(f"building {n} signed rows")
    rows = chain_rows(n)
    figures: dict[str, Any] = {"entries": n, "base_rows": base}
    log("append path steps")
    figures |= {f"append_{k}_us": v for k, v in append_steps(n, rows).items()}
    log("sync path steps")
    figures |= {f"sync_{k}_us": v for k, v in sync_steps(n, rows).items()}
    with tempfile.TemporaryDirectory(prefix="bench-steps-") as tmp:
        figures |= {f"{k}_us": v for k, v in sqlite_steps(Path(tmp), n, base, rows).items()}
    report("bench.steps", figures)


if __name__ == "__main__":
    main()

"""Export and import of a ledger as JSON Lines.

Format: a header line ``{"format": "ledger-export/1", "ledger_id", "public_key"}``, then one line
per entry (``{"entry": {...}}``) in seq order, each checkpoint (``{"checkpoint": {...}}``) right
after the entry it covers. Import verifies by the rules sync applies (``protocol.chain``): limits,
hashes, links, timestamps, unique ids, the running signature digest against every signed checkpoint
(plus every entry signature with ``full``), and entries after the last checkpoint by their own
signatures. It commits at checkpoints as it goes, so an interrupted import leaves a verified prefix
and can be run again (entries already held are checked against the head and skipped).
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from node.errors import InvalidRequest, KeyFileError
from node.ledger.chain import ChainVerifier
from node.ledger.replicas import check_signatures
from node.storage.contract import CheckpointRecord, EntryRepository, LedgerRecord, Repositories, StoredEntry
from node.storage.database import connect_sync
from node.storage.sqlite.scan import iter_checkpoints, iter_entries, read_ledgers
from protocol import jsontext
from protocol.chain import check_unique_ids
from protocol.entry import GENESIS_DIGEST
from protocol.errors import DuplicateMember, InvalidEntry, VerificationFailed
from protocol.models import LEDGER_ID_PATTERN, Checkpoint, Entry

FORMAT = "ledger-export/1"
_COMMIT_EVERY = 5000

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class ImportReport:
    ledger_id: str
    imported: int
    skipped: int
    head_seq: int


def export_ledger(db_path: Path, ledger_id: str | None, out: IO[bytes], progress: Progress | None = None) -> int:
    """Write a ledger (the node's own when ``ledger_id`` is None) to ``out``; returns entries written."""
    conn = connect_sync(db_path, read_only=True)
    try:
        conn.execute("BEGIN")
        ledger = _find(read_ledgers(conn), ledger_id)
        out.write(orjson.dumps({"format": FORMAT, "ledger_id": ledger.ledger_id,
                                "public_key": ledger.public_key.hex()}) + b"\n")  # fmt: skip
        return _write_lines(conn, ledger, out, progress)
    finally:
        conn.close()


def _find(ledgers: list[LedgerRecord], ledger_id: str | None) -> LedgerRecord:
    for ledger in ledgers:
        if ledger.ledger_id == ledger_id or (ledger_id is None and ledger.is_local):
            return ledger
    raise InvalidRequest(f"ledger: {ledger_id or 'own ledger'} is not held in this store")


def _write_lines(conn: sqlite3.Connection, ledger: LedgerRecord, out: IO[bytes], progress: Progress | None) -> int:
    checkpoints = iter_checkpoints(conn, ledger.ledger_id, 0)
    next_cp = next(checkpoints, None)
    count = 0
    for row in iter_entries(conn, ledger.ledger_id, 0):
        out.write(orjson.dumps({"entry": row.to_wire()}) + b"\n")
        while next_cp is not None and next_cp.seq <= row.seq:
            out.write(orjson.dumps({"checkpoint": next_cp.to_wire()}) + b"\n")
            next_cp = next(checkpoints, None)
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(1000)
    if progress is not None:
        progress(count % 1000)
    return count


async def import_ledger(
    storage: Repositories, lines: Iterable[bytes], *, full: bool = False, progress: Progress | None = None
) -> ImportReport:
    """Verify and import an export into ``storage``; raise at the first line that does not verify."""
    numbered = enumerate(lines, start=1)
    header = _header(next(numbered, (1, b""))[1])
    ledger_id, public_key = header["ledger_id"], bytes.fromhex(header["public_key"])
    store = storage.entries
    held = await storage.ledgers.get(ledger_id)
    if held is None:
        held = await storage.ledgers.add(
            ledger_id, public_key, is_local=False, genesis=GENESIS_DIGEST, pin_source="operator"
        )
    elif held.public_key != public_key:
        raise KeyFileError(f"ledger {ledger_id} is pinned to another key here; refusing the import")
    state = ChainVerifier(public_key, held.head_seq, held.head_hash, held.sig_digest, full=full,
                          timestamp=held.last_timestamp or 0)  # fmt: skip
    pending: list[StoredEntry] = []
    covered: list[CheckpointRecord] = []
    imported = skipped = 0
    for number, line in numbered:
        if not line.strip():
            continue
        item = _parse(line, number)
        try:
            if "entry" in item:
                entry = Entry.model_validate(item["entry"])
                if entry.ledger_id != ledger_id:
                    raise InvalidRequest(f"line {number}: entry of ledger {entry.ledger_id}, not {ledger_id}")
                if entry.seq <= held.head_seq:
                    _check_held(entry, held, number)
                    skipped += 1
                    continue
                pending.append(state.extend_entry(entry))
            elif "checkpoint" in item:
                cp = Checkpoint.model_validate(item["checkpoint"])
                if cp.seq <= held.head_seq:
                    continue
                covered.append(state.checkpoint_record(cp))
                if len(pending) >= _COMMIT_EVERY:
                    imported += await _commit(store, pending, covered, state.digest, progress)
                    pending, covered = [], []
            else:
                raise InvalidRequest(f"line {number}: expected an entry or a checkpoint")
        except ValidationError as exc:
            raise InvalidRequest(f"line {number}: {exc.errors(include_url=False)[0]['msg']}") from exc
        except (VerificationFailed, InvalidEntry) as exc:
            raise type(exc)(f"line {number}: {exc}") from exc
    if pending:
        # entries after the last checkpoint: accepted by their own signatures, as sync accepts them
        await check_signatures(public_key, state.uncovered)
        state.uncovered.clear()
        imported += await _commit(store, pending, covered, state.digest, progress)
    return ImportReport(ledger_id, imported, skipped, state.seq)


def _header(line: bytes) -> dict[str, Any]:
    item = _parse(line, 1)
    if item.get("format") != FORMAT:
        raise InvalidRequest(f"line 1: not a {FORMAT} file")
    try:
        key = bytes.fromhex(item["public_key"])
        valid = len(key) == 32 and re.fullmatch(LEDGER_ID_PATTERN, item["ledger_id"]) is not None
    except (KeyError, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidRequest("line 1: header needs a valid ledger_id and a 32-byte hex public_key")
    return item


def _parse(line: bytes, number: int) -> dict[str, Any]:
    try:
        item = jsontext.loads(line)
    except jsontext.JSONDecodeError as exc:
        raise InvalidRequest(f"line {number}: malformed JSON ({exc})") from exc
    except DuplicateMember as exc:
        raise DuplicateMember(f"line {number}: {exc}") from exc
    if not isinstance(item, dict):
        raise InvalidRequest(f"line {number}: expected a JSON object")
    return item


def _check_held(entry: Entry, held: LedgerRecord, number: int) -> None:
    if entry.seq == held.head_seq and held.head_hash is not None and bytes.fromhex(entry.hash) != held.head_hash:
        raise VerificationFailed(f"line {number}: seq {entry.seq} differs from the entry held here")


async def _commit(
    store: EntryRepository,
    rows: list[StoredEntry],
    checkpoints: list[CheckpointRecord],
    digest: bytes,
    progress: Progress | None,
) -> int:
    ledger_id = rows[0].ledger_id
    check_unique_ids(((row.seq, row.id) for row in rows), await store.ids_taken(ledger_id, [row.id for row in rows]))
    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        counts["stream", row.stream] += 1
        counts["type", row.type] += 1
    await store.commit(rows, checkpoints, dict(counts), sig_digest=digest)
    if progress is not None:
        progress(len(rows))
    return len(rows)

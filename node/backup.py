"""Online backup and restore of a node's data directory: the database, copied with SQLite's backup API
(a consistent snapshot, taken while the node serves), and the node key, so that a restored node starts
with its identity. A backup is a directory: ``ledger.db``, ``node.key`` (mode 0600) and ``backup.json``
(what it holds); restore refuses to overwrite a node and checks that key and store belong together."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

import node
from node.errors import BackupError
from node.keys import load_key_file
from node.storage.sqlite.scan import held_ledgers

DB_NAME, KEY_NAME, MANIFEST_NAME = "ledger.db", "node.key", "backup.json"
# what a backup does not hold: the settings a restored node needs from its operator to stand in for the original
NOT_CARRIED = (
    "--host/--port",
    "LEDGER_ADMIN_TOKEN",
    "LEDGER_NET__ALLOW_PRIVATE",
    "LEDGER_DISCOVERY__REGISTRY_URLS",
    "LEDGER_DISCOVERY__REGISTRY_TOKEN",
    "LEDGER_DISCOVERY__ADVERTISE_URL",
    "LEDGER_DISCOVERY__BOOTSTRAP",
    "LEDGER_DISCOVERY__MDNS",
    "LEDGER_DISCOVERY__AUTO_ADMIT",
    "LEDGER_PEERS",
    "LEDGER_ACCESS__*",
    "LEDGER_BACKUP_DIR",
)


@dataclass(frozen=True, slots=True)
class HeldHead:
    """One ledger of the backup with its head."""

    ledger_id: str
    local: bool
    head_seq: int
    head_hash: str | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """``backup.json``: what the backup holds and when it was taken."""

    ledger_id: str
    public_key: str
    taken_ms: int
    version: str
    db_bytes: int
    ledgers: tuple[HeldHead, ...]

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)


def backup(db_path: Path, key_path: Path, out: Path) -> Manifest:
    """Copy the database at ``db_path`` (a running node may be writing it) and the key into the new or
    empty directory ``out`` (mode 0700). The copy is one read transaction of the backup API, so it is the
    database as of one commit; the manifest is read from the copy. Fails with BackupError naming what
    stands in the way."""
    if not db_path.is_file():
        raise BackupError(f"{db_path}: no ledger database here")
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"{out}: not empty; a backup goes into a new or empty directory")
    keys = load_key_file(key_path)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = out / (DB_NAME + ".partial")
    try:
        source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            source.execute("PRAGMA busy_timeout = 10000")
            target = sqlite3.connect(partial)
            try:
                source.backup(target)  # pages=-1: every page in one step, under one read transaction
                target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"{db_path}: backup failed ({exc})") from exc
    _fsync(partial)
    partial.rename(out / DB_NAME)
    _copy_key(key_path, out / KEY_NAME)
    manifest = _manifest(out / DB_NAME, keys.public_key.hex())
    (out / MANIFEST_NAME).write_bytes(manifest.to_json() + b"\n")
    _fsync(out)
    return manifest


async def backup_into(backup_dir: Path | None, ledger_id: str, db_path: Path, key_path: Path) -> tuple[Path, Manifest]:
    """A backup of a running node into a new directory ``<backup_dir>/<ledger_id>-<UTC time>``, made in a
    thread (the node goes on serving); BackupError when no ``backup_dir`` is configured."""
    if backup_dir is None:
        raise BackupError("no backup_dir is configured (LEDGER_BACKUP_DIR); or run 'ledger-node backup' on the host")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = backup_dir / f"{ledger_id}-{stamp}"
    suffix = 1
    while out.exists():
        suffix += 1
        out = backup_dir / f"{ledger_id}-{stamp}-{suffix}"
    return out, await asyncio.to_thread(backup, db_path, key_path, out)


def restore(source: Path, data_dir: Path) -> Manifest:
    """Bring a backup made by ``backup`` into ``data_dir``, which must hold no database or key yet (a
    node is never overwritten). The key must be the one the store's own ledger is pinned to. The caller
    holds the data directory's lock and verifies the store afterwards."""
    for name in (DB_NAME, KEY_NAME):
        if not (source / name).is_file():
            raise BackupError(f"{source}: no {name}; not a backup made by 'ledger-node backup'")
    for name in (DB_NAME, KEY_NAME):
        if (data_dir / name).exists():
            raise BackupError(f"{data_dir / name}: already exists; restore into a new or empty data directory")
    keys = load_key_file(source / KEY_NAME)
    manifest = _manifest(source / DB_NAME, keys.public_key.hex())
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = data_dir / (DB_NAME + ".partial")
    shutil.copyfile(source / DB_NAME, partial)
    _fsync(partial)
    partial.rename(data_dir / DB_NAME)
    _copy_key(source / KEY_NAME, data_dir / KEY_NAME)
    _fsync(data_dir)
    return manifest


def _manifest(db_path: Path, public_key: str) -> Manifest:
    ledgers = held_ledgers(db_path)
    own = next((x for x in ledgers if x.is_local), None)
    if own is None:
        raise BackupError(f"{db_path}: holds no ledger of its own")
    if own.public_key.hex() != public_key:
        raise BackupError(f"{db_path}: ledger {own.ledger_id} is pinned to another key than the key file's")
    heads = tuple(HeldHead(x.ledger_id, x.is_local, x.head_seq, x.head_hash.hex() if x.head_hash else None)
                  for x in ledgers)  # fmt: skip
    return Manifest(own.ledger_id, public_key, int(time.time() * 1000), node.__version__, db_path.stat().st_size, heads)


def _copy_key(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(source.read_bytes())
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

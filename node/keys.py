"""The node's Ed25519 key file: created with mode 0600, read back, never logged or served.

Format (JSON): ``{"type": "ed25519", "seed": "<64 hex>", "public_key": "<64 hex>"}``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import orjson

from node.errors import KeyFileError
from protocol.errors import InvalidEntry
from protocol.signing import KeyPair


def create_key_file(path: Path) -> KeyPair:
    """Write a new key to ``path`` (mode 0600); refuse to overwrite an existing file."""
    keys = KeyPair(secrets.token_bytes(32))
    body = orjson.dumps({"type": "ed25519", "seed": keys.seed.hex(), "public_key": keys.public_key.hex()})
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create ({exc.strerror})") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(body + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return keys


def load_key_file(path: Path) -> KeyPair:
    """Read a key file; raise KeyFileError naming the path and what is wrong."""
    try:
        mode = path.stat().st_mode
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: key file not found (create one with 'ledger-node keygen')") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file ({exc.strerror})") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: key file is readable by others; chmod 600 it")
    try:
        data = orjson.loads(raw)
        keys = KeyPair(bytes.fromhex(data["seed"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidEntry) as exc:
        raise KeyFileError(f"{path}: not a valid ed25519 key file") from exc
    if data.get("public_key") not in (None, keys.public_key.hex()):
        raise KeyFileError(f"{path}: public_key does not match the seed")
    return keys


def load_or_create_key_file(path: Path) -> KeyPair:
    """Load the key at ``path``, creating one on first start."""
    if not path.exists():
        return create_key_file(path)
    return load_key_file(path)

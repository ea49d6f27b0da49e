"""The Hypercore anchor: the harness in ``../shared/anchors/hypercore`` run in the same benchmark run.

The harness folder is read-only (in CI too), so it is copied to a temporary directory, installed
there with ``npm ci`` (the exact versions of its package-lock.json) and run with ``node``. Its one
JSON line carries ``replicate_per_s``. ``BENCH_HYPERCORE_DIR`` names another harness folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO.parent / "shared" / "anchors" / "hypercore"
FILES = ("bench.mjs", "package.json", "package-lock.json")


class AnchorUnavailable(Exception):
    """The harness cannot run here: no node or npm, no harness folder, or npm ci failed."""


@dataclass(frozen=True, slots=True)
class AnchorRun:
    """One run of the harness: its replication rate and what it ran."""

    replicate_per_s: int
    version: str
    mode: str
    node: str


def harness_dir() -> Path:
    return Path(os.environ.get("BENCH_HYPERCORE_DIR", DEFAULT_DIR))


@contextmanager
def installed() -> Iterator[Path]:
    """A temporary copy of the harness with its dependencies installed; AnchorUnavailable otherwise."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise AnchorUnavailable("node and npm not found")
    source = harness_dir()
    if not all((source / name).is_file() for name in FILES):
        raise AnchorUnavailable(f"no Hypercore harness at {source} (set BENCH_HYPERCORE_DIR)")
    with tempfile.TemporaryDirectory(prefix="bench-hypercore-") as tmp:
        work = Path(tmp)
        for name in FILES:
            shutil.copyfile(source / name, work / name)
        result = subprocess.run(
            [npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=work, capture_output=True, text=True, timeout=600
        )
        if result.returncode != 0:
            raise AnchorUnavailable(f"npm ci failed: {result.stderr.strip()[-300:]}")
        yield work


def run(work: Path, entries: int, split: bool = True) -> AnchorRun:
    """Run the installed harness once on ``entries`` blocks; ``split`` serves the writer from a second
    OS process, like two nodes."""
    node = shutil.which("node") or "node"
    args = [node, "bench.mjs", str(entries)] + (["--split"] if split else [])
    result = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AnchorUnavailable(f"the harness failed: {result.stderr.strip()[-300:]}")
    lines = result.stdout.strip().splitlines()
    try:
        out = orjson.loads(lines[-1])
        return AnchorRun(int(out["replicate_per_s"]), str(out["version"]), str(out["mode"]), str(out["node"]))
    except (IndexError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AnchorUnavailable(f"the harness printed no figure: {result.stdout[-300:]!r}") from exc

"""What every benchmark shares: the machine description, percentiles, the result line, fixtures."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import sqlite3
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nacl
import orjson

from node.errors import KeyFileError, StorageError
from node.keys import load_key_file, load_or_create_key_file
from node.ledger.service import Ledger
from node.settings import NodeSettings
from node.storage.sqlite.scan import held_ledgers
from protocol.models import EntryDraft

CACHE = Path(os.environ.get("BENCH_CACHE", Path(__file__).resolve().parent.parent / ".bench-cache"))


def machine() -> dict[str, Any]:
    """The machine a run happened on, for the report."""
    cpu = "unknown"
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "pynacl": nacl.__version__,
        "platform": platform.platform(),
        "load_avg": os.getloadavg()[0],
    }


def report(name: str, figures: dict[str, Any]) -> None:
    """Print the machine, then the figures as the last line (one JSON object)."""
    print(f"# {name} on {orjson.dumps(machine()).decode()}", flush=True)
    print(orjson.dumps({"bench": name, **figures}).decode(), flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def arguments(doc: str | None, quick: str) -> argparse.ArgumentParser:
    """A benchmark's parser: its docstring as the help, and ``--quick`` (``quick`` says what it runs)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    return parser


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


SUBJECTS = 100_000


def bench_draft(i: int) -> EntryDraft:
    """Realistic small entries: 3 streams, 5 types, 10 issuers, 100,000 subjects."""
    return EntryDraft(
        stream=("proofs", "assets", "events")[i % 3],
        type=("proof", "transfer", "mint", "burn", "note")[i % 5],
        issuer_oid=f"oid:bench:org:{i % 10}",
        subject_oid=f"oid:bench:subject:{(i * 7919) % SUBJECTS}",
        payload={"n": i, "amount": i % 1000, "memo": "benchmark entry"},
    )


async def append_range(ledger: Ledger, first: int, count: int, producers: int = 4, batch: int = 1000) -> float:
    """Append bench entries ``first..first+count`` in batches from concurrent producers; returns seconds."""
    end = first + count
    batches = [[bench_draft(i) for i in range(s, min(s + batch, end))] for s in range(first, end, batch)]
    started = time.perf_counter()

    async def producer(k: int) -> None:
        for drafts in batches[k::producers]:
            await ledger.append(drafts)

    await asyncio.gather(*(producer(k) for k in range(producers)))
    return time.perf_counter() - started


def ledger_settings(data_dir: Path, **overrides: Any) -> NodeSettings:
    return NodeSettings(ledger_id="bench", data_dir=data_dir, **overrides)


def built_ledger(entries: int) -> NodeSettings:
    """A data dir holding a ledger of ``entries`` bench entries, built once and cached under .bench-cache.

    The cache is trusted only when :func:`cache_problem` finds it whole; otherwise it is rebuilt.
    """
    data_dir = CACHE / f"ledger-{entries}"
    settings = ledger_settings(data_dir, durability="normal", max_group_entries=10_000, verify_on_start="fast")
    problem = cache_problem(settings, entries)
    if problem is None:
        return settings
    if data_dir.exists():
        log(f"rebuilding {data_dir}: {problem}")
        shutil.rmtree(data_dir)

    async def build() -> None:
        async with Ledger.open(settings, load_or_create_key_file(settings.key_path)) as ledger:
            step = 100_000
            for start in range(0, entries, step):
                n = min(step, entries - start)
                seconds = await append_range(ledger, start, n)
                log(f"built {start + n}/{entries} entries ({n / seconds:,.0f}/s)")
            await ledger.index_now()  # the cache is stored fully indexed

    asyncio.run(build())
    (data_dir / COMPLETE).touch()
    return settings


COMPLETE = "complete"  # written last, after a build finished


def cache_problem(settings: NodeSettings, entries: int) -> str | None:
    """Why the cached ledger at ``settings.data_dir`` cannot be used, or None when it is whole.

    Whole: the build finished (the ``complete`` marker), the key file loads (present, mode 0600,
    valid), and the database holds the own ledger ``bench`` under that key at head ``entries``.
    """
    if not (settings.data_dir / COMPLETE).is_file():
        return "no finished build"
    try:
        keys = load_key_file(settings.key_path)
        held = held_ledgers(settings.db_path) if settings.db_path.is_file() else []
    except (KeyFileError, StorageError, sqlite3.Error) as exc:
        return str(exc)
    own = next((ledger for ledger in held if ledger.is_local), None)
    if own is None:
        return f"{settings.db_path}: no own ledger"
    if (own.ledger_id, own.public_key, own.head_seq) != (settings.ledger_id, keys.public_key, entries):
        return f"{settings.db_path}: holds {own.ledger_id} at seq {own.head_seq}, not {settings.ledger_id} at {entries}"
    return None

"""The benchmarks' ledger cache: never in git, and trusted only when whole."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import common
from node.keys import load_key_file
from node.storage.sqlite.scan import held_ledgers
from scenarios.procs import REPO

ENTRIES = 300


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(common, "CACHE", tmp_path)
    return tmp_path / f"ledger-{ENTRIES}"


def whole(data_dir: Path) -> bool:
    settings = common.ledger_settings(data_dir)
    load_key_file(settings.key_path)  # raises unless present, mode 0600 and valid
    return held_ledgers(settings.db_path)[0].head_seq == ENTRIES and (data_dir / common.COMPLETE).is_file()


def test_the_cache_is_not_in_git() -> None:
    tracked = subprocess.run(["git", "ls-files", ".bench-cache"], cwd=REPO, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", ".bench-cache/ledger-20000/node.key"], cwd=REPO)
    assert ignored.returncode == 0


def test_a_cache_as_a_fresh_clone_had_it_is_rebuilt(cache: Path) -> None:
    # what git restored: the markers and a key file at the checkout's mode, without the database
    cache.mkdir()
    (cache / "LOCK").touch()
    (cache / common.COMPLETE).touch()
    (cache / "node.key").write_text('{"seed": "' + "00" * 32 + '"}')
    (cache / "node.key").chmod(0o644)
    settings = common.built_ledger(ENTRIES)
    assert settings.data_dir == cache and whole(cache)


def test_a_whole_cache_is_reused_and_a_damaged_one_rebuilt(cache: Path) -> None:
    settings = common.built_ledger(ENTRIES)
    assert common.cache_problem(settings, ENTRIES) is None
    built = settings.db_path.stat().st_mtime_ns
    common.built_ledger(ENTRIES)
    assert settings.db_path.stat().st_mtime_ns == built, "a whole cache must not be rebuilt"

    settings.key_path.chmod(0o644)
    assert "readable by others" in str(common.cache_problem(settings, ENTRIES))
    common.built_ledger(ENTRIES)
    assert whole(cache)

    for suffix in ("", "-wal", "-shm"):
        Path(f"{settings.db_path}{suffix}").unlink(missing_ok=True)
    assert common.cache_problem(settings, ENTRIES) is not None
    common.built_ledger(ENTRIES)
    assert whole(cache)

    assert "not bench at 301" in str(common.cache_problem(settings, ENTRIES + 1))

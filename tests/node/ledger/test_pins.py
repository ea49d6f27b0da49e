"""Pin provenance: the order of sources, and the migration that records it for pins made before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.ledger.pins import ORDER, stronger
from node.storage.migrations import MIGRATIONS
from node.storage.sqlite import open_sqlite


def test_the_order_of_sources() -> None:
    assert ORDER == ("config", "operator", "attested", "registry", "peer", "first-sight")
    assert stronger("operator", "first-sight") and stronger("registry", "peer")
    assert not stronger("peer", "peer") and not stronger("first-sight", "config")
    assert stronger("first-sight", "something-unknown")


async def test_pins_made_before_provenance_existed_become_first_sight_and_the_own_ledger_config(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT, applied_at INTEGER)")
    for version, description, script in [m for m in MIGRATIONS if m[0] <= 5]:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, description))
    for lid, local in (("node-a", 1), ("node-b", 0)):
        conn.execute(
            "INSERT INTO ledgers (ledger_id, public_key, is_local, sig_digest, added_at) VALUES (?, ?, ?, ?, 0)",
            (lid, bytes(32), local, bytes(32)),
        )
    conn.close()
    async with open_sqlite(path) as storage:
        assert [(r.ledger_id, r.pin_source) for r in await storage.ledgers.all()] == [
            ("node-a", "config"), ("node-b", "first-sight")]  # fmt: skip


async def test_a_migration_merged_after_a_later_one_still_runs(tmp_path: Path) -> None:
    """A database already at 8 (pin provenance, 7, landed later) gets 7 on the next start."""
    path = tmp_path / "ledger.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, description TEXT, applied_at INTEGER)")
    for version, description, script in [m for m in MIGRATIONS if m[0] != 7]:
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, description))
    conn.close()
    async with open_sqlite(path) as storage:
        assert await storage.ledgers.all() == []
    conn = sqlite3.connect(path)
    assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")] == [
        m[0] for m in MIGRATIONS]  # fmt: skip
    conn.close()

"""The registry's console page says what the CLI says."""

from __future__ import annotations

from scenarios.procs import REPO

SCRIPT = REPO / "registry" / "console" / "console.js"


def test_heartbeats_are_shown_in_utc_as_the_cli_shows_them() -> None:
    script = SCRIPT.read_text()
    assert "toLocale" not in script  # the browser's zone and format, unlike `ledger-registry nodes`
    assert 'toISOString().replace("T", " ").slice(0, 19)' in script and '"last heartbeat (UTC)"' in script

"""One rule for numbers (docs/protocol.md section 2): whatever append accepts, a peer and import accept.

Values are appended to a real ledger; each accepted entry travels as a peer receives it (the wire
bytes of a sync page, parsed and validated) into a second node's ``Replicas.ingest``, the sync
receiver; the whole ledger is then exported and imported into a third store, and both stores verify.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.keys import load_or_create_key_file
from node.ledger.service import Ledger
from node.ledger.transfer import export_ledger, import_ledger
from node.ledger.writer import Draft
from node.settings import NodeSettings
from node.storage.sqlite import open_sqlite
from protocol.errors import InvalidEntry, NotCanonical
from protocol.models import Entry, EntryDraft
from tests.conftest import cli
from tests.protocol.numbers import BOUND, within_rule

REPORTED = 9007199254740992.0  # issue 13: accepted and signed as 9007199254740992, refused by every peer

near_bound = st.integers(min_value=BOUND - 3, max_value=BOUND + 3)
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    near_bound.map(float),
    near_bound.map(lambda n: -float(n)),
    near_bound,
    near_bound.map(lambda n: -n),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([REPORTED, -REPORTED, -0.0, 0.0, 1e300, -1e300, 5e-324, 1e21, 56.0, 2.0**63, 4503599627370495.5]),
)
names = st.text(st.characters(codec="utf-8"), max_size=6)
values = st.recursive(
    numbers | st.none() | st.booleans() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(names, values, max_size=4)


def as_a_peer_receives(row: Any) -> Entry:
    """The entry parsed back from the bytes a sync page carries."""
    return Entry.model_validate(orjson.loads(orjson.dumps(row.to_wire())))


async def open_ledger(data_dir: Path, ledger_id: str) -> tuple[Ledger, Any]:
    node_settings = NodeSettings(ledger_id=ledger_id, data_dir=data_dir)
    opened = Ledger.open(node_settings, load_or_create_key_file(node_settings.key_path))
    return await opened.__aenter__(), opened


async def import_export(origin: Ledger, target: Path) -> int:
    out = io.BytesIO()
    written = await asyncio.to_thread(export_ledger, origin.settings.db_path, None, out)
    async with open_sqlite(target) as storage:
        report = await import_ledger(storage, out.getvalue().splitlines(), full=True)
    assert report.imported == written
    return written


def test_every_value_append_accepts_a_peer_and_import_accept(tmp_path: Path) -> None:
    with asyncio.Runner() as runner:
        origin, origin_cm = runner.run(open_ledger(tmp_path / "a", "node-a"))
        peer, peer_cm = runner.run(open_ledger(tmp_path / "b", "node-b"))
        runner.run(peer.pin("node-a", origin.keys.public_key, "operator"))
        accepted = 0

        @given(payload=payloads, meta=st.none() | payloads)
        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        def append_then_replicate(payload: dict[str, Any], meta: dict[str, Any] | None) -> None:
            nonlocal accepted
            draft = EntryDraft(stream="s", type="t", payload=payload, meta=meta)
            try:
                [row] = runner.run(origin.append([draft], batch=False))
            except InvalidEntry as exc:
                assert not (within_rule(payload) and within_rule(meta)), exc
                assert str(exc).startswith(("payload", "meta")), exc
                return
            assert within_rule(payload) and within_rule(meta)
            entry = as_a_peer_receives(row)
            result = runner.run(peer.ingest("node-a", [entry], [], peer="node-a", full=True))
            assert result.accepted == 1
            accepted += 1

        try:
            append_then_replicate()
            assert accepted > 50
            assert runner.run(import_export(origin, tmp_path / "c.db")) == accepted
            for ledger in (origin, peer):
                reports = {r.ledger_id: r.through_seq for r in runner.run(ledger.verify("full"))}
                assert reports["node-a"] == accepted
        finally:
            runner.run(peer_cm.__aexit__(None, None, None))
            runner.run(origin_cm.__aexit__(None, None, None))


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[Ledger]:
    node_settings = NodeSettings(ledger_id="node-a", data_dir=tmp_path / "a")
    async with Ledger.open(node_settings, load_or_create_key_file(node_settings.key_path)) as opened:
        yield opened


@pytest.mark.parametrize("value", [REPORTED, -REPORTED, 2**53, 1e21, 1e300])
async def test_the_reported_value_is_refused_at_append_naming_the_field(origin: Ledger, value: Any) -> None:
    with pytest.raises(NotCanonical, match=r"^payload\.x: number outside"):
        await origin.append([EntryDraft(stream="s", type="t", payload={"x": value})], batch=False)
    with pytest.raises(NotCanonical, match=r"^entries\[0\]\.meta\.m\[1\]: number outside"):
        await origin.append([EntryDraft(stream="s", type="t", payload={}, meta={"m": [1, value]})])
    assert origin.head.head_seq == 0


async def sign_as_an_older_node(origin: Ledger) -> Any:
    """Append {"x": 1}, then the entry an older node signed for {"x": 9007199254740992.0}."""
    await origin.append([EntryDraft(stream="s", type="t", payload={"x": 1})])
    assert origin._writer is not None
    [row] = await origin._writer.append([Draft("s", "t", '{"x":9007199254740992}')])
    return row


async def test_an_entry_signed_before_the_rule_is_refused_by_receiver_and_import_and_reported_by_verify(
    origin: Ledger, tmp_path: Path
) -> None:
    row = await sign_as_an_older_node(origin)
    peer, peer_cm = await open_ledger(tmp_path / "b", "node-b")
    try:
        await peer.pin("node-a", origin.keys.public_key, "operator")
        first = as_a_peer_receives(await origin.get_by_seq("node-a", 1))
        with pytest.raises(NotCanonical, match=r"seq 2: payload\.x: number outside"):
            await peer.ingest("node-a", [first, as_a_peer_receives(row)], [], peer="node-a", full=True)
    finally:
        await peer_cm.__aexit__(None, None, None)
    with pytest.raises(NotCanonical, match=r"line 4: seq 2: payload\.x: number outside"):
        await import_export(origin, tmp_path / "c.db")
    [report] = await origin.verify("chain")
    assert report.through_seq == 2
    assert report.refused_by_peers == ("seq 2: payload.x: number outside ±(2^53-1)",)


def test_cli_verify_fails_on_such_an_entry_while_the_node_still_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node_settings = NodeSettings(ledger_id="node-a", data_dir=tmp_path)
    keys = load_or_create_key_file(node_settings.key_path)

    async def write_then_reopen() -> None:
        async with Ledger.open(node_settings, keys) as ledger:
            await sign_as_an_older_node(ledger)
        async with Ledger.open(node_settings, keys, verify="chain") as ledger:
            assert ledger.head.head_seq == 2

    asyncio.run(write_then_reopen())
    assert "entry every peer refuses ledger=node-a seq 2: payload.x: number outside" in caplog.text
    result = cli("verify", "--data-dir", str(tmp_path))
    assert result.returncode == 3, result.stderr
    assert "refused by peers: ledger node-a seq 2: payload.x: number outside ±(2^53-1)" in result.stderr

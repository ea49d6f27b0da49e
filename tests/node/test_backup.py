"""``ledger-node backup`` and ``restore``: a consistent copy of store and key taken while the node writes,
and a restored node that starts with its identity, verifies and serves the same head."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import aiohttp

from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, AUTH, cli, eventually

ENV = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN}


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_backup_under_write_load_restores_a_node_with_its_identity_and_head(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    node = start_node(tmp_path / "a", env=ENV)
    processes.append(node)
    out = tmp_path / "backup"
    async with aiohttp.ClientSession() as session:
        written = 0
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal written
            while not stop.is_set():
                batch = [{"stream": "s", "type": "t", "payload": {"n": written + i}} for i in range(100)]
                async with session.post(node.url + "/ledger/entries", json=batch, headers=AUTH) as response:
                    assert response.status == 201, await response.text()
                written += len(batch)

        writer = asyncio.create_task(load())
        await eventually(lambda: written >= 1000, timeout=60)
        result = await asyncio.to_thread(cli, "backup", "--data-dir", str(node.data_dir), "--out", str(out))
        await eventually(lambda: written >= 2000 or writer.done(), timeout=60)  # writes go on after it
        stop.set()
        await writer
        assert result.returncode == 0, result.stderr
        assert "backed up node-a into" in result.stdout and "restore with: ledger-node restore" in result.stdout
        manifest = json.loads((out / "backup.json").read_text())
        (own,) = manifest["ledgers"]
        assert 1000 <= own["head_seq"] < written, (own, written)  # a snapshot taken mid-load
        assert stat.S_IMODE((out / "node.key").stat().st_mode) == 0o600
        original = await get(session, node.url + "/network/info")
        at_backup = await get(session, f"{node.url}/ledger/ledgers/node-a/entries/{own['head_seq']}")
        assert at_backup["hash"] == own["head_hash"]  # the copy is a prefix of the ledger: consistent

        again = cli("backup", "--data-dir", str(node.data_dir), "--out", str(out))
        assert again.returncode == 1 and "not empty" in again.stderr
        assert node.terminate() == 0

        restored_dir = tmp_path / "restored"
        restored = cli("restore", str(out), "--data-dir", str(restored_dir))
        assert restored.returncode == 0, restored.stderr
        assert f"head seq {own['head_seq']} hash {own['head_hash']}" in restored.stdout
        assert f"ledger-node run --ledger-id node-a --data-dir {restored_dir}" in restored.stdout
        assert stat.S_IMODE((restored_dir / "node.key").stat().st_mode) == 0o600
        twice = cli("restore", str(out), "--data-dir", str(restored_dir))
        assert twice.returncode == 1 and "already exists" in twice.stderr

        back = start_node(restored_dir, env=ENV)
        processes.append(back)
        info = await get(session, back.url + "/network/info")
        assert info["public_key"] == original["public_key"] and info["ledger_id"] == "node-a"
        assert info["head"] == {"seq": own["head_seq"], "hash": own["head_hash"]}
        assert back.terminate() == 0
    full = cli("verify", "--data-dir", str(restored_dir), "--full")
    assert full.returncode == 0 and f"entries={own['head_seq']}" in full.stdout, full.stderr


def test_restore_refuses_a_key_that_is_not_the_stores(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a", env=ENV)
    processes.append(node)
    assert cli("append", "--url", node.url, "--stream", "s", "--type", "t").returncode == 0
    out = tmp_path / "backup"
    assert cli("backup", "--data-dir", str(node.data_dir), "--out", str(out)).returncode == 0
    assert node.terminate() == 0
    (out / "node.key").unlink()
    assert cli("keygen", "--out", str(out / "node.key")).returncode == 0
    refused = cli("restore", str(out), "--data-dir", str(tmp_path / "r"))
    assert refused.returncode == 1 and "pinned to another key" in refused.stderr
    assert not (tmp_path / "r" / "ledger.db").exists()


async def test_the_node_backs_itself_up_into_its_backup_dir_while_serving(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    backups = tmp_path / "backups"
    node = start_node(tmp_path / "a", env={**ENV, "LEDGER_BACKUP_DIR": str(backups)})
    processes.append(node)
    appended = cli("append", "--url", node.url, "--stream", "s", "--type", "t")
    entry = json.loads(appended.stdout)
    made = cli("backup", "--on-node", "--url", node.url)
    assert made.returncode == 0 and "the node backed up node-a into" in made.stdout, made.stderr
    (path,) = backups.iterdir()
    assert path.name.startswith("node-a-") and f"hash {entry['hash']}" in made.stdout
    assert stat.S_IMODE((path / "node.key").stat().st_mode) == 0o600
    assert "backup" in cli("audit", "--url", node.url).stdout
    assert node.terminate() == 0
    restored = cli("restore", str(path), "--data-dir", str(tmp_path / "r"))
    assert restored.returncode == 0 and f"head seq 1 hash {entry['hash']}" in restored.stdout

    bare = start_node(tmp_path / "b", "node-b", env=ENV)
    processes.append(bare)
    refused = cli("backup", "--on-node", "--url", bare.url)
    assert refused.returncode == 1 and "no backup_dir is configured" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_restore_warns_never_to_run_the_copy_beside_the_original_and_names_what_to_add(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    node = start_node(tmp_path / "a", env=ENV)
    processes.append(node)
    assert cli("append", "--url", node.url, "--stream", "s", "--type", "t").returncode == 0
    out = tmp_path / "backup"
    assert cli("backup", "--data-dir", str(node.data_dir), "--out", str(out)).returncode == 0
    restored = cli("restore", str(out), "--data-dir", str(tmp_path / "r"))  # while the original still runs
    assert restored.returncode == 0, restored.stderr
    text = " ".join(restored.stdout.split())
    assert "only in place of node-a" in text and "never beside it" in text
    assert "two nodes with one key fork ledger node-a at its peers" in text
    # what the printed run command leaves out, by the names an operator sets them with
    for setting in ("--port", "LEDGER_ADMIN_TOKEN", "LEDGER_NET__ALLOW_PRIVATE", "LEDGER_DISCOVERY__REGISTRY_URLS",
                    "LEDGER_DISCOVERY__BOOTSTRAP", "LEDGER_DISCOVERY__ADVERTISE_URL", "LEDGER_BACKUP_DIR"):  # fmt: skip
        assert setting in text, (setting, restored.stdout)
    (tmp_path / "n.toml").write_text('port = 8711\nadmin_token = "from-the-config-0123456789"\n')
    configured = cli("restore", str(out), "--data-dir", str(tmp_path / "c"), "--config", str(tmp_path / "n.toml"))
    assert configured.returncode == 0, configured.stderr
    assert f"--config {tmp_path / 'n.toml'}" in configured.stdout  # the original's settings file goes along


async def test_restore_takes_the_entries_written_after_the_backup_back_from_a_peer(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    env = {**ENV, "LEDGER_NET__ALLOW_PRIVATE": "true", "LEDGER_SYNC__INTERVAL_S": "0.2"}
    a = start_node(tmp_path / "a", "node-a", env=env)
    b = start_node(tmp_path / "b", "node-b", env=env)
    processes += [a, b]
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for here, there in ((a, b), (b, a)):
            info = await get(session, there.url + "/network/info")
            peer = {"url": there.url, "ledger_id": info["ledger_id"], "public_key": info["public_key"]}
            async with session.post(here.url + "/admin/peers", json=peer) as response:
                assert response.status == 201, await response.text()

        async def append(count: int) -> None:
            for start in range(0, count, 500):
                batch = [
                    {"stream": "s", "type": "t", "payload": {"n": i}} for i in range(start, min(count, start + 500))
                ]
                async with session.post(a.url + "/ledger/entries", json=batch) as response:
                    assert response.status == 201, await response.text()

        await append(1200)  # more than a page after the backup
        out = tmp_path / "backup"
        assert cli("backup", "--data-dir", str(a.data_dir), "--out", str(out)).returncode == 0
        await append(1300)
        head = await get(session, a.url + "/ledger/ledgers/node-a/entries/2500")

        async def b_holds_it() -> bool:
            async with session.get(b.url + "/ledger/ledgers/node-a/entries/2500") as response:
                return response.status == 200

        await eventually(b_holds_it, timeout=30)
    a.proc.kill()
    a.proc.wait(timeout=10)

    refused = cli("restore", str(out), "--data-dir", str(tmp_path / "bad"), "--from-peer", "127.0.0.1:9")
    assert refused.returncode == 2 and "write http://127.0.0.1:9" in refused.stderr
    assert not (tmp_path / "bad" / "node.db").exists()  # nothing restored
    restored = cli("restore", str(out), "--data-dir", str(tmp_path / "r"), "--from-peer", b.url)
    assert restored.returncode == 0, restored.stderr
    assert f"from {b.url}: took 1300 entries of node-a written after the backup; head seq 2500" in restored.stdout
    assert cli("verify", "--data-dir", str(tmp_path / "r"), "--full").returncode == 0
    back = start_node(tmp_path / "r", "node-a", env=env)
    processes.append(back)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        assert (await get(session, back.url + "/ledger/ledgers/node-a/entries/2500"))["hash"] == head["hash"]

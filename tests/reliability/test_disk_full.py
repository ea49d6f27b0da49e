"""A full disk: no success answer for an entry that was not committed, a clear problem+json, reads
keep working, and the store verifies afterwards with every acknowledged entry in it.

Two ways to fill it: a file size limit on the node process (``prlimit --fsize``: the write fails with
EFBIG, SQLite reports an I/O error, 503), and a small tmpfs (the write fails with ENOSPC, 507
storage-full; needs root to mount, skipped otherwise)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, AUTH, cli
from tests.reliability.conftest import record

PAD = "x" * 400

TOKEN_ENV = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN}


async def fill_until_refused(node: NodeProcess) -> tuple[int, list[tuple[int, str, str]]]:
    """Append batches of 50 until the node has refused 20 of them; (entries acknowledged, refusals)."""
    acked, refusals = 0, []
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for i in range(2000):
            body = [{"stream": "full", "type": "t", "payload": {"i": i, "k": k, "pad": PAD}} for k in range(50)]
            async with session.post(node.url + "/ledger/entries", json=body) as response:
                if response.status == 201:
                    acked += len((await response.json())["entries"])
                else:
                    refusals.append((response.status, response.content_type, await response.text()))
            if len(refusals) >= 20:
                break
        # reads keep working while the disk is full
        for path in ("/ledger/stats", f"/ledger/ledgers/node-a/entries/{max(acked, 1)}", "/ledger/entries?limit=5"):
            async with session.get(node.url + path) as response:
                assert response.status == 200, (path, response.status)
        async with session.get(node.url + "/ledger/stats") as response:
            head = (await response.json())["head"]["seq"]
    assert head == acked, f"head {head}, acknowledged {acked}: a write was answered wrongly"
    return acked, refusals


async def check_full_disk(node: NodeProcess, data_dir: Path, statuses: set[int], label: str) -> None:
    acked, refusals = await fill_until_refused(node)
    assert acked and len(refusals) == 20, (acked, refusals[:1])
    assert {status for status, _, _ in refusals} <= statuses, refusals[:1]
    assert all(ctype == "application/problem+json" and "nothing written" in text for _, ctype, text in refusals)
    assert node.proc.poll() is None  # still serving
    node.terminate()
    verify = cli("verify", "--full", "--data-dir", str(data_dir))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"seq=1..{acked} " in verify.stdout  # every acknowledged entry, and no other
    record(f"disk full ({label}): acknowledged then refused", f"{acked} / {len(refusals)}")
    record(f"disk full ({label}): wrongly acknowledged writes", 0, "0")


async def test_a_file_size_limit_refuses_writes_cleanly(tmp_path: Path, processes: list[NodeProcess]) -> None:
    if shutil.which("prlimit") is None:
        pytest.skip("prlimit (util-linux) is not installed")
    data_dir = tmp_path / "node"
    node = start_node(data_dir, wrap=["prlimit", "--fsize=2500000"], env={**TOKEN_ENV, "LEDGER_DURABILITY": "normal"})
    processes.append(node)
    await check_full_disk(node, data_dir, {503}, "file size limit")
    restarted = start_node(data_dir, env=TOKEN_ENV)  # without the limit: writes work again on the same chain
    processes.append(restarted)
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(
            restarted.url + "/ledger/entries", json={"stream": "s", "type": "t", "payload": {}}
        ) as r:
            assert r.status == 201


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True,
                            text=True)  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


async def test_a_full_filesystem_refuses_writes_with_storage_full(
    small_tmpfs: Path, tmp_path: Path, processes: list[NodeProcess]
) -> None:
    data_dir = small_tmpfs / "node"
    node = start_node(data_dir, env={**TOKEN_ENV, "LEDGER_DURABILITY": "normal"})
    processes.append(node)
    await check_full_disk(node, data_dir, {507}, "tmpfs")

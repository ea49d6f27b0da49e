"""``ledger-node`` as a user runs it: real processes, real files, one-line errors, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import tomllib
import urllib.request
from collections.abc import Awaitable
from pathlib import Path

import orjson
import pytest

from node.ledger.clock import wall_ms
from protocol.records import sign_record
from protocol.signing import KeyPair, fingerprint
from protocol.vectors import DIRECTORY
from scenarios.procs import REPO, NodeProcess
from scenarios.procs import start_node as start_process_node
from tests.conftest import ADMIN_TOKEN, AUTH, cli, eventually

VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def start_node(data_dir: Path) -> NodeProcess:
    """A node process whose admin token is the one ``cli`` sends."""
    return start_process_node(data_dir, env={"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN})


def test_help_explains_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "keygen", "append", "query", "get", "stats", "verify", "export", "import"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_version_prints_the_package_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"ledger-node {VERSION}"


def test_keygen_writes_a_private_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "k" / "node.key"
    result = cli("keygen", "--out", str(key))
    assert result.returncode == 0 and "public_key" in result.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = cli("keygen", "--out", str(key))
    assert again.returncode == 1 and again.stderr.startswith("ledger-node: error:") and "overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_a_node_process_serves_the_cli_commands(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    one = cli("append", "--url", node.url, "--stream", "proofs", "--type", "proof", "--payload", '{"a": 1}',
              "--subject-oid", "oid:x")  # fmt: skip
    assert one.returncode == 0, one.stderr
    entry = json.loads(one.stdout)
    batch_file = tmp_path / "batch.jsonl"
    batch_file.write_text("\n".join(json.dumps({"stream": "proofs", "type": "t", "payload": {"i": i}})
                                    for i in range(25)))  # fmt: skip
    many = cli("append", "--url", node.url, "--file", str(batch_file), "--batch", "10")
    assert many.returncode == 0 and "appended 25 entries; head seq 26" in many.stdout
    got = cli("get", "--url", node.url, entry["id"])
    assert json.loads(got.stdout) == entry
    query = cli("query", "--url", node.url, "--type", "t", "--limit", "7", "--all")
    assert [json.loads(line)["payload"]["i"] for line in query.stdout.splitlines()] == list(range(25))
    stats = json.loads(cli("stats", "--url", node.url).stdout)
    assert stats["entries"] == 26
    bad = cli("append", "--url", node.url, "--stream", "BAD", "--type", "t")
    assert bad.returncode == 1 and bad.stderr.startswith("ledger-node: error: stream:")
    assert "Traceback" not in bad.stderr
    assert node.terminate() == 0


def into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with its stdout a pipe that nobody reads any more, as in ``| head -2`` once head is done."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60,
                              env={**os.environ, "LEDGER_TOKEN": ADMIN_TOKEN})  # fmt: skip
    finally:
        os.close(write)


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    for _ in range(3):
        assert cli("append", "--url", node.url, "--stream", "notes", "--type", "t").returncode == 0
    url = ["--url", node.url]
    for args in (["query", "--stream", "notes", "--json", *url], ["status", *url], ["--help"]):
        result = into_closed_pipe([sys.executable, "-m", "node.cli", *args])
        assert (result.returncode, result.stderr) == (0, ""), (args, result)


def test_client_commands_say_when_no_node_answers() -> None:
    result = cli("stats", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == "ledger-node: error: cannot reach http://127.0.0.1:9 (connection refused)"


def test_the_node_url_comes_from_ledger_url_and_needs_a_scheme(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    for command in (["stats"], ["status"], ["peers"]):
        result = cli(*command, env={"LEDGER_URL": node.url})
        assert result.returncode == 0, result.stderr
    assert "node-a" in cli("status", env={"LEDGER_URL": node.url}).stdout
    bare = node.url.removeprefix("http://")
    for args, env in ((["stats", "--url", bare], {}), (["peers"], {"LEDGER_URL": bare})):
        result = cli(*args, env=env)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("ledger-node: error: node URL") and f"write http://{bare}" in result.stderr


def test_health_says_in_one_line_whether_the_node_serves(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    ok = cli("health", f"--url={node.url}", env={"LEDGER_TOKEN": ""})
    assert ok.returncode == 0 and ok.stdout.strip() == f"ok: {node.url} is healthy and ready", ok.stderr
    node.terminate()
    down = cli("health", f"--url={node.url}")
    assert down.returncode == 1 and down.stderr.startswith(f"ledger-node: error: cannot reach {node.url}")
    assert len(down.stderr.strip().splitlines()) == 1


def test_verify_export_import_round_trip_and_tamper(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    batch = tmp_path / "b.json"
    batch.write_text(json.dumps([{"stream": "s", "type": "t", "payload": {"i": i, "f": i / 3}} for i in range(300)]))
    assert cli("append", "--url", node.url, "--file", str(batch), "--batch", "70").returncode == 0
    assert node.terminate() == 0

    ok = cli("verify", "--data-dir", str(tmp_path / "a"), "--full")
    assert ok.returncode == 0 and "entries=300" in ok.stdout and "signatures=300" in ok.stdout
    export = tmp_path / "a.jsonl"
    assert cli("export", "--data-dir", str(tmp_path / "a"), "--out", str(export)).returncode == 0
    lines = export.read_text().splitlines()
    assert json.loads(lines[0])["format"] == "ledger-export/1" and len(lines) == 1 + 300 + 5
    dash = cli("export", "--data-dir", str(tmp_path / "a"), "--out", "-", cwd=tmp_path)  # "-": stdout, no file
    assert dash.returncode == 0 and dash.stdout.splitlines() == lines and not (tmp_path / "-").exists()

    imported = cli("import", "--data-dir", str(tmp_path / "b"), str(export))
    assert imported.returncode == 0 and "entries=300" in imported.stdout, imported.stderr
    again = cli("import", "--data-dir", str(tmp_path / "b"), str(export))
    assert again.returncode == 0 and "entries=0 already_held=300" in again.stdout
    assert cli("verify", "--data-dir", str(tmp_path / "b"), "--full").returncode == 0

    forged = tmp_path / "forged.jsonl"
    record = json.loads(lines[150])
    record["entry"]["payload"]["i"] = 9999
    forged.write_text("\n".join([*lines[:150], json.dumps(record), *lines[151:]]))
    refused = cli("import", "--data-dir", str(tmp_path / "c"), str(forged))
    assert refused.returncode == 1 and "line 151: seq 148: hash does not match" in refused.stderr

    conn = sqlite3.connect(tmp_path / "a" / "ledger.db")
    conn.execute('UPDATE entries SET payload = \'{"f":0,"i":7}\' WHERE seq = 42')
    conn.commit()
    corrupted = cli("verify", "--data-dir", str(tmp_path / "a"))
    assert corrupted.returncode == 3
    assert corrupted.stderr.strip() == (
        "ledger-node: error: store corrupted: ledger node-a seq 42: hash does not match the entry's content"
    )
    refused_start = cli("run", "--ledger-id", "node-a", "--data-dir", str(tmp_path / "a"), "--port", "0")
    assert refused_start.returncode == 3 and "seq 42" in refused_start.stderr


def test_restored_export_becomes_the_nodes_own_ledger(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    assert cli("append", "--url", node.url, "--stream", "s", "--type", "t").returncode == 0
    node.terminate()
    export = tmp_path / "a.jsonl"
    assert cli("export", "--data-dir", str(tmp_path / "a"), "--out", str(export)).returncode == 0
    restored = tmp_path / "restored"
    assert cli("import", "--data-dir", str(restored), str(export)).returncode == 0
    (restored / "node.key").write_bytes((tmp_path / "a" / "node.key").read_bytes())
    (restored / "node.key").chmod(0o600)
    again = start_node(restored)
    processes.append(again)
    assert cli("append", "--url", again.url, "--stream", "s", "--type", "t").returncode == 0
    assert json.loads(cli("stats", "--url", again.url).stdout)["entries"] == 2


def test_a_second_process_on_the_same_data_dir_is_refused(tmp_path: Path, processes: list[NodeProcess]) -> None:
    processes.append(start_node(tmp_path / "a"))
    second = cli("run", "--ledger-id", "node-a", "--data-dir", str(tmp_path / "a"), "--port", "0")
    assert second.returncode == 1 and "in use by another process" in second.stderr
    imported = cli("import", "--data-dir", str(tmp_path / "a"), "/dev/null")
    assert imported.returncode == 1 and "in use by another process" in imported.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--ledger-id", "Bad Id"], {}, "invalid configuration: ledger_id:"),
        (["--port", "70000"], {}, "invalid configuration: port:"),
        ([], {"LEDGER_DURABILITY": "sometimes"}, "invalid configuration: durability:"),
        (["--config", "/nonexistent.toml"], {}, "config file not found"),
        ([], {"LEDGER_DISCOVERY__AUTO_PEER": "true"}, "auto_peer was replaced by auto_admit"),
        ([], {"LEDGER_DISCOVERY__REGISTRY_TOKEN": "enrol\nnode-a"}, "invalid configuration: discovery.registry_token:"),
        ([], {"LEDGER_ADMIN_TOKEN": "a token with spaces"}, "invalid configuration: admin_token:"),
    ],
)
def test_bad_configuration_is_one_line(tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    base = ["run", "--data-dir", str(tmp_path)] + ([] if "--ledger-id" in args else ["--ledger-id", "node-a"])
    result = cli(*base, *args, env=env)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_config_file_and_environment_precedence(tmp_path: Path, processes: list[NodeProcess]) -> None:
    config = tmp_path / "node.toml"
    config.write_text(f'ledger_id = "from-file"\ndata_dir = "{tmp_path / "d"}"\nport = 1\n[limits]\nmax_batch = 5\n')
    result = cli("run", "--config", str(config), "--port", "0", "--ledger-id", "node-flag",
                 env={"LEDGER_LIMITS__MAX_BATCH": "abc"})  # fmt: skip
    assert result.returncode == 1 and "limits.max_batch" in result.stderr


def test_unreadable_key_files_are_named(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    (data / "node.key").write_text("{}")
    (data / "node.key").chmod(0o600)
    result = cli("run", "--ledger-id", "node-a", "--data-dir", str(data), "--port", "0")
    assert result.returncode == 1 and "not a valid ed25519 key file" in result.stderr
    (data / "node.key").chmod(0o644)
    result = cli("run", "--ledger-id", "node-a", "--data-dir", str(data), "--port", "0")
    assert result.returncode == 1 and "readable by others" in result.stderr


def test_operator_commands_show_the_admin_api_as_tables(tmp_path: Path, processes: list[NodeProcess]) -> None:
    token = "operator-token-0123456789"
    node = start_process_node(tmp_path / "a", env={"LEDGER_ADMIN_TOKEN": token})
    processes.append(node)
    assert cli("append", "--url", node.url, "--stream", "proofs", "--type", "proof", "--token", token).returncode == 0
    status = cli("status", "--url", node.url, "--token", token)
    assert status.returncode == 0 and "node-a" in status.stdout and "entries" in status.stdout
    for command in (["peers"], ["sync", "--run"], ["conflicts"], ["trust"]):
        result = cli(*command, "--url", node.url, env={"LEDGER_TOKEN": token})  # token from the environment
        assert result.returncode == 0, result.stderr
    denied = cli("peers", "--url", node.url, "--token", "wrong")
    assert denied.returncode == 1 and "unauthorized" in denied.stderr and len(denied.stderr.strip().splitlines()) == 1


async def test_reading_commands_print_json_and_wide_tables_keep_hashes_and_urls(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    def run(*args: str, env: dict[str, str] | None = None) -> Awaitable[subprocess.CompletedProcess[str]]:
        return asyncio.to_thread(cli, *args, env=env)

    node = start_node(tmp_path / "a")
    processes.append(node)
    entry = json.loads((await run("append", "--url", node.url, "--stream", "s", "--type", "t")).stdout)
    far = "http://a-peer-with-a-rather-long-host-name-that-does-not-answer.invalid:8700/behind/a/long/prefix"
    peer = {"url": far, "ledger_id": "node-far", "public_key": "ab" * 32}
    request = urllib.request.Request(node.url + "/admin/peers", data=json.dumps(peer).encode(), method="POST",
                                     headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
    answer = await asyncio.to_thread(urllib.request.urlopen, request, timeout=30)
    assert answer.status == 201

    async def failed() -> bool:  # the sync round with the peer fails: a long last error beside the long URL
        return bool(json.loads((await run("peers", "--url", node.url, "--json")).stdout)[0]["last_error"])

    assert (await run("sync", "--url", node.url, "--run")).returncode == 0
    await eventually(failed, timeout=20)
    reading = {
        ("status",): lambda d: d["stats"]["head"]["hash"] == entry["hash"],
        ("peers",): lambda d: d[0]["url"] == far,
        ("sync",): lambda d: "peers" in d,
        ("conflicts",): lambda d: d == [],
        ("trust",): lambda d: isinstance(d, list),
        ("credentials", "list"): lambda d: d == [],
        ("audit",): lambda d: d[-1]["action"] == "append",
        ("stats",): lambda d: d["entries"] == 1,
        ("get", entry["id"]): lambda d: d == entry,
        ("query",): lambda d: d["id"] == entry["id"],
    }
    for command, check in reading.items():
        result = await run(*command, "--url", node.url, "--json")
        assert result.returncode == 0 and check(json.loads(result.stdout)), (command, result.stdout, result.stderr)
    error = json.loads((await run("peers", "--url", node.url, "--json")).stdout)[0]["last_error"]
    for columns in ("80", "200"):  # redirected: full width whatever $COLUMNS says, no column dropped, no cell cut
        narrow = {"COLUMNS": columns}
        status = (await run("status", "--url", node.url, env=narrow)).stdout
        assert f"│ head       │ {entry['hash']} │" in status, status
        peers = (await run("peers", "--url", node.url, env=narrow)).stdout
        assert "┃ last error" in peers and f"│ {far} │" in peers and f"│ {error} │" in peers, peers
        audit = (await run("audit", "--url", node.url, env=narrow)).stdout
        assert far in audit and all(line == line.rstrip() for line in audit.splitlines()), audit


def test_candidates_and_pins_commands(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a")
    processes.append(node)
    stranger = KeyPair(bytes([4] * 32))
    record = sign_record(stranger, ledger_id="node-x", name="x", endpoints=["http://127.0.0.1:9"], issued_at=wall_ms())
    request = urllib.request.Request(node.url + "/network/introduce", data=orjson.dumps(record.model_dump()),
                                     headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        assert orjson.loads(response.read()) == {"status": "candidate"}
    listed = cli("candidates", "--url", node.url)
    assert listed.returncode == 0 and "node-x" in listed.stdout and "candidate" in listed.stdout, listed.stderr
    header = next(line for line in listed.stdout.splitlines() if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")][2:4] == ["key fingerprint", "key"], header
    assert f"│ {fingerprint(stranger.public_key)} │ {stranger.public_key.hex()} │" in listed.stdout, listed.stdout
    for command, empty in ((["conflicts"], "conflicts: none"), (["trust"], "trust attestations: none")):
        assert cli(*command, "--url", node.url).stdout == empty + "\n"  # not a header over nothing
    assert cli("sync", "--run", "--url", node.url).returncode == 0  # audited with peer None
    audit = cli("audit", "--url", node.url).stdout
    assert "sync.run" in audit and "None" not in audit and "peer=" not in audit, audit
    refused = cli("candidates", "refuse", "node-x", "--url", node.url)
    assert refused.returncode == 0 and "node-x: refused" in refused.stdout
    admitted = cli("candidates", "admit", "node-x", "--url", node.url)
    assert admitted.returncode == 0 and "node-x: peer" in admitted.stdout
    pins = cli("pins", "--url", node.url)
    assert pins.returncode == 0 and "node-x" in pins.stdout and "operator" in pins.stdout and "config" in pins.stdout
    key = KeyPair(bytes([5] * 32)).public_key
    pinned = cli("pins", "set", "node-q", key.hex(), "--url", node.url)
    assert pinned.returncode == 0, pinned.stderr
    assert f"node-q: pinned to key fingerprint {fingerprint(key)} (operator)" in pinned.stdout
    assert "node-q" in cli("pins", "list", "--url", node.url).stdout
    removed = cli("pins", "remove", "node-q", "--url", node.url)
    assert removed.returncode == 0 and "node-q" not in cli("pins", "--url", node.url).stdout
    own = cli("pins", "remove", "node-a", "--url", node.url)
    assert own.returncode == 1 and "own" in own.stderr


def test_import_takes_the_published_export_and_refuses_its_broken_variants(tmp_path: Path) -> None:
    done = cli("import", "--data-dir", str(tmp_path / "a"), str(DIRECTORY / "export.jsonl"))
    assert done.returncode == 0 and "entries=4" in done.stdout and "head=4" in done.stdout, done.stderr
    cases = {case["name"]: case for case in orjson.loads((DIRECTORY / "exports.json").read_bytes())}
    for name, says in (("id-twice", "already names another entry"), ("checkpoint-line-twice", "two at seq 2")):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(line + "\n" for line in cases[name]["lines"]))
        refused = cli("import", "--data-dir", str(tmp_path / name), str(path))
        assert refused.returncode == 1 and says in refused.stderr, refused.stderr

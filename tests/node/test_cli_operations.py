"""Every operation an operator does over HTTP is also a ``ledger-node`` command: peers, trust, conflicts,
the federated query, refs and state, against real node processes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from protocol.signing import fingerprint
from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, cli, eventually

ENV = {"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN, "LEDGER_NET__ALLOW_PRIVATE": "true", "LEDGER_SYNC__INTERVAL_S": "0.2",
       "LEDGER_CONFLICTS__STRATEGY": "manual"}  # fmt: skip


async def run(node: NodeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    result = await asyncio.to_thread(cli, *args, "--url", node.url)
    assert result.returncode == 0, (args, result.stderr)
    return result


async def as_json(node: NodeProcess, *args: str) -> Any:
    return json.loads((await run(node, *args, "--json")).stdout)


def public_key(node: NodeProcess) -> str:
    with urllib.request.urlopen(node.url + "/network/info", timeout=10) as response:
        return str(json.loads(response.read())["public_key"])


def key_fingerprint(node: NodeProcess) -> str:
    return fingerprint(bytes.fromhex(public_key(node)))


async def test_peers_trust_conflicts_query_refs_and_state_are_commands(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    a = start_node(tmp_path / "a", "node-a", env=ENV)
    processes.append(a)
    b = start_node(tmp_path / "b", "node-b", env=ENV)
    processes.append(b)

    added = await run(a, "peers", "add", "node-b", b.url, public_key(b))
    assert f"node-b: peer at {b.url} (mode both), key fingerprint {key_fingerprint(b)} pinned" in added.stdout
    connected = await run(b, "peers", "connect", a.url)
    assert f"node-a: peer at {a.url} (key fingerprint {key_fingerprint(a)})" in connected.stdout, connected.stdout
    assert [p["ledger_id"] for p in await as_json(a, "peers")] == ["node-b"]
    assert [p["ledger_id"] for p in await as_json(b, "peers")] == ["node-a"]

    put = ("append", "--stream", "assets", "--type", "set", "--key", "asset-7")
    ours = json.loads((await run(a, *put, "--payload", '{"owner": "acme"}')).stdout)
    theirs = json.loads((await run(b, *put, "--payload", '{"owner": "globex"}')).stdout)

    async def open_conflicts() -> list[dict[str, Any]]:
        return [c for c in await as_json(a, "conflicts", "--status", "open") if c["kind"] == "key"]

    await eventually(open_conflicts, timeout=30)
    state = await as_json(a, "state", "asset-7")
    assert state["status"] == "conflict"
    before = (await as_json(a, "state", "--digest"))["digest"]
    (conflict,) = await open_conflicts()
    resolved = await run(a, "conflicts", "resolve", str(conflict["id"]), "--winner", theirs["hash"])
    assert f"conflict {conflict['id']} resolved by entry seq 2" in resolved.stdout
    assert await open_conflicts() == []
    assert (await as_json(a, "state", "asset-7"))["status"] != "conflict"
    assert (await as_json(a, "state", "--digest"))["digest"] != before
    every = [json.loads(line) for line in (await run(a, "state")).stdout.splitlines()]
    assert [s["key"] for s in every] == ["asset-7"]

    refs = await as_json(a, "refs", ours["id"])
    assert refs["entry"]["id"] == ours["id"] and refs["refs"] == []

    attested = await run(a, "trust", "attest", "node-b", "--level", "0.5")
    assert "node-a -> node-b: level 0.5 (full), signed" in attested.stdout
    edges = (await run(a, "trust")).stdout
    assert "┃ expires (UTC)" in edges and "│ node-a │ node-b │ 0.5   │ full │ never         │" in edges, edges
    rounds = (await run(a, "sync")).stdout  # the marks: not what the last round moved
    assert "┃ pulled through seq ┃ pushed through seq ┃" in rounds, rounds
    federated = await run(a, "query", "--network", "--ledger-id", "node-b", "--key", "asset-7")
    assert [json.loads(line)["id"] for line in federated.stdout.splitlines()] == [theirs["id"]]
    assert "peer node-b: ok" in federated.stderr
    path = await as_json(a, "trust", "path", "node-b")
    assert path["path"] == ["node-a", "node-b"] and path["score"] == 0.5
    assert "node-b" in (await run(a, "trust", "path", "node-b")).stdout
    revoked = await run(a, "trust", "revoke", "node-b")
    assert "node-a -> node-b: revoked" in revoked.stdout
    assert (await as_json(a, "trust", "path", "node-b"))["path"] in ([], None)
    untrusted = await run(a, "query", "--network", "--key", "asset-7")
    assert "peer node-b: untrusted" in untrusted.stderr

    removed = await run(a, "peers", "remove", "node-b")
    assert "node-b: peer removed" in removed.stdout
    assert await as_json(a, "peers") == []
    usage = await asyncio.to_thread(cli, "peers", "add", "node-b", "--url", a.url)
    assert usage.returncode != 0 and "expected LEDGER_ID PEER_URL PUBLIC_KEY" in usage.stderr


def test_append_file_checks_every_line_first_and_says_what_a_refused_batch_left(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    node = start_node(tmp_path / "a", env=ENV)
    processes.append(node)
    first = json.loads(cli("append", "--url", node.url, "--stream", "s", "--type", "t").stdout)
    lines = [json.dumps({"stream": "s", "type": "t", "payload": {"i": i}}) for i in range(9)]
    path = tmp_path / "drafts.jsonl"

    def entries() -> int:
        return int(json.loads(cli("stats", "--url", node.url).stdout)["entries"])

    path.write_text("\n".join([*lines[:3], '{"stream": "BAD", "type": "t", "payload": {}}', *lines[4:]]))
    bad = cli("append", "--url", node.url, "--file", str(path))
    assert bad.returncode == 1 and f"{path}: line 4: stream:" in bad.stderr and "nothing was sent" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    path.write_text("\n".join([*lines[:2], "{not json", *lines[3:]]))
    assert "line 3: not valid JSON" in cli("append", "--url", node.url, "--file", str(path)).stderr
    assert entries() == 1

    clash = json.dumps({"stream": "s", "type": "t", "payload": {"i": 6}, "id": first["id"]})  # already used
    path.write_text("\n".join([*lines[:6], clash, *lines[7:]]))
    refused = cli("append", "--url", node.url, "--file", str(path), "--batch", "3")
    assert refused.returncode == 1, refused.stderr
    assert "lines 1..6 are committed, nothing from line 7 on" in refused.stderr
    assert "resume with --from-line 7" in refused.stderr
    assert f"{path}: line 7: id {first['id']} is already used in this ledger" in refused.stderr, refused.stderr
    assert entries() == 7
    path.write_text("\n".join(lines))
    resumed = cli("append", "--url", node.url, "--file", str(path), "--batch", "3", "--from-line", "7")
    assert resumed.returncode == 0 and "appended 3 entries; head seq 10" in resumed.stdout
    assert "(lines 7..9)" in resumed.stdout
    payloads = [json.loads(x)["payload"].get("i") for x in cli("query", "--url", node.url, "--all").stdout.splitlines()]
    assert payloads == [None, *range(9)]


def test_a_credential_is_revoked_by_its_name_when_one_live_credential_has_it(
    tmp_path: Path, processes: list[NodeProcess]
) -> None:
    node = start_node(tmp_path / "a", env=ENV)
    processes.append(node)
    for name in ("billing-app", "twin", "twin"):
        assert cli("credentials", "issue", name, "--scopes", "read", "--url", node.url).returncode == 0
    revoked = cli("credentials", "revoke", "billing-app", "--url", node.url)
    assert revoked.returncode == 0 and "revoked credential" in revoked.stdout and "billing-app" in revoked.stdout
    twins = cli("credentials", "revoke", "twin", "--url", node.url)
    assert twins.returncode == 1 and "2 live credentials are named 'twin'" in twins.stderr
    again = cli("credentials", "revoke", "billing-app", "--url", node.url)
    assert again.returncode == 1 and "'billing-app' is already revoked (" in again.stderr, again.stderr
    nobody = cli("credentials", "revoke", "nobody", "--url", node.url)
    assert nobody.returncode == 1 and "0 live credentials are named 'nobody'" in nobody.stderr

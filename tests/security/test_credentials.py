"""Credentials for clients, by role: no stranger writes the ledger, each token does only what its
scopes allow, a revocation holds from the next request, secrets are never stored, every append
names its credential in the audit log, and callers are held to their request rates."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from node.access.limits import RateLimiter
from node.keys import load_key_file
from node.ledger.clock import wall_ms
from protocol.requests import sign_request
from scenarios.procs import NodeProcess, start_node
from tests.conftest import ADMIN_TOKEN, RunningNode, cli, draft, eventually

MakeNode = Callable[..., Awaitable[RunningNode]]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def issue(node: RunningNode, *scopes: str, name: str = "client") -> dict[str, Any]:
    status, issued, _ = await node.request("POST", "/admin/credentials", json={"name": name, "scopes": list(scopes)})
    assert status == 201, issued
    return dict(issued)


async def entries(node: RunningNode) -> int:
    status, stats, _ = await node.request("GET", "/ledger/stats")
    assert status == 200
    return int(stats["entries"])


async def test_an_anonymous_append_is_refused_and_writes_nothing(make_node: MakeNode) -> None:
    node = await make_node()
    for body in (draft(1), [draft(i) for i in range(3)]):
        status, problem, ctype = await node.request("POST", "/ledger/entries", json=body, anonymous=True)
        assert (status, ctype) == (401, "application/problem+json") and problem["type"].endswith(":unauthorized")
    status, _, _ = await node.request("POST", "/ledger/entries", json=draft(1), headers=bearer("lnt_0123456789ab_x"))
    assert status == 401
    assert await entries(node) == 0
    _, audit, _ = await node.request("GET", "/admin/audit")
    assert not [r for r in audit if r["action"] == "append"]


async def test_a_credential_without_the_scope_is_forbidden(make_node: MakeNode) -> None:
    node = await make_node()
    reader = await issue(node, "read")
    status, problem, ctype = await node.request(
        "POST", "/ledger/entries", json=draft(1), headers=bearer(reader["token"])
    )
    assert (status, ctype) == (403, "application/problem+json") and problem["type"].endswith(":forbidden")
    assert (await node.request("GET", "/admin/status", headers=bearer(reader["token"])))[0] == 403
    assert (await node.request("POST", "/admin/credentials", headers=bearer(reader["token"]),
                                json={"name": "escalate", "scopes": ["admin"]}))[0] == 403  # fmt: skip
    assert await entries(node) == 0
    writer = await issue(node, "append")
    assert (await node.request("POST", "/ledger/entries", json=draft(1), headers=bearer(writer["token"])))[0] == 201
    admin = await issue(node, "admin")  # admin implies every scope
    assert (await node.request("POST", "/ledger/entries", json=draft(2), headers=bearer(admin["token"])))[0] == 201
    assert await entries(node) == 2


async def test_a_revoked_token_is_refused_at_once(make_node: MakeNode) -> None:
    node = await make_node()
    writer = await issue(node, "append", "read")
    assert (await node.request("POST", "/ledger/entries", json=draft(1), headers=bearer(writer["token"])))[0] == 201
    status, revoked, _ = await node.request("DELETE", f"/admin/credentials/{writer['id']}")
    assert status == 200 and revoked["revoked_ms"] is not None
    status, _, _ = await node.request("POST", "/ledger/entries", json=draft(2), headers=bearer(writer["token"]))
    assert status == 401
    assert await entries(node) == 1
    _, listed, _ = await node.request("GET", "/admin/credentials")
    assert [(c["id"], c["revoked_ms"] is not None, c["last_used_ms"] is not None) for c in listed] == [
        (writer["id"], True, True)
    ]
    assert "token" not in listed[0] and "secret_hash" not in listed[0]
    assert (await node.request("DELETE", "/admin/credentials/0123456789ab"))[0] == 404


async def test_the_database_holds_no_token_in_plaintext(make_node: MakeNode) -> None:
    node = await make_node()
    issued = [await issue(node, "append", name=f"client-{i}") for i in range(3)]
    for credential in issued:
        assert re.fullmatch(r"lnt_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", credential["token"])
        assert (await node.request("POST", "/ledger/entries", json=draft(1), headers=bearer(credential["token"])))[0]
    await node.stop()  # checkpoints the WAL into the database file
    stored = database_bytes(node.settings.data_dir)
    for credential in issued:
        secret = credential["token"].removeprefix(f"lnt_{credential['id']}_")
        assert credential["token"].encode() not in stored and secret.encode() not in stored
    rows = sqlite3.connect(node.settings.data_dir / "ledger.db").execute("SELECT id, secret_hash FROM credentials")
    assert {row[0] for row in rows} == {c["id"] for c in issued}


def database_bytes(data_dir: Path) -> bytes:
    """Every byte of the database and its journals."""
    return b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("ledger.db"))


async def test_the_audit_log_names_the_credential_of_every_append(make_node: MakeNode) -> None:
    node = await make_node()
    first, second = await issue(node, "append", name="first"), await issue(node, "append", name="second")
    assert (await node.request("POST", "/ledger/entries", json=[draft(i) for i in range(3)],
                                headers=bearer(first["token"])))[0] == 201  # fmt: skip
    assert (await node.request("POST", "/ledger/entries", json=draft(9), headers=bearer(second["token"])))[0] == 201
    status, audit, _ = await node.request("GET", "/admin/audit", params={"limit": "10"})
    assert status == 200
    appends = [(r["actor"], r["detail"]) for r in audit if r["action"] == "append"]
    assert appends == [
        (second["id"], {"first_seq": 4, "last_seq": 4, "count": 1}),
        (first["id"], {"first_seq": 1, "last_seq": 3, "count": 3}),
    ]  # newest first
    issued = [(r["actor"], r["detail"]["id"]) for r in audit if r["action"] == "credential.issue"]
    assert issued == [("admin-token", second["id"]), ("admin-token", first["id"])]
    _, older, _ = await node.request("GET", "/admin/audit", params={"before": str(audit[0]["id"]), "limit": "1"})
    assert [r["id"] for r in older] == [audit[1]["id"]]


async def test_over_the_rate_a_caller_gets_429_with_retry_after_and_nothing_is_written(make_node: MakeNode) -> None:
    node = await make_node(access={"rate_per_s": 2, "burst": 3, "anonymous_rate_per_s": 2, "anonymous_burst": 2})
    writer = await issue(node, "append", "read")
    answers = [await node.request("POST", "/ledger/entries", json=draft(i), headers=bearer(writer["token"]))
               for i in range(4)]  # fmt: skip
    assert [a[0] for a in answers] == [201, 201, 201, 429]
    assert answers[3][2] == "application/problem+json" and answers[3][1]["type"].endswith(":rate-limited")
    async with node.session.post(node.url + "/ledger/entries", json=draft(5), headers=bearer(writer["token"])) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
    assert await entries(node) == 3  # the admin token has its own bucket

    async def appended() -> bool:
        status, _, _ = await node.request("POST", "/ledger/entries", json=draft(6), headers=bearer(writer["token"]))
        return status == 201

    await eventually(appended, timeout=5)  # the bucket refills: the credential works again
    assert await entries(node) == 4
    anonymous = [(await node.request("GET", "/ledger/stats", anonymous=True))[0] for _ in range(3)]
    assert anonymous == [200, 200, 429]  # per client address, without a credential
    assert (await node.request("GET", "/health", anonymous=True))[0] == 200  # liveness is never limited


async def test_signed_node_requests_are_limited_per_peer(make_node: MakeNode) -> None:
    a = await make_node("node-a", access={"peer_rate_per_s": 1, "peer_burst": 2}, sync={"interval_s": 60})
    b = await make_node("node-b", sync={"interval_s": 60, "live": False})
    keys = load_key_file(b.settings.key_path)
    body = {"url": b.url, "ledger_id": "node-b", "public_key": keys.public_key.hex(), "mode": "pull"}
    assert (await a.request("POST", "/admin/peers", json=body))[0] == 201
    statuses = []
    for _ in range(3):
        headers = sign_request(keys, "node-b", "GET", "/ledger/sync/heads", b"", wall_ms())
        statuses.append((await a.request("GET", "/ledger/sync/heads", headers=headers, anonymous=True))[0])
    assert statuses == [200, 200, 429]


async def test_with_public_read_off_reads_need_the_read_scope(make_node: MakeNode) -> None:
    node = await make_node(access={"public_read": False})
    writer, reader = await issue(node, "append"), await issue(node, "read")
    for path in ("/ledger/entries", "/ledger/stats", "/ledger/state", "/metrics", "/ledger/sync/status",
                 "/network/trust", "/network/topology"):  # fmt: skip
        assert (await node.request("GET", path, anonymous=True))[0] == 401, path
        assert (await node.request("GET", path, headers=bearer(writer["token"])))[0] == 403, path
        assert (await node.request("GET", path, headers=bearer(reader["token"])))[0] == 200, path
    for path in ("/health", "/ready", "/network/info", "/openapi.json"):
        assert (await node.request("GET", path, anonymous=True))[0] == 200, path
    public = await make_node("node-b")  # the default: reads are public, writes never
    assert (await public.request("GET", "/ledger/entries", anonymous=True))[0] == 200
    assert (await public.request("POST", "/ledger/entries", json=draft(1), anonymous=True))[0] == 401


async def test_the_federated_query_needs_the_query_scope(make_node: MakeNode) -> None:
    node = await make_node()
    reader, querier = await issue(node, "read"), await issue(node, "query")
    params = {"limit": "5", "timeout_ms": "500"}
    assert (await node.request("GET", "/network/query", params=params, anonymous=True))[0] == 401
    assert (await node.request("GET", "/network/query", params=params, headers=bearer(reader["token"])))[0] == 403
    status, answer, _ = await node.request("GET", "/network/query", params=params, headers=bearer(querier["token"]))
    assert status == 200 and answer["entries"] == []
    open_query = await make_node("node-b", access={"public_query": True})
    assert (await open_query.request("GET", "/network/query", params=params, anonymous=True))[0] == 200


def test_cli_credentials_issue_list_revoke_round_trip(tmp_path: Path, processes: list[NodeProcess]) -> None:
    node = start_node(tmp_path / "a", env={"LEDGER_ADMIN_TOKEN": ADMIN_TOKEN})
    processes.append(node)
    issued = cli("credentials", "issue", "ci-writer", "--scopes", "append,read", "--url", node.url)
    assert issued.returncode == 0, issued.stderr
    credential_id = re.search(r"issued credential ([0-9a-f]{12}) name=ci-writer scopes=append,read", issued.stdout)
    token = issued.stdout.strip().splitlines()[-1]
    assert credential_id is not None and token.startswith(f"lnt_{credential_id[1]}_")
    as_writer = {"LEDGER_TOKEN": token}
    appended = cli("append", "--url", node.url, "--stream", "s", "--type", "t", env=as_writer)
    assert appended.returncode == 0, appended.stderr
    listed = cli("credentials", "list", "--url", node.url, env={"COLUMNS": "200"})
    assert listed.returncode == 0 and credential_id[1] in listed.stdout and "ci-writer" in listed.stdout
    assert token not in listed.stdout
    audit = cli("audit", "--url", node.url, env={"COLUMNS": "200"})
    assert audit.returncode == 0 and credential_id[1] in audit.stdout and "append" in audit.stdout
    denied = cli("credentials", "list", "--url", node.url, env=as_writer)  # append,read is not admin
    assert denied.returncode == 1 and "forbidden" in denied.stderr and len(denied.stderr.strip().splitlines()) == 1
    revoked = cli("credentials", "revoke", credential_id[1], "--url", node.url)
    assert revoked.returncode == 0 and f"revoked credential {credential_id[1]}" in revoked.stdout
    refused = cli("append", "--url", node.url, "--stream", "s", "--type", "t", env=as_writer)
    assert refused.returncode == 1 and "unauthorized" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    bad = cli("credentials", "issue", "x", "--scopes", "everything", "--url", node.url)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "scopes" in bad.stderr


def test_rate_limit_buckets_stay_bounded_under_many_addresses() -> None:
    limiter = RateLimiter(rate_per_s=1, burst=1, max_callers=1000)
    for i in range(50_000):
        assert limiter.take(f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}", now=0.0) == 0
    assert len(limiter) == 1000
    assert limiter.take("10.0.195.79", now=0.0) > 0  # a recent caller is still held to its bucket
    assert limiter.take("10.0.195.79", now=1.0) == 0  # and refilled at its rate

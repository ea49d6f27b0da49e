"""Admin endpoints: bearer token, constant-time check, off without a token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import ADMIN_TOKEN, RunningNode


async def test_admin_refuses_everyone_without_a_token(make_node: Callable[..., Awaitable[RunningNode]]) -> None:
    bare = await make_node("node-bare", admin_token=None)
    for method, path in (("GET", "/admin/status"), ("POST", "/admin/verify")):
        status, _, ctype = await bare.request(method, path, headers={"Authorization": "Bearer anything"})
        assert (status, ctype) == (401, "application/problem+json")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {ADMIN_TOKEN.upper()}"},
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
        {"Authorization": ADMIN_TOKEN},
        {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
    ],
)
async def test_admin_needs_the_exact_token(node: RunningNode, headers: dict[str, str]) -> None:
    status, problem, ctype = await node.request("GET", "/admin/status", headers=headers, anonymous=not headers)
    assert (status, ctype) == (401, "application/problem+json")
    assert problem["type"].endswith(":unauthorized")


@pytest.mark.parametrize("path", ["//admin/status", "/admin/../admin/status", "/%2Fadmin/status", "/ADMIN/status"])
async def test_path_tricks_do_not_bypass_the_token(node: RunningNode, path: str) -> None:
    status, _, _ = await node.request("GET", path, anonymous=True)
    assert status in (401, 404)


async def test_token_in_query_string_is_not_accepted(node: RunningNode) -> None:
    status, _, _ = await node.request("GET", f"/admin/status?token={ADMIN_TOKEN}", anonymous=True)
    assert status == 401


async def test_status_and_verify_with_the_token(node: RunningNode) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    await node.request("POST", "/ledger/entries", json=[{"stream": "s", "type": "t", "payload": {"i": i}}
                                                         for i in range(20)])  # fmt: skip
    status, body, _ = await node.request("GET", "/admin/status", headers=auth)
    assert status == 200 and body["ledger_id"] == "node-a" and body["stats"]["entries"] == 20
    assert [(x["ledger_id"], x["head_seq"], x["local"]) for x in body["ledgers"]] == [("node-a", 20, True)]
    assert "admin_token" not in str(body) and ADMIN_TOKEN not in str(body)
    status, body, _ = await node.request("POST", "/admin/verify", params={"mode": "full"}, headers=auth)
    assert status == 200 and body["ledgers"][0]["signatures"] == 20
    status, body, _ = await node.request("POST", "/admin/verify", params={"mode": "sloppy"}, headers=auth)
    assert status == 400

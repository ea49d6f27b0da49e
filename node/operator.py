"""Operator commands: the admin API as readable tables (``ledger-node status|peers|sync|conflicts|trust``,
``candidates`` and ``pins``), credentials (``ledger-node credentials issue|list|revoke``) and the audit log
(``ledger-node audit``). Every reading command prints the API's JSON answer instead with ``--json``."""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console

from node.client import NodeClient
from node.interop.trust import FOREVER
from protocol.signing import fingerprint
from protocol.terminal import print_table

console = Console()
TOKEN_HELP = "API token, sent as 'Authorization: Bearer' (default $LEDGER_TOKEN, else $LEDGER_ADMIN_TOKEN)"


def _run(args: argparse.Namespace, work: Callable[[NodeClient], Coroutine[Any, Any, None]]) -> None:
    async def go() -> None:
        async with NodeClient(args.url, args.token) as client:
            await work(client)

    asyncio.run(go())


def _show(args: argparse.Namespace, data: Any, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
          ) -> None:  # fmt: skip
    """``data`` (the API's answer) as JSON with ``--json``, else the table."""
    if getattr(args, "json", False):
        print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode(), flush=True)
    else:
        print_table(title, columns, rows, console)


def cmd_status(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        status = await client.get("/admin/status")
        stats = status["stats"]
        _show(args, status, f"{status['ledger_id']} (version {status['version']})", ["field", "value"], [
            ("ready", status["ready"]), ("entries", stats["entries"]), ("head", stats["head"]["hash"]),
            ("streams", ", ".join(f"{k}={v}" for k, v in stats["streams"].items())),
            ("data dir", status["settings"]["data_dir"]), ("durability", status["settings"]["durability"]),
        ])  # fmt: skip

    _run(args, work)


def cmd_peers(args: argparse.Namespace) -> None:
    if args.action != "list":
        _run(args, lambda client: _change_peers(args, client))
        return

    async def work(client: NodeClient) -> None:
        peers = await client.get("/admin/peers")
        rows = []
        for p in peers:
            lag = sum(x["lag"] for x in p["ledgers"])
            rows.append((p["ledger_id"], p["url"], p["mode"], p["source"], p["state"], p["failures"], lag,
                         p["last_error"]))  # fmt: skip
        _show(args, peers, "peers", ["peer", "url", "mode", "source", "state", "failures", "lag", "last error"], rows)

    _run(args, work)


PEER_USAGE = {"add": "LEDGER_ID PEER_URL PUBLIC_KEY", "remove": "LEDGER_ID", "connect": "PEER_URL"}


async def _change_peers(args: argparse.Namespace, client: NodeClient) -> None:
    """``peers add|remove|connect``: POST /admin/peers, DELETE /admin/peers/{id}, POST /network/connect."""
    _arity(f"peers {args.action}", PEER_USAGE[args.action], args.arguments)
    if args.action == "add":
        ledger_id, peer_url, key = args.arguments
        body = {"ledger_id": ledger_id, "url": peer_url, "public_key": key, "mode": args.mode}
        added = await client.post("/admin/peers", body)
        print(f"{added['ledger_id']}: peer at {added['url']} (mode {added['mode']}), key fingerprint "
                      f"{_fingerprint(key)} pinned")  # fmt: skip
    elif args.action == "remove":
        await client.delete(f"/admin/peers/{args.arguments[0]}")
        print(f"{args.arguments[0]}: peer removed")
    else:
        found = await client.post("/network/connect", {"url": args.arguments[0]})
        record = found["record"]
        print(f"{record['ledger_id']}: {found['status']} at {args.arguments[0]} "
                      f"(key fingerprint {_fingerprint(record['public_key'])})")  # fmt: skip


def _fingerprint(public_key: str) -> str:
    """How a key is named in human output (candidates show the whole key beside it: admit --key takes one)."""
    return fingerprint(bytes.fromhex(public_key))


def _arity(command: str, usage: str, given: Sequence[str]) -> None:
    if len(given) != len(usage.split()):
        raise SystemExit(f"ledger-node {command}: expected {usage}")


def cmd_sync(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        if args.run:
            await client.post("/admin/sync/run", params={"peer": args.peer})
        status = await client.get("/ledger/sync/status")
        rows = [
            (p["ledger_id"], x["ledger_id"], x["local_seq"], x["remote_seq"], x["lag"], x["pulled_through"],
             x["pushed_through"], "yes" if x["quarantined"] else "")
            for p in status["peers"] for x in p["ledgers"]
        ]  # fmt: skip
        # pulled_through, pushed_through: the durable marks, the seq through which the ledger went each way
        columns = ["peer", "ledger", "local", "remote", "lag", "pulled through seq", "pushed through seq",
                   "quarantined"]  # fmt: skip
        _show(args, status, "sync", columns, rows)

    _run(args, work)


def cmd_conflicts(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        if args.action == "resolve":
            if args.conflict_id is None:
                raise SystemExit("ledger-node conflicts resolve: a conflict id is needed (see ledger-node conflicts)")
            body = {"winner": args.winner, "payload": _json_object(args.payload, "--payload")}
            entry = await client.post(f"/admin/conflicts/{args.conflict_id}/resolve", body)
            print(f"conflict {args.conflict_id} resolved by entry seq {entry['seq']} hash {entry['hash']}")
            return
        found = await client.get("/admin/conflicts", params={"status": args.status})
        rows = [(c["id"], c["kind"], c["ledger_id"] or "", c["seq"] or "", c["key"] or "", c["status"],
                 c["resolution"] or "") for c in found]  # fmt: skip
        _show(args, found, "conflicts", ["id", "kind", "ledger", "seq", "key", "status", "resolution"], rows)

    _run(args, work)


def _json_object(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise SystemExit(f"ledger-node: error: {flag}: not valid JSON ({exc})") from exc


def cmd_trust(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        if args.action in ("attest", "revoke"):
            if args.ledger_id is None:
                raise SystemExit(f"ledger-node trust {args.action}: a ledger id is needed")
            body = {"to": args.ledger_id, "level": args.level, "type": args.type, "expires_at": args.expires_at,
                    "revoke": args.action == "revoke"}  # fmt: skip
            att = await client.post("/admin/trust", body)
            verb = "revoked" if args.action == "revoke" else f"level {att['level']}"
            print(f"{att['from']} -> {att['to']}: {verb} ({att['type']}), signed")
            return
        if args.action == "path":
            if args.ledger_id is None:
                raise SystemExit("ledger-node trust path: a ledger id is needed")
            params = {"to": args.ledger_id, "from": args.source, "use": args.use}
            found = await client.get("/network/trust/path", params)
            route = " -> ".join(found["path"]) if found["path"] else "no path"
            _show(args, found, f"trust path ({found['use']})", ["from", "to", "score", "path"],
                  [(found["from"], found["to"], found["score"], route)])  # fmt: skip
            return
        edges = await client.get("/network/trust")
        rows = [(e["from"], e["to"], e["level"], e["type"], "never" if e["expires_at"] >= FOREVER else
                 _when(e["expires_at"])) for e in edges]  # fmt: skip
        _show(args, edges, "trust attestations", ["from", "to", "level", "type", "expires (UTC)"], rows)

    _run(args, work)


def cmd_credentials_issue(args: argparse.Namespace) -> None:
    scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]

    async def work(client: NodeClient) -> None:
        issued = await client.post("/admin/credentials", {"name": args.name, "scopes": scopes})
        print(f"issued credential {issued['id']} name={issued['name']} scopes={','.join(issued['scopes'])}")
        print("token (shown only now; keep it secret):")
        print(issued["token"], flush=True)

    _run(args, work)


def cmd_credentials_list(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        found = await client.get("/admin/credentials")
        rows = [(c["id"], c["name"], ",".join(c["scopes"]), _when(c["created_ms"]), _when(c["last_used_ms"]),
                 _when(c["revoked_ms"]) if c["revoked_ms"] else "") for c in found]  # fmt: skip
        _show(args, found, "credentials", ["id", "name", "scopes", "created", "last used", "revoked"], rows)

    _run(args, work)


def cmd_credentials_revoke(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        credential_id = args.id
        if not re.fullmatch(r"[0-9a-f]{12}", credential_id):  # a name: the one live credential of that name
            named = [c for c in await client.get("/admin/credentials") if c["name"] == args.id]
            found = [c["id"] for c in named if not c["revoked_ms"]]
            if named and not found:
                gone = ", ".join(f"{c['id']} at {_when(c['revoked_ms'])} UTC" for c in named)
                raise SystemExit(f"ledger-node credentials revoke: {args.id!r} is already revoked ({gone})")
            if len(found) != 1:
                raise SystemExit(f"ledger-node credentials revoke: {len(found)} live credentials are named "
                                 f"{args.id!r}{': ' + ', '.join(found) if found else ''}; give the id")  # fmt: skip
            credential_id = found[0]
        revoked = await client.delete(f"/admin/credentials/{credential_id}")
        print(f"revoked credential {revoked['id']} name={revoked['name']}")

    _run(args, work)


def cmd_audit(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        records = await client.get("/admin/audit", params={"limit": args.limit, "before": args.before})
        rows = [(r["id"], _when(r["at_ms"]), r["actor"], r["action"],
                 _detail(r["detail"])) for r in records]  # fmt: skip
        _show(args, records, "audit log (newest first)", ["id", "at (UTC)", "actor", "action", "detail"], rows)

    _run(args, work)


def _detail(detail: dict[str, Any]) -> str:
    """``key=value`` pairs as the API gives them: strings bare, other values as JSON (``true``, ``["read"]``),
    keys without a value (null) left out."""
    return " ".join(f"{k}={v if isinstance(v, str) else orjson.dumps(v).decode()}" for k, v in detail.items()
                    if v is not None)  # fmt: skip


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_candidates(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        if args.action in ("admit", "refuse"):
            if not args.ledger_id:
                raise SystemExit(f"ledger-node candidates {args.action}: a ledger id is needed")
            path, params = f"/admin/candidates/{args.ledger_id}", {"public_key": args.key} if args.key else None
            found = await (client.post(path + "/admit", params=params) if args.action == "admit"
                           else client.delete(path, params=params))  # fmt: skip
            print(f"{found['ledger_id']}: {found['status']}")
            return
        found = await client.get("/admin/candidates")
        rows = [(c["ledger_id"], c["record"]["endpoints"][0], _fingerprint(c["record"]["public_key"]),
                 c["record"]["public_key"], ", ".join(c["sources"]), c["status"], c["detail"] or "")
                for c in found]  # fmt: skip
        columns = ["ledger", "url", "key fingerprint", "key", "sources", "status", "detail"]
        _show(args, found, "candidates", columns, rows)

    _run(args, work)


def cmd_pins(args: argparse.Namespace) -> None:
    async def work(client: NodeClient) -> None:
        if args.action == "set":
            if not args.ledger_id or not args.key:
                raise SystemExit("ledger-node pins set: a ledger id and a public key (hex) are needed")
            pin = await client.put(f"/admin/pins/{args.ledger_id}", {"public_key": args.key})
            print(f"{pin['ledger_id']}: pinned to key fingerprint {_fingerprint(pin['public_key'])} (operator)")
            return
        if args.action == "remove":
            if not args.ledger_id:
                raise SystemExit("ledger-node pins remove: a ledger id is needed")
            await client.delete(f"/admin/pins/{args.ledger_id}")
            print(f"{args.ledger_id}: pin, entries and peer removed")
            return
        pins = await client.get("/admin/pins")
        rows = [(p["ledger_id"], p["key_fingerprint"], p["source"], p["entries"], "yes" if p["local"] else "")
                for p in pins]  # fmt: skip
        _show(args, pins, "pins", ["ledger", "key fingerprint", "source", "entries", "own"], rows)

    _run(args, work)


def add_commands(sub: Any, url_default: str, token_default: str | None) -> None:
    """Register the operator commands on the CLI's subparsers."""

    def command(name: str, help_text: str, func: Callable[[argparse.Namespace], None], parent: Any = sub,
                reading: bool = False) -> argparse.ArgumentParser:  # fmt: skip
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("--url", default=url_default, help=f"node URL (default {url_default})")
        parser.add_argument("--token", default=token_default, help=TOKEN_HELP)
        if reading:
            parser.add_argument("--json", action="store_true", help="print the API's answer as JSON, not a table")
        parser.set_defaults(func=func)
        return parser

    credentials = sub.add_parser("credentials", help="issue, list and revoke API tokens (admin)")
    what = credentials.add_subparsers(title="actions", required=True, metavar="ACTION")
    issue = command("issue", "issue an API token; prints it once", cmd_credentials_issue, what)
    issue.add_argument("name", help="who or what the token is for")
    issue.add_argument("--scopes", required=True, help="comma-separated: read, append, query, admin")
    command("list", "every credential: scopes, created, last used, revoked", cmd_credentials_list, what, True)
    revoke = command("revoke", "revoke a credential at once", cmd_credentials_revoke, what)
    revoke.add_argument("id", help="its id (credentials list), or its name when one live credential has it")
    audit = command("audit", "the audit log, newest first: who did what (admin)", cmd_audit, reading=True)
    audit.add_argument("--limit", type=int, default=50, help="records to show (max 1000)")
    audit.add_argument("--before", type=int, help="only records older than this id (paging)")

    command("status", "the node's identity, head and settings (admin)", cmd_status, reading=True)
    peers = command("peers", "peers with their sync state; add, remove or connect one (admin)", cmd_peers,
                    reading=True)  # fmt: skip
    peers.add_argument("action", nargs="?", choices=["list", *PEER_USAGE], default="list",
                       help="; ".join(f"{k} {v}" for k, v in PEER_USAGE.items()))  # fmt: skip
    peers.add_argument("arguments", nargs="*", metavar="ARG", help="as the action needs (above)")
    peers.add_argument("--mode", choices=["pull", "push", "both"], default="both", help="with add (default both)")
    sync = command("sync", "sync state per peer and ledger; --run starts a round now", cmd_sync, reading=True)
    sync.add_argument("--run", action="store_true", help="trigger a sync round first (admin)")
    sync.add_argument("--peer", help="only this peer, with --run")
    conflicts = command("conflicts", "forks and key conflicts; resolve one (admin)", cmd_conflicts, reading=True)
    conflicts.add_argument("action", nargs="?", choices=["list", "resolve"], default="list")
    conflicts.add_argument("conflict_id", nargs="?", type=int, help="with resolve: the id the list shows")
    conflicts.add_argument("--status", choices=["open", "resolved"], help="list only these")
    conflicts.add_argument("--winner", help="with resolve: the hash (hex) of the head that wins")
    conflicts.add_argument("--payload", help="with resolve: the payload of the resolving entry, as JSON")
    trust = command("trust", "trust attestations held; attest, revoke, or the path to a ledger", cmd_trust,
                    reading=True)  # fmt: skip
    trust.add_argument("action", nargs="?", choices=["list", "attest", "revoke", "path"], default="list")
    trust.add_argument("ledger_id", nargs="?", help="the ledger trusted (attest, revoke) or reached (path)")
    trust.add_argument("--level", type=float, default=1.0, help="with attest: 0..1 (default 1)")
    trust.add_argument("--type", choices=["full", "partial", "query-only", "sync-only"], default="full",
                       help="with attest or revoke (default full)")  # fmt: skip
    trust.add_argument("--expires-at", type=int, help="with attest: expiry, ms since the epoch")
    trust.add_argument("--from", dest="source", help="with path: start here (default this node)")
    trust.add_argument("--use", choices=["sync", "query"], default="sync", help="with path (default sync)")
    candidates = command("candidates", "candidate peers; admit or refuse one (admin)", cmd_candidates, reading=True)
    candidates.add_argument("action", nargs="?", choices=["list", "admit", "refuse"], default="list")
    candidates.add_argument("ledger_id", nargs="?")
    candidates.add_argument("--key", help="with admit or refuse: the claim's public key (64 hex), needed for admit "
                            "when several keys claim the ledger id")  # fmt: skip
    pins = command("pins", "pinned ledger keys and their provenance; set or remove one (admin)", cmd_pins, reading=True)
    pins.add_argument("action", nargs="?", choices=["list", "set", "remove"], default="list")
    pins.add_argument("ledger_id", nargs="?")
    pins.add_argument("key", nargs="?", help="public key (64 hex) for set")

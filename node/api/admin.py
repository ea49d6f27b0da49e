"""``/admin/...``: operator endpoints, for credentials with the ``admin`` scope (node/api/auth.py).

Every change made here is recorded in the audit log with the credential that made it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

import node
from node.access.credentials import parse_scopes
from node.api.auth import Handler, actor, audit
from node.api.context import AUDIT, CREDENTIALS, DISCOVERY, LEDGER, LIFECYCLE, METRICS, PEERS, STATE, SYNC, TASKS, TRUST
from node.api.json import json_response, read_json, validate, validate_query
from node.api.network import take_attestations
from node.backup import backup_into
from node.errors import EntryNotFound, InvalidRequest
from protocol.models import Entry, LedgerId
from protocol.openapi import operation
from protocol.records import PublicKey, Url
from protocol.signing import fingerprint
from protocol.trust import TrustAttestation


def admin(summary: str, **details: Any) -> Callable[[Handler], Handler]:
    """``@operation`` of an admin route (a credential with the admin scope)."""
    return operation(summary, auth="admin", **details)


class VerifyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["fast", "chain", "full"] = "chain"


class PeerPath(BaseModel):
    ledger_id: LedgerId


class RunParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    peer: LedgerId | None = None


class ConflictParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["open", "resolved"] | None = None


class ConflictPath(BaseModel):
    conflict_id: Annotated[int, Field(ge=1, le=2**53 - 1)]


@admin("identity, heads of every held ledger, settings, background loops")
async def status(request: web.Request) -> web.Response:
    """The node's identity, head, settings that matter to operators, uptime and its background loops."""
    ledger = request.app[LEDGER]
    settings = ledger.settings
    return json_response(
        {
            "ledger_id": ledger.ledger_id,
            "version": node.__version__,
            "ready": request.app[LIFECYCLE].ready,
            "started_ms": request.app[LIFECYCLE].started_ms,
            "stats": await ledger.stats(),
            "ledgers": [
                {
                    "ledger_id": row.ledger_id,
                    "head_seq": row.head_seq,
                    "local": row.is_local,
                    "head_hash": row.head_hash.hex() if row.head_hash else None,
                    "quarantined": row.quarantined,
                }
                for row in await ledger.ledgers()
            ],  # fmt: skip
            "tasks": request.app[TASKS].states(),
            "activities": ledger.activities.listed(),
            "index_lag_entries": ledger.index_lag(),
            "settings": {
                "data_dir": str(settings.data_dir),
                "durability": settings.durability,
                "verify_on_start": settings.verify_on_start,
                "streams": settings.streams,
                "limits": settings.limits.model_dump(),
            },
        }
    )


@admin("verify the store now; 500 store-corrupted names the first bad seq", query=VerifyParams)
async def verify(request: web.Request) -> web.Response:
    """Verify the store now (``?mode=fast|chain|full``); 500 store-corrupted names the bad seq."""
    params = validate_query(VerifyParams, request.query)
    reports = await request.app[LEDGER].verify(params.mode)
    for report in reports:
        request.app[METRICS].verify_seconds.labels(report.mode).set(report.seconds)
    return json_response({"ok": True, "ledgers": [dataclasses.asdict(r) for r in reports]})


class PeerBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Url
    ledger_id: LedgerId
    public_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    mode: Literal["pull", "push", "both"] = "both"


@admin("peers with their sync state")
async def list_peers(request: web.Request) -> web.Response:
    return json_response((await request.app[SYNC].status())["peers"])


@admin("add or replace a peer, pinning its key", body=PeerBody, ok=201)
async def add_peer(request: web.Request) -> web.Response:
    """Add (or replace) a peer: its URL, ledger id and the public key to pin for it."""
    body = validate(PeerBody, await read_json(request))
    await request.app[PEERS].add(body.url, body.ledger_id, bytes.fromhex(body.public_key), body.mode,
                                 pin_source="operator", actor=actor(request))  # fmt: skip
    await audit(request, "peer.add", ledger_id=body.ledger_id, url=body.url, mode=body.mode)
    return json_response({"ledger_id": body.ledger_id, "url": body.url, "mode": body.mode}, status=201)


@admin("remove a peer", path=PeerPath, ok=204)
async def remove_peer(request: web.Request) -> web.Response:
    ledger_id = validate_query(PeerPath, request.match_info).ledger_id
    if not await request.app[PEERS].remove(ledger_id):
        raise EntryNotFound(f"no peer {ledger_id}")
    await audit(request, "peer.remove", ledger_id=ledger_id)
    return web.Response(status=204)


@admin("start a sync round now, skipping backoff", query=RunParams, ok=202)
async def run_sync(request: web.Request) -> web.Response:
    """Start a sync round with every peer (or ``?peer=``) now, skipping backoff."""
    peer = validate_query(RunParams, request.query).peer
    request.app[SYNC].trigger(peer)
    await audit(request, "sync.run", peer=peer)
    return json_response({"triggered": peer or "all"}, status=202)


@admin("forks and key conflicts", query=ConflictParams)
async def conflicts(request: web.Request) -> web.Response:
    records = await request.app[STATE].conflicts(validate_query(ConflictParams, request.query).status)
    return json_response([
        {**dataclasses.asdict(r), "evidence": orjson.Fragment(r.evidence)} for r in records
    ])  # fmt: skip


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    winner: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    payload: dict[str, Any] | None = None


@admin("resolve a key conflict with a signed entry superseding every head", path=ConflictPath, body=Resolution,
       ok=201, response=Entry)  # fmt: skip
async def resolve_conflict(request: web.Request) -> web.Response:
    """Resolve an open key conflict by appending a signed entry that supersedes every head."""
    conflict_id = validate_query(ConflictPath, request.match_info).conflict_id
    body = validate(Resolution, await read_json(request))
    row = await request.app[STATE].resolve(conflict_id, body.winner, body.payload)
    await audit(request, "conflict.resolve", conflict_id=conflict_id, winner=body.winner, seq=row.seq)
    return json_response(row.to_wire(), status=201)


class ConnectBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Url


@admin("fetch a node's signed record from its URL, verify it, make it a peer", body=ConnectBody, ok=201)
async def connect(request: web.Request) -> web.Response:
    """Fetch a node's signed record from its URL, verify it, and make it a peer."""
    body = validate(ConnectBody, await read_json(request))
    found = await request.app[DISCOVERY].connect(body.url)
    await audit(request, "peer.connect", url=body.url, ledger_id=found.record.ledger_id)
    return json_response(found.to_wire(), status=201)


class TrustBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    to: LedgerId
    level: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 1.0
    type: Literal["full", "partial", "query-only", "sync-only"] = "full"
    expires_at: Annotated[int, Field(gt=0, le=2**53 - 1)] | None = None
    revoke: bool = False


@admin("attest trust in a ledger, or revoke it", body=TrustBody, ok=201)
async def attest(request: web.Request) -> web.Response:
    """Attest trust in a ledger (or revoke it: level 0), signed by this node."""
    body = validate(TrustBody, await read_json(request))
    level = 0.0 if body.revoke else body.level
    discovered = request.app[DISCOVERY].knows(body.to)
    att = await request.app[TRUST].attest(body.to, level, body.type, body.expires_at, discovered=discovered)
    await request.app[DISCOVERY].reconsider()  # a trust path may now admit a candidate
    await audit(request, "trust.attest", to=body.to, level=level, type=body.type, expires_at=body.expires_at)
    return json_response(att.wire(), status=201)


@admin("take attestations shared out of band; each verified under its author's pinned key",
       body=list[TrustAttestation])  # fmt: skip
async def import_attestations(request: web.Request) -> web.Response:
    """Take attestations the operator brings (e.g. another node's GET /network/trust); counts, and
    each refusal with its reason."""
    response, counts = await take_attestations(request)
    await request.app[DISCOVERY].reconsider()  # a trust path may now admit a candidate
    await audit(request, "trust.import", **counts)
    return response


@admin("a consistent backup of store and key into a new directory under backup_dir, while serving", ok=201)
async def make_backup(request: web.Request) -> web.Response:
    """Back up the store (SQLite backup API) and the key into ``<backup_dir>/<ledger_id>-<time>``; 409
    when no ``backup_dir`` is configured. Restore with ``ledger-node restore``."""
    settings = request.app[LEDGER].settings
    out, manifest = await backup_into(settings.backup_dir, settings.ledger_id, settings.db_path, settings.key_path)
    await audit(request, "backup", path=str(out))
    return json_response({"path": str(out), **dataclasses.asdict(manifest)}, status=201)


# --- admission and pins ------------------------------------------------------------------------


@admin("candidate peers proposed by introductions, mDNS, registries and peer exchange")
async def list_candidates(request: web.Request) -> web.Response:
    return json_response(request.app[DISCOVERY].discovered())


class ClaimParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: PublicKey | None = None


@admin("admit a candidate: pin its key (operator) and make it a peer; 409 when several keys claim its id "
       "and no public_key names one", path=PeerPath, query=ClaimParams)  # fmt: skip
async def admit_candidate(request: web.Request) -> web.Response:
    ledger_id = validate_query(PeerPath, request.match_info).ledger_id
    key = validate_query(ClaimParams, request.query).public_key
    return json_response((await request.app[DISCOVERY].admit(ledger_id, actor(request), key)).to_wire())


@admin("refuse a candidate (every claim to its id, or the one of public_key): never admitted automatically",
       path=PeerPath, query=ClaimParams)  # fmt: skip
async def refuse_candidate(request: web.Request) -> web.Response:
    ledger_id = validate_query(PeerPath, request.match_info).ledger_id
    key = validate_query(ClaimParams, request.query).public_key
    refused = await request.app[DISCOVERY].refuse(ledger_id, actor(request), key)
    return json_response({"ledger_id": ledger_id, "status": "refused", "claims": [f.to_wire() for f in refused]})


@admin("every pin: ledger id, key fingerprint, provenance, entries held")
async def list_pins(request: web.Request) -> web.Response:
    return json_response([
        {"ledger_id": r.ledger_id, "public_key": r.public_key.hex(), "key_fingerprint": fingerprint(r.public_key),
         "source": r.pin_source, "entries": r.head_seq, "local": r.is_local}
        for r in await request.app[LEDGER].ledgers()
    ])  # fmt: skip


class PinBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    public_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


@admin("pin a ledger id to a key (operator), replacing another pin and dropping its data", path=PeerPath,
       body=PinBody)  # fmt: skip
async def set_pin(request: web.Request) -> web.Response:
    """Pin a ledger id to a key with operator provenance; a pin to another key is replaced and every
    entry held under it dropped (audited)."""
    ledger_id = validate_query(PeerPath, request.match_info).ledger_id
    body = validate(PinBody, await read_json(request))
    ledger = request.app[LEDGER]
    if ledger_id == ledger.ledger_id:
        raise InvalidRequest(f"ledger {ledger_id} is this node's own; its pin is its key file")
    key = bytes.fromhex(body.public_key)
    held = await ledger.held(ledger_id)
    row = await ledger.pin(ledger_id, key, "operator", actor=actor(request), replace=True)
    if held is None or held.public_key == key:  # a replacement was audited with the data it dropped
        await audit(request, "pin.set", ledger_id=ledger_id, public_key=body.public_key)
    elif request.app[PEERS].is_peer(ledger_id):  # the peer answered under the replaced key
        await request.app[PEERS].remove(ledger_id)
    return json_response({"ledger_id": ledger_id, "public_key": row.public_key.hex(), "source": "operator",
                          "entries": row.head_seq})  # fmt: skip


@admin("remove a pin with every entry held under it, and the peer", path=PeerPath, ok=204)
async def remove_pin(request: web.Request) -> web.Response:
    """Remove a pin, every entry held under it and the peer (never the node's own ledger); audited."""
    ledger_id = validate_query(PeerPath, request.match_info).ledger_id
    await request.app[PEERS].remove(ledger_id)
    await request.app[LEDGER].unpin(ledger_id, actor(request))
    return web.Response(status=204)


class CredentialBody(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    scopes: Annotated[list[Literal["read", "append", "query", "admin"]], Field(min_length=1, max_length=4)]


class CredentialPath(BaseModel):
    credential_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]


class AuditParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    before: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None


@admin("issue an API token with scopes; the token is shown in this answer only", body=CredentialBody, ok=201)
async def issue_credential(request: web.Request) -> web.Response:
    body = validate(CredentialBody, await read_json(request))
    issued = await request.app[CREDENTIALS].issue(body.name, parse_scopes(body.scopes))
    await audit(request, "credential.issue", id=issued.credential.id, name=body.name, scopes=sorted(body.scopes))
    return json_response({**issued.credential.wire(), "token": issued.token}, status=201)


@admin("every credential issued (no secrets): scopes, created, last used, revoked")
async def list_credentials(request: web.Request) -> web.Response:
    return json_response([c.wire() for c in request.app[CREDENTIALS].list()])


@admin("revoke a credential: refused from the next request on", path=CredentialPath)
async def revoke_credential(request: web.Request) -> web.Response:
    credential_id = validate_query(CredentialPath, request.match_info).credential_id
    revoked = await request.app[CREDENTIALS].revoke(credential_id)
    await audit(request, "credential.revoke", id=credential_id)
    return json_response(revoked.wire())


@admin("the audit log, newest first: who (credential id) did what", query=AuditParams)
async def audit_log(request: web.Request) -> web.Response:
    params = validate_query(AuditParams, request.query)
    records = await request.app[AUDIT].log(params.limit, params.before)
    return json_response([dataclasses.asdict(r) for r in records])


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/status", status),
        web.post("/admin/verify", verify),
        web.post("/admin/backup", make_backup),
        web.get("/admin/peers", list_peers),
        web.post("/admin/peers", add_peer),
        web.delete("/admin/peers/{ledger_id}", remove_peer),
        web.post("/admin/sync/run", run_sync),
        web.get("/admin/conflicts", conflicts),
        web.post("/admin/conflicts/{conflict_id}/resolve", resolve_conflict),
        web.post("/network/connect", connect),
        web.post("/admin/trust", attest),
        web.post("/admin/trust/attestations", import_attestations),
        web.post("/admin/credentials", issue_credential),
        web.get("/admin/credentials", list_credentials),
        web.delete("/admin/credentials/{credential_id}", revoke_credential),
        web.get("/admin/audit", audit_log),
        web.get("/admin/candidates", list_candidates),
        web.post("/admin/candidates/{ledger_id}/admit", admit_candidate),
        web.delete("/admin/candidates/{ledger_id}", refuse_candidate),
        web.get("/admin/pins", list_pins),
        web.put("/admin/pins/{ledger_id}", set_pin),
        web.delete("/admin/pins/{ledger_id}", remove_pin),
    ]

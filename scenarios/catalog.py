"""The scenarios: multi-node runs with checks that compare real figures (heads, digests, counts)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time

import aiohttp

from scenarios.cluster import add_peer
from scenarios.procs import REPO, NodeProcess
from scenarios.runner import Context, scenario

FAST = {"interval_s": 0.5, "backoff_max_s": 2}


def names(n: int) -> list[str]:
    return [f"node-{chr(ord('a') + i)}" for i in range(n)]


@scenario("mesh-convergence", "every node writes at once in a full mesh; all converge to the same heads and state")
async def mesh_convergence(ctx: Context) -> None:
    nodes = [ctx.start(n, **FAST) for n in names(ctx.nodes)]
    await ctx.mesh(nodes)
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes))
    heads = {n.data_dir.name: w for n, w in zip(nodes, written, strict=True)}
    converged = await ctx.wait(lambda: ctx.all_hold(nodes, heads), timeout=120)
    ctx.figures.update(entries_moved=sum(written) * (len(nodes) - 1), converge_s=converged and round(converged, 2))
    ctx.check("every node holds every ledger's head", converged is not None, f"after {converged}s")
    digests = {await ctx.digest(n) for n in nodes}
    ctx.check("state digests are equal", len(digests) == 1, f"{len(digests)} distinct")


@scenario("partition-heal", "a node is cut off (stopped) while the others write; after it returns all converge")
async def partition_heal(ctx: Context) -> None:
    nodes = [ctx.start(n, **FAST) for n in names(max(3, ctx.nodes))]
    await ctx.mesh(nodes)
    cut = nodes[-1]
    cut.terminate()
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes[:-1]))
    back = ctx.start(cut.data_dir.name, **FAST)
    for other in nodes[:-1]:  # the returning node has a new port
        await add_peer(ctx.session, other, back, "both")
    heads = {n.data_dir.name: w for n, w in zip(nodes[:-1], written, strict=True)}
    healed = await ctx.wait(lambda: ctx.all_hold([back, *nodes[:-1]], heads), timeout=120)
    ctx.figures.update(converge_after_heal_s=healed and round(healed, 2), entries_written=sum(written))
    ctx.check("the returning node caught up", healed is not None)
    ctx.check("entries lost", healed is not None, "0" if healed is not None else "some missing")


@scenario(
    "crash-restart", "a node is SIGKILLed while it writes; on restart it verifies and nothing acknowledged is lost"
)
async def crash_restart(ctx: Context) -> None:
    node = ctx.start("node-a", **FAST)
    acked = 0

    async def writer() -> None:
        nonlocal acked
        while True:
            acked += await ctx.write(node, 50)

    task = asyncio.create_task(writer())
    await asyncio.sleep(random.uniform(0.5, 1.5))  # a random moment in the write stream
    node.kill()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    restarted = ctx.start("node-a", **FAST)
    async with ctx.session.get(restarted.url + "/ledger/stats") as response:
        entries = (await response.json())["entries"]
    ctx.figures.update(acknowledged=acked, held_after_restart=entries)
    ctx.check("entries lost", entries >= acked, f"{max(0, acked - entries)}")
    restarted.terminate()
    argv = [sys.executable, "-m", "node.cli", "verify", "--full", "--data-dir", str(restarted.data_dir)]
    verify = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO)
    ctx.check("store verifies in full after the crash", verify.returncode == 0, verify.stdout.strip()[:120])


@scenario("registry-outage", "nodes found each other through the registry; it goes away and comes back")
async def registry_outage(ctx: Context) -> None:
    registry = ctx.start_registry()
    discovery = {"LEDGER_DISCOVERY__REGISTRY_URLS": f'["{registry.url}"]', "LEDGER_DISCOVERY__HEARTBEAT_S": "0.5",
                 "LEDGER_DISCOVERY__INTERVAL_S": "1"}  # fmt: skip
    nodes = [ctx.start(name, env=discovery, **FAST) for name in names(max(2, ctx.nodes))]
    found = await ctx.wait(lambda: _peered(ctx, nodes), timeout=60)
    ctx.check("nodes found each other through the registry", found is not None, f"in {found}s")
    registry.terminate()
    written = await ctx.write(nodes[0], ctx.entries)
    synced = await ctx.wait(lambda: ctx.all_hold(nodes, {nodes[0].data_dir.name: written}), timeout=60)
    ctx.check("sync goes on while the registry is down", synced is not None)
    port = int(registry.url.rsplit(":", 1)[1])
    ctx.processes.remove(registry)
    ctx.start_registry(port)
    restarted_ms = time.time_ns() // 1_000_000
    back = await ctx.wait(lambda: _heartbeating(ctx, registry.url, len(nodes), restarted_ms), timeout=60)
    ctx.figures.update(reregistered_after_s=back and round(back, 2))
    ctx.check("nodes heartbeat to the registry again when it returns", back is not None)


async def _peered(ctx: Context, nodes: list[NodeProcess]) -> bool:
    for node in nodes:
        async with ctx.session.get(node.url + "/ledger/sync/status") as response:
            if len((await response.json())["peers"]) < len(nodes) - 1:
                return False
    return True


async def _heartbeating(ctx: Context, url: str, count: int, since_ms: int) -> bool:
    """Every node is online again with a heartbeat received by the restarted registry."""
    try:
        async with ctx.session.get(url + "/registry/nodes?status=online") as response:
            nodes = (await response.json())["nodes"]
        return sum(n["last_heartbeat"] > since_ms for n in nodes) >= count
    except (aiohttp.ClientError, ValueError, KeyError):
        return False


@scenario("conflict-strategies", "concurrent writes to one key under each strategy: every node derives the same state")
async def conflict_strategies(ctx: Context) -> None:
    for strategy in ("last-write-wins", "source-priority", "manual", "merge"):
        env = {"LEDGER_CONFLICTS__STRATEGY": strategy, "LEDGER_CONFLICTS__SOURCE_PRIORITY": f'["{strategy}-b"]'}
        pair = [ctx.start(f"{strategy}-{n}", env=env, **FAST) for n in ("a", "b")]
        for node, owner in zip(pair, ("acme", "globex"), strict=True):
            body = {"stream": "assets", "type": "set", "key": "asset-1", "payload": {"owner": owner}}
            async with ctx.session.post(node.url + "/ledger/entries", json=body) as response:
                assert response.status == 201
        await ctx.mesh(pair)

        async def same(pair: list[NodeProcess] = pair) -> bool:
            return len({await ctx.digest(n) for n in pair}) == 1 and await _heads(ctx, pair[0]) == 2

        agreed = await ctx.wait(same, timeout=60)
        ctx.check(f"{strategy}: equal state digests", agreed is not None, f"after {agreed}s")


async def _heads(ctx: Context, node: NodeProcess) -> int:
    async with ctx.session.get(node.url + "/ledger/state/asset-1") as response:
        return len((await response.json()).get("heads", [])) if response.status == 200 else 0


@scenario("trust-gated", "with trust required, untrusted nodes are neither synced nor queried; revocation takes effect")
async def trust_gated(ctx: Context) -> None:
    env = {"LEDGER_TRUST__REQUIRED": "true"}
    a, b, c = [ctx.start(n, env=env, **FAST) for n in names(3)]
    await ctx.mesh([a, b, c])
    for node, other in ((a, "node-b"), (b, "node-a")):
        await ctx.admin(node, "POST", "/admin/trust", {"to": other, "level": 0.9})
    written = {n.data_dir.name: await ctx.write(n, ctx.entries) for n in (a, b, c)}
    synced = await ctx.wait(lambda: ctx.all_hold([a, b], {"node-a": written["node-a"], "node-b": written["node-b"]}),
                            timeout=120)  # fmt: skip
    ctx.check("trusted nodes sync", synced is not None)
    ctx.check("the untrusted node's ledger is not synced", not await ctx.all_hold([a], {"node-c": 1}))
    async with ctx.session.get(a.url + "/network/query", params={"limit": "5", "timeout_ms": "1000"}) as response:
        peers = (await response.json())["peers"]
    ctx.check("the untrusted node is not queried", peers.get("node-c", {}).get("status") == "untrusted", str(peers))
    await ctx.admin(b, "POST", "/admin/trust", {"to": "node-a", "revoke": True})
    more = await ctx.write(a, 10, tag="after-revocation")
    stopped = await ctx.wait(lambda: _untrusted(ctx, b, "node-a"), timeout=30)
    ctx.check("a revocation stops sync within a round", stopped is not None)
    ctx.check("nothing written after the revocation reached the revoking node",
              not await ctx.all_hold([b], {"node-a": written["node-a"] + more}))  # fmt: skip


async def _untrusted(ctx: Context, node: NodeProcess, peer: str) -> bool:
    async with ctx.session.get(node.url + "/ledger/sync/status") as response:
        status = await response.json()
    return any(p["ledger_id"] == peer and p["state"] == "untrusted" for p in status["peers"])


@scenario("federated-query", "one query answered across the network, every remote entry verified")
async def federated_query(ctx: Context) -> None:
    nodes = [ctx.start(n, interval_s=3600, live=False) for n in names(max(3, ctx.nodes))]
    first = nodes[0]
    for other in nodes[1:]:
        await add_peer(ctx.session, first, other, "push")
        await ctx.admin(first, "POST", "/admin/trust", {"to": other.data_dir.name, "level": 0.9, "type": "query-only"})
    for node in nodes:
        await ctx.write(node, ctx.entries)
        probe = {"stream": "scenario", "type": "probe", "subject_oid": "oid:scenario:probe", "payload": {}}
        async with ctx.session.post(node.url + "/ledger/entries", json=probe) as response:
            assert response.status == 201
    started = time.perf_counter()
    params = {"limit": "100", "subject_oid": "oid:scenario:probe"}
    async with ctx.session.get(first.url + "/network/query", params=params) as response:
        answer = await response.json()
    ctx.figures.update(federated_query_ms=round((time.perf_counter() - started) * 1000, 1))
    ledgers = {e["ledger_id"] for e in answer["entries"]}
    ctx.check("every node answered", all(p["status"] == "ok" for p in answer["peers"].values()), str(answer["peers"]))
    ctx.check("results come from every ledger, verified", ledgers == {n.data_dir.name for n in nodes}, str(ledgers))

"""The scenarios: multi-node runs with checks that compare real figures (heads, digests, counts)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

import aiohttp

from node.keys import load_key_file
from protocol.requests import sign_request
from protocol.signing import KeyPair
from scenarios.byzantine import LIES, liar
from scenarios.cluster import add_peer
from scenarios.netlab import Lab
from scenarios.procs import REPO, NodeProcess
from scenarios.runner import Context, scenario

FAST = {"interval_s": 0.5, "backoff_max_s": 2}


def names(n: int) -> list[str]:
    return [f"node-{chr(ord('a') + i)}" for i in range(n)]


IDLE_S = 3.0  # the window over which idle traffic is measured


@scenario("mesh-convergence", "every node writes at once in a full mesh; all converge to the same heads and state")
async def mesh_convergence(ctx: Context) -> None:
    nodes = await ctx.start_many(names(ctx.nodes), **FAST)
    await ctx.mesh(nodes)
    await ctx.wait(lambda: ctx.same_heads(nodes), timeout=60)
    await ctx.measure(nodes, "idle", IDLE_S)
    before, started = await ctx.traffic(nodes), time.perf_counter()
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes))
    ctx.figures.update(writes_s=round(time.perf_counter() - started, 2))
    heads = {n.name: w for n, w in zip(nodes, written, strict=True)}
    converged = await ctx.wait(lambda: ctx.all_hold(nodes, heads), timeout=120)
    ctx.rates("busy", before, await ctx.traffic(nodes), time.perf_counter() - started)
    ctx.figures.update(busy_window_s=round(time.perf_counter() - started, 2))
    ctx.figures.update(entries_moved=sum(written) * (len(nodes) - 1), converge_after_last_write_s=converged)
    ctx.check("every node holds every ledger's head", converged is not None, f"after {converged}s")
    await _same_state(ctx, nodes, heads)


async def _same_state(ctx: Context, nodes: list[NodeProcess], heads: dict[str, int]) -> None:
    """Every node at the same head (seq and hash) of every ledger, nothing beyond the acknowledged
    heads, and equal state digests."""
    ctx.check("every node holds every ledger at the same head hash", await ctx.same_heads(nodes))
    extra = {lid: seq + 1 for lid, seq in heads.items()}
    duplicated = [n.name for n in nodes if await ctx.any_hold([n], extra)]
    ctx.check("entries duplicated", not duplicated, f"beyond the acknowledged heads on {duplicated or 'no node'}")
    digests = {await ctx.digest(n) for n in nodes}
    ctx.check("state digests are equal", len(digests) == 1, f"{len(digests)} distinct")


@scenario(
    "partition-heal",
    "half the nodes are partitioned from the other half while every node writes; after the heal all converge "
    "(--netlab: the links of half the hosts cut)",
)
async def partition_heal(ctx: Context) -> None:
    if ctx.netlab:
        await _partition_heal_links(ctx)
        return
    nodes = await ctx.start_many(names(max(2, ctx.nodes)), **FAST)
    await ctx.mesh(nodes)
    left, right = nodes[: len(nodes) // 2], nodes[len(nodes) // 2 :]
    await ctx.unpeer(left, right)
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes))
    heads = {n.name: w for n, w in zip(nodes, written, strict=True)}
    crossed = await ctx.any_hold(left, {n.name: 1 for n in right}) or await ctx.any_hold(
        right, {n.name: 1 for n in left})  # fmt: skip
    ctx.check("the partition holds: no entry crossed it while cut", not crossed)
    ctx.figures.update(partition=f"{len(left)} from {len(right)}")
    before, started = await ctx.traffic(nodes), time.perf_counter()
    await ctx.mesh(left, right)
    ctx.figures.update(heal_links_s=round(time.perf_counter() - started, 2))
    await _healed(ctx, nodes, heads, started)
    ctx.rates("busy", before, await ctx.traffic(nodes), time.perf_counter() - started)


async def _partition_heal_links(ctx: Context) -> None:
    """Nodes in separate lab hosts; the links of the last half of the hosts (the last one of three)
    are cut from the rest while every side writes, then healed: the network heals at once."""
    count = max(3, ctx.nodes)
    lab = await ctx.lab_up(count)
    nodes = [await ctx.start_in_lab(n, i + 1, **FAST) for i, n in enumerate(names(count))]
    await ctx.mesh(nodes)
    cut = count // 2
    left, right = nodes[: count - cut], nodes[count - cut :]
    await lab.command("partition", *(str(host) for host in range(count - cut + 1, count + 1)))
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes))
    heads = {n.data_dir.name: w for n, w in zip(nodes, written, strict=True)}
    crossed = await ctx.any_hold(right, {n.data_dir.name: 1 for n in left}) or await ctx.any_hold(
        left, {n.data_dir.name: 1 for n in right})  # fmt: skip
    ctx.check("the partition holds: no entry crossed it while cut", not crossed)
    ctx.figures.update(partition=f"{len(right)} from {len(left)}")
    await lab.command("heal")
    await _healed(ctx, nodes, heads)


async def _healed(ctx: Context, nodes: list[NodeProcess], heads: dict[str, int], since: float | None = None) -> None:
    """Wait for every node to hold every head (timed from ``since``, default now); check heads,
    digests and that nothing is lost or duplicated."""
    started = time.perf_counter() if since is None else since
    healed = await ctx.wait(lambda: ctx.all_hold(nodes, heads), timeout=120)
    healed = None if healed is None else round(time.perf_counter() - started, 2)
    ctx.figures.update(converge_after_heal_s=healed, entries_written=sum(heads.values()))
    ctx.check("entries lost", healed is not None, f"0: every node caught up {healed}s after the heal" if healed
              is not None else "some missing")  # fmt: skip
    await _same_state(ctx, nodes, heads)


@scenario("mdns-discovery", "nodes in separate lab hosts find each other by mDNS alone and sync (needs netlab)")
async def mdns_discovery(ctx: Context) -> None:
    count = max(2, ctx.nodes)
    await ctx.lab_up(count)
    nodes = [await ctx.start_in_lab(name, i + 1, env=_mdns_only(i + 1), **FAST) for i, name in enumerate(names(count))]
    found = await ctx.wait(lambda: _all_found_by_mdns(ctx, nodes), timeout=60)
    ctx.figures.update(discovered_s=found)
    ctx.check("every node found every other by mDNS", found is not None, f"after {found}s")
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes))
    heads = {n.data_dir.name: w for n, w in zip(nodes, written, strict=True)}
    synced = await ctx.wait(lambda: ctx.all_hold(nodes, heads), timeout=120)
    ctx.figures.update(entries_moved=sum(written) * (count - 1), converge_s=synced)
    ctx.check("the mDNS-found peers sync every ledger", synced is not None, f"after {synced}s")


@scenario("spoofed-identity", "a node in another lab host claims node-a's id by mDNS: conflict reported, "
          "nothing taken, pin unchanged (needs netlab)")  # fmt: skip
async def spoofed_identity(ctx: Context) -> None:
    await ctx.lab_up(3)
    a = await ctx.start_in_lab("node-a", 1, env=_mdns_only(1), **FAST)
    b = await ctx.start_in_lab("node-b", 2, env=_mdns_only(2), **FAST)
    written = await ctx.write(a, ctx.entries)
    synced = await ctx.wait(lambda: ctx.all_hold([b], {"node-a": written}), timeout=60)
    ctx.check("node-b found node-a by mDNS and synced it", synced is not None)
    genuine = await _entry_hash(ctx, b, "node-a", 1)
    impostor = await ctx.start_in_lab("node-a", 3, env=_mdns_only(3), directory="impostor", **FAST)  # its own key
    await ctx.write(impostor, ctx.entries + 10)
    conflict = 'ledger_discovery_rejects_total{reason="identity-conflict",source="mdns"}'
    reported = await ctx.wait(lambda: _metric_shows(ctx, b, conflict), timeout=60)
    ctx.figures.update(conflict_reported_s=reported)
    ctx.check("the impostor's record is reported as an identity conflict", reported is not None)
    since = time.time_ns() // 1_000_000  # a sync round of node-b after the report could have taken the impostor
    another_round = await ctx.wait(lambda: _synced_since(ctx, b, "node-a", since), timeout=30)
    ctx.check("node-b goes on syncing node-a", another_round is not None)
    found = await _discovered(ctx, b, "node-a")
    real_key = load_key_file(a.data_dir / "node.key").public_key.hex()
    ctx.check("node-a's pinned key is unchanged", found is not None and found["record"]["public_key"] == real_key)
    ctx.check("nothing of the impostor was taken", await _entry_hash(ctx, b, "node-a", 1) == genuine
              and not await ctx.any_hold([b], {"node-a": written + 1}))  # fmt: skip


async def _entry_hash(ctx: Context, node: NodeProcess, ledger_id: str, seq: int) -> str | None:
    entry = await ctx.get(node, f"/ledger/ledgers/{ledger_id}/entries/{seq}")
    return None if entry is None else str(entry["hash"])


def _mdns_only(host: int) -> dict[str, str]:
    """Settings of a node in lab host ``host`` that finds peers by mDNS alone."""
    return {"LEDGER_DISCOVERY__MDNS": "true", "LEDGER_DISCOVERY__MDNS_INTERFACES": f'["{Lab.address(host)}"]',
            "LEDGER_DISCOVERY__PEER_EXCHANGE": "false"}  # fmt: skip


async def _discovered(ctx: Context, node: NodeProcess, ledger_id: str) -> dict[str, Any] | None:
    found = (await ctx.get(node, "/network/discover"))["nodes"]
    return next((n for n in found if n["record"]["ledger_id"] == ledger_id), None)


async def _synced_since(ctx: Context, node: NodeProcess, peer: str, since_ms: int) -> bool:
    peers = (await ctx.get(node, "/ledger/sync/status"))["peers"]
    return any(p["ledger_id"] == peer and (p["last_success_ms"] or 0) > since_ms for p in peers)


@scenario("slow-link", "nodes sync over links with 200 ms delay and 10% loss: they converge, failed rounds back "
          "off, no request storm (needs netlab)")  # fmt: skip
async def slow_link(ctx: Context) -> None:
    count = max(2, ctx.nodes)
    lab = await ctx.lab_up(count)
    nodes = [await ctx.start_in_lab(n, i + 1, interval_s=0.5, backoff_max_s=4, timeout_s=5)
             for i, n in enumerate(names(count))]  # fmt: skip
    await ctx.mesh(nodes)
    for host in range(1, count + 1):
        await lab.command("delay", str(host), "200")
        await lab.command("loss", str(host), "10")
    before = [await _requests_served(ctx, n) for n in nodes]
    started = time.perf_counter()
    written = await asyncio.gather(*(ctx.write(n, ctx.entries) for n in nodes))
    heads = {n.data_dir.name: w for n, w in zip(nodes, written, strict=True)}
    converged = await ctx.wait(lambda: ctx.all_hold(nodes, heads), timeout=300)
    elapsed = time.perf_counter() - started
    served = [await _requests_served(ctx, n) - b for n, b in zip(nodes, before, strict=True)]
    rate = max(served) / elapsed
    failures = [p["failures"] for n in nodes for p in (await ctx.get(n, "/ledger/sync/status"))["peers"]]
    ctx.figures.update(converge_s=converged, entries_moved=sum(written) * (count - 1),
                       peak_node_requests_per_s=round(rate, 1), failed_rounds_now=failures)  # fmt: skip
    ctx.check("every node converges over the slow lossy links", converged is not None, f"after {converged}s")
    ctx.check("no request storm", rate < 50, f"{rate:.1f} requests/s at the busiest node")


async def _requests_served(ctx: Context, node: NodeProcess) -> float:
    """Node-to-node requests (/ledger/sync/...) the node has answered, from its metrics."""
    async with ctx.session.get(node.url + "/metrics") as response:
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("ledger_http_requests_total{") and "/ledger/sync/" in line)  # fmt: skip


async def _all_found_by_mdns(ctx: Context, nodes: list[NodeProcess]) -> bool:
    want = {n.data_dir.name for n in nodes}
    for node in nodes:
        found = (await ctx.get(node, "/network/discover"))["nodes"]
        seen = {n["record"]["ledger_id"] for n in found if "mdns" in n["sources"]}
        if seen != want - {node.data_dir.name}:
            return False
    return True


@scenario("crash-restart", "nodes are SIGKILLed while one writes and the others sync from it; on restart all verify "
          "and nothing acknowledged is lost")  # fmt: skip
async def crash_restart(ctx: Context) -> None:
    nodes = await ctx.start_many(names(max(2, ctx.nodes)), **FAST)
    writer_node, syncing = nodes[0], nodes[1:]
    await ctx.mesh(nodes)
    acked = 0

    async def writer() -> None:
        nonlocal acked
        while True:
            acked += await ctx.write(writer_node, 50)

    task = asyncio.create_task(writer())
    await ctx.wait(lambda: ctx.all_hold(syncing, {"node-a": 1}), timeout=30)  # sync under way
    await asyncio.sleep(random.uniform(0.2, 1.0))  # a random moment in the write and sync streams
    for node in reversed(nodes):
        node.kill()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    started = time.perf_counter()
    verified = await asyncio.gather(*(_verify_full(n) for n in nodes))
    for node, verify in zip(nodes, verified, strict=True):
        said = (verify.stdout or verify.stderr).strip().splitlines()
        ctx.check(f"{node.name}'s store verifies in full after the crash", verify.returncode == 0,
                  said[0][:100] if said else "")  # fmt: skip
    ctx.figures.update(restart_verify_s=round(time.perf_counter() - started, 2), acknowledged=acked)
    restarted = await ctx.start_many([n.name for n in nodes], **FAST)
    await ctx.mesh(restarted)
    held = (await ctx.heads(restarted[0])).get(writer_node.name, (0, None))[0]
    ctx.check("acknowledged entries lost", held >= acked, f"{max(0, acked - held)} (held {held})")
    # the writer may hold a batch it committed but could not acknowledge before the kill: wait for its head
    caught_up = await ctx.wait(lambda: ctx.all_hold(restarted, {writer_node.name: held}), timeout=60)
    ctx.figures.update(resync_after_restart_s=caught_up)
    ctx.check("the syncing nodes resume and catch up", caught_up is not None)
    ctx.check("every node at the same head hash", await ctx.same_heads(restarted))


@scenario("churn", "every node writes while nodes leave (SIGTERM), come back and a new one joins; all converge")
async def churn(ctx: Context) -> None:
    count = max(3, ctx.nodes)
    everyone = names(count + 1)
    nodes = {n.name: n for n in await ctx.start_many(everyone[:count], **FAST)}
    await ctx.mesh(list(nodes.values()))
    acked = dict.fromkeys(everyone, 0)
    down: set[str] = set()
    stop = asyncio.Event()
    batch = max(10, ctx.entries // 20)

    writing = {n: asyncio.Lock() for n in everyone}  # a node leaves between two of its batches

    async def writer(name: str) -> None:
        while not stop.is_set() and acked[name] < ctx.entries:
            if name in down:
                await asyncio.sleep(0.1)  # waiting for the node to come back
                continue
            async with writing[name]:
                acked[name] += await ctx.write(nodes[name], min(batch, ctx.entries - acked[name]), batch=batch)

    writers = [asyncio.create_task(writer(n)) for n in everyone[:count]]
    leaving = random.sample(everyone[1:count], k=max(1, count // 5))
    try:
        for name in leaving:  # leave, come back on a new port, peered again both ways
            async with writing[name]:
                down.add(name)
            await ctx.stop(nodes[name])
            ctx.processes.remove(nodes[name])
            (back,) = await ctx.start_many([name], **FAST)
            nodes[name] = back
            await ctx.mesh([back], [n for n in nodes.values() if n is not back])
            down.discard(name)
        (joined,) = await ctx.start_many(everyone[count:], **FAST)  # a new node joins while writes go on
        nodes[joined.name] = joined
        await ctx.mesh([joined], [n for n in nodes.values() if n is not joined])
        writers.append(asyncio.create_task(writer(joined.name)))
        await asyncio.wait_for(asyncio.gather(*writers), timeout=60 + 30 * count)  # each write is bounded too
    finally:
        stop.set()
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
    ctx.figures.update(left_and_came_back=len(leaving), joined=1)
    heads = {n: acked[n] for n in everyone}
    await _healed(ctx, list(nodes.values()), heads)


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
    ctx.figures.update(entries_moved=written * (len(nodes) - 1), converge_s=synced)
    ctx.check("sync goes on while the registry is down", synced is not None)
    port = int(registry.url.rsplit(":", 1)[1])
    ctx.processes.remove(registry)
    ctx.start_registry(port)
    restarted_ms = time.time_ns() // 1_000_000
    back = await ctx.wait(lambda: _heartbeating(ctx, registry.url, len(nodes), restarted_ms), timeout=60)
    ctx.figures.update(reregistered_after_s=back)
    ctx.check("nodes heartbeat to the registry again when it returns", back is not None)


async def _peered(ctx: Context, nodes: list[NodeProcess]) -> bool:
    for node in nodes:
        if len((await ctx.get(node, "/ledger/sync/status"))["peers"]) < len(nodes) - 1:
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


@scenario("byzantine-peer", "peers that lie in every way a sync peer can: each refused, nothing stored, backed off")
async def byzantine_peer(ctx: Context) -> None:
    origin = ctx.start("node-a", **FAST)
    for _ in range(3):  # three groups: the page carries a checkpoint
        await ctx.write(origin, 10, batch=10)
    page = await _signed_pull(ctx, origin, "/ledger/sync/pull?ledger=node-a&after=0&limit=1000")
    real_key = load_key_file(origin.data_dir / "node.key").public_key.hex()
    victim = ctx.start("node-b", interval_s=0.2, backoff_max_s=1, live=False, retries=0)
    await ctx.write(victim, 1)
    async with AsyncExitStack() as stack:
        liars = {}
        for i, (lie, tell) in enumerate(LIES.items()):
            key = KeyPair(bytes([i + 1] * 32))
            url = await stack.enter_async_context(liar(tell(page), real_key, f"liar-{i}"))
            await _add_liar(ctx, victim, url, f"liar-{i}", key)
            liars[f"liar-{i}"] = lie
        refused = await ctx.wait(lambda: _all_backing_off(ctx, victim, set(liars)), timeout=60)
        ctx.figures.update(lies_told=len(liars), lies_refused_s=refused)
        ctx.check("every lying peer refused and backed off", refused is not None, ", ".join(liars.values()))
        ctx.check("invalid entries accepted", not await ctx.any_hold([victim], {"node-a": 1}), "0")
        stolen = KeyPair(bytes([99] * 32))
        impostor = await stack.enter_async_context(liar(page, stolen.public_key.hex(), "liar-id"))
        await ctx.mesh([origin, victim])
        head = 30 + await ctx.write(origin, ctx.entries)
        genuine = await ctx.wait(lambda: ctx.all_hold([victim], {"node-a": head}), timeout=120)
        ctx.figures.update(entries_moved=head, honest_synced_s=genuine)
        ctx.check("the honest peer's entries are taken after the lies", genuine is not None)
        await _add_liar(ctx, victim, impostor, "liar-id", stolen)
        conflict = 'ledger_sync_rejects_total{peer="liar-id",reason="identity-conflict"}'
        reported = await ctx.wait(lambda: _metric_shows(ctx, victim, conflict), timeout=30)
        ctx.check("another key claiming node-a is an identity conflict", reported is not None)
    victim.terminate()
    verify = await _verify_full(victim)
    said = verify.stdout.strip().splitlines()
    ctx.check("the victim's store verifies in full", verify.returncode == 0, said[0] if said else verify.stderr[-120:])


async def _add_liar(ctx: Context, victim: NodeProcess, url: str, liar_id: str, key: KeyPair) -> None:
    body = {"url": url, "ledger_id": liar_id, "public_key": key.public_key.hex(), "mode": "pull"}
    await ctx.admin(victim, "POST", "/admin/peers", body)


async def _signed_pull(ctx: Context, node: NodeProcess, path: str) -> dict[str, Any]:
    """What ``node`` serves a peer for ``path``, asked with its own key (a peer it trusts)."""
    keys = load_key_file(node.data_dir / "node.key")
    headers = sign_request(keys, node.data_dir.name, "GET", path, b"", time.time_ns() // 1_000_000)
    async with ctx.session.get(node.url + path, headers=headers) as response:
        response.raise_for_status()
        return dict(await response.json())


async def _all_backing_off(ctx: Context, node: NodeProcess, peers: set[str]) -> bool:
    status = await ctx.get(node, "/ledger/sync/status")
    failing = {p["ledger_id"] for p in status["peers"] if p["failures"] >= 2 and p["state"] == "backing-off"}
    return peers <= failing


async def _metric_shows(ctx: Context, node: NodeProcess, needle: str) -> bool:
    async with ctx.session.get(node.url + "/metrics") as response:
        return needle in await response.text()


async def _verify_full(node: NodeProcess) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "node.cli", "verify", "--full", "--data-dir", str(node.data_dir)]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, cwd=REPO)


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
    state = await ctx.get(node, "/ledger/state/asset-1")
    return 0 if state is None else len(state.get("heads", []))


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
    ctx.figures.update(entries_moved=written["node-a"] + written["node-b"], converge_s=synced)
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
    status = await ctx.get(node, "/ledger/sync/status")
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

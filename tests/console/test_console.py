"""The console in a real browser (headless Chromium from the system, driven by Playwright) against a
real local network: the docker-compose topology of a registry and three nodes, as processes on free ports.

Set ``CONSOLE_SCREENSHOT=docs/console.png`` to save the screenshot the README shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from protocol.records import sign_record
from protocol.signing import KeyPair, fingerprint
from scenarios.compose import load, local_ports, localize_service, start_order
from scenarios.procs import NodeProcess, start_process
from tests.conftest import eventually

CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium") if p
                 and Path(p).is_file()), None)  # fmt: skip
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium; .ci/run does)")

TOKEN = "console-test-admin-token-0123456789"
HOSTILE_ENROLMENT = "console-test-enrol-node-x-0123456789"
FAST = {  # the compose environment with quicker rounds, so the test sees changes within seconds
    "LEDGER_ADMIN_TOKEN": TOKEN, "LEDGER_DURABILITY": "normal", "LEDGER_CONSOLE__SNAPSHOT_S": "1",
    "LEDGER_DISCOVERY__HEARTBEAT_S": "1", "LEDGER_DISCOVERY__INTERVAL_S": "1", "LEDGER_SYNC__INTERVAL_S": "1",
    "LEDGER_ACCESS__ANONYMOUS_RATE_PER_S": "5000", "LEDGER_ACCESS__ANONYMOUS_BURST": "10000",
}  # fmt: skip


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[dict[str, NodeProcess]]:
    """The registry and node-a, node-b, node-c of docker-compose.yml on free ports. node-a and node-b
    admit what the registry proposes (as the compose file says); node-c's operator admits by hand."""
    topology = load(env={"LEDGER_ADMIN_TOKEN": TOKEN})
    ports = local_ports(topology, 0)
    running: dict[str, NodeProcess] = {}
    try:
        for spec in start_order(topology):
            service = localize_service(spec, topology, tmp_path, ports)
            env = {**service.env, **FAST}
            if spec.name == "node-c":
                env["LEDGER_DISCOVERY__AUTO_ADMIT"] = "false"
            if spec.name == "registry":  # the test enrols node-x too (a record the test registers itself)
                enrolments = {**json.loads(service.env["LEDGER_REGISTRY_ENROLMENTS"]), "node-x": HOSTILE_ENROLMENT}
                env = {**service.env, "LEDGER_REGISTRY_TTL_S": "3",
                       "LEDGER_REGISTRY_ENROLMENTS": json.dumps(enrolments)}  # fmt: skip
            proc = await asyncio.to_thread(start_process, service.argv, service.data_dir, env=env)
            running[spec.name] = proc
            ports[spec.name] = urlsplit(proc.url).port or 0
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:

            async def proposed() -> bool:
                for name in ("node-a", "node-b"):
                    async with session.get(running[name].url + "/ledger/sync/status") as response:
                        if len((await response.json())["peers"]) < 2:
                            return False
                async with session.get(running["node-c"].url + "/admin/candidates") as response:
                    pending = {c["ledger_id"] for c in await response.json() if c["status"] == "candidate"}
                return pending == {"node-a", "node-b"}

            await eventually(proposed, timeout=30, interval=0.2)
        yield running
    finally:
        for proc in reversed(running.values()):
            if proc.proc.poll() is None:
                proc.terminate()


async def test_the_console_shows_the_network_live(network: dict[str, NodeProcess], tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    node_a, node_c = network["node-a"], network["node-c"]
    errors: list[str] = []
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with async_playwright() as playwright, aiohttp.ClientSession(headers=auth) as http:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 1100})
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        await page.goto(node_c.url + "/")

        # login is required: nothing but the form until a credential is accepted; a wrong one is refused
        await expect(page.locator("#login-form")).to_be_visible()
        await expect(page.locator("#app")).to_be_hidden()
        assert errors == [], errors  # the page loads without console errors
        await page.fill("#token", "lnt_000000000000_not-a-credential")
        await page.click("#login-form button")
        await expect(page.locator("#login-error")).to_contain_text("refused")
        await expect(page.locator("#app")).to_be_hidden()
        assert all("401" in e for e in errors), errors  # only the refused request itself
        errors.clear()
        await page.fill("#token", TOKEN)
        await page.click("#login-form button")
        await expect(page.locator("#app")).to_be_visible()
        assert "token" not in page.url and TOKEN not in page.url  # never in a URL

        # node-c's operator admits the two nodes the registry proposed, each named by the key fingerprint
        # `ledger-node pins` and the registry show (the full key in its title)
        for name in ("node-a", "node-b"):
            async with http.get(network[name].url + "/network/info") as response:
                key = (await response.json())["public_key"]
            candidate = page.locator(f'#candidates li[data-candidate="{name}"]')
            await expect(candidate).to_contain_text("registry")
            await expect(candidate).to_contain_text(fingerprint(bytes.fromhex(key)))
            await expect(candidate.locator(f'[title*="{key}"]')).to_have_count(1)
            await candidate.get_by_role("button", name="Admit").click()
            await expect(candidate).to_have_count(0)

        # the three nodes, online, drawn from the registry and this node's peers; the heads agree
        nodes = page.locator("#network g.node")
        await expect(nodes).to_have_count(3, timeout=10_000)
        for name in ("node-a", "node-b", "node-c"):
            drawn = page.locator(f'#network g.node[data-ledger="{name}"]')
            await expect(drawn).to_have_attribute("data-status", "online")
        await expect(page.locator("#network line.link.sync")).to_have_count(2)
        # node-a and node-b peer each other: their link is drawn too, from their peer exchange
        await expect(page.locator('#network line[data-link="peers:node-a:node-b"]')).to_have_count(1)
        await expect(page.locator("#in-sync")).to_contain_text("In sync", timeout=10_000)
        await expect(page.locator("#node-facts")).to_contain_text("node-c")
        # retries are labelled as the running total they are; ids and hashes never break mid-word
        await expect(page.locator("#peers th", has_text="retries")).to_have_text("retries (total)")
        for cell in ('#peers tr[data-peer="node-a"] td >> nth=0', "#ledgers td.hash >> nth=0"):
            assert await page.locator(cell).evaluate("td => getComputedStyle(td).whiteSpace") == "nowrap", cell
        # the status labels are drawn above every link and node, on a halo: no line crosses their text
        above = await page.locator("#network").evaluate("""svg => {
            const all = [...svg.querySelectorAll("*")], at = (e) => all.indexOf(e);
            const under = Math.max(...[...svg.querySelectorAll(".link, g.node circle")].map(at));
            const labels = [...svg.querySelectorAll("text.sub")];
            return labels.length === 3 && labels.every((t) => at(t) > under
                && getComputedStyle(t).paintOrder.startsWith("stroke"));
        }""")
        assert above

        # live without polling: an idle page makes no request at all, the snapshots come over its one stream
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        uptime = page.locator('#node-facts dd[data-fact="uptime"]')
        before = await uptime.inner_text()
        await page.wait_for_timeout(3_000)  # watching the page idle for three snapshot periods, not waiting on it
        assert requests == [], requests
        assert await uptime.inner_text() != before  # yet the views moved on

        # the registry's console lists the three nodes online, each with a link to its own console
        registry = await browser.new_page()
        registry.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        await registry.goto(network["registry"].url + "/")
        await expect(registry.locator('#nodes tbody tr[data-status="online"]')).to_have_count(3)
        await expect(registry.locator("#network g.node.online")).to_have_count(3)
        await expect(registry.locator(f'#nodes a[href="{node_c.url}"]')).to_have_count(1)
        await registry.close()
        assert errors == [], errors

        # an entry appended on node-a appears on node-c's page within 2 s
        marker = secrets.token_hex(6)
        started = time.monotonic()
        async with http.post(
            node_a.url + "/ledger/entries", json={"stream": "notes", "type": "note", "payload": {"marker": marker}}
        ) as response:
            assert response.status == 201, await response.text()
        await expect(page.locator("#entries tbody tr", has_text=marker)).to_have_count(1, timeout=2_000)
        propagation_s = time.monotonic() - started
        assert propagation_s < 2.0
        print(f"\nconsole: an entry appended on node-a was on node-c's page after {propagation_s:.2f} s")

        # trust edges are drawn apart from sync links
        for other, level in (("node-a", 0.9), ("node-b", 0.8)):
            async with http.post(node_c.url + "/admin/trust", json={"to": other, "level": level}) as response:
                assert response.status == 201, await response.text()
        await expect(page.locator("#network path.link.trust")).to_have_count(2, timeout=5_000)

        # a federated query answers with each ledger's status and each entry's provenance
        await page.select_option("#q-scope", "network")
        await page.fill("#q-stream", "notes")
        await page.click("#query-form button")
        await expect(page.locator("#query-result")).to_contain_text("per ledger")
        await expect(page.locator("#query-result tbody tr", has_text=marker)).to_contain_text("node-a")

        # a click on a node shows its detail
        await page.click('#network g.node[data-ledger="node-a"]')
        await expect(page.locator("#node-detail")).to_contain_text("known from")
        if os.environ.get("CONSOLE_SCREENSHOT"):
            await expect(page.locator("#in-sync")).to_contain_text("In sync", timeout=10_000)
            await page.evaluate("window.scrollTo(0, 0)")
            await page.screenshot(path=os.environ["CONSOLE_SCREENSHOT"])

        # a stopped node turns offline
        impostor_port = urlsplit(network["node-b"].url).port
        assert network["node-b"].terminate() == 0
        node_b = page.locator('#network g.node[data-ledger="node-b"]')
        await expect(node_b).to_have_attribute("data-status", "offline", timeout=10_000)

        # a node this one stopped trusting is marked untrusted
        async with http.post(node_c.url + "/admin/trust", json={"to": "node-a", "revoke": True}) as response:
            assert response.status == 201, await response.text()
        await expect(page.locator('#network g.node[data-ledger="node-a"]')).to_have_attribute(
            "data-marks", "untrusted", timeout=5_000
        )

        # something answering at node-b's address with another key is marked forged
        async with impostor("node-b", impostor_port):
            await expect(node_b).to_have_attribute("data-marks", "forged", timeout=5_000)

        # a read-only credential sees the views but no actions
        viewer_body = {"name": "viewer", "scopes": ["read"]}
        async with http.post(node_c.url + "/admin/credentials", json=viewer_body) as response:
            viewer = (await response.json())["token"]
        reader = await browser.new_page()
        await reader.goto(node_c.url + "/")
        await reader.fill("#token", viewer)
        await reader.click("#login-form button")
        await expect(reader.locator("#whoami")).to_contain_text("read")
        await expect(reader.locator("#conflicts")).to_contain_text("No open conflicts")  # read-only view
        await expect(reader.locator("#conflicts button")).to_have_count(0)  # resolving is for an admin
        await expect(reader.locator("#activities")).to_be_visible()  # running syncs and verifications
        await expect(reader.locator("#network g.node")).to_have_count(3)
        await reader.click("#append-form button")
        await expect(reader.locator("#append-result")).to_contain_text("may not append")

        # a hostile record's text is shown as text: never parsed as HTML, never run
        hostile = '<img src=x onerror="document.title=1">'
        record = sign_record(KeyPair(secrets.token_bytes(32)), ledger_id="node-x", name=hostile,
                             endpoints=["http://127.0.0.1:9"], issued_at=int(time.time() * 1000))  # fmt: skip
        enrolled = {"Authorization": f"Bearer {HOSTILE_ENROLMENT}"}
        async with http.post(network["registry"].url + "/registry/nodes", json=record.model_dump(),
                             headers=enrolled) as response:  # fmt: skip
            assert response.status == 201, await response.text()
        registry = await browser.new_page()
        await registry.goto(network["registry"].url + "/")
        await expect(registry.locator('#nodes tr[data-ledger="node-x"]')).to_contain_text(hostile)
        hostile_node = page.locator('#network g.node[data-ledger="node-x"]')
        await expect(hostile_node).to_have_count(1, timeout=5_000)
        await hostile_node.click()
        await expect(page.locator("#node-detail")).to_contain_text(hostile)
        for shown in (page, registry):
            assert await shown.locator("img").count() == 0
            assert await shown.title() != "1"

        # node-c's operator refuses the node the registry proposed: it is marked refused, never admitted
        candidate = page.locator('#candidates li[data-candidate="node-x"]')
        await candidate.get_by_role("button", name="Refuse").click()
        await expect(candidate).to_have_count(0)
        await expect(hostile_node).to_have_attribute("data-marks", "refused", timeout=5_000)
        await expect(page.locator('#network line[data-link="sync:node-x"]')).to_have_count(0)
        # and changes their mind: a refused claim keeps an Admit button
        refused = page.locator('#candidates li[data-refused="node-x"]')
        await refused.get_by_role("button", name="Admit").click()
        await expect(refused).to_have_count(0)
        await expect(page.locator('#network line[data-link="sync:node-x"]')).to_have_count(1, timeout=5_000)
        await browser.close()
    assert not [e for e in errors if "uncaught" in e], errors


class impostor:  # noqa: N801 - used as a context manager, like a function
    """A hostile server on ``port`` that answers ``/network/info`` as ``ledger_id`` with a key of its own."""

    def __init__(self, ledger_id: str, port: int | None) -> None:
        self.ledger_id, self.port = ledger_id, port
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> impostor:
        key = KeyPair(secrets.token_bytes(32))

        async def info(request: web.Request) -> web.Response:
            return web.json_response({"ledger_id": self.ledger_id, "public_key": key.public_key.hex(),
                                      "head": {"seq": 1, "hash": "00" * 32}})  # fmt: skip

        app = web.Application()
        app.router.add_get("/network/info", info)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

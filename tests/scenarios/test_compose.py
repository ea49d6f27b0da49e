"""docker-compose.yml is checked statically, and runs as local processes through the scenario runner."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.settings import NodeSettings
from registry.settings import RegistrySettings
from scenarios.compose import Service, health_command, load, local_ports, localize, localize_service, start_order
from scenarios.procs import REPO

README = REPO / "README.md"


def test_the_compose_file_describes_a_registry_and_three_nodes() -> None:
    services = load()
    assert sorted(services) == ["node-a", "node-b", "node-c", "registry"]
    published = [port for s in services.values() for port, _ in s.ports]
    assert len(published) == len(set(published)), "published ports must be unique"
    assert [s.name for s in start_order(services)][0] == "registry"
    for name, service in services.items():
        assert any(v.endswith(":/data") for v in service.volumes), name
        assert healthcheck_problems(service) == [], name
        if name == "registry":
            assert service.command[:2] == ["ledger-registry", "run"]
            continue
        assert service.command[:2] == ["ledger-node", "run"] and service.depends_on == ["registry"]
        assert service.environment["LEDGER_ADMIN_TOKEN"]
        assert "http://registry:8600" in service.environment["LEDGER_DISCOVERY__REGISTRY_URLS"]
        # the registry enrols exactly this node with the token the node presents
        enrolments = json.loads(services["registry"].environment["LEDGER_REGISTRY_ENROLMENTS"])
        assert enrolments[name] == service.environment["LEDGER_DISCOVERY__REGISTRY_TOKEN"]
        assert service.environment["LEDGER_DISCOVERY__AUTO_ADMIT"] == "true"  # a closed network
        # `ledger-node backup --on-node` works: the node writes backups into its volume
        assert service.environment["LEDGER_BACKUP_DIR"].startswith("/data/")


def healthcheck_problems(service: Service) -> list[str]:
    """What is wrong with a service's healthcheck: it must be the CMD form of a ``health`` command whose
    arguments hold no whitespace or quotes (some compose implementations split those wrongly)."""
    test = [str(arg) for arg in (service.healthcheck or {}).get("test") or []]
    problems = [] if test[:1] == ["CMD"] and "health" in test else [f"not a CMD health command: {test}"]
    return problems + [f"argument {arg!r} holds a space or quote" for arg in test if re.search(r"[\s'\"]", arg)]


def test_a_healthcheck_argument_with_a_space_or_quote_is_refused() -> None:
    service = load()["node-a"]
    for bad in ("--url=http://127.0.0.1:8700 ", "--url='http://127.0.0.1:8700'", 'import "x"'):
        service.healthcheck = {"test": ["CMD", "ledger-node", "health", bad]}
        assert healthcheck_problems(service), bad
    service.healthcheck = {"test": ["CMD-SHELL", "ledger-node health"]}
    assert healthcheck_problems(service)


def test_every_setting_the_compose_file_gives_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for service in localize(load(), tmp_path):
        for key, value in service.env.items():
            monkeypatch.setenv(key, value)
        if "node.cli" in service.argv:
            settings = NodeSettings(ledger_id=service.argv[service.argv.index("--ledger-id") + 1])
            assert settings.discovery.registry_urls == ["http://127.0.0.1:8600"]
            assert settings.discovery.advertise_url == service.url
            assert settings.backup_dir == tmp_path / service.name / "backups"  # under its data directory
        else:
            RegistrySettings()
        for key in service.env:
            monkeypatch.delenv(key)


def test_a_base_port_moves_every_service_and_the_addresses_they_give_each_other(tmp_path: Path) -> None:
    services = {s.name: s for s in localize(load(), tmp_path, base_port=8600)}
    assert [s.url for s in services.values()] == [f"http://127.0.0.1:{8600 + i}" for i in range(4)]
    registry = services["registry"].argv
    assert registry[registry.index("--port") + 1] == "8600"
    node_b = services["node-b"].env
    assert node_b["LEDGER_PORT"] == "8602" and node_b["LEDGER_DISCOVERY__ADVERTISE_URL"] == "http://127.0.0.1:8602"
    assert node_b["LEDGER_DISCOVERY__REGISTRY_URLS"] == '["http://127.0.0.1:8600"]'
    # base port 0: free ports picked at start; a node is told the registry's once it runs, and announces its own
    topology = load()
    ports = {**local_ports(topology, 0), "registry": 40123}
    node_a = localize_service(topology["node-a"], topology, tmp_path, ports)
    assert node_a.env["LEDGER_PORT"] == "0" and "LEDGER_DISCOVERY__ADVERTISE_URL" not in node_a.env
    assert node_a.env["LEDGER_DISCOVERY__REGISTRY_URLS"] == '["http://127.0.0.1:40123"]'


def test_the_admin_token_comes_from_the_environment() -> None:
    services = load(env={"LEDGER_ADMIN_TOKEN": "from-the-env-0123456789"})
    assert services["node-a"].environment["LEDGER_ADMIN_TOKEN"] == "from-the-env-0123456789"


def hold_free_ports(ports: list[int]) -> list[socket.socket]:
    """Listen on those of ``ports`` that are free, as a ``make run`` on the published ports would."""
    held = []
    for port in ports:
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            held.append(sock)
        except OSError:
            sock.close()  # already taken: the test runs beside whatever holds it
    return held


@dataclass
class Network:
    """``compose up`` running on free ports, started from ``work`` (``make run``'s directory) with its data
    under ``work/data``; ``output`` is what it printed up to ``running;``."""

    work: Path
    output: str


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    held = hold_free_ports([port for s in load().values() for port, _ in s.ports])
    work = tmp_path_factory.mktemp("make-run")
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGER_ADMIN_TOKEN", "LEDGER_TOKEN", "LEDGER_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenarios", "compose", "up", "--data", str(work / "data"), "--base-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[str] = []
    try:
        for line in proc.stdout:
            output.append(line)
            if line.startswith("running;") or line.startswith("stopped"):
                break
        yield Network(work, "".join(output))
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        for sock in held:
            sock.close()
    output.append(rest)
    assert proc.returncode == 0, "".join(output)
    for name in ("registry", "node-a", "node-b", "node-c"):
        assert f"started {name}" in "".join(output) and f"stopped {name} (exit 0)" in "".join(output)


def test_compose_up_runs_the_topology_converges_and_prints_a_working_curl(network: Network) -> None:
    text = network.output
    curl = next((line for line in text.splitlines() if line.startswith("curl ")), None)
    assert curl is not None and "converged in" in text, text
    # pasted as printed, plus -w to see the status
    pasted = subprocess.run(curl.strip() + " -s -o /dev/null -w '%{http_code}'", shell=True, capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert pasted.stdout == "201", pasted.stdout + pasted.stderr
    without_token = re.sub(r'-H "Authorization: [^"]*" ', "", curl.strip())
    anonymous = subprocess.run(without_token + " -s -o /dev/null -w '%{http_code}'", shell=True,
                               capture_output=True, text=True, timeout=30)  # fmt: skip
    assert anonymous.stdout == "401", anonymous.stdout + anonymous.stderr
    services = load()
    started = re.findall(r"^started (\S+)\s+(http://\S+)  \(log: (\S+)\)$", text, re.MULTILINE)
    assert [name for name, _, _ in started] == ["registry", "node-a", "node-b", "node-c"], text
    for name, url, log in started:
        health = subprocess.run(health_command(services[name], url), capture_output=True, text=True, timeout=30)
        assert health.returncode == 0 and url in health.stdout, health.stdout + health.stderr
        assert log == str(network.work / "data" / name / f"{name}.log") and "listening on" in Path(log).read_text()
        assert re.search(rf"^{name}\s+{url}/\s+{log}$", text, re.MULTILINE), text  # in the closing summary
    token = services["node-a"].environment["LEDGER_ADMIN_TOKEN"]
    assert f"admin token (every scope; log in to the consoles with it): {token}" in text
    registry_token = services["registry"].environment["LEDGER_REGISTRY_ADMIN_TOKEN"]
    assert f"): {registry_token}\n" in text and "'Adding a node'" in text and "## Adding a node" in README.read_text()
    enrol = next(line for line in text.splitlines() if " enrol node-d --url " in line)
    pasted = subprocess.run(enrol, shell=True, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert pasted.returncode == 0 and "enrolment token for node-d: " in pasted.stdout, pasted.stdout + pasted.stderr
    assert "HTTP 401" not in text and "backing-off" not in text  # the start-up race is no failure


def test_the_status_printed_is_true_no_link_is_left_waiting_unexplained(network: Network) -> None:
    text = network.output
    assert "every node syncs with each of its peers directly (none waiting to be admitted)" in text or (
        "is still waiting after 60 s" in text and "Nothing is lost" in text
    ), text
    lag = text.split("lag per peer")[1].split("open conflicts")[0]
    assert "waiting" not in lag or "is still waiting after 60 s" in text, text


def test_every_printed_command_works_as_pasted_with_the_token_it_names(network: Network) -> None:
    groups = [block.split("paste any of these as they are:\n")[1].splitlines()
              for block in network.output.split("\n\n") if "paste any of these as they are:" in block]  # fmt: skip
    assert len(groups) == 2, network.output  # the admin commands, the client commands
    exports = []
    for lines, expected in zip(groups, (["status", "peers", "scenarios"], ["append", "query", "curl"]), strict=True):
        ends = next(i for i, line in enumerate(lines) if line.startswith("or set it once for "))
        *commands, export = lines[: ends + 1]
        assert len(commands) == 3 and export.startswith("or set it once for "), lines
        assert all(f"{word} " in command for word, command in zip(expected, commands, strict=True)), lines
        for command in commands:  # as printed, from the directory make run is started in
            result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, cwd=REPO)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        exported = export.split(": ", 1)[1]
        assert exported.startswith("export LEDGER_URL=")
        exports.append(exported)
        for command in commands:  # the same ledger-node commands after the export instead of the flags
            if "ledger-node " in command:
                bare = re.sub(r" --url \S+ --token \S+", "", command)
                result = subprocess.run(f"{exported} && {bare}", shell=True, capture_output=True, text=True,
                                        timeout=60, cwd=REPO)  # fmt: skip
                assert result.returncode == 0, (exported, bare, result.stdout, result.stderr)
    program = groups[0][0].split()[0]
    refused = subprocess.run(f"{exports[1]} && {program} status", shell=True, capture_output=True, text=True,
                             timeout=60, cwd=REPO)  # fmt: skip
    assert refused.returncode == 1 and "lacks scope admin" in refused.stderr  # as the client group says


def test_the_readme_blocks_for_node_a_work_as_pasted(network: Network) -> None:
    """The operator block ("work as pasted on node-a of `make run`") and the credentials block."""
    readme = (REPO / "README.md").read_text()
    operator = readme.split("The client commands below work as pasted on node-a of `make run`")[1]
    credentials = readme.split("## Clients and credentials")[1]
    blocks = [text.split("```sh\n")[1].split("```")[0] for text in (operator, credentials)]
    assert all("http://127.0.0.1:8701" in block for block in blocks)  # node-a of make run
    node_a = re.search(r"^started node-a\s+(http://\S+)", network.output, re.MULTILINE)
    assert node_a is not None
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGER_ADMIN_TOKEN", "LEDGER_TOKEN", "LEDGER_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # what `export PATH="$PWD/.venv/bin:$PATH"` gives
    for block in blocks:
        script = block.replace("http://127.0.0.1:8701", node_a.group(1))  # the one change: ports picked at start
        result = subprocess.run(["bash", "-e", "-x", "-c", script], capture_output=True, text=True, timeout=300,
                                cwd=network.work, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    assert (network.work / "backups" / "node-a-1" / "backup.json").is_file()
    assert any((network.work / "data" / "node-a" / "backups").iterdir())  # --on-node: into its backup_dir


ONE_NODE = """
services:
  node-x:
    command: ["ledger-node", "run", "--ledger-id", "node-x"]
    environment:
      LEDGER_ADMIN_TOKEN: change-me-admin-token
      LEDGER_NET__ALLOW_PRIVATE: "true"
    ports: ["8799:8700"]
"""


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The lines ``proc`` prints, as they come (read by a thread)."""
    assert proc.stdout is not None
    found: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [found.put(line) for line in proc.stdout or []], daemon=True).start()
    return found


def test_a_service_that_dies_is_reported_at_once_and_not_claimed_as_stopped_at_the_end(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yml"
    compose.write_text(ONE_NODE)
    env = {k: v for k, v in os.environ.items() if k not in ("LEDGER_ADMIN_TOKEN", "LEDGER_TOKEN", "LEDGER_URL")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenarios", "compose", "up", "--file", str(compose), "--data", str(tmp_path / "data"),
         "--base-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    output: list[str] = []
    printed = lines_of(proc)
    try:
        while not (output and output[-1].startswith("running;")):
            output.append(printed.get(timeout=60))
        # started from a worker thread: that thread's task lists it
        (child,) = [
            pid for task in Path(f"/proc/{proc.pid}/task").iterdir() for pid in (task / "children").read_text().split()
        ]
        os.kill(int(child), signal.SIGTERM)  # as an operator stopping node-x by hand
        died = printed.get(timeout=30)
        log = tmp_path / "data" / "node-x" / "node-x.log"
        assert re.fullmatch(rf"node-x exited with code 0 at \d\d:\d\d:\d\d UTC \(log: {re.escape(str(log))}\)\n",
                            died), "".join(output) + died  # fmt: skip
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    rest = "".join(printed.get(timeout=5) for _ in range(printed.qsize()))
    assert proc.returncode == 0 and "stopped node-x" not in rest, rest

"""docker-compose.yml is checked statically, and runs as local processes through the scenario runner."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from node.settings import NodeSettings
from registry.settings import RegistrySettings
from scenarios.compose import Service, health_command, load, local_ports, localize, localize_service, start_order
from scenarios.procs import REPO


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


def test_compose_up_runs_the_topology_converges_and_prints_a_working_curl(tmp_path: Path) -> None:
    held = hold_free_ports([port for s in load().values() for port, _ in s.ports])
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenarios", "compose", "up", "--data", str(tmp_path), "--base-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    output: list[str] = []
    try:
        for line in proc.stdout:
            output.append(line)
            if line.startswith("running;") or line.startswith("stopped"):
                break
        curl = next((line for line in output if line.startswith("curl ")), None)
        assert curl is not None and "converged in" in "".join(output), "".join(output)
        # pasted as printed, plus -w to see the status
        pasted = subprocess.run(curl.strip() + " -s -o /dev/null -w '%{http_code}'", shell=True, capture_output=True,
                                text=True, timeout=30)  # fmt: skip
        assert pasted.stdout == "201", pasted.stdout + pasted.stderr
        without_token = re.sub(r'-H "Authorization: [^"]*" ', "", curl.strip())
        anonymous = subprocess.run(without_token + " -s -o /dev/null -w '%{http_code}'", shell=True,
                                   capture_output=True, text=True, timeout=30)  # fmt: skip
        assert anonymous.stdout == "401", anonymous.stdout + anonymous.stderr
        text = "".join(output)
        services = load()
        started = re.findall(r"^started (\S+)\s+(http://\S+)  \(log: (\S+)\)$", text, re.MULTILINE)
        assert [name for name, _, _ in started] == ["registry", "node-a", "node-b", "node-c"], text
        for name, url, log in started:
            health = subprocess.run(health_command(services[name], url), capture_output=True, text=True, timeout=30)
            assert health.returncode == 0 and url in health.stdout, health.stdout + health.stderr
            assert log == str(tmp_path / name / f"{name}.log") and "listening on" in Path(log).read_text()
            assert re.search(rf"^{name}\s+{url}/\s+{log}$", text, re.MULTILINE), text  # in the closing summary
        token = services["node-a"].environment["LEDGER_ADMIN_TOKEN"]
        assert f"admin token (every scope; log in to the consoles with it): {token}" in text
        assert "HTTP 401" not in text and "backing-off" not in text  # the start-up race is no failure
        pasted_commands = text.split("paste any of these as they are:\n")[1].split("\n\n")[0].splitlines()
        assert len(pasted_commands) == 5
        for command in pasted_commands:  # as printed, from the directory make run is started in
            result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60, cwd=REPO)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        for sock in held:
            sock.close()
    output.append(rest)
    assert proc.returncode == 0, "".join(output)
    for name in ("registry", "node-a", "node-b", "node-c"):
        assert f"started {name}" in "".join(output) and f"stopped {name} (exit 0)" in "".join(output)

"""docker-compose.yml is checked statically, and runs as local processes through the scenario runner."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.settings import NodeSettings
from registry.settings import RegistrySettings
from scenarios.compose import load, localize, start_order
from scenarios.procs import REPO


def test_the_compose_file_describes_a_registry_and_three_nodes() -> None:
    services = load()
    assert sorted(services) == ["node-a", "node-b", "node-c", "registry"]
    published = [port for s in services.values() for port, _ in s.ports]
    assert len(published) == len(set(published)), "published ports must be unique"
    assert [s.name for s in start_order(services)][0] == "registry"
    for name, service in services.items():
        assert any(v.endswith(":/data") for v in service.volumes), name
        assert service.healthcheck and "/ready" in " ".join(service.healthcheck["test"]), name
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


def test_the_admin_token_comes_from_the_environment() -> None:
    services = load(env={"LEDGER_ADMIN_TOKEN": "from-the-env-0123456789"})
    assert services["node-a"].environment["LEDGER_ADMIN_TOKEN"] == "from-the-env-0123456789"


def test_compose_up_runs_the_topology_converges_and_prints_a_working_curl(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scenarios", "compose", "up", "--data", str(tmp_path)],
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
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    output.append(rest)
    assert proc.returncode == 0, "".join(output)
    for name in ("registry", "node-a", "node-b", "node-c"):
        assert f"started {name}" in "".join(output) and f"stopped {name} (exit 0)" in "".join(output)

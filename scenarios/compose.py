"""Run the topology of ``docker-compose.yml`` as local processes on 127.0.0.1.

Each service runs its own command with its own environment, as the compose file gives them, with
what only makes sense inside containers mapped to this machine: a service's hostname and container
port become 127.0.0.1 and its published port (in URLs in the environment too), ``/data`` becomes
``<data>/<service>``, and ``ledger-node``/``ledger-registry`` run from this checkout.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scenarios.procs import REPO

COMPOSE_FILE = REPO / "docker-compose.yml"
ENTRY_POINTS = {"ledger-node": "node.cli", "ledger-registry": "registry.cli"}
_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


@dataclass
class Service:
    """One service of the compose file, as written there."""

    name: str
    command: list[str]
    environment: dict[str, str]
    ports: list[tuple[int, int]]  # (published, container)
    volumes: list[str]
    depends_on: list[str] = field(default_factory=list)
    healthcheck: dict[str, Any] | None = None


def load(path: Path = COMPOSE_FILE, env: dict[str, str] | None = None) -> dict[str, Service]:
    """Parse the compose file (YAML merge keys, ``${VAR:-default}`` from ``env``)."""
    variables = os.environ if env is None else env
    text = _VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(2) or ""), path.read_text())
    data = yaml.safe_load(text)
    services = {}
    for name, spec in data["services"].items():
        ports = []
        for port in spec.get("ports", []):
            published, container = str(port).split(":")[-2:]
            ports.append((int(published), int(container)))
        depends = spec.get("depends_on", [])
        services[name] = Service(
            name=name,
            command=[str(part) for part in spec["command"]],
            environment={k: str(v) for k, v in (spec.get("environment") or {}).items()},
            ports=ports,
            volumes=list(spec.get("volumes", [])),
            depends_on=list(depends if isinstance(depends, list) else depends.keys()),
            healthcheck=spec.get("healthcheck"),
        )
    return services


def start_order(services: dict[str, Service]) -> list[Service]:
    """Services ordered so that every service comes after what it depends on."""
    ordered: list[Service] = []
    placed: set[str] = set()
    while len(ordered) < len(services):
        ready = [s for s in services.values() if s.name not in placed and set(s.depends_on) <= placed]
        if not ready:
            raise ValueError("docker-compose.yml: depends_on has a cycle or names an unknown service")
        for service in sorted(ready, key=lambda s: s.name):
            ordered.append(service)
            placed.add(service.name)
    return ordered


@dataclass
class LocalService:
    name: str
    argv: list[str]
    env: dict[str, str]
    data_dir: Path
    url: str


def localize(services: dict[str, Service], data: Path) -> list[LocalService]:
    """The local processes that stand for ``services``, in start order."""
    hosts = {(s.name, container): published for s in services.values() for published, container in s.ports}

    def local(value: str) -> str:
        for (host, container), published in hosts.items():
            value = value.replace(f"//{host}:{container}", f"//127.0.0.1:{published}")
        return value

    result = []
    for service in start_order(services):
        if not service.ports:
            raise ValueError(f"service {service.name}: publishes no port")
        published, container = service.ports[0]
        data_dir = data / service.name
        env = {k: local(v) for k, v in service.environment.items()}
        env.update({"LEDGER_HOST": "127.0.0.1", "LEDGER_PORT": str(published), "LEDGER_DATA_DIR": str(data_dir)})
        program, *args = service.command
        if program not in ENTRY_POINTS:
            raise ValueError(f"service {service.name}: runs {program}, not ledger-node or ledger-registry")
        args = [_arg(a, published, container, data_dir) for a in args]
        if program == "ledger-registry":
            args = _set(args, "--host", "127.0.0.1")
            args = _set(args, "--port", str(published))
        argv = [sys.executable, "-m", ENTRY_POINTS[program], *args]
        result.append(LocalService(service.name, argv, env, data_dir, f"http://127.0.0.1:{published}"))
    return result


def health_command(service: Service, url: str) -> list[str]:
    """The service's healthcheck command (``CMD`` form) as a local process, for the service at ``url``."""
    test = list((service.healthcheck or {}).get("test") or [])
    if test[:1] != ["CMD"] or len(test) < 2 or test[1] not in ENTRY_POINTS:
        raise ValueError(f"service {service.name}: healthcheck is not [CMD, ledger-node|ledger-registry, ...]")
    container = service.ports[0][1]
    args = [arg.replace(f"//127.0.0.1:{container}", f"//{url.removeprefix('http://')}") for arg in test[2:]]
    return [sys.executable, "-m", ENTRY_POINTS[test[1]], *args]


def _arg(value: str, published: int, container: int, data_dir: Path) -> str:
    if value == "/data":
        return str(data_dir)
    return value


def _set(args: list[str], flag: str, value: str) -> list[str]:
    if flag in args:
        i = args.index(flag)
        return [*args[: i + 1], value, *args[i + 2 :]]
    return [*args, flag, value]

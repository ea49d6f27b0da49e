"""Run the topology of ``docker-compose.yml`` as local processes on 127.0.0.1.

Each service runs its own command with its own environment, as the compose file gives them, with
what only makes sense inside containers mapped to this machine: a service's hostname and container
port become 127.0.0.1 and its published port (in URLs in the environment too; or a port counted from
a base port, or a free port picked at start), ``/data`` becomes ``<data>/<service>`` (in arguments and
in paths below it in the environment), and
``ledger-node``/``ledger-registry`` run from this checkout.
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


def local_ports(services: dict[str, Service], base_port: int | None = None) -> dict[str, int]:
    """The port each service listens on here: its published port (``base_port`` None), ``base_port`` plus
    its place in start order, or 0 for every service (``base_port`` 0: each picks a free port at start)."""
    for service in services.values():
        if not service.ports:
            raise ValueError(f"service {service.name}: publishes no port")
    order = start_order(services)
    if base_port is None:
        return {s.name: s.ports[0][0] for s in order}
    return {s.name: base_port + i if base_port else 0 for i, s in enumerate(order)}


def localize(services: dict[str, Service], data: Path, base_port: int | None = None) -> list[LocalService]:
    """The local processes that stand for ``services``, in start order (ports as ``local_ports`` gives)."""
    ports = local_ports(services, base_port)
    return [localize_service(service, services, data, ports) for service in start_order(services)]


def localize_service(service: Service, services: dict[str, Service], data: Path, ports: dict[str, int]) -> LocalService:
    """The local process for ``service``; ``ports`` says where each service listens here, 0 for a port
    picked at start. Such a port is known once that service runs; until then only the service itself
    may name it, and that variable is left out (a node then announces the address it listens on)."""
    port = ports[service.name]
    data_dir = data / service.name
    env = {}
    for key, value in service.environment.items():
        for other in services.values():
            address = f"//{other.name}:{other.ports[0][1]}"
            if address in value and not ports[other.name]:
                if other.name != service.name:
                    raise ValueError(f"service {service.name}: {key} names {other.name}, which has not started")
                break
            value = value.replace(address, f"//127.0.0.1:{ports[other.name]}")
        else:
            env[key] = str(data_dir / value.removeprefix("/data/")) if value.startswith("/data/") else value
    env.update({"LEDGER_HOST": "127.0.0.1", "LEDGER_PORT": str(port), "LEDGER_DATA_DIR": str(data_dir)})
    program, *args = service.command
    if program not in ENTRY_POINTS:
        raise ValueError(f"service {service.name}: runs {program}, not ledger-node or ledger-registry")
    args = [str(data_dir) if a == "/data" else a for a in args]
    if program == "ledger-registry":
        args = _set(args, "--host", "127.0.0.1")
        args = _set(args, "--port", str(port))
    argv = [sys.executable, "-m", ENTRY_POINTS[program], *args]
    return LocalService(service.name, argv, env, data_dir, f"http://127.0.0.1:{port}")


def health_command(service: Service, url: str) -> list[str]:
    """The service's healthcheck command (``CMD`` form) as a local process, for the service at ``url``."""
    test = list((service.healthcheck or {}).get("test") or [])
    if test[:1] != ["CMD"] or len(test) < 2 or test[1] not in ENTRY_POINTS:
        raise ValueError(f"service {service.name}: healthcheck is not [CMD, ledger-node|ledger-registry, ...]")
    container = service.ports[0][1]
    args = [arg.replace(f"//127.0.0.1:{container}", f"//{url.removeprefix('http://')}") for arg in test[2:]]
    return [sys.executable, "-m", ENTRY_POINTS[test[1]], *args]


def _set(args: list[str], flag: str, value: str) -> list[str]:
    if flag in args:
        i = args.index(flag)
        return [*args[: i + 1], value, *args[i + 2 :]]
    return [*args, flag, value]

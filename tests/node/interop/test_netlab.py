"""mDNS discovery and sync between separate hosts: node processes in ../shared/netlab namespaces.

Skips, saying why, where the lab cannot be built (not root, no iproute2, no namespaces).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scenarios.procs import REPO, NodeProcess, start_node

NETLAB = REPO.parent / "shared" / "netlab" / "netlab.sh"
LAB = {"NETLAB_PREFIX": "lnt"}  # a lab of its own, apart from any other run


@pytest.fixture(scope="module")
def netlab() -> Iterator[None]:
    try:
        check = subprocess.run([str(NETLAB), "check"], capture_output=True, text=True, timeout=60, env=_env())
    except OSError as exc:
        pytest.skip(f"netlab unavailable: {exc}")
    if check.returncode != 0:
        pytest.skip(check.stdout.strip() or check.stderr.strip() or "netlab unavailable")
    up = subprocess.run([str(NETLAB), "up", "2"], timeout=120, env=_env(), capture_output=True, text=True)
    if up.returncode != 0:
        subprocess.run([str(NETLAB), "down"], timeout=120, env=_env(), capture_output=True)
        pytest.skip(f"netlab could not be brought up: {up.stderr.strip()[-200:]}")
    try:
        yield
    finally:
        subprocess.run([str(NETLAB), "down"], timeout=120, env=_env(), capture_output=True)


def _env() -> dict[str, str]:
    return {**os.environ, **LAB}


def lab_get(host: int, url: str) -> Any:
    """GET ``url`` from inside lab host ``host`` (lab addresses are unreachable from outside)."""
    code = f"import urllib.request,sys;sys.stdout.write(urllib.request.urlopen({url!r},timeout=3).read().decode())"
    out = subprocess.run([str(NETLAB), "exec", str(host), sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=20, env=_env())  # fmt: skip
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout else None


def lab_post(host: int, url: str, body: Any) -> int:
    code = (
        "import urllib.request,sys;r=urllib.request.urlopen(urllib.request.Request("
        f"{url!r},data=sys.stdin.buffer.read(),headers={{'Content-Type':'application/json'}}),timeout=5);"
        "sys.stdout.write(str(r.status))"
    )
    out = subprocess.run([str(NETLAB), "exec", str(host), sys.executable, "-c", code], input=json.dumps(body),
                         capture_output=True, text=True, timeout=20, env=_env())  # fmt: skip
    return int(out.stdout or 0)


def wait_until(check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)  # polling another host through a subprocess; bounded by the deadline
    raise AssertionError(f"not within {timeout}s")


def test_mdns_discovery_and_sync_across_lab_hosts(netlab: None, tmp_path: Path) -> None:
    nodes: list[NodeProcess] = []
    try:
        for i in (1, 2):
            env = {
                "LEDGER_DISCOVERY__MDNS": "true",
                "LEDGER_DISCOVERY__MDNS_INTERFACES": f'["10.77.0.{i}"]',
                "LEDGER_DISCOVERY__PEER_EXCHANGE": "false",
                "LEDGER_SYNC__INTERVAL_S": "0.5",
                **LAB,
            }
            nodes.append(start_node(tmp_path / f"lab-{i}", f"lab-{i}", "--host", f"10.77.0.{i}", port=8700,
                                    env=env, wrap=[str(NETLAB), "exec", str(i)]))  # fmt: skip

        def lab2_seen_by_lab1() -> bool:
            found = lab_get(1, "http://10.77.0.1:8700/network/discover") or {"nodes": []}
            return any(n["record"]["ledger_id"] == "lab-2" and "mdns" in n["sources"] for n in found["nodes"])

        wait_until(lab2_seen_by_lab1, timeout=30)
        body = [{"stream": "lab", "type": "t", "payload": {"i": i}} for i in range(3)]
        assert lab_post(2, "http://10.77.0.2:8700/ledger/entries", body) == 201
        wait_until(lambda: lab_get(1, "http://10.77.0.1:8700/ledger/ledgers/lab-2/entries/3"), timeout=30)
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait(timeout=10)

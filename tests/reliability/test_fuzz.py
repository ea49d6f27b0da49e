"""Fuzzing the running node and registry: schemathesis cases (valid and invalid) from their OpenAPI
documents, and raw malformed requests (invalid UTF-8, bad JSON, nesting depth 1,000, oversized
bodies, wrong content types, huge or negative limits and cursors). Must hold: no 5xx, every error a
problem+json, memory bounded."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from scenarios.cluster import AUTH, node_env
from scenarios.procs import NodeProcess, start_node, start_process
from tests.reliability.conftest import record, size

CASES = size(300, 2000)  # schemathesis cases per service
MAX_BODY = 1 << 20
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NodeProcess]]:
    work = tmp_path_factory.mktemp("fuzz")
    limits = {"LEDGER_LIMITS__MAX_BODY_BYTES": str(MAX_BODY), "LEDGER_SYNC__TIMEOUT_S": "1",
              "LEDGER_SYNC__RETRIES": "0"}  # fmt: skip
    node = start_node(work / "node", "node-a", env={**node_env(), **limits})
    argv = [sys.executable, "-m", "registry.cli", "run", "--port", "0", "--data-dir", str(work / "registry")]
    registry = start_process(argv, work / "registry", env={"LEDGER_REGISTRY_RATE_PER_S": "100000",
                                                           "LEDGER_REGISTRY_BURST": "100000"})  # fmt: skip
    running = {"node": node, "registry": registry}
    yield running
    for proc in running.values():
        proc.terminate()


def acceptable(status: int, content_type: str) -> bool:
    """What every answer must be: below 500, and an error only as problem+json."""
    return status < 500 and (status < 400 or content_type.split(";")[0] == PROBLEM)


def call(session: requests.Session, method: str, url: str, **kwargs: Any) -> tuple[bool, str]:
    """(whether the answer is acceptable, a line describing it)."""
    response = session.request(method, url, timeout=30, **kwargs)
    ctype = response.headers.get("Content-Type", "")
    return acceptable(
        response.status_code, ctype
    ), f"{method} {url.split('/', 3)[-1][:80]} -> {response.status_code} {ctype}"


def fuzz(url: str, cases: int) -> tuple[Counter[str], list[str]]:
    """Run at least ``cases`` schemathesis cases, valid and invalid, spread over the operations (in
    rounds: an operation with few inputs to vary yields fewer cases than asked)."""
    session = requests.Session()
    session.headers.update(AUTH)
    schema = schemathesis.openapi.from_dict(session.get(url + "/openapi.json", timeout=10).json())
    # the console's live feed is an endless stream by design: it is tested in tests/console
    operations = [op for op in (op.ok() for op in schema.get_all_operations()) if op.path != "/console/events"]
    counts: Counter[str] = Counter()
    bad: list[str] = []
    for _ in range(8):
        if counts["cases"] >= cases:
            break
        fuzz_round(url, session, operations, max(1, (cases - counts["cases"]) // (2 * len(operations))), counts, bad)
    return counts, bad


def fuzz_round(url: str, session: requests.Session, operations: list[Any], per_operation: int, counts: Counter[str],
               bad: list[str]) -> None:  # fmt: skip
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=per_operation, deadline=None, database=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            def one(case: schemathesis.Case) -> None:
                response = case.call(base_url=url, session=session, timeout=30)
                counts["cases"] += 1
                counts[f"{response.status_code // 100}xx"] += 1
                ctype = next(iter(response.headers.get("content-type", [""])))  # lists, by lower-case name
                if not acceptable(response.status_code, ctype):
                    bad.append(f"{case.as_curl_command()} -> {response.status_code} {ctype}: {response.text[:100]}")

            try:
                one()
            except HypothesisException:  # no invalid input exists for this operation (nothing to vary)
                counts["operations without invalid cases"] += 1


@pytest.mark.parametrize("service", ["node", "registry"])
def test_schemathesis_cases(services: dict[str, NodeProcess], service: str) -> None:
    """No 5xx, every error a problem+json, and memory flat after a warm-up (caches, pools)."""
    target = services[service]
    process = psutil.Process(target.proc.pid)
    warm, _ = fuzz(target.url, CASES // 4)
    before = process.memory_info().rss
    counts, bad = fuzz(target.url, CASES)
    growth_mb = (process.memory_info().rss - before) / 2**20
    record(f"fuzz {service}: cases", counts["cases"] + warm["cases"], ">= 2000 at full size")
    record(f"fuzz {service}: 5xx or non-problem errors", len(bad), "0")
    record(f"fuzz {service}: RSS growth after warm-up (MB)", round(growth_mb, 1), "bounded")
    assert not bad, "\n".join(bad[:20])
    assert counts["4xx"] and counts["2xx"], counts  # both valid and invalid cases reached the handlers
    assert growth_mb < 100, f"RSS grew {growth_mb:.1f} MB over {counts['cases']} cases"


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "invalid UTF-8": (b'{"stream": "\xff\xfe"}', "application/json"),
    "malformed JSON": (b'{"stream": ', "application/json"),
    "nesting depth 1000": (nested(1000), "application/json"),
    "array nesting 1000": (b"[" * 1000 + b"]" * 1000, "application/json"),
    "oversized": (b'{"a": "' + b"x" * (MAX_BODY + 10) + b'"}', "application/json"),
    "wrong content type": (b'{"stream": "s", "type": "t", "payload": {}}', "text/plain"),
    "form encoded": (b"stream=s&type=t", "application/x-www-form-urlencoded"),
    "empty": (b"", "application/json"),
    "NaN": (b'{"stream": "s", "type": "t", "payload": {"x": NaN}}', "application/json"),
    "huge integer": (b'{"stream": "s", "type": "t", "payload": {"x": 1' + b"0" * 400 + b"}}", "application/json"),
}
BAD_QUERIES = [
    {"limit": "-1"}, {"limit": "0"}, {"limit": str(10**30)}, {"limit": "1e3"}, {"cursor": "\u0000" * 10},
    {"cursor": "x" * 10_000}, {"cursor": "eyJ0cyI6LTF9"}, {"after": "-5"}, {"since": "-1"},
    {"until": "99999999999999999999999"}, {"depth": "100000"}, {"ledger": "../../etc"}, {"format": "exe"},
]  # fmt: skip


def operations(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    spec = requests.get(url + "/openapi.json", timeout=10).json()
    return [(method.upper(), path, op) for path, item in spec["paths"].items() for method, op in item.items()]


def concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "")  # a path parameter of letters: invalid for most


@pytest.mark.parametrize("service", ["node", "registry"])
def test_malformed_requests(services: dict[str, NodeProcess], service: str) -> None:
    """Every operation refuses malformed bodies and queries with a problem+json and no 5xx."""
    url = services[service].url
    session = requests.Session()
    session.headers.update(AUTH)
    bad, sent = [], 0
    for method, path, op in operations(url):
        if "requestBody" in op:
            for body, ctype in BAD_BODIES.values():
                ok, line = call(session, method, url + concrete(path), data=body, headers={"Content-Type": ctype})
                sent += 1
                bad += [] if ok else [line]
        for params in BAD_QUERIES if "parameters" in op else []:
            ok, line = call(session, method, url + concrete(path), params=params)
            sent += 1
            bad += [] if ok else [line]
    record(f"malformed requests {service}: sent", sent)
    record(f"malformed requests {service}: 5xx or non-problem errors", len(bad), "0")
    assert not bad, "\n".join(bad)


@settings(max_examples=size(100, 1000), deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=4096), ctype=st.sampled_from(["application/json", "application/octet-stream"]))
def test_random_bytes_never_break_append(services: dict[str, NodeProcess], body: bytes, ctype: str) -> None:
    ok, line = call(requests.Session(), "POST", services["node"].url + "/ledger/entries", data=body,
                    headers={"Content-Type": ctype, **AUTH})  # fmt: skip
    assert ok, line


def test_a_valid_append_still_works_after_the_fuzzing(services: dict[str, NodeProcess], tmp_path: Path) -> None:
    response = requests.post(services["node"].url + "/ledger/entries", timeout=10, headers=AUTH,
                             json={"stream": "after", "type": "t", "payload": {"ok": True}})  # fmt: skip
    assert response.status_code == 201, response.text

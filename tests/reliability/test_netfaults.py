"""Network faults in ../shared/netlab namespaces: partition and heal while writing (convergence after
the heal over repeated runs, nothing lost or duplicated), slow lossy links, a spoofed identity. The
scenarios themselves live in ``scenarios/catalog.py``; here they are repeated and their figures kept.
Skipped, with the reason, where the lab cannot be built."""

from __future__ import annotations

import statistics

import pytest

from scenarios import catalog  # noqa: F401 - registers the scenarios
from scenarios.runner import Report, run
from tests.reliability.conftest import FULL, record, size


async def scenario(name: str, entries: int, netlab: bool = False) -> Report:
    report = await run(name, 3, entries, netlab)
    if report.skipped:
        pytest.skip(report.skipped)
    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
    assert report.passed, failed
    return report


@pytest.mark.timeout(1800)
async def test_partition_and_heal_while_writing() -> None:
    runs = size(2, 10)
    healed = []
    for _ in range(runs):
        report = await scenario("partition-heal", size(500, 5000), netlab=True)
        healed.append(report.figures["converge_after_heal_s"])
    quantiles = statistics.quantiles(healed, n=20, method="inclusive")
    record(f"partition-heal (netlab): convergence after heal p50 over {runs} runs (s)", statistics.median(healed))
    record(f"partition-heal (netlab): convergence after heal p95 over {runs} runs (s)", round(quantiles[18], 2))
    record("partition-heal (netlab): entries lost / duplicated", "0 / 0", "0 / 0")


@pytest.mark.skipif(not FULL, reason="runs at CI size in tests/scenarios; repeated at full size here")
@pytest.mark.timeout(900)
async def test_slow_lossy_links() -> None:
    report = await scenario("slow-link", 5000)
    record("slow link (200 ms, 10% loss): convergence (s)", report.figures["converge_s"])
    record("slow link: busiest node's sync requests per s", report.figures["peak_node_requests_per_s"], "< 50")


@pytest.mark.skipif(not FULL, reason="runs at CI size in tests/scenarios; repeated at full size here")
@pytest.mark.timeout(900)
async def test_spoofed_identity() -> None:
    report = await scenario("spoofed-identity", 2000)
    record("spoofed mDNS identity: reported after (s)", report.figures["conflict_reported_s"])
    record("spoofed mDNS identity: entries accepted / pin changed", "0 / no", "0 / no")

"""Every scenario at a small size, as real processes; a failing check fails the run."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scenarios import catalog  # noqa: F401 - registers the scenarios
from scenarios.procs import REPO
from scenarios.runner import SCENARIOS

RUNS = [*((name, ()) for name in sorted(SCENARIOS)), ("partition-heal", ("--netlab",))]
SCALED = {"mesh-convergence", "partition-heal", "crash-restart", "churn"}  # run at 5 nodes here, 20 in make scenarios


@pytest.mark.parametrize("name, flags", RUNS)
def test_scenario_passes_at_small_size(name: str, flags: tuple[str, ...]) -> None:
    nodes = "5" if name in SCALED and not flags else "3"
    result = subprocess.run(
        [sys.executable, "-m", "scenarios", "run", name, "--nodes", nodes, "--entries", "200", *flags],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = re.search(r"skipped: (.*)", result.stdout)
    if skipped:
        pytest.skip(skipped.group(1))
    assert f"scenario {name}:" in result.stdout and "[FAIL]" not in result.stdout and "[ok]" in result.stdout


def test_an_unknown_scenario_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "scenarios", "run", "no-such"], capture_output=True, text=True,
                            timeout=60, cwd=REPO)  # fmt: skip
    assert result.returncode == 1 and result.stderr.strip() == (
        "scenarios: error: no scenario no-such; see python -m scenarios list"
    )

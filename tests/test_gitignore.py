"""What the README's commands write into a checkout is ignored by git (a key file is private)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from scenarios.procs import REPO

WRITES = re.compile(r"(?:>|--out|--data-dir)\s+([\w./-]+)")  # a redirect, an output file or a data directory


def written_by_the_readme() -> set[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    commands = [line.split("#", 1)[0] for block in blocks for line in block.splitlines()]  # not the comments
    return {path for command in commands for path in WRITES.findall(command) if not path.startswith("/")}


def test_every_path_the_readme_writes_is_ignored() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = written_by_the_readme()
    assert {"entries.jsonl", "node-a.jsonl", "backups/node-a-1", "keys/node.key", "data/node-a"} <= paths, paths
    for path in sorted(paths):
        found = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO)
        assert found.returncode == 0, f"{path} (written by a README command) is not in .gitignore"

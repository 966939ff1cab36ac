"""The GitHub Actions workflows: actionlint is clean, actions are pinned, permissions are least-privilege."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.site.conftest import REPO, require_tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def test_the_three_workflows_exist():
    assert [w.name for w in WORKFLOWS] == ["bench.yml", "ci.yml", "pages.yml"]


def test_actionlint_is_clean(tmp_path):
    actionlint = require_tool("actionlint")
    done = subprocess.run([actionlint, *map(str, WORKFLOWS)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    # ... and it does find problems: the same check on a workflow with an undefined job output fails.
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ needs.nothing.outputs.x }}\n")
    assert subprocess.run([actionlint, str(broken)], cwd=tmp_path, capture_output=True).returncode != 0


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_permissions_minimal(workflow):
    text = workflow.read_text()
    for action in re.findall(r"uses:\s*(\S+)", text):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", action), f"{workflow.name}: {action} is not pinned to an exact version"
    data = yaml.safe_load(text)
    assert data["permissions"] == {"contents": "read"}, "read-only by default; jobs widen only what they need"
    for name, job in data["jobs"].items():
        granted = job.get("permissions", {})
        assert all(v in ("read", "write") for v in granted.values()) and granted.get("contents", "read") == "read", name


def test_metal_is_benchmarked_only_on_a_real_mac():
    """GitHub's hosted macOS runners have no Metal/MPS (while torch's mps reports available there): the
    hosted macOS job runs the CPU matrix, and +matrix=apple only goes to a self-hosted Apple Silicon runner."""
    plan = yaml.safe_load((REPO / ".github" / "workflows" / "bench.yml").read_text())["jobs"]["plan"]["steps"][0]["run"]
    entries = [e for e in re.findall(r"\{[^{}]*\}", plan) if '"matrix"' in e]
    by_matrix = {}
    for entry in entries:
        matrix, runner = re.search(r'"matrix": "(\w+)"', entry).group(1), re.search(r'"runner": (\[[^\]]*\]|"[^"]*")', entry).group(1)
        by_matrix.setdefault(matrix, []).append(runner)
    assert by_matrix["apple"] == ['["self-hosted", "macOS", "ARM64"]'], by_matrix
    assert '"macos-14"' in by_matrix["cpu"], "the hosted macOS job is kept, on the CPU devices"
    assert all("macos" not in r for m, runners in by_matrix.items() if m != "cpu" for r in runners)

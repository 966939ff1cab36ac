"""In CI a skip fails the run unless the machine's hardware explains it (tests/skips.py), through pytest
itself on a throwaway test file."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

TESTS = """
import pytest

def test_runs():
    pass

def test_{name}():
    pytest.skip({reason!r})
"""


def pytest_on(tmp_path, reason: str, ci: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_throwaway.py").write_text(TESTS.format(name="skipped", reason=reason))
    env = {k: v for k, v in os.environ.items() if k != "CI"} | ({"CI": "true"} if ci else {})
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.skips", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           "-c", os.devnull, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_in_ci_a_skip_for_a_missing_framework_fails_the_run(tmp_path):
    done = pytest_on(tmp_path, "jax is not installed", ci=True)
    assert done.returncode == 1, done.stdout
    assert "1 tests skipped for a reason that is not this machine's hardware" in done.stdout
    assert "test_skipped: jax is not installed" in done.stdout


def test_in_ci_a_module_skipped_at_import_fails_the_run(tmp_path):
    (tmp_path / "test_module.py").write_text("import pytest\npytest.importorskip('no_such_framework_here')\n")
    done = pytest_on(tmp_path, "this machine has the device", ci=True)
    assert done.returncode == 1 and "could not import 'no_such_framework_here'" in done.stdout, done.stdout


def test_outside_ci_or_for_the_hardware_a_skip_is_a_skip(tmp_path):
    assert pytest_on(tmp_path, "jax is not installed", ci=False).returncode == 0
    assert pytest_on(tmp_path, "this machine has the device; the test needs one without", ci=True).returncode == 0

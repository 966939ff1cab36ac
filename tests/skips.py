"""A pytest plugin (tests/conftest.py loads it): in CI (CI set, as .ci/run and GitHub Actions do) a
skipped test fails the session, unless its reason is one of MACHINE_SKIPS. CI installs every framework
and tool, so a skip there is a test that silently stopped running: an import that broke, a framework
that stopped loading, a tool the install lost."""

from __future__ import annotations

import os

from arena.frameworks.rust_native import MKL_NOT_X86

# Skips that follow from the machine's hardware, not from what is installed: CI may take them.
MACHINE_SKIPS = (
    "this machine has the device",  # a test of a missing device, on a machine that has it
    "OpenVINO finds every device it knows here",
    MKL_NOT_X86,  # candle-mkl on an arm64 machine (rust_native.variant_missing)
)

_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report) -> None:
    record(report)


def pytest_collectreport(report) -> None:
    """A whole module skipped while it is collected (a module-level `pytest.importorskip`)."""
    record(report)


def record(report) -> None:
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason.removeprefix("Skipped: ")))


def unexpected(skipped: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(test, reason) for test, reason in skipped if not any(allowed in reason for allowed in MACHINE_SKIPS)]


def pytest_sessionfinish(session, exitstatus) -> None:
    found = unexpected(_skipped)
    if os.environ.get("CI") and found and exitstatus == 0:
        lines = "\n".join(f"  {test}: {reason}" for test, reason in found)
        print(f"\nCI: {len(found)} tests skipped for a reason that is not this machine's hardware:\n{lines}")
        session.exitstatus = 1

"""The C allocator's settings (arena/run/malloc.py): every cell's process starts with exactly the run's
settings, whatever the shell had, the result records them, and a change of them re-runs the cell."""

from __future__ import annotations

import platform

import pytest

from arena.run.malloc import GLIBC_DEFAULT, Malloc, apply

MIB = 1 << 20


def test_the_child_gets_the_runs_settings_and_none_the_shell_had():
    shell = {"PATH": "/bin", "MALLOC_TRIM_THRESHOLD_": "1", "MALLOC_MMAP_THRESHOLD_": "2"}
    env = apply(shell, Malloc(mmap_threshold=32 * MIB))
    assert env == {"PATH": "/bin", "MALLOC_MMAP_THRESHOLD_": str(32 * MIB)}, "an unset field removes the inherited variable"
    assert apply(shell, Malloc()) == {"PATH": "/bin"}


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the MALLOC_* settings are glibc's")
def test_a_cell_records_its_allocator_and_is_rerun_when_it_changes(run_matrix, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1")  # the shell's own setting must not reach the cell
    key = "smollm2-135m:torch"
    first = run_matrix(["smollm2-135m"], ["torch"], malloc=Malloc(mmap_threshold=32 * MIB))[key]
    assert first.status == "ok", first.reason
    recorded = first.settings["malloc"]
    assert recorded["library"].startswith("glibc ")
    assert recorded["MALLOC_MMAP_THRESHOLD_"] == str(32 * MIB) and recorded["MALLOC_TRIM_THRESHOLD_"] == GLIBC_DEFAULT
    assert first.fingerprint.components["malloc"] == f"MALLOC_MMAP_THRESHOLD_={32 * MIB} MALLOC_TRIM_THRESHOLD_=default"

    kept = run_matrix(["smollm2-135m"], ["torch"], malloc=Malloc(mmap_threshold=32 * MIB))[key]
    assert kept.run_id == first.run_id, "the same settings keep the result"
    again = run_matrix(["smollm2-135m"], ["torch"], malloc=Malloc())[key]
    assert again.run_id != first.run_id, "other settings re-run the cell"
    moved = {k for k, v in again.fingerprint.components.items() if first.fingerprint.components.get(k) != v}
    assert moved == {"malloc"}
    assert again.settings["malloc"]["MALLOC_MMAP_THRESHOLD_"] == GLIBC_DEFAULT

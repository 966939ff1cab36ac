"""A result names the commit that made it, `-dirty` when tracked code differs from it, and not merely
because the results folder has new results (which every run writes)."""

from __future__ import annotations

import subprocess

import pytest

from arena.run import system


def git(cwd, *args: str) -> None:
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "c")
    monkeypatch.setattr(system, "REPO", tmp_path)
    return tmp_path


def test_results_written_by_a_run_leave_the_commit_clean(repo):
    (repo / "results" / "r.json").write_text('{"new": 1}')
    assert not system.git_commit().endswith("-dirty") and len(system.git_commit()) == 12


def test_a_changed_tracked_file_marks_the_commit_dirty(repo):
    (repo / "code.py").write_text("x = 2\n")
    assert system.git_commit().endswith("-dirty")

"""Cache entries against their manifests (arena/cache.py): truncation, a same-size edit, a missing file or
manifest are each found and named; an intact copy is hashed once and then known by its new identity."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import pytest

from arena import cache


@pytest.fixture
def folder(tmp_path):
    entry = tmp_path / "entry"

    def make(scratch):
        (scratch / "model.bin").write_bytes(b"x" * 1000)
        (scratch / "sub").mkdir()
        (scratch / "sub" / "config.json").write_text("{}")

    cache.build_folder(entry, make)
    return entry


@pytest.fixture
def file(tmp_path):
    source = tmp_path / "outputs.npz"
    source.write_bytes(b"y" * 500)
    target = tmp_path / "reference" / "model-tiny.npz"
    target.parent.mkdir()
    cache.install_file(source, target)
    return target


def test_a_fresh_entry_is_intact_and_reused(folder, file, capsys):
    assert cache.damage(folder) is None and cache.damage(file) is None
    assert cache.reusable(folder, "thing", "again") and cache.reusable(file, "thing", "again")
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in folder.parent.iterdir()) == ["entry", "outputs.npz", "reference"], "no scratch left"


def test_truncation_is_found_by_size(folder, file):
    os.truncate(folder / "model.bin", 400)
    os.truncate(file, 0)
    assert cache.damage(folder) == "model.bin: size 400 of 1000 bytes"
    assert cache.damage(file) == "model-tiny.npz: size 0 of 500 bytes"


def test_a_same_size_rewrite_is_found_by_its_hash(folder):
    (folder / "model.bin").write_bytes(b"z" * 1000)  # a new mtime: the file is hashed again
    assert cache.damage(folder) == "model.bin: sha256 differs from the manifest's"


def test_missing_file_or_manifest_and_unreadable_manifest(folder, file):
    (folder / "sub" / "config.json").unlink()
    assert cache.damage(folder) == "sub/config.json missing"
    cache.manifest_path(file).write_text('{"files": [')
    assert cache.damage(file) == "unreadable manifest model-tiny.npz.manifest.json"
    cache.manifest_path(file).unlink()
    assert cache.damage(file) == "no manifest to check it against"


def test_an_intact_copy_is_hashed_once_then_known_by_its_new_identity(folder, tmp_path, monkeypatch):
    copy = tmp_path / "copied"
    shutil.copytree(folder, copy)  # other inodes: the bytes must be hashed to be trusted
    hashed = []
    monkeypatch.setattr(cache, "sha256", lambda f, real=cache.sha256: hashed.append(f.name) or real(f))
    assert cache.damage(copy) is None and sorted(hashed) == ["config.json", "model.bin"]
    assert cache.damage(copy) is None and len(hashed) == 2, "the new identities were recorded"
    recorded = json.loads(cache.manifest_path(copy).read_text())["files"]
    assert {f["name"]: f["identity"][0] for f in recorded} == {
        "model.bin": (copy / "model.bin").stat().st_ino, "sub/config.json": (copy / "sub" / "config.json").stat().st_ino}


def test_a_damaged_entry_is_removed_with_one_line(folder, file, capsys):
    os.truncate(folder / "model.bin", 10)
    assert not cache.reusable(folder, "conversion", "converting again")
    assert capsys.readouterr().err == f"arena: cached conversion {folder} damaged (model.bin: size 10 of 1000 bytes); converting again\n"
    assert not folder.exists()
    cache.manifest_path(file).unlink()
    assert not cache.reusable(file, "reference outputs", "running the reference again")
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert list(file.parent.iterdir()) == []


def test_an_absent_entry_is_not_reusable_and_says_nothing(tmp_path, capsys):
    assert not cache.reusable(tmp_path / "never-made", "weights", "regenerating")
    assert capsys.readouterr().err == ""


def test_a_failed_build_leaves_nothing_and_keeps_the_old_entry(folder):
    def make(scratch):
        (scratch / "half.bin").write_bytes(b"h")
        raise RuntimeError("converter crashed")

    with pytest.raises(RuntimeError):
        cache.build_folder(folder, make)
    assert [p.name for p in folder.parent.iterdir()] == ["entry"], "no scratch left"
    assert cache.damage(folder) is None


def test_a_build_removes_the_scratch_of_a_killed_process_and_keeps_a_live_ones(tmp_path):
    """A process killed mid-build leaves its scratch folder; the next build of that entry removes it, but
    not the scratch of a process still building it, nor one made on another host."""
    entry = tmp_path / "entry"
    gone = subprocess.Popen(["true"])
    gone.wait()
    host = socket.gethostname()
    killed = tmp_path / f"entry.partial-{host}-{gone.pid}"
    live = tmp_path / f"entry.partial-{host}-{os.getppid()}"
    elsewhere = tmp_path / f"entry.partial-other-node-{gone.pid}"
    for scratch in (killed, live, elsewhere):
        scratch.mkdir()
        (scratch / "half.bin").write_bytes(b"h" * 100)
    cache.build_folder(entry, lambda scratch: (scratch / "model.bin").write_bytes(b"x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["entry", live.name, elsewhere.name])

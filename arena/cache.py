"""Cache entries that heal: checked against a manifest before use, rebuilt when damaged.

Arena caches four kinds of entry under `cache_dir`: generated weights (a folder, arena/weights),
converted models (a folder, arena/frameworks/conversion.py), the reference's outputs and the kept copy of
each cell's outputs (one file each, arena/run/orchestrate.py). Each is sealed when complete: a manifest records every file's size and
sha256. Before use an entry is checked against it; one that fails (truncated by a full disk or a killed
copy, a file edited or deleted, no manifest at all) is removed with one line on stderr saying what was
wrong, and the caller builds it again as if it had never been. A user is never left with an error that
only deleting the cache folder cures.

A folder's manifest lies inside it, so it moves into place with the folder (`build_folder`: a scratch
folder renamed when complete); a file's lies beside it (`<file>.manifest.json`).

What a check reads. The size of every file, always: a stat, and it catches truncation, the damage seen in
practice. The sha256 only when a file's identity (inode, mtime) differs from the one recorded when it
was hashed, that is when it was rewritten or replaced (copied from another disk, restored, edited); the
new identity is then recorded, so a copied cache is hashed once and not on every use. A file whose
identity is unchanged has not been written through the file system since it was hashed, and re-hashing
it would cost seconds per cell for the multi-GB weights of the full presets. What that leaves unchecked
is damage below the file system (bit rot) or an edit that restores the mtime by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
from pydantic import BaseModel, ValidationError

MANIFEST = "arena-manifest.json"


class Sealed(BaseModel):
    """One file of an entry as it was when sealed."""

    name: str  # relative to the entry's folder (a file entry: its own name)
    bytes: int
    sha256: str
    identity: tuple[int, int]  # (inode, mtime_ns) when it was last hashed


class Manifest(BaseModel):
    files: list[Sealed]


def reusable(entry: Path, kind: str, remedy: str) -> bool:
    """Whether `entry` is there and as sealed. A damaged entry is removed, with one line saying what was
    wrong and what happens now (`remedy`), so the caller builds it again."""
    if not entry.exists():
        return False
    problem = damage(entry)
    if problem is None:
        return True
    print(f"arena: cached {kind} {entry} damaged ({problem}); {remedy}", file=sys.stderr, flush=True)
    discard(entry)
    return False


def damage(entry: Path) -> str | None:
    """What is wrong with an existing entry, or None when every file is as sealed."""
    path = manifest_path(entry)
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return "no manifest to check it against"
    except ValidationError:
        return f"unreadable manifest {path.name}"
    folder = entry if entry.is_dir() else entry.parent
    rehashed = False
    for sealed in manifest.files:
        file = folder / sealed.name
        try:
            stat = file.stat()
        except FileNotFoundError:
            return f"{sealed.name} missing"
        if stat.st_size != sealed.bytes:
            return f"{sealed.name}: size {stat.st_size} of {sealed.bytes} bytes"
        if (stat.st_ino, stat.st_mtime_ns) != sealed.identity:
            if sha256(file) != sealed.sha256:
                return f"{sealed.name}: sha256 differs from the manifest's"
            sealed.identity, rehashed = (stat.st_ino, stat.st_mtime_ns), True
    if rehashed:
        _write(path, manifest)
    return None


def build_folder(folder: Path, make: Callable[[Path], None]) -> None:
    """Make a folder entry in a scratch folder beside it (`make(scratch)`), seal it and rename it into
    place, so a crash mid-way never leaves a half-written entry that a later reader would trust."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned(folder)
    scratch = folder.with_name(f"{folder.name}.partial-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        make(scratch)
        files = sorted(f for f in scratch.rglob("*") if f.is_file())
        # Sealed here: the files' inodes and mtimes survive the folder's rename.
        _write(scratch / MANIFEST, Manifest(files=[_sealed(f, f.relative_to(scratch).as_posix()) for f in files]))
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)  # a damaged entry, or one of an older layout
    scratch.rename(folder)


def remove_abandoned(folder: Path) -> None:
    """Scratch folders of this entry whose process, on this host, is gone. A process killed outright (a
    cell past its deadline, the kernel's OOM killer) never reaches build_folder's cleanup, and its half-made
    entry (GBs for a converted SD UNet) would otherwise stay on the disk for good. A scratch folder names
    its host: one made by a live process on another node sharing this cache is left alone."""
    host = socket.gethostname()
    for scratch in folder.parent.glob(f"{folder.name}.partial-{host}-*"):
        pid = scratch.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def install_file(source: Path, target: Path) -> None:
    """A file entry: a copy of `source`, sealed, then renamed into place (a reader, another node sharing
    this cache, never sees half a file). The manifest goes first, so a reader never finds the new file
    without it; the copy's inode and mtime survive the rename."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    _write(manifest_path(target), Manifest(files=[_sealed(tmp, target.name)]))
    os.replace(tmp, target)


def discard(entry: Path) -> None:
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)
        manifest_path(entry).unlink(missing_ok=True)


def manifest_path(entry: Path) -> Path:
    return entry / MANIFEST if entry.is_dir() else entry.with_name(f"{entry.name}.manifest.json")


def sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sealed(file: Path, name: str) -> Sealed:
    stat = file.stat()
    return Sealed(name=name, bytes=stat.st_size, sha256=sha256(file), identity=(stat.st_ino, stat.st_mtime_ns))


def _write(path: Path, manifest: Manifest) -> None:
    """Temp file, then rename: a reader sees the old manifest or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(manifest.model_dump_json(indent=1))
    os.replace(tmp, path)

"""Weights: generated once per spec and preset (deterministic, official tensor names, safetensors), or
read from a local checkpoint folder. Either way every framework loads the same file.

Generation seeds each tensor from (spec seed, tensor name), never from iteration order, so adding,
removing or reordering tensors leaves every other tensor byte-identical. The file is cached under
`<cache_dir>/weights/<model>-<preset>-<spec hash>/` with a manifest of the tensors' sha256; the weights
hash recorded in every result is the hash of that manifest. The folder is checked before use and
regenerated when damaged (arena/cache.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from safetensors import safe_open
from safetensors.numpy import save_file

from arena import cache
from arena.errors import ArenaError
from arena.families import load_family
from arena.families.base import rng_for
from arena.specs.schema import ModelSpec


class WeightsFile(BaseModel):
    """A materialised weights folder: the safetensors files and the hash of their manifest."""

    files: list[str]
    weights_hash: str
    source: str


def generate(spec: ModelSpec, preset: str) -> dict[str, np.ndarray]:
    family = load_family(spec.family)
    config = spec.presets[preset].config
    return {
        name: family.init_tensor(name, shape, config, rng_for(spec.weights.seed, name))
        for name, shape in family.parameter_shapes(config).items()
    }


def materialize(spec: ModelSpec, preset: str, cache_dir: Path) -> WeightsFile:
    """The weights of a spec's preset on disk, generating them on first use."""
    if spec.weights.source == "local":
        return _local(spec, preset, cache_dir)
    folder = cache_dir / "weights" / f"{spec.name}-{preset}-{spec.spec_hash(preset)}"
    if not cache.reusable(folder, "weights", "regenerating"):
        cache.build_folder(folder, lambda scratch: _write_generated(spec, preset, scratch))
    return WeightsFile(files=[str(folder / "model.safetensors")], weights_hash=_manifest_hash(folder / "manifest.json"), source="generated")


def _write_generated(spec: ModelSpec, preset: str, folder: Path) -> None:
    """The safetensors file and its tensor manifest (name -> sha256 of the array), whose hash is the weights hash."""
    tensors = generate(spec, preset)
    save_file(tensors, folder / "model.safetensors", metadata={"generator": "arena", "spec": spec.name, "preset": preset})
    manifest = {name: _sha256(array) for name, array in sorted(tensors.items())}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=0))


def load(files: list[str]) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for file in files:
        with safe_open(file, framework="numpy") as f:
            for name in f.keys():
                tensors[name] = f.get_tensor(name)
    return tensors


def check_layout(tensors: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], where: str) -> None:
    """Every expected tensor present with its shape and nothing else; errors name the tensors."""
    missing = [n for n in expected if n not in tensors]
    unexpected = [n for n in tensors if n not in expected]
    wrong = [f"{n}: expected {tuple(expected[n])}, found {tuple(tensors[n].shape)}" for n in expected if n in tensors and tuple(tensors[n].shape) != tuple(expected[n])]
    problems = []
    if missing:
        problems.append(f"missing tensors: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''} ({len(missing)})")
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected[:5])}{' …' if len(unexpected) > 5 else ''} ({len(unexpected)})")
    if wrong:
        problems.append("wrong shapes: " + "; ".join(wrong[:5]))
    if problems:
        raise ArenaError(f"{where}: weights do not match the spec's architecture: " + " | ".join(problems))


def _local(spec: ModelSpec, preset: str, cache_dir: Path) -> WeightsFile:
    folder = Path(os.path.expanduser(spec.weights.path or ""))
    files = sorted(str(p) for p in folder.glob("*.safetensors"))
    if not files:
        raise ArenaError(f"{spec.name}: weights.path = {str(folder)!r}: no .safetensors files there")
    return WeightsFile(files=files, weights_hash=_files_hash(files, cache_dir), source=f"local:{folder}")


def _files_hash(files: list[str], cache_dir: Path) -> str:
    """The files' bytes themselves, since a local checkpoint may change under the same name. Recorded
    with the files' identities in the cache, so that a checkpoint of gigabytes is read once and not
    again by each run, or by each cell of a Ray worker."""
    identities = [_identity(file) for file in files]
    record = cache_dir / "weights" / f"local-{hashlib.sha256(chr(31).join(files).encode()).hexdigest()[:16]}.json"
    if record.exists() and (known := json.loads(record.read_text()))["identities"] == identities:
        return known["weights_hash"]
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                digest.update(chunk)
    weights_hash = digest.hexdigest()[:16]
    record.parent.mkdir(parents=True, exist_ok=True)
    _atomic(record, lambda tmp: Path(tmp).write_text(json.dumps({"identities": identities, "weights_hash": weights_hash})))
    return weights_hash


def _identity(file: str) -> list:
    """What changes when a file is rewritten in place (size, mtime, ctime) or replaced (inode)."""
    st = os.stat(file)
    return [file, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _manifest_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

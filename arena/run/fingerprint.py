"""A result's code fingerprint: a hash over exactly what determines its numbers and its verdict.

A re-run keeps a result only while its fingerprint is the current one; the site lists a result whose
code or tolerances no longer match the tree as stale. Each component is recorded beside the hash
(`Result.fingerprint.components`), so a stale result says what changed:

    code:<path>       a file, or a folder's .py / .rs / .toml files, relative to the source root (the
                      folder holding the `arena` package: the repository in a checkout)
    tolerances        the tolerances the verdict is judged by (the spec's for the dtype, with the
                      framework's output override)
    version:<dist>    an installed distribution's version ("" where it is not installed)
    binary:<module>   the compiled file of an extension module (arena._native)

What a framework runs is declared by its adapter (`SOURCES`, `DISTRIBUTIONS`, `BINARIES`; see
arena/frameworks/contract.py); what every cell runs is `SHARED` below. The reference adapter's parts are
in every cell's fingerprint, since every verdict is a comparison with its outputs.

The judging components (the tolerances and `JUDGING`, the verdict's code) are apart from what computes
the numbers: when only they changed, `python -m arena.results rejudge` judges the stored outputs again
and updates them (`rejudged`), with no re-measuring.

The code and the tolerances describe the tree and can be checked wherever the tree is (`changed`, used
by the site); versions and binaries describe the installation that ran the cell, so only a re-run there
checks them. A wheel install has no rust_ext/: those paths hash as `absent`, and the compiled
extension's hash is then what ties a Candle or Burn result to its code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import arena
from arena.frameworks import load_adapter
from arena.frameworks.contract import REFERENCE_FRAMEWORK
from arena.results.schema import Fingerprint
from arena.specs.schema import Tolerances

SOURCE_ROOT = Path(arena.__file__).resolve().parents[1]
SOURCE_SUFFIXES = (".py", ".rs", ".toml")
ABSENT = "absent"

# What every cell runs besides its adapter and its family module.
SHARED = (
    "arena/frameworks/contract.py",  # building the model, steps, what is unsupported
    "arena/families/base.py",  # seeds and workloads of the generated inputs
    "arena/weights",  # weight generation and loading
    "arena/run/child.py",  # the cell: inputs, build, the workloads
    "arena/run/timing.py",  # the timed loop
    "arena/results/stats.py",  # its statistics
    "arena/results/artifact.py",  # the outputs artifact the verdict reads
)
# What judges a cell's stored outputs (besides the tolerances): a change here is re-judged, not re-run.
JUDGING = ("arena/results/compare.py",)


class Tree:
    """Source files under a root, each path hashed once: a run or a site build sees one state of the tree."""

    def __init__(self, root: Path = SOURCE_ROOT):
        self.root = root
        self._digests: dict[str, str] = {}

    def digest(self, path: str | Path) -> str:
        """The hash of `path` under the root (an absolute path, such as an extension's file, as it is)."""
        key = str(path)
        if key not in self._digests:
            self._digests[key] = digest(self.root / path)
        return self._digests[key]

    def code(self, paths: Iterable[str]) -> dict[str, str]:
        return {f"code:{p}": self.digest(p) for p in paths}


def digest(target: Path) -> str:
    """A file's bytes, or a folder's source files (relative names and bytes, in name order), hashed."""
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted(f for f in target.rglob("*") if f.suffix in SOURCE_SUFFIXES and f.is_file())
    else:
        return ABSENT
    h = hashlib.sha256()
    for f in files:
        for part in (f.relative_to(target).as_posix().encode(), f.read_bytes()):
            h.update(len(part).to_bytes(8, "little") + part)  # length-prefixed: no two file sets collide
    return h.hexdigest()[:12]


def cell(framework: str, family: str, judged_by: tuple[Tolerances | None, str], source: Tree) -> Fingerprint:
    """The fingerprint of a cell as the tree and the installation stand now (`judged_by`: the spec's
    `tolerances_for(framework, dtype, preset)`)."""
    return of(measured(framework, family, source) | framework_parts(REFERENCE_FRAMEWORK, source) | judging(judged_by, source))


def judging(judged_by: tuple[Tolerances | None, str], source: Tree) -> dict[str, str]:
    """The components a re-judging may replace: the verdict's code and the tolerances."""
    return source.code(JUDGING) | tolerances(*judged_by)


def rejudged(recorded: Fingerprint, judged_by: tuple[Tolerances | None, str], source: Tree) -> Fingerprint:
    """A result's fingerprint after its stored outputs were judged again by the current verdict code and
    tolerances: the measured components stay as recorded."""
    return of(recorded.components | judging(judged_by, source))


def measured_changed(recorded: Fingerprint, source: Tree) -> list[str]:
    """The recorded code components, other than the judging ones, that the tree no longer matches: any
    of them means the numbers themselves may differ, so only a re-run can update the result."""
    judged = {f"code:{p}" for p in JUDGING}
    paths = [k.removeprefix("code:") for k in recorded.components if k.startswith("code:") and k not in judged]
    return sorted(k for k, v in source.code(paths).items() if recorded.components.get(k) != v)


def measured(framework: str, family: str, source: Tree) -> dict[str, str]:
    """What computes a cell's numbers: its adapter's parts, the family module and the shared code."""
    return framework_parts(framework, source) | source.code([f"arena/families/{family}.py", *SHARED])


def reference_key(family: str, source: Tree) -> str:
    """A hash of what computes the reference's outputs, so a cached reference from other code is never reused."""
    return of(measured(REFERENCE_FRAMEWORK, family, source)).value


def framework_parts(framework: str, source: Tree) -> dict[str, str]:
    """The adapter package and what it declares it runs: sources, installed distributions, binaries."""
    adapter, _ = load_adapter(framework)
    package = adapter.__name__.replace(".", "/")
    parts = {f"code:{package}": package_digest(adapter, package, source)}
    parts |= source.code(getattr(adapter, "SOURCES", ()))
    parts |= {f"version:{d}": installed_version(d) for d in getattr(adapter, "DISTRIBUTIONS", (adapter.DISTRIBUTION,))}
    parts |= {f"binary:{m}": binary_digest(m, source) for m in getattr(adapter, "BINARIES", ())}
    return parts


def package_digest(adapter: ModuleType, package: str, source: Tree) -> str:
    """The adapter package in the tree; one outside it (an adapter in the working directory) where
    Python imports it from."""
    if (source.root / package).is_dir():
        return source.digest(package)
    return digest(Path(adapter.__file__).resolve().parent)


def binary_digest(module: str, source: Tree) -> str:
    """The compiled file of an extension module, found without loading it."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    return source.digest(Path(spec.origin)) if spec and spec.origin else ABSENT


def installed_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def tolerances(tol: Tolerances | None, note: str) -> dict[str, str]:
    payload = json.dumps([tol.model_dump(mode="json") if tol else None, note], sort_keys=True)
    return {"tolerances": hashlib.sha256(payload.encode()).hexdigest()[:12]}


def of(components: dict[str, str]) -> Fingerprint:
    ordered = dict(sorted(components.items()))
    value = hashlib.sha256(json.dumps(ordered).encode()).hexdigest()[:16]
    return Fingerprint(value=value, components=ordered)


def changed(recorded: Fingerprint, judged_by: tuple[Tolerances | None, str], source: Tree) -> list[str]:
    """The recorded code and tolerance components that the tree at `source` (and the spec's current
    tolerances) no longer match. Versions and binaries belong to the machine that ran the cell: not here."""
    judged = [k for k, v in judging(judged_by, source).items() if recorded.components.get(k) != v]
    return sorted(measured_changed(recorded, source) + judged)

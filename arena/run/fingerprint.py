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
    malloc            the C allocator's settings the cell's process started with (the run's `malloc`,
                      arena/run/malloc.py); absent from results measured before the run set them

What a framework runs is declared by its adapter (`SOURCES`, `DISTRIBUTIONS`, `BINARIES`; see
arena/frameworks/contract.py); what every cell runs is `SHARED` below. The reference adapter's parts are
in every cell's fingerprint, since every verdict is a comparison with its outputs.

The judging components (the tolerances and `JUDGING`, the verdict's code) are apart from what computes
the numbers: when only they changed, `python -m arena.results rejudge` judges the stored outputs again
and updates them (`rejudged`), with no re-measuring.

Python files are hashed as what they compute (`SCHEME`): without comments, docstrings, trailing spaces
and blank lines, so a documentation edit leaves every result current. Rust and TOML files, and binaries,
are hashed byte for byte. A result records the scheme as its `scheme` component; one without it was
hashed byte for byte (results made before the scheme existed) and is checked that way, so it stays
current exactly as long as its files are byte-identical.

The code and the tolerances describe the tree and can be checked wherever the tree is (`changed`, used
by the site); versions and binaries describe the installation that ran the cell, so only a re-run there
checks them. A wheel install has no rust_ext/: those paths hash as `absent`, and the compiled
extension's hash is then what ties a Candle or Burn result to its code.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import tokenize
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
# How code components are hashed: "python-code-1" hashes a .py file as `python_code` reduces it;
# "bytes" (what a result without a `scheme` component used) hashes every file as it is.
SCHEME = "python-code-1"
BYTES = "bytes"

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
        self._digests: dict[tuple[str, str], str] = {}

    def digest(self, path: str | Path, scheme: str = SCHEME) -> str:
        """The hash of `path` under the root (an absolute path, such as an extension's file, as it is)."""
        key = (str(path), scheme)
        if key not in self._digests:
            self._digests[key] = digest(self.root / path, scheme)
        return self._digests[key]

    def code(self, paths: Iterable[str], scheme: str = SCHEME) -> dict[str, str]:
        """`code:<path>` components, with the `scheme` they were hashed by (none for `BYTES`)."""
        named = {} if scheme == BYTES else {"scheme": scheme}
        return named | {f"code:{p}": self.digest(p, scheme) for p in paths}


def digest(target: Path, scheme: str = SCHEME) -> str:
    """A file, or a folder's source files (relative names and contents, in name order), hashed; under
    `SCHEME` a .py file's content is `python_code` of it."""
    if target.is_file():
        files = [target]
    elif target.is_dir():
        files = sorted(f for f in target.rglob("*") if f.suffix in SOURCE_SUFFIXES and f.is_file())
    else:
        return ABSENT
    h = hashlib.sha256()
    for f in files:
        content = f.read_bytes()
        if scheme == SCHEME and f.suffix == ".py":
            content = python_code(content)
        for part in (f.relative_to(target).as_posix().encode(), content):
            h.update(len(part).to_bytes(8, "little") + part)  # length-prefixed: no two file sets collide
    return h.hexdigest()[:12]


def python_code(source: bytes) -> bytes:
    """A Python file reduced to what it computes: its comments and docstrings (a module's, class's or
    function's first string statement) cut out, trailing spaces and blank lines dropped. Everything else
    stays byte for byte, so any change to a statement, a name or a string that code reads still counts.
    Built from positions only (the syntax tree's and the tokenizer's), which every Python version
    reports alike, so the hash is the same under each. A file that does not parse counts byte for byte."""
    try:
        text = source.decode()
        docstrings = [node.body[0] for node in ast.walk(ast.parse(text)) if is_documented(node)]
        comments = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.COMMENT]
    except (SyntaxError, UnicodeDecodeError, tokenize.TokenError, ValueError):
        return source
    lines = text.splitlines()
    spans = [(t.start, t.end) for t in comments] + [
        ((d.lineno, char_col(lines[d.lineno - 1], d.col_offset)), (d.end_lineno, char_col(lines[d.end_lineno - 1], d.end_col_offset)))
        for d in docstrings
    ]
    for (row, col), (end_row, end_col) in sorted(spans, reverse=True):  # from the end: earlier spans keep their positions
        lines[row - 1 : end_row] = [lines[row - 1][:col] + lines[end_row - 1][end_col:]]
    return "\n".join(line.rstrip() for line in lines if line.strip()).encode()


def is_documented(node: ast.AST) -> bool:
    """A module, class or function whose body starts with a string statement: its docstring."""
    body = getattr(node, "body", None) if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) else None
    return bool(body) and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)


def char_col(line: str, byte_col: int) -> int:
    """The syntax tree counts columns in UTF-8 bytes, the tokenizer in characters."""
    return len(line.encode()[:byte_col].decode(errors="ignore"))


def scheme_of(recorded: Fingerprint | None) -> str:
    """How a recorded fingerprint's code was hashed (`BYTES` before results recorded it)."""
    return recorded.components.get("scheme", BYTES) if recorded else SCHEME


def cell(framework: str, family: str, judged_by: tuple[Tolerances | None, str], source: Tree, scheme: str = SCHEME,
         allocator: str | None = None) -> Fingerprint:
    """The fingerprint of a cell as the tree and the installation stand now (`judged_by`: the spec's
    `tolerances_for(framework, dtype, preset)`), its code hashed by `scheme` (a recorded result's own,
    to check whether it still stands), run under the `allocator` settings (`Malloc.component`)."""
    components = measured(framework, family, source, scheme) | framework_parts(REFERENCE_FRAMEWORK, source, scheme) | judging(judged_by, source, scheme)
    return of(components | ({"malloc": allocator} if allocator is not None else {}))


def judging(judged_by: tuple[Tolerances | None, str], source: Tree, scheme: str = SCHEME) -> dict[str, str]:
    """The components a re-judging may replace: the verdict's code and the tolerances."""
    return source.code(JUDGING, scheme) | tolerances(*judged_by)


def rejudged(recorded: Fingerprint, judged_by: tuple[Tolerances | None, str], source: Tree) -> Fingerprint:
    """A result's fingerprint after its stored outputs were judged again by the current verdict code and
    tolerances: the measured components stay as recorded (and so does the scheme they were hashed by)."""
    return of(recorded.components | judging(judged_by, source, scheme_of(recorded)))


def measured_changed(recorded: Fingerprint, source: Tree) -> list[str]:
    """The recorded code components, other than the judging ones, that the tree no longer matches: any
    of them means the numbers themselves may differ, so only a re-run can update the result."""
    judged = {f"code:{p}" for p in JUDGING}
    paths = [k.removeprefix("code:") for k in recorded.components if k.startswith("code:") and k not in judged]
    return sorted(k for k, v in source.code(paths, scheme_of(recorded)).items() if recorded.components.get(k) != v)


def measured(framework: str, family: str, source: Tree, scheme: str = SCHEME) -> dict[str, str]:
    """What computes a cell's numbers: its adapter's parts, the family module and the shared code."""
    return framework_parts(framework, source, scheme) | source.code([f"arena/families/{family}.py", *SHARED], scheme)


def reference_key(family: str, source: Tree) -> str:
    """A hash of what computes the reference's outputs, so a cached reference from other code is never reused."""
    return of(measured(REFERENCE_FRAMEWORK, family, source)).value


def framework_parts(framework: str, source: Tree, scheme: str = SCHEME) -> dict[str, str]:
    """The adapter package and what it declares it runs: sources, installed distributions, binaries."""
    adapter, variant = load_adapter(framework)
    package = adapter.__name__.replace(".", "/")
    parts = {f"code:{package}": package_digest(adapter, package, source, scheme)}
    parts |= source.code(getattr(adapter, "SOURCES", ()), scheme)
    parts |= {f"version:{d}": installed_version(d) for d in getattr(adapter, "DISTRIBUTIONS", (adapter.DISTRIBUTION,))}
    parts |= {f"binary:{m}": binary_digest(m, source) for m in variant_binaries(getattr(adapter, "BINARIES", ()), variant)}
    return parts


def variant_binaries(binaries: tuple[str, ...], variant: str) -> list[str]:
    """The modules a variant loads: every unprefixed one, and those named `<variant>:<module>` for it."""
    return [m.partition(":")[2] if ":" in m else m for m in binaries if ":" not in m or m.partition(":")[0] == variant]


def package_digest(adapter: ModuleType, package: str, source: Tree, scheme: str = SCHEME) -> str:
    """The adapter package in the tree; one outside it (an adapter in the working directory) where
    Python imports it from."""
    if (source.root / package).is_dir():
        return source.digest(package, scheme)
    return digest(Path(adapter.__file__).resolve().parent, scheme)


def binary_digest(module: str, source: Tree) -> str:
    """The compiled file of an extension module, found without loading it (hashed byte for byte)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    return source.digest(Path(spec.origin), BYTES) if spec and spec.origin else ABSENT


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


def rehashed(recorded: Fingerprint, source: Tree) -> Fingerprint | None:
    """A byte-for-byte fingerprint restated under `SCHEME`, when every file it names is byte-identical in
    the tree (so is its code, and the result stands exactly as before); None when one differs (only a
    re-run can update that result) or it already records a scheme."""
    if scheme_of(recorded) != BYTES:
        return None
    paths = [k.removeprefix("code:") for k in recorded.components if k.startswith("code:")]
    if source.code(paths, BYTES) != {f"code:{p}": recorded.components[f"code:{p}"] for p in paths}:
        return None
    return of(recorded.components | source.code(paths, SCHEME))


def changed(recorded: Fingerprint, judged_by: tuple[Tolerances | None, str], source: Tree) -> list[str]:
    """The recorded code and tolerance components that the tree at `source` (and the spec's current
    tolerances) no longer match. Versions and binaries belong to the machine that ran the cell: not here."""
    judged = [k for k, v in judging(judged_by, source, scheme_of(recorded)).items() if recorded.components.get(k) != v]
    return sorted(measured_changed(recorded, source) + judged)

"""The code fingerprint changes with exactly the code, crates and tolerances a cell depends on, and each
adapter declares every arena module it runs."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from arena.frameworks import known_packages, load_adapter
from arena.results.schema import Fingerprint
from arena.run import fingerprint
from arena.specs import load_specs

REPO = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("candle", "burn", "jax")
SPEC = load_specs()["smollm2-135m"]
# Not code that computes a cell's numbers: record types, error messages, adapter lookup by name; the
# families are in the fingerprint as the cell's own family module and base.py.
NOT_CODE = ["arena/results/schema.py", "arena/errors.py", "arena/frameworks/__init__.py", "arena/families"]


@pytest.fixture
def tree(tmp_path) -> Path:
    """A copy of the sources (arena/ and the Rust crates) that a test may edit."""
    root = tmp_path / "src"
    shutil.copytree(REPO / "arena", root / "arena", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    # Not the build folders (target/, target-cuda/, target-mkl/: gigabytes per copy).
    shutil.copytree(REPO / "rust_ext", root / "rust_ext", ignore=shutil.ignore_patterns("target", "target-*"))
    return root


def cell(root: Path, framework: str, judged_by=None) -> Fingerprint:
    """As a run sees the tree at `root` (a fresh Tree: nothing hashed before the edit is remembered)."""
    return fingerprint.cell(framework, "llama", judged_by or SPEC.tolerances_for(framework, "fp32", "tiny"), fingerprint.Tree(root))


def differing(a: Fingerprint, b: Fingerprint) -> set[str]:
    return {k for k in a.components.keys() | b.components.keys() if a.components.get(k) != b.components.get(k)}


@pytest.mark.parametrize("path, component, affected", [
    ("arena/frameworks/candle/llama.py", "code:arena/frameworks/candle", {"candle"}),
    ("arena/frameworks/rust_native.py", "code:arena/frameworks/rust_native.py", {"candle", "burn"}),
    ("arena/frameworks/layouts.py", "code:arena/frameworks/layouts.py", {"jax"}),
    ("rust_ext/candle/src/llama.rs", "code:rust_ext/candle", {"candle"}),
    ("rust_ext/burn/src/weights.rs", "code:rust_ext/burn", {"burn"}),
    ("rust_ext/Cargo.lock", "code:rust_ext/Cargo.lock", {"candle", "burn"}),
    ("arena/families/llama.py", "code:arena/families/llama.py", set(FRAMEWORKS)),
    ("arena/results/compare.py", "code:arena/results/compare.py", set(FRAMEWORKS)),
    ("arena/results/artifact.py", "code:arena/results/artifact.py", set(FRAMEWORKS)),
    ("arena/frameworks/torch/llama.py", "code:arena/frameworks/torch", set(FRAMEWORKS)),  # the reference judges every cell
    ("arena/families/whisper.py", None, set()),  # another family
    ("arena/site/home.py", None, set()),  # the site computes nothing
    ("rust_ext/candle/NOTES.md", None, set()),  # not a source file
])
def test_an_edit_changes_the_fingerprint_of_exactly_the_cells_that_run_it(tree, path, component, affected):
    before = {fw: cell(tree, fw) for fw in FRAMEWORKS}
    target = tree / path
    edit = b"\nEDITED = True\n" if target.suffix == ".py" else b"\n"  # a .py file counts by its code only
    target.write_bytes((target.read_bytes() if target.exists() else b"") + edit)
    after = {fw: cell(tree, fw) for fw in FRAMEWORKS}
    assert {fw for fw in FRAMEWORKS if before[fw].value != after[fw].value} == affected
    for fw in affected:
        assert differing(before[fw], after[fw]) == {component}


def test_a_tolerance_change_is_its_own_component(tree):
    base, note = SPEC.tolerances_for("candle", "fp32", "tiny")
    looser = base.model_copy(update={"output": base.output.model_copy(update={"atol": base.output.atol * 2})})
    assert differing(cell(tree, "candle"), cell(tree, "candle", (looser, note))) == {"tolerances"}
    assert differing(cell(tree, "candle"), cell(tree, "candle", (base, "a declared own output tolerance"))) == {"tolerances"}


def test_the_components_say_what_was_hashed(tree):
    candle = cell(tree, "candle").components
    assert {"code:arena/frameworks/candle", "code:rust_ext/candle", "code:rust_ext/Cargo.lock", "code:arena/families/llama.py",
            "code:arena/run/child.py", "code:arena/frameworks/torch", "tolerances", "binary:arena._native", "version:transformers"} <= set(candle)
    assert "code:rust_ext/burn" not in candle and "code:arena/frameworks/jax" not in candle
    # A module one variant loads (BINARIES' "<variant>:<module>") is in that variant's cells only.
    assert "binary:arena._native_mkl" not in candle
    assert {"binary:arena._native", "binary:arena._native_mkl"} <= set(cell(tree, "candle-mkl").components)
    assert cell(tree, "jax").components["version:jax"] == fingerprint.installed_version("jax")


def test_without_rust_sources_the_compiled_extension_ties_a_result_to_its_code(tree):
    """A wheel install has no rust_ext/: its paths hash as absent, the extension's file still counts."""
    shutil.rmtree(tree / "rust_ext")
    components = cell(tree, "burn").components
    assert components["code:rust_ext/burn"] == components["code:rust_ext/Cargo.lock"] == fingerprint.ABSENT
    if fingerprint.binary_digest("arena._native", fingerprint.Tree(tree)) == fingerprint.ABSENT:
        pytest.skip("arena._native is not built here")
    assert len(components["binary:arena._native"]) == 12


def test_the_tree_check_sees_code_and_tolerances_not_the_installation(tree):
    judged_by = SPEC.tolerances_for("candle", "fp32", "tiny")
    recorded = cell(tree, "candle")
    elsewhere = recorded.components | {"version:transformers": "0.0.1", "binary:arena._native": "f" * 12}
    assert fingerprint.changed(Fingerprint(value="another machine", components=elsewhere), judged_by, fingerprint.Tree(tree)) == []
    (tree / "rust_ext/candle/src/layers.rs").write_text("// edited\n")
    base, note = judged_by
    looser = base.model_copy(update={"loss": base.loss.model_copy(update={"rtol": 1.0})})
    assert fingerprint.changed(recorded, (looser, note), fingerprint.Tree(tree)) == ["code:rust_ext/candle", "tolerances"]


def test_comments_docstrings_and_blank_lines_are_not_code(tree):
    """A documentation edit leaves every result current; an edit of a statement or of a string the code
    reads does not. Checked on contract.py, which is in every cell's fingerprint."""
    path = tree / "arena/frameworks/contract.py"
    before, text = cell(tree, "jax"), path.read_text()
    documented = text.replace('"""The contract between', '"""Edited: the contract between', 1).replace("\nfrom __future__", "\n\n# why\nfrom __future__", 1)
    path.write_text(documented.replace('REFERENCE_FRAMEWORK = "torch"', 'REFERENCE_FRAMEWORK = "torch"  # a comment', 1).replace("):\n    \"\"\"Why", "):\n    \"\"\"Edited. Why", 1))
    assert path.read_text() != text and cell(tree, "jax") == before
    path.write_text(text.replace('DTYPE_NAMES = {"fp32": "float32"', 'DTYPE_NAMES = {"fp32": "float64"', 1))
    assert differing(before, cell(tree, "jax")) == {"code:arena/frameworks/contract.py"}


def test_python_code_cuts_exactly_the_comments_and_docstrings():
    source = "\n".join([
        '"""Module."""',
        "import x  # why",
        "def f(a):",
        '    """Doc, with × in it',
        '    and a second line ×."""',
        '    s = "# a string, not a comment"  # a comment',
        '    "a second string statement is no docstring"',
        "    return s",
        "",
        "class C:",
        '    "one line"',
        "    y = 1",
    ])
    assert fingerprint.python_code(source.encode()).decode() == "\n".join([
        "import x",
        "def f(a):",
        '    s = "# a string, not a comment"',
        '    "a second string statement is no docstring"',
        "    return s",
        "class C:",
        "    y = 1",
    ])
    assert fingerprint.python_code(b"def broken(:\n  # kept\n") == b"def broken(:\n  # kept\n", "a file that does not parse counts byte for byte"


def test_a_result_hashed_byte_for_byte_is_checked_byte_for_byte(tree):
    """Results from before the scheme recorded none: they stand while their files are byte-identical,
    and a re-run checks them the same way (orchestrate.keeps)."""
    judged_by = SPEC.tolerances_for("jax", "fp32", "tiny")
    old = fingerprint.cell("jax", "llama", judged_by, fingerprint.Tree(tree), fingerprint.BYTES)
    assert "scheme" not in old.components and cell(tree, "jax").components["scheme"] == fingerprint.SCHEME
    assert fingerprint.scheme_of(old) == fingerprint.BYTES and fingerprint.changed(old, judged_by, fingerprint.Tree(tree)) == []
    path = tree / "arena/frameworks/contract.py"
    path.write_text(path.read_text() + "\n# a comment\n")
    assert fingerprint.changed(old, judged_by, fingerprint.Tree(tree)) == ["code:arena/frameworks/contract.py"]
    assert fingerprint.changed(cell(tree, "jax"), judged_by, fingerprint.Tree(tree)) == []


def test_an_unchanged_result_is_restated_by_the_current_scheme(tree):
    """`rehashed` restates a byte-for-byte fingerprint only where every file is byte-identical: then it is
    exactly the fingerprint a run of this tree records now."""
    old = fingerprint.cell("jax", "llama", SPEC.tolerances_for("jax", "fp32", "tiny"), fingerprint.Tree(tree), fingerprint.BYTES)
    assert fingerprint.rehashed(old, fingerprint.Tree(tree)) == cell(tree, "jax")
    assert fingerprint.rehashed(cell(tree, "jax"), fingerprint.Tree(tree)) is None, "already by the current scheme"
    path = tree / "arena/frameworks/contract.py"
    path.write_text(path.read_text() + "\n# a comment\n")
    assert fingerprint.rehashed(old, fingerprint.Tree(tree)) is None, "not byte-identical: the old hash cannot vouch for the code"


def test_the_tree_hashes_each_path_once():
    source = fingerprint.Tree()
    first = fingerprint.cell("candle", "llama", SPEC.tolerances_for("candle", "fp32", "tiny"), source)
    remembered = dict(source._digests)
    assert fingerprint.cell("burn", "whisper", SPEC.tolerances_for("burn", "fp32", "tiny"), source).components["code:rust_ext/common"] == first.components["code:rust_ext/common"]
    assert all(source._digests[k] == v for k, v in remembered.items()) and len(source._digests) > len(remembered)


@pytest.mark.parametrize("package", known_packages())
def test_an_adapter_declares_every_arena_module_it_runs(package):
    """Every arena module an adapter imports is in its fingerprint: its package, its SOURCES or the shared code."""
    adapter, _ = load_adapter(package)
    declared = [f"arena/frameworks/{package}", *getattr(adapter, "SOURCES", ()), *fingerprint.SHARED]
    assert [p for p in declared if not (REPO / p).exists()] == [], "a declared path that does not exist"
    imported = {m for f in (REPO / "arena/frameworks" / package).rglob("*.py") for m in arena_imports(f)}
    binaries = [m.rpartition(":")[2].replace(".", "/") for m in getattr(adapter, "BINARIES", ())]
    uncovered = sorted(m for m in imported if not covered(m, declared + NOT_CODE + binaries))
    assert uncovered == [], f"{package} runs {uncovered} without declaring them in SOURCES"


def arena_imports(path: Path) -> set[str]:
    """The arena modules a file imports (`from arena.x import y` is module arena.x.y where y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("arena.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("arena"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if module_file(sub) else node.module)
    return found


def module_file(module: str) -> str | None:
    base = REPO / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate.relative_to(REPO).as_posix()
    return None


def covered(module: str, declared: list[str]) -> bool:
    file = module_file(module) or module.replace(".", "/")
    return any(file == d or file.startswith(d + "/") for d in declared)

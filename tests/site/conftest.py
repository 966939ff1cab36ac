"""The site tests' shared pieces: the fixture results, a generated docs folder and a real mkdocs build.

Tools that are not Python packages (Debian's chromium, the actionlint binary) are required where CI
runs (CI=true: .ci/run installs them) and skipped elsewhere with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arena.run import fingerprint
from arena.site.build import Generated, generate
from arena.specs import load_specs
from arena.results.store import result_files

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "results"
EVIL = "<script>window.__arena_pwned = 1</script>evil"  # the framework name of one fixture result
# The committed run grows as frameworks land: the tests count it rather than remember it.
COMMITTED = result_files(REPO / "results")
FIXTURE_FILES = result_files(FIXTURES)


def committed_platforms(model: str) -> list[str]:
    """The platforms with committed results for a model (each gets a table on the model's page)."""
    # results/<platform>/<model>/<preset>/<file>.json
    located = (path.relative_to(REPO / "results").parts for path in COMMITTED)
    return sorted({platform for platform, of_model, *_ in located if of_model == model})


def committed_frameworks(model: str, platform: str = "intel-xeon-2c") -> set[str]:
    """Frameworks with a committed full result for a model on a platform (file names: <framework>-<device>-<dtype>)."""
    return {p.stem.rsplit("-", 2)[0] for p in (REPO / "results" / platform / model / "full").glob("*.json")}


def require_tool(name: str, *aliases: str) -> str:
    """The tool's path; a skip naming it where it is missing, or a failure in CI, which must have it."""
    path = next((found for n in (name, *aliases) if (found := shutil.which(n))), None)
    if path is None:
        message = f"{name} is not installed (apt-get install chromium / pip install -e '.[site]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def current_fingerprint(result: dict, specs: dict, source: fingerprint.Tree) -> dict:
    """A code fingerprint that this tree matches: the comparison code's hash and the result's tolerances."""
    tolerances = fingerprint.tolerances(*specs[result["model"]].tolerances_for(result["framework"], result["dtype"], result["preset"]))
    return fingerprint.of(source.code(["arena/results/compare.py"]) | tolerances).model_dump()


@pytest.fixture(scope="session")
def results_dirs(tmp_path_factory) -> list[Path]:
    """The committed results and the fixtures, copied with fingerprints that the current tree matches,
    so that which of them are current does not change with every commit. Fixtures that carry their own
    fingerprint (a stale one) keep it. The committed results also take the current spec hash: a change
    of the specs or of the generation rules makes them stale on the site until they are re-run, and the
    site's behaviour is what these tests check, not whether they are current (the fixtures carry the
    spec hashes they were made with, tests/site/fixtures/make.py)."""
    root, specs, tree = tmp_path_factory.mktemp("results"), load_specs(), fingerprint.Tree()
    copies = []
    for folder, keep_own in ((REPO / "results", False), (FIXTURES, True)):
        target = root / folder.relative_to(REPO).as_posix().replace("/", "-")
        shutil.copytree(folder, target)
        for path in result_files(target):
            result = json.loads(path.read_text())
            if not keep_own:
                result["spec_hash"] = specs[result["model"]].spec_hash(result["preset"])
            if not (keep_own and result.get("fingerprint")):
                path.write_text(json.dumps(result | {"fingerprint": current_fingerprint(result, specs, tree)}, indent=1) + "\n")
        copies.append(target)
    return copies


@pytest.fixture(scope="session")
def docs(tmp_path_factory, results_dirs) -> tuple[Path, Generated]:
    """A copy of the repo's mkdocs config and hand-written pages, with pages generated from the
    committed results and the fixtures (two folders, four platforms)."""
    root = tmp_path_factory.mktemp("site")
    shutil.copy(REPO / "mkdocs.yml", root / "mkdocs.yml")
    for hand_written in ("partials", "assets"):
        shutil.copytree(REPO / "site" / hand_written, root / "site" / hand_written)
    return root, generate(results_dirs, root / "site")


@pytest.fixture(scope="session")
def built(docs) -> Path:
    """`mkdocs build --strict` of the generated docs: any warning (a broken link, a missing page) fails."""
    root, _ = docs
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml")],
                          capture_output=True, text=True, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr
    return root / "site-build"

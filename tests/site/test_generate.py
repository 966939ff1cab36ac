"""The generated Markdown: what each page holds, what is ranked, bold, marked, and that it is escaped."""

from __future__ import annotations

import json
import re
import zipfile

import pytest

from arena.errors import ArenaError
from arena.results import catch
from arena.results.stats import summarize
from arena.run import fingerprint
from arena.site.build import GENERATED, generate, nav
from arena.site.charts import log_scale, wide_range
from arena.site.html import md
from arena.site.methodology import allocator, workload_meanings
from arena.families import known_families
from arena.specs import load_specs

from tests.site.conftest import COMMITTED, FIXTURE_FILES, FIXTURES, REPO, current_fingerprint


def read(docs, name: str) -> str:
    return (docs[0] / "site" / name).read_text()


def rows_of(page: str, platform: str) -> list[str]:
    """The <tr> rows of the results table under a platform's heading on a model page."""
    section = page.split(f"## {md(platform)}")[1].split("\n## ")[0]
    return re.findall(r"<tr[ >].*?</tr>", section.split("<tbody>")[1], re.S)


def test_every_page_and_download_is_written(docs):
    root, out = docs
    names = {p.relative_to(root / "site").as_posix() for p in out.files}
    assert {"index.md", "accessibility.md", "methodology.md", "downloads.md", "nav.yml"} <= names
    assert {f"models/{m}.md" for m in load_specs()} <= names
    assert len([n for n in names if n.startswith("downloads/results/")]) == len(out.entries) == len(COMMITTED) + len(FIXTURE_FILES)
    assert all(n.split("/")[0] in GENERATED for n in names), "the generator writes only the paths it owns"


def test_home_ranks_verified_results_with_the_ratio_to_the_fastest(docs):
    home = read(docs, "index.md")
    board = home.split("### [smollm2-135m]")[1].split("**intel-xeon-2c**")[0].split("**fixture-x86-4c**")[1]
    names = [n.split(" <small")[0] for n in re.findall(r"<tr><td>\d+</td><td>(.*?)</td>", board)]
    assert names == ["torch", "&lt;script&gt;window.__arena_pwned = 1&lt;/script&gt;evil", "jax", "ggml"], "ties by name"
    assert "<td>1.00×</td>" in board and "mlx" not in board and "candle" not in board and "onnxruntime" not in board
    assert 'Stale results' in home and "2 result(s)" in home, "the older spec and the changed code (fixtures)"
    ggml = re.search(r"<tr><td>\d+</td><td>ggml(.*?)</td>", board)
    assert ggml and "uncommitted tree" in ggml.group(1) and "32624e2c8f09-dirty" in ggml.group(1)
    groups = home.split("## Speed at a glance")[1].split("## What runs where")[0].count("\n### ")
    assert groups >= 4, "the three fixture platforms and every committed platform with current results"
    assert home.count('<svg class="arena-chart"') == groups + 1, "one headline chart per platform and the accessibility matrix"


def test_model_page_rows_show_figures_reasons_and_marks(docs):
    page = read(docs, "models/smollm2-135m.md")
    assert "## Architecture" in page and "134.5 M" in page and "num_key_value_heads" in page
    rows = rows_of(page, "fixture-x86-4c")
    fail = next(r for r in rows if 'class="arena-fail"' in r)
    assert "✗ fail" in fail and "<strong>" not in fail, "a failed row is marked and never bold"
    detail = rows[rows.index(fail) + 1]
    assert 'class="arena-detail"' in detail and "max_abs 0.31" in detail
    error = next(r for r in rows if "arena-status arena-error" in r)
    assert "cannot find tensor model.norm.weight" in error
    bold = re.findall(r"<strong>(.*?)</strong>", "".join(rows))
    assert "170.4 ms" not in bold and bold, "bold values exist and come from verified rows only"
    assert any("title=" in r and "inference/logits" in r for r in rows), "verdicts carry their figures on hover"
    apple, nvidia = rows_of(page, "fixture-apple-m2"), rows_of(page, "fixture-nvidia-h100")
    assert any("unavailable" in r and "jax-metal is not installed" in r for r in apple)
    assert any("crashed" in r and "SIGSEGV" in r for r in apple)
    assert any("timeout" in r and "no result within 1800 s" in r for r in nvidia)
    assert any("unsupported" in r and "no CUDA back-end" in r for r in nvidia)


def test_a_platform_with_measured_peaks_gets_a_roofline_and_each_row_its_share_of_the_roof(docs):
    """fixture-x86-4c's machine.json (tests/site/fixtures/make.py): 200 GFLOP/s and 30 GB/s on 2 threads."""
    page = read(docs, "models/smollm2-135m.md")
    section = page.split("## fixture-x86-4c")[1].split("\n## ")[0]
    assert "Against this machine's measured peak" in section and "GEMM 200 GFLOP/s (torch.mm), triad 30.0 GB/s" in section
    chart = section.split("roofline: GFLOP/s against arithmetic intensity")[1].split("</svg>")[0]
    assert chart.count('class="arena-roof"') == 1, "one roof: every result ran on 2 threads"
    # The verified rows (torch, jax, the evil-named one; ggml has no training) have a point per workload they timed.
    assert chart.count('class="arena-point"') == 3 + 3 + 3 + 2
    jax = json.loads((FIXTURES / "fixture-x86-4c/smollm2-135m/full/jax-cpu-fp32.json").read_text())
    weights = 134_515_008 * 4  # SmolLM2-135M's state dict, fp32
    row = next(r for r in rows_of(page, "fixture-x86-4c") if r.startswith("<tr><td>jax"))
    for short, workload, passes in (("inf", "inference", 1), ("lat", "latency", 1), ("train", "training", 3)):
        w = jax["metrics"][workload]
        roof = min(200.0, 30.0 * w["flops"] / (weights * passes))
        assert f"{short} {w['gflops_per_s'] / roof:.0%}" in row
    apple = page.split("## fixture-apple-m2")[1].split("\n## ")[0]
    assert "Against this machine's measured peak" not in apple, "no peaks measured there: no roofline"


def test_an_older_spec_result_is_marked_on_its_page_and_left_out_of_charts(docs):
    page = read(docs, "models/whisper-tiny.md")
    stale = [r for r in rows_of(page, "fixture-x86-4c") if "arena-stale" in r or "Stale:" in r]
    assert len(stale) == 2 and "0123456789abcdef" in stale[1]
    chart = page.split("## fixture-x86-4c")[1].split("<table>")[0]
    assert chart.count('class="arena-bar"') == 3, "only the current-spec torch row is charted (3 workloads)"


def test_a_result_of_changed_code_says_what_changed_and_an_uncommitted_tree_is_marked(docs):
    page = read(docs, "models/smollm2-135m.md")
    nvidia = rows_of(page, "fixture-nvidia-h100")
    jax = next(r for r in nvidia if "<td>jax" in r)
    assert 'class="arena-stale"' in jax and "<strong>" not in jax
    assert "Stale: made by code or tolerances that have changed since: arena/results/compare.py, tolerances; not ranked." in nvidia[nvidia.index(jax) + 1]
    marked = [r for r in rows_of(page, "fixture-x86-4c") if "uncommitted tree" in r]
    assert len(marked) == 1 and "<td>ggml" in marked[0]


def test_no_string_from_a_result_reaches_a_page_unescaped(docs):
    for page in (docs[0] / "site").rglob("*.md"):
        text = page.read_text()
        assert "<script>" not in text, page
    assert "&lt;script&gt;window.__arena_pwned" in read(docs, "models/smollm2-135m.md")


def test_accessibility_lists_every_cell_that_does_not_run_with_its_reason(docs):
    page = read(docs, "accessibility.md")
    for reason in ("jax-metal is not installed", "SIGSEGV", "no result within 1800 s", "no CUDA back-end", "no maintained ggml runtime"):
        assert reason in page
    assert "training unsupported" in page, "a workload a running cell cannot do is listed too"


def test_methodology_covers_every_spec_from_its_family(docs):
    page = read(docs, "methodology.md")
    for name, spec in load_specs().items():
        assert f"{{#{name}}}" in page
    assert "prefill of `prompt_len` tokens" in page and "own output tolerance" in page.lower()


def test_methodology_lists_each_platforms_threads_and_allocator(docs):
    section = read(docs, "methodology.md").split("{#threads}")[1].split("\n## ")[0]
    assert "<th>allocator</th>" in section and "<td>fixture-x86-4c</td>" in section
    assert "not recorded (measured before runs set it)" in section, "the fixtures predate the setting"
    recorded = {"library": "glibc 2.36", "MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "glibc's default"}
    assert allocator({"malloc": recorded}) == "glibc 2.36, MALLOC_MMAP_THRESHOLD_=33554432, MALLOC_TRIM_THRESHOLD_=glibc's default"


def test_methodology_shows_the_catch_table_of_injected_bugs(docs):
    page = read(docs, "methodology.md").split("{#bugs}")[1].split("\n## ")[0]
    table = catch.read(REPO / "site" / catch.FILE)
    assert table is not None, "site/partials/catch-table.json is committed (python -m tests.bugs.table)"
    for bug in table.bugs:
        assert f"<code>{bug.name}</code>" in page
    for model in table.models:
        assert f"<th>{model}</th>" in page
    missed = [r for r in table.rows if not r.caught]
    assert page.count("✗ not caught") == len(missed) and page.count("✓") == len(table.rows) - len(missed)


@pytest.mark.parametrize("family", known_families())
def test_every_family_documents_its_workloads(family):
    assert set(workload_meanings(family)) == {"inference", "latency", "training"}


def test_downloads_hold_the_raw_files_their_zip_and_the_schema(docs, results_dirs):
    root, out = docs
    site = root / "site"
    schema = json.loads((site / "downloads" / "result.schema.json").read_text())
    assert schema["title"] == "Result"
    with zipfile.ZipFile(site / "downloads" / "arena-results.zip") as archive:
        assert len(archive.namelist()) == len(out.entries)
    original = results_dirs[1] / "fixture-apple-m2" / "smollm2-135m" / "full" / "torch-mps-fp32.json"
    assert (site / "downloads/results/fixture-apple-m2/smollm2-135m/full/torch-mps-fp32.json").read_bytes() == original.read_bytes()


def test_an_empty_results_folder_is_an_error(tmp_path):
    (tmp_path / "results").mkdir()
    with pytest.raises(ArenaError, match="no result files"):
        generate([tmp_path / "results"], tmp_path / "site")


def test_a_rerun_removes_pages_of_results_that_are_gone(tmp_path):
    generate([FIXTURES], tmp_path / "site")
    (tmp_path / "site" / "models" / "stale-model.md").write_text("left over")
    (tmp_path / "site" / "partials").mkdir()
    generate([FIXTURES / "fixture-apple-m2"], tmp_path / "site")
    assert not (tmp_path / "site" / "models" / "stale-model.md").exists()
    assert (tmp_path / "site" / "partials").is_dir(), "hand-written folders are never touched"


def test_log_scale_where_the_range_is_wide():
    assert wide_range([10.0, 12_000.0]) and not wide_range([10.0, 200.0])
    scale, ticks = log_scale(20.0, 3000.0, 0.0, 300.0)
    assert ticks[0] == 10 and ticks[-1] == 10_000 and scale(100.0) == pytest.approx(100.0)


def test_nav_titles_are_safe_slugs():
    """The theme writes a page's nav title into <title> unescaped, so a result's model name never goes there as is."""
    text = nav(["smollm2-135m", "</title><script>alert(1)</script>"])
    assert '"smollm2-135m": "models/smollm2-135m.md"' in text
    assert "<" not in text and '"title-script-alert-1-script": "models/title-script-alert-1-script.md"' in text


def test_a_low_sample_median_shows_its_count_instead_of_a_spread_and_a_noisy_one_is_flagged(tmp_path):
    """One v2 result with 3 calls, one v1 result (interval still in the file) with 2 and one with a CV of 14 %."""
    source = json.loads((FIXTURES / "fixture-x86-4c" / "smollm2-135m" / "full" / "torch-cpu-fp32.json").read_text())
    cells = {
        "torch": (2, summarize([180.0, 181.0, 182.0]).model_dump()),
        "jax": (1, {**summarize([90.0, 91.0]).model_dump(exclude={"low_sample"}), "ci95_low_ms": 90.0, "ci95_high_ms": 91.0}),
        "candle": (2, summarize([100.0, 80.0, 120.0, 100.0, 100.0]).model_dump()),
    }
    for framework, (version, stats) in cells.items():
        result = {**source, "framework": framework, "schema_version": version}
        result["metrics"] = {"prepare": source["metrics"]["prepare"], "inference": {**source["metrics"]["inference"], "stats": stats}}
        result["correctness"] = {**source["correctness"], "verdict": "pass"} if framework != "torch" else source["correctness"]
        result["fingerprint"] = current_fingerprint(result, load_specs(), fingerprint.Tree())  # current, so ranked
        path = tmp_path / "results" / f"{framework}-cpu-fp32.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(result))
    generate([tmp_path / "results"], tmp_path / "site")
    page = (tmp_path / "site" / "models" / "smollm2-135m.md").read_text()
    row = {fw: next(r for r in rows_of(page, "fixture-x86-4c") if f"<td>{fw}<br>" in r) for fw in cells}
    assert "⚠ n=3, low sample" in row["torch"] and "181.8 ms" not in row["torch"], "no p10–p90 of three calls"
    assert "no confidence interval under 5 calls" in row["torch"] and "95 % CI" not in row["torch"]
    assert "⚠ n=2, low sample" in row["jax"] and "95 % CI" not in row["jax"], "a v1 file's interval of two calls is dropped"
    assert "⚠ CV 14%" in row["candle"] and "<small>88.0 ms–112.0 ms</small>" in row["candle"] and "95 % CI of the median" in row["candle"]
    assert "low sample" not in row["candle"]
    board = (tmp_path / "site" / "index.md").read_text().split("### [smollm2-135m]")[1]
    assert "⚠ n=2, low sample" in board and "⚠ n=3, low sample" in board and "⚠ CV 14%" in board

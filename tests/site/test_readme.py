"""The README's generated blocks: they agree with results/, and they render results right (the fixtures:
three platforms, every status, a `fail`, stale results of two kinds, HTML in a framework name)."""

from __future__ import annotations

import dataclasses

import pytest

from arena.errors import ArenaError
from arena.results.report import format_ms
from arena.site.collect import Entry, load_entries
from arena.site.readme import README, read_block, render, replace_block, results_markdown, row_cells, versions, with_versions
from arena.specs import load_specs

from tests.site.conftest import REPO

EVIL = "\\<script\\>window.\\_\\_arena\\_pwned = 1\\</script\\>evil"  # conftest's, as Markdown text


def test_the_readme_shows_the_committed_results():
    """A result added, re-run or made stale by an edit changes the blocks: regenerate, never type."""
    text = README.read_text()
    assert render(text, load_entries([REPO / "results"], load_specs())) == text, "README.md differs from results/: run python -m arena.site.readme"


@pytest.fixture(scope="module")
def fixtures(results_dirs) -> list[Entry]:
    """The fixture results, current where they carry no fingerprint of their own (tests/site/conftest.py)."""
    return [e for e in load_entries(results_dirs, load_specs()) if e.result.system.platform_id.startswith("fixture-")]


def section(markdown: str, platform: str) -> str:
    return markdown.split(f"\n### {platform}\n", 1)[1].split("\n### ", 1)[0]


def table(markdown: str, platform: str, model: str) -> dict[str, dict[str, str]]:
    """The model's table on the platform: framework cell → {column → cell}."""
    lines = section(markdown, platform).split(f"\n#### {model}\n\n", 1)[1].split("\n\n", 1)[0].strip().split("\n")
    header = row_cells(lines[0])
    return {row[1]: dict(zip(header, row)) for row in map(row_cells, lines[2:])}


def find(entries: list[Entry], platform: str, framework: str, model: str = "smollm2-135m") -> Entry:
    return next(e for e in entries if e.result.system.platform_id == platform and e.result.framework == framework and e.result.model == model)


def test_a_section_per_platform_and_a_table_per_model(fixtures):
    markdown = results_markdown(fixtures)
    headings = [line for line in markdown.split("\n") if line.startswith("#")]
    assert headings == ["### fixture-apple-m2", "#### smollm2-135m", "### fixture-nvidia-h100", "#### smollm2-135m",
                        "### fixture-x86-4c", "#### smollm2-135m", "#### whisper-tiny"]
    assert "NVIDIA H100 80GB HBM3" in section(markdown, "fixture-nvidia-h100")


def test_verified_rows_are_ranked_with_their_figures_and_ratios(fixtures):
    rows = table(results_markdown(fixtures), "fixture-x86-4c", "smollm2-135m")
    ranked = sorted((r for r in rows.values() if r["#"]), key=lambda r: int(r["#"]))
    assert [r["#"] for r in ranked] == ["1", "2", "3", "4"] and {r["framework"] for r in ranked} == {"torch", "jax", "ggml", EVIL}
    torch, jax = find(fixtures, "fixture-x86-4c", "torch").result, find(fixtures, "fixture-x86-4c", "jax").result
    medians = {w: getattr(jax.metrics, w).stats.median_ms for w in ("inference", "latency", "training")}
    assert rows["jax"]["inference"].startswith(format_ms(medians["inference"]))
    assert rows["jax"]["× torch eager"] == " / ".join(f"{medians[w] / getattr(torch.metrics, w).stats.median_ms:.2f}" for w in medians)
    assert rows["jax"]["GFLOP/s"] == f"{jax.metrics.inference.gflops_per_s:.1f}" and rows["jax"]["verdict"] == "pass"
    workload_peak = max(getattr(jax.metrics, w).peak_rss_bytes for w in medians)
    assert rows["jax"]["peak memory"] == f"{workload_peak / 2**30:.2f} GiB"
    assert rows["torch"]["× torch eager"] == "—" and rows["torch"]["verdict"] == "reference"
    assert rows["ggml"]["training"] == "unsupported" and "uncommitted tree" in rows["ggml"]["status"]


def test_failed_unverified_and_not_run_rows_are_listed_unranked(fixtures):
    rows = table(results_markdown(fixtures), "fixture-x86-4c", "smollm2-135m")
    assert rows["mlx"]["#"] == "" and rows["mlx"]["verdict"] == "fail"
    assert rows["onnxruntime"]["#"] == "" and rows["onnxruntime"]["verdict"] == "n/a"
    assert rows["candle"] | {"status": "error", "inference": "—", "× torch eager": "—", "verdict": "RuntimeError: cannot find tensor model.norm.weight"} == rows["candle"]
    assert list(rows)[-1] == "candle", "cells that did not run come last"
    apple = table(results_markdown(fixtures), "fixture-apple-m2", "smollm2-135m")
    assert apple["jax · metal"]["status"] == "unavailable" and "jax-metal is not installed" in apple["jax · metal"]["verdict"]


def test_stale_results_are_listed_with_the_kind_of_staleness_never_ranked(fixtures):
    markdown = results_markdown(fixtures)
    jax = table(markdown, "fixture-nvidia-h100", "smollm2-135m")["jax · cuda"]
    assert jax["#"] == "" and jax["status"] == "ok · stale" and jax["× torch eager"] == "—"
    assert jax["inference"] != "—", "a stale result's figures are shown, only not compared"
    assert "**1 stale**" in section(markdown, "fixture-nvidia-h100") and "made by code or tolerances that have changed since (1)" in markdown
    assert table(markdown, "fixture-x86-4c", "whisper-tiny")["jax"]["status"] == "ok · stale"
    assert "computed with an older version of the spec (1)" in section(markdown, "fixture-x86-4c")
    assert "arena/results/compare.py" not in markdown, "the particulars of a stale note change with every edit: the site has them"


def test_a_framework_name_with_html_stays_text(fixtures):
    markdown = results_markdown(fixtures)
    assert "<script>" not in markdown and f"| {EVIL} |" in markdown


def test_the_worst_margin_is_shown_where_the_checks_have_margins(fixtures):
    entry = find(fixtures, "fixture-x86-4c", "jax")
    result = entry.result.model_copy(deep=True)
    result.correctness.checks[0].figures["margin"] = 0.042
    result.correctness.checks[-1].figures["margin"] = 0.31
    rows = table(results_markdown([dataclasses.replace(entry, result=result)]), "fixture-x86-4c", "smollm2-135m")
    assert rows["jax"]["worst margin"] == "0.31"
    assert table(results_markdown([entry]), "fixture-x86-4c", "smollm2-135m")["jax"]["worst margin"] == "—"


FRAMEWORKS = """| framework | version | what runs |
|---|---|---|
| `torch` | 1.0 | the official modules (a \\| in the prose) |
| `nothing-yet` | 9.9 | no results |
"""


def test_the_frameworks_table_takes_versions_and_keeps_its_prose(fixtures):
    found = versions(fixtures)
    assert found["torch"] == "2.15.0+cu132" and "candle" not in found, "a cell that did not run reports no version"
    other = find(fixtures, "fixture-nvidia-h100", "torch")
    moved = [dataclasses.replace(other, result=other.result.model_copy(update={"framework_version": "2.16.0"})) if e is other else e for e in fixtures]
    assert versions(moved)["torch"] == "2.15.0+cu132 (fixture-apple-m2, fixture-x86-4c), 2.16.0 (fixture-nvidia-h100)"
    assert with_versions(FRAMEWORKS, found) == FRAMEWORKS.replace("| 1.0 |", "| 2.15.0+cu132 |").replace("| 9.9 |", "| — |")


def test_render_replaces_only_the_blocks_and_is_stable(fixtures):
    text = f"# Title\n\nprose\n\n<!-- frameworks -->\n{FRAMEWORKS}<!-- /frameworks -->\n\n<!-- results -->\nold\n<!-- /results -->\n\nend\n"
    once = render(text, fixtures)
    assert once.startswith("# Title\n\nprose\n\n<!-- frameworks -->\n") and once.endswith("<!-- /results -->\n\nend\n")
    assert read_block(once, "results") == results_markdown(fixtures)
    assert render(once, fixtures) == once
    with pytest.raises(ArenaError, match="no <!-- catch-table --> … <!-- /catch-table --> block"):
        replace_block(text, "catch-table", "rows")

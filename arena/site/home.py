"""The home page: what Arena is (hand-written, included), the headline charts, a leaderboard per model."""

from __future__ import annotations

from collections.abc import Sequence

from arena.results.report import format_ms, verdict_label
from arena.site import accessibility, charts
from arena.site.collect import Entry, by_group, group_title, label, median_ms, ranked, stats_of
from arena.site.html import block, caveat_lines, esc, md, slug, table, tag
from arena.site.model import uncommitted_mark

INTRO = "partials/home.md"  # hand-written, included by pymdownx.snippets at build time


def page(entries: Sequence[Entry], models: Sequence[str], colors: dict[str, str]) -> str:
    lines = ["# Arena", "", f'--8<-- "{INTRO}"', ""]
    stale = [e for e in entries if e.stale]
    if stale:
        lines += ['!!! warning "Stale results"', "", f"    {len(stale)} result(s) were made by a spec, code or tolerances that have since changed (or recorded no code fingerprint). They are shown, marked with the reason, on their model pages and are not ranked or charted.", ""]
    lines += ["## Speed at a glance {#speed}", ""]
    for group, members in by_group(entries).items():
        lines += [f"### {md(group_title(group))}", "", block(headline_chart(members, models), class_="arena-figure")]
    lines += ["## What runs where {#accessibility}", "", "Each square is one model; hover for the reason. Details: [accessibility](accessibility.md).", "",
              block(accessibility.chart(entries, models), class_="arena-figure"), "", "## Leaderboards {#leaderboards}", ""]
    lines += ["Verified results only (`pass` or `reference`), fastest inference first; `×` is the ratio to the fastest on that machine. Failed, unverified and stale results are on the model pages, never here.", ""]
    for model in models:
        lines += [f"### [{md(model)}](models/{slug(model)}.md)", ""]
        for group, members in by_group(e for e in entries if e.result.model == model).items():
            lines += [f"**{md(group_title(group))}**", "", block(leaderboard(members), class_="arena-table")]
    return "\n".join(lines)


def leaderboard(entries: Sequence[Entry]) -> str:
    order = ranked(entries)
    if not order:
        return tag("p", "No verified result on this machine.")
    fastest = median_ms(order[0], "inference")
    rows = []
    for i, e in enumerate(order, 1):
        median = tag("td", esc(format_ms(median_ms(e, "inference"))) + caveat_lines(stats_of(e, "inference")))
        rows.append(tag("tr", tag("td", str(i)) + tag("td", esc(label(e.result)) + uncommitted_mark(e)) + median
                        + tag("td", f"{median_ms(e, 'inference') / fastest:.2f}×") + tag("td", esc(verdict_label(e.result)))))
    return table(("#", "framework", "inference (median)", "× fastest", "verdict"), rows)


def headline_chart(entries: Sequence[Entry], models: Sequence[str]) -> str:
    """Per framework, each model's inference time relative to that model's fastest verified framework."""
    model_colors = charts.palette(models)
    per_framework: dict[str, list[charts.Point]] = {}
    for model in models:
        order = ranked(e for e in entries if e.result.model == model)
        for e in order:
            ratio = median_ms(e, "inference") / median_ms(order[0], "inference")
            title = f"{model}, {label(e.result)}: {format_ms(median_ms(e, 'inference'))}, {ratio:.2f}× the fastest ({label(order[0].result)})"
            per_framework.setdefault(label(e.result), []).append(charts.Point(model, ratio, 0, model_colors[model], title))
    rows = sorted(per_framework.items(), key=lambda item: sorted(p.x for p in item[1])[len(item[1]) // 2])
    series = [(m, model_colors[m]) for m in models]
    return charts.dot_rows(rows, series, "inference time relative to the fastest framework, per model", "inference time ÷ the fastest framework's, per model (log scale)")

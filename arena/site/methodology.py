"""The methodology page, generated from the specs (and the family modules they name).

The general policies (timing, threads, the reference, verdicts) are hand-written prose, included from
`partials/methodology.md`. Per model this page shows what each workload means (the family module's
docstring, the one place it is written down), the input sizes with each field's description, the FLOPs,
the timing policy and the tolerances, including any framework's own declared output tolerance and why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from arena.errors import ArenaError
from arena.families import load_family
from arena.families.base import WORKLOADS
from arena.results.catch import INJECTED, CatchRow, CatchTable, checks_summary
from arena.site.collect import Entry, group_title
from arena.site.html import block, esc, md, slug, table, tag
from arena.specs import ModelSpec

PROSE = "partials/methodology.md"  # hand-written, included by pymdownx.snippets at build time
# A family docstring's workload entry: "    inference  text" and its deeper-indented continuation lines.
_ENTRY = re.compile(r"^ {4}(inference|latency|training) {2,}(.+(?:\n {6,}\S.*)*)", re.M)


def page(specs: Sequence[ModelSpec], entries: Sequence[Entry], catches: CatchTable | None = None) -> str:
    lines = ["# Methodology", "", f'--8<-- "{PROSE}"', "", "## Threads and allocator per machine {#threads}", ""]
    setups = sorted({(group_title(e.group), e.result.threads, allocator(e.result.settings)) for e in entries if e.result.status == "ok"})
    rows = [tag("tr", tag("td", esc(g)) + tag("td", str(t)) + tag("td", esc(a))) for g, t, a in setups]
    lines += [block(table(("platform", "threads per cell", "allocator"), rows), class_="arena-table") if rows else "No measured result yet.", ""]
    lines += catch_section(catches)
    for spec in specs:
        lines += model_section(spec)
    return "\n".join(lines)


def allocator(settings: dict) -> str:
    """A result's C allocator settings as the cell recorded them (arena/run/malloc.py `in_effect`)."""
    recorded = settings.get("malloc")
    if not recorded:
        return "not recorded (measured before runs set it)"
    library = recorded.get("library", "?")
    return library + "".join(f", {k}={v}" for k, v in recorded.items() if k != "library")


def catch_section(catches: CatchTable | None) -> list[str]:
    """What the verdict is proven to catch: realistic bugs injected into real implementations."""
    lines = ["## Injected bugs the verdict catches {#bugs}", "",
             "Each bug is injected into a real implementation (the reference's official modules, or the conversion "
             "of a deployment runtime) and run as a cell of its own against the reference; it must get the verdict "
             "`fail`. A cell lists the checks that failed (hover for their names) or says why the bug is not caught; — : the model has no such part. "
             "Written by `python -m tests.bugs.table`.", ""]
    if catches is None:
        return lines + ["No catch table yet.", ""]
    what = {b.name: b.what for b in catches.bugs}
    rows = []
    for (bug, framework), by_model in catches.grid().items():
        verdicts = [tag("td", "<br>".join(_catch(r) for r in by_model.get(m, [])) or "—") for m in catches.models]
        rows.append(tag("tr", tag("td", tag("code", esc(bug)) + "<br>" + esc(what[bug])) + tag("td", esc(catches.injected_into(bug, framework))) + "".join(verdicts)))
    kinds = "; ".join(f"**{k}**: {md(v)}" for k, v in INJECTED.items())
    return lines + [block(table(("bug", "injected into", *catches.models), rows), class_="arena-table"), "", f"Injected into {kinds}. Runs: {md(catches.runs_summary())}.", ""]


def _catch(r: CatchRow) -> str:
    if r.caught:
        return tag("span", f"{esc(r.preset)}: ✓ {esc(checks_summary(r.failed_checks))}", title=", ".join(r.failed_checks))
    return f"{esc(r.preset)}: ✗ not caught: {esc(r.note)}"


def workload_meanings(family: str) -> dict[str, str]:
    """What inference / latency / training mean for a family, from its module docstring."""
    module = load_family(family)
    found = {name: " ".join(text.split()) for name, text in _ENTRY.findall(module.__doc__ or "")}
    missing = [w for w in WORKLOADS if w not in found]
    if missing:
        raise ArenaError(
            f"{module.__file__}: the docstring has no entry for {', '.join(missing)} under 'Workloads' "
            "(an indented line '    inference  <what it computes>'): the methodology page is generated from it"
        )
    return found


def model_section(spec: ModelSpec) -> list[str]:
    meanings = workload_meanings(spec.family)
    family = load_family(spec.family)
    sizes = {name: spec.presets[name].workloads for name in ("full", "tiny")}
    size_rows = [
        tag("tr", tag("td", tag("code", esc(field))) + "".join(tag("td", esc(getattr(sizes[p], field))) for p in sizes) + tag("td", esc(info.description or "")))
        for field, info in type(sizes["full"]).model_fields.items()
    ]
    full = spec.presets["full"]
    workload_rows = [tag("tr", tag("td", w) + tag("td", esc(meanings[w])) + tag("td", f"{family.flops(full.config, full.workloads, w) / 1e9:,.2f}")) for w in WORKLOADS]
    return [
        f"## {md(spec.name)} {{#{slug(spec.name)}}}", "",
        f"Family `{esc(spec.family)}`; reference implementation: {md(spec.reference)}. [Results](models/{slug(spec.name)}.md).", "",
        block(table(("workload", "what one timed call computes", "GFLOP (full)"), workload_rows), class_="arena-table"),
        block(table(("input size", "full", "tiny", "meaning"), size_rows), class_="arena-table"), "",
        "**Timing.** " + "; ".join(f"{md(p)}: {esc(_timing(spec, p))}" for p in ("full", "tiny")), "",
        block(tolerance_table(spec), class_="arena-table"), "",
        *[f"Own output tolerance for **{md(fw)}** ({', '.join(o.dtypes)}): {md(o.why)}" + "\n" for fw, o in spec.output_tolerance_overrides.items()],
    ]


def _timing(spec: ModelSpec, preset: str) -> str:
    t = spec.timing_for(preset)
    return (f"{t.warmup} warm-up calls, then timed calls until at least {t.min_reps} calls and {t.min_seconds:g} s "
            f"(at most {t.max_reps} calls and {t.max_seconds:g} s); cell timeout {spec.presets[preset].timeout_s:g} s")


def tolerance_table(spec: ModelSpec) -> str:
    """One row per preset and dtype: the tolerances, and the fp32-vs-fp64 measurement they rest on."""
    rows = []
    for preset in ("full", "tiny"):
        for dtype in {**spec.tolerances, **spec.presets[preset].tolerances}:
            tol, _ = spec.tolerances_for("", dtype, preset)
            o, loss, g, m = tol.output, tol.loss, tol.grad, tol.fp64_difference
            rows.append(tag("tr", "".join(tag("td", esc(v)) for v in (
                f"{preset} {dtype}",
                f"atol {o.atol:g}, rtol {o.rtol:g}, cosine ≥ {o.min_cosine:g}",
                f"atol {loss.atol:g}, rtol {loss.rtol:g}",
                f"norm rtol {g.norm_rtol:g}, rel L2 samples {g.sample_rel_l2:g} projections {g.projection_limit:g}, cosine ≥ {g.min_cosine:g}",
                (f"outputs {m.output_max_abs:.2g}, loss {m.loss_abs:.2g}, grad norm {m.grad_norm_rel:.2g}, grad rel L2 {m.grad_rel_l2:.2g}"
                 if m else "not measured"),
            ))))
    return table(("preset, dtype", "outputs", "loss", "gradients", "reference fp32 vs fp64"), rows)

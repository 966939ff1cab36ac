"""Results folders → the entries the site shows.

Folders from any number of machines are read strictly: a file that is not a valid result stops the
build with its path (a site that silently drops a cell would misreport a framework). The same cell
(platform, model, preset, framework, device, dtype) found twice keeps its newest run. A result is stale
when it no longer describes the current tree: its `spec_hash` differs from the current spec's (another
version of the model), or its code fingerprint's code or tolerances differ from the tree's (or it has
none). A stale result is kept, flagged with the reason, and never ranked or charted beside current
results. A result made from a working tree with uncommitted changes is marked as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from arena.errors import ArenaError
from arena.families.base import WORKLOADS
from arena.results import machine
from arena.results.machine import MachinePeak
from arena.results.schema import Result, Stats
from arena.results.store import load_result, result_files, result_path
from arena.run import fingerprint
from arena.site.html import slug
from arena.specs import ModelSpec

VERIFIED = ("pass", "reference")
# Accessibility categories, in the order the matrix and its legend show them.
# "not run here" is the lab's limit (a framework this machine was not set up for: Result status not_run),
# kept apart from "unavailable", the framework's own (it cannot use the device, or is not installed).
CATEGORIES = ("runs", "unverified", "failed", "unsupported", "unavailable", "not run here")


@dataclass(frozen=True)
class Entry:
    result: Result
    path: Path  # the file it was read from
    download: str  # where its copy goes under downloads/ (results/<platform>/<model>/<preset>/<stem>.json)
    stale: str  # "" when made by the current spec and code, else why it is not comparable

    @property
    def verified(self) -> bool:
        """Ranked, bolded and charted: ran, agreed with the reference, on the current spec and code."""
        r = self.result
        return r.status == "ok" and r.correctness.verdict in VERIFIED and not self.stale

    @property
    def uncommitted(self) -> bool:
        """Made from a working tree with uncommitted changes: its commit alone does not say which code."""
        return self.result.system.arena_commit.endswith("-dirty")

    @property
    def category(self) -> str:
        """What the accessibility matrix shows for this cell (staleness does not change whether it runs)."""
        r = self.result
        if r.status in ("unsupported", "unavailable"):
            return r.status
        if r.status == "not_run":
            return "not run here"
        if r.status != "ok" or r.correctness.verdict == "fail":
            return "failed"
        return "runs" if r.correctness.verdict in VERIFIED else "unverified"

    @property
    def reason(self) -> str:
        r = self.result
        if r.status != "ok":
            return r.reason or f"status {r.status}"
        return r.correctness.reason

    @property
    def gaps(self) -> list[tuple[str, str, str]]:
        """(workload, status, reason) of each workload a running cell did not run (ONNX Runtime's training)."""
        m = self.result.metrics
        return [(w, x.status, x.reason) for w in WORKLOADS if (x := getattr(m, w)) and x.status != "ok"]

    @property
    def group(self) -> tuple[str, str]:
        """Tables and charts compare results of one machine and one preset."""
        return self.result.system.platform_id, self.result.preset


def load_entries(results_dirs: Iterable[Path], specs: dict[str, ModelSpec], source: fingerprint.Tree | None = None) -> list[Entry]:
    """Every result under the folders, newest run per cell, flagged against the current specs and the
    code at `source` (default: the tree this arena is imported from)."""
    source = source or fingerprint.Tree()
    newest: dict[tuple[str, ...], Entry] = {}
    for folder in results_dirs:
        if not folder.is_dir():
            raise ArenaError(f"{folder}: no such results folder")
        for path in result_files(folder):
            result = load_result(path)
            entry = Entry(result, path, download_path(result), stale_note(result, specs, source))
            key = cell_key(result)
            if key not in newest or result.created > newest[key].result.created:
                newest[key] = entry
    return sorted(newest.values(), key=lambda e: cell_key(e.result))


def load_machines(results_dirs: Iterable[Path]) -> dict[str, MachinePeak]:
    """Each platform's measured peaks (`<platform>/machine.json`), the newest where folders hold several.
    A file of another probe version is left out: its figures are not what this code compares with."""
    found: dict[str, MachinePeak] = {}
    for folder in results_dirs:
        for path in sorted(folder.rglob(machine.FILE)):
            peak = machine.load(path)
            if peak and (peak.platform_id not in found or peak.measured > found[peak.platform_id].measured):
                found[peak.platform_id] = peak
    return found


def cell_key(r: Result) -> tuple[str, ...]:
    return (r.system.platform_id, r.model, r.preset, r.framework, r.device, r.dtype)


def download_path(r: Result) -> str:
    """The store's layout, each part reduced to a safe file name (the parts come from the file's content)."""
    platform, model, preset, *stem = (slug(part) for part in cell_key(r))
    return result_path(Path("results"), platform, model, preset, "-".join(stem)).as_posix()


def stale_note(r: Result, specs: dict[str, ModelSpec], source: fingerprint.Tree) -> str:
    """Why a result no longer describes the current spec and code ("" when it does)."""
    spec = specs.get(r.model)
    if spec is None:
        return f"no spec named {r.model!r} in the specs folder: the result cannot be checked against one"
    if r.preset not in spec.presets:
        return f"the spec of {r.model} has no preset {r.preset!r} any more"
    current = spec.spec_hash(r.preset)
    if r.spec_hash != current:
        return f"computed with an older version of the spec (spec hash {r.spec_hash}, now {current})"
    if r.fingerprint is None:
        return "made before results recorded a code fingerprint: which code produced it cannot be checked"
    changed = fingerprint.changed(r.fingerprint, spec.tolerances_for(r.framework, r.dtype, r.preset), source)
    if changed:
        return "made by code or tolerances that have changed since: " + ", ".join(k.removeprefix("code:") for k in changed)
    return ""


def stats_of(e: Entry, workload: str) -> Stats | None:
    """The workload's timing statistics, or None where it did not run."""
    w = getattr(e.result.metrics, workload)
    return w.stats if w and w.status == "ok" else None


def median_ms(e: Entry, workload: str) -> float | None:
    s = stats_of(e, workload)
    return s.median_ms if s else None


def output_error(e: Entry) -> float | None:
    """The largest absolute error of the inference outputs against the reference (None: not compared)."""
    figures = [c.figures["max_abs"] for c in e.result.correctness.checks if c.name.startswith("inference/") and "max_abs" in c.figures]
    return max(figures) if figures else None


def label(r: Result) -> str:
    """How a row is named: the framework, with the device and dtype where they are not the usual cpu / fp32."""
    extras = [x for x, usual in ((r.device, "cpu"), (r.dtype, "fp32")) if x != usual]
    return " · ".join([r.framework, *extras])


def ranked(entries: Iterable[Entry]) -> list[Entry]:
    """Verified entries that measured inference, fastest first."""
    timed = [e for e in entries if e.verified and median_ms(e, "inference") is not None]
    return sorted(timed, key=lambda e: (median_ms(e, "inference"), label(e.result)))


def by_group(entries: Iterable[Entry]) -> dict[tuple[str, str], list[Entry]]:
    """Entries per (platform, preset): the `full` preset first, then platforms by name."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in sorted(entries, key=lambda e: (e.result.preset != "full", e.group)):
        groups.setdefault(e.group, []).append(e)
    return groups


def group_title(group: tuple[str, str]) -> str:
    platform, preset = group
    return platform if preset == "full" else f"{platform} ({preset} preset)"


def describe_platform(r: Result) -> str:
    """One line about the machine: CPU (with its family and model, which tell apart CPUs of one model
    name), cores, memory, GPU, OS."""
    s = r.system
    parts = [s.cpu_model + (f" ({s.cpu_id})" if s.cpu_id else ""), f"{s.physical_cores} cores" if s.physical_cores else "", f"{s.ram_bytes / 2**30:.0f} GiB" if s.ram_bytes else "", s.gpu, s.os]
    return ", ".join(p for p in parts if p)

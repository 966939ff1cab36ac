"""The result contract: one JSON file per cell, versioned, validated, self-describing.

Bump SCHEMA_VERSION on any incompatible change, and upgrade the older versions' files as they are read
(`Result._upgrade`), so that a store or a site keeps its committed results; `arena schema` exports the
JSON Schema that the site publishes beside the raw files.

v2: a median of fewer than `MIN_SAMPLES_FOR_CI` calls has no confidence interval (`low_sample`, the
interval fields null), and each workload records its untimed warm-up calls (`warmup_ms`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from arena.frameworks.contract import Conversion  # a framework's record, kept in the result

SCHEMA_VERSION = 2
# Fewer timed calls than this give no confidence interval: a bootstrap of 3 values resamples those 3
# values, so its "interval" is their range under another name and says nothing about the next run.
MIN_SAMPLES_FOR_CI = 5

# unavailable: the framework cannot use this device here (not installed, no such back-end, a device it
# reports but cannot run on); not_run: this machine was not set up for it (`not_run_here` of the run:
# a package that could not be brought here), the lab's limit, which says nothing of the framework.
Status = Literal["ok", "error", "timeout", "crashed", "unavailable", "unsupported", "not_run", "running"]
Verdict = Literal["reference", "pass", "fail", "n/a"]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stats(Model):
    """Statistics of the timed calls of one workload (all in milliseconds)."""

    n: int
    low_sample: bool = Field(description=f"fewer than {MIN_SAMPLES_FOR_CI} timed calls: the median is a single / low-sample figure and has no interval")
    median_ms: float
    mean_ms: float
    std_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    cv: float = Field(description="std / mean")
    ci95_low_ms: float | None = Field(description="bootstrap 95 % confidence interval of the median, low end (None when low_sample)")
    ci95_high_ms: float | None = Field(description="its high end (None when low_sample)")
    samples_ms: list[float]


class WorkloadMetrics(Model):
    status: Literal["ok", "unsupported", "error"] = "ok"
    reason: str = ""
    first_call_ms: float | None = Field(None, description="the first (cold) call, compilation included")
    warmup_ms: list[float] = Field(default_factory=list, description="the untimed warm-up calls after the first call (at least one; empty in a v1 result, which did not record them)")
    stats: Stats | None = None
    throughput: float | None = Field(None, description="work items per second at the median")
    throughput_unit: str = ""
    flops: float | None = Field(None, description="analytic FLOPs of one call (2 per multiply-add)")
    gflops_per_s: float | None = Field(None, description="achieved GFLOP/s at the median")
    peak_rss_bytes: int | None = Field(None, description="peak resident memory of the process from the making of this workload's step to its last call, the comparison's copies of its outputs left out (how it was read: settings.peak_rss; results before it was recorded sampled from the first call)")
    peak_device_memory_bytes: int | None = Field(None, description="peak accelerator memory while this workload ran (None on the CPU)")
    problems: list[str] = Field(default_factory=list, description="timing-validity problems (e.g. recompilation)")


class Prepare(Model):
    """Cold start: load the weights file, build the model, first inference call (compilation included)."""

    load_ms: float
    build_ms: float = Field(description="building the model (sessions, contexts, compilation); a conversion is not included, see `conversion`")
    conversion: Conversion | None = None
    first_call_ms: float | None = None
    total_ms: float
    peak_rss_bytes: int | None = Field(None, description="peak resident memory of the process while the weights were loaded and the model built")


class Metrics(Model):
    prepare: Prepare | None = None
    inference: WorkloadMetrics | None = None
    latency: WorkloadMetrics | None = None
    training: WorkloadMetrics | None = None
    peak_memory_bytes: int | None = Field(None, description="peak resident memory of the whole cell process")


class Check(Model):
    name: str = Field(description="what was compared, e.g. inference/logits, training/loss, training/grads")
    passed: bool
    figures: dict[str, float] = Field(default_factory=dict)
    detail: str = ""


class Correctness(Model):
    verdict: Verdict = "n/a"
    reason: str = ""
    reference: str = Field("", description="which reference artifact this was compared with")
    tolerance_note: str = Field("", description="why this framework is judged by its own declared output tolerance (empty: the spec's)")
    outputs: str = Field("", description="digest of the cell's outputs artifact, kept in the cache (outputs/<digest>.npz) so the verdict can be re-judged")
    rejudged: str = Field("", description="the commit whose verdict code and tolerances re-judged the stored outputs (empty: judged when measured)")
    checks: list[Check] = Field(default_factory=list)


class System(Model):
    platform_id: str
    cpu_model: str
    cpu_id: str = Field("", description=(
        "the CPU's vendor, family, model and stepping as the OS reports them (x86: /proc/cpuinfo); a model name "
        "such as 'AMD EPYC' covers several generations, and a VM's host can change between runs"))
    physical_cores: int | None
    logical_cores: int | None
    ram_bytes: int | None
    os: str
    python: str
    gpu: str = ""
    gpu_driver: str = Field("", description="the NVIDIA driver's version (nvidia-smi); empty without one")
    gpu_cuda: str = Field("", description="the CUDA version that driver supports (nvidia-smi's header); each framework's own CUDA runtime is in its probe settings")
    gpu_memory_bytes: int | None = Field(None, description="memory of the first GPU nvidia-smi lists")
    hostname: str = ""
    node_id: str = Field("", description="the cluster node that ran the cell (its Ray node id); empty for a run on this machine")
    arena_version: str
    arena_commit: str = ""


class Fingerprint(Model):
    """What produced a result's numbers and verdict, hashed (arena/run/fingerprint.py): a re-run keeps
    the result only while `value` is the current one, and the site lists it as stale once the tree's
    code or tolerances differ."""

    value: str = Field(description="hash of all components")
    components: dict[str, str] = Field(description=(
        "`code:<path>`: hash of a source file or folder (relative to the repository); `tolerances`: hash of the "
        "tolerances the verdict is judged by; `version:<distribution>`: its installed version; `binary:<module>`: "
        "hash of a compiled extension; `scheme`: how the code was hashed (absent: byte for byte)"))


class Result(Model):
    schema_version: int = Field(SCHEMA_VERSION, description="the schema the file was written with (an older one is upgraded as it is read)")
    run_id: str
    created: str = Field(description="UTC ISO time the cell finished")
    model: str
    family: str
    preset: str
    framework: str
    framework_distribution: str = Field("", description="the pip distribution of the framework")
    distribution_version: str = Field("", description="its installed version (the fingerprint holds every version a re-run checks)")
    framework_version: str = Field("", description="the version the framework reports at run time")
    backend: str = ""
    device: str
    device_name: str = ""
    dtype: str
    threads: int
    settings: dict[str, Any] = Field(default_factory=dict, description="every framework setting that applied")
    status: Status
    reason: str = ""
    metrics: Metrics = Field(default_factory=Metrics)
    correctness: Correctness = Field(default_factory=Correctness)
    spec_hash: str
    weights_hash: str = ""
    weights_source: str = ""
    fingerprint: Fingerprint | None = Field(None, description="the code, tolerances and versions that produced this result (None: made before results recorded them)")
    timing_policy: dict[str, Any] = Field(default_factory=dict)
    wall_s: float | None = None
    system: System

    @model_validator(mode="after")
    def _no_pass_without_a_whole_cell(self) -> Result:
        """A cell that errored, timed out or crashed proves nothing whole, whatever its outputs matched."""
        if self.status in ("error", "timeout", "crashed") and self.correctness.verdict == "pass":
            raise ValueError(f"a cell with status {self.status!r} cannot have the verdict 'pass'")
        return self

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        version = data.get("schema_version") if isinstance(data, dict) else None
        return upgrade_v1(data) if isinstance(version, int) and version < 2 else data


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A v1 result read as v2: its low-sample medians lose the interval v1 gave them (a copy; the file is
    not touched). `warmup_ms` stays empty: v1 did not record the warm-up calls."""
    metrics = dict(data.get("metrics") or {})
    for workload, values in metrics.items():
        stats = isinstance(values, dict) and values.get("stats")
        if isinstance(stats, dict) and "n" in stats:
            low = stats["n"] < MIN_SAMPLES_FOR_CI
            interval = {"ci95_low_ms": None, "ci95_high_ms": None} if low else {}
            metrics[workload] = {**values, "stats": {**stats, "low_sample": low, **interval}}
    return {**data, "metrics": metrics}


def json_schema() -> dict[str, Any]:
    return Result.model_json_schema()

"""The model spec: one YAML file in specs/models/ is one model, an instance of a family.

`config` and `workloads` are typed by the family (see `spec_model_for`), so a wrong field is caught
before anything runs, with its full path. Everything here is frozen data.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from arena.families import load_family
from arena.families.base import GENERATION_RULES, FamilyConfig, FamilyWorkloads

DTYPES = ("fp32", "fp16", "bf16")
REQUIRED_PRESETS = ("full", "tiny")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timing(Strict):
    """Repeat until both min_reps and min_seconds are met, capped by max_reps (after warmup calls).

    `max_seconds` bounds the warm-up and timed calls of one workload for cells whose calls are so slow
    that the policy would not fit (MLX's single-threaded Linux CPU back-end on the SD UNet: ~9 min a
    call): no further call starts if, at the last call's duration, it would end past the budget. One
    warm-up call and one timed call always run; the sample count is in the result (`stats.n`), and a
    median of fewer than 5 calls is shown as a low-sample figure, without an interval."""

    warmup: int = Field(2, ge=1, description="untimed calls after the first (prepare) call; the first of them runs whatever the budget")
    min_reps: int = Field(5, ge=1, description="timed calls at least, budget permitting")
    min_seconds: float = Field(1.0, ge=0, description="timed seconds at least, budget permitting")
    max_reps: int = Field(200, ge=1, description="timed calls at most")
    max_seconds: float = Field(600.0, gt=0, description="warm-up + timed seconds of one workload at most (at least one warm-up and one timed call)")

    @model_validator(mode="after")
    def _reps_ordered(self) -> Timing:
        if self.max_reps < self.min_reps:
            raise ValueError(f"max_reps ({self.max_reps}) must be >= min_reps ({self.min_reps})")
        return self


class OutputTolerance(Strict):
    """Full-output agreement: |a-b| <= atol + rtol*|b| elementwise, and cosine >= min_cosine."""

    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)
    min_cosine: float = Field(0.9999, ge=-1, le=1)


class LossTolerance(Strict):
    """|L - L_ref| <= atol + rtol*|L_ref| (no max(|L|, 1) floor: a near-zero loss must still agree)."""

    atol: float = Field(ge=0)
    rtol: float = Field(ge=0)


class GradTolerance(Strict):
    """Gradients, per tensor and globally. Elements are compared on a fixed seeded sample of each
    tensor and through seeded projections over all its elements (the reference keeps norms, samples and
    projections, not 135 M floats per model)."""

    norm_rtol: float = Field(ge=0, description="relative error of each tensor's gradient norm and of the global norm")
    sample_rel_l2: float = Field(ge=0, description="||a - b|| / ||b|| over each tensor's sampled elements")
    projection_rel: float | None = Field(
        None, ge=0, description="max_k |<a - b, r_k>| / ||b|| over each tensor's seeded projections (about the whole tensor's relative "
        "L2 error); defaults to sample_rel_l2. Apart because a sample can err more than its tensor (a tied embedding's sampled rows "
        "are mostly small entries of tokens the input lacks)"
    )

    @property
    def projection_limit(self) -> float:
        return self.sample_rel_l2 if self.projection_rel is None else self.projection_rel
    min_cosine: float = Field(0.999, ge=-1, le=1, description="cosine of each tensor's sampled elements")


class Fp64Difference(Strict):
    """How far the reference's own fp32 run is from its fp64 run at one preset (same weights and inputs),
    measured by `python -m arena.calibrate MODEL PRESET`: fp32 tolerances are set at about 10x these."""

    output_max_abs: float = Field(ge=0, description="largest |fp32 - fp64| over every output element")
    loss_abs: float = Field(ge=0, description="|fp32 - fp64| of the training loss")
    grad_norm_rel: float = Field(ge=0, description="worst relative error of a tensor's gradient norm")
    grad_rel_l2: float = Field(ge=0, description="worst ||fp32 - fp64|| / ||fp64|| of a whole gradient tensor")
    grad_sample_rel_l2: float | None = Field(
        None, ge=0, description="worst ||fp32 - fp64|| / ||fp64|| over the elements of a tensor the verdict samples: for a tied embedding "
        "mostly rows of tokens the input lacks, whose small entries carry a larger relative error than the whole tensor"
    )
    grad_projection_rel: float | None = Field(
        None, ge=0, description="worst max_k |<fp32 - fp64, r_k>| / ||fp64|| over a tensor's seeded projections: the statistic the verdict "
        "bounds by projection_rel. About grad_rel_l2 times the largest of the |N(0, 1)| draws, so 2-3x grad_rel_l2 where one tensor dominates"
    )


class Tolerances(Strict):
    output: OutputTolerance
    loss: LossTolerance
    grad: GradTolerance
    fp64_difference: Fp64Difference | None = Field(None, description="the measurement these tolerances are calibrated on")


class OutputToleranceOverride(Strict):
    """A framework whose runtime computes part of the model at lower precision than the cell's dtype
    (whisper.cpp's fp16 attention K/V and GELU table) gets its own, declared output tolerance."""

    why: str = Field(min_length=20, description="what in the runtime makes the numbers differ (shown with the verdict)")
    dtypes: dict[Literal["fp32", "fp16", "bf16"], OutputTolerance]


class Weights(Strict):
    """Where the weights come from. `generated` needs no network; `local` reads a checkpoint folder."""

    source: Literal["generated", "local"] = "generated"
    seed: int = 0
    path: str | None = Field(None, description="folder with *.safetensors (source: local)")

    @model_validator(mode="after")
    def _path_matches_source(self) -> Weights:
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs a path to a folder of .safetensors files")
        if self.source == "generated" and self.path:
            raise ValueError("path is only used with source 'local'")
        return self


class PresetBase(Strict):
    config: FamilyConfig
    workloads: FamilyWorkloads
    timeout_s: float = Field(600, gt=0, description="wall-clock limit of one cell (all workloads)")
    timing: Timing | None = Field(None, description="overrides the spec's timing for this preset")
    tolerances: dict[Literal["fp32", "fp16", "bf16"], Tolerances] = Field(
        default_factory=dict, description="overrides the spec's tolerances of a dtype at this preset (rounding grows with size)"
    )


class ModelSpecBase(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    family: str
    description: str = ""
    reference: str = Field("", description="the official implementation and checkpoint this mirrors")
    presets: dict[str, PresetBase]
    timing: Timing = Timing()
    tolerances: dict[Literal["fp32", "fp16", "bf16"], Tolerances]
    output_tolerance_overrides: dict[str, OutputToleranceOverride] = Field(
        default_factory=dict, description="framework (package name, e.g. ggml) -> its own output tolerance, with the reason"
    )
    weights: Weights = Weights()

    @model_validator(mode="after")
    def _required_presets(self) -> ModelSpecBase:
        missing = [p for p in REQUIRED_PRESETS if p not in self.presets]
        if missing:
            raise ValueError(f"presets must include {', '.join(REQUIRED_PRESETS)}; missing {', '.join(missing)}")
        undeclared = [p for p, preset in self.presets.items() if "fp32" not in preset.tolerances and "fp32" not in self.tolerances]
        if undeclared:
            raise ValueError(f"fp32 tolerances are needed for every preset (in the preset's `tolerances` or the spec's); missing for {', '.join(undeclared)}")
        return self

    def tolerances_for(self, framework: str, dtype: str, preset: str) -> tuple[Tolerances | None, str]:
        """The tolerances a cell is judged by (the preset's own, else the spec's), and why their output
        part differs from those (empty if it doesn't)."""
        base = self.presets[preset].tolerances.get(dtype) or self.tolerances.get(dtype)
        # Keyed by framework package; its variants share it, and an adapter that wraps a framework and
        # names it last (`tests.faults-perturb-ggml`) is judged as that framework is.
        parts = framework.split("-")
        override = next((self.output_tolerance_overrides[p] for p in (parts[0], parts[-1]) if p in self.output_tolerance_overrides), None)
        if base is None or override is None or dtype not in override.dtypes:
            return base, ""
        return base.model_copy(update={"output": override.dtypes[dtype]}), override.why

    def preset(self, name: str):
        return self.presets[name]

    def timing_for(self, preset: str) -> Timing:
        return self.presets[preset].timing or self.timing

    def spec_hash(self, preset: str) -> str:
        """Hash of what determines the computation of a preset: family, config, workloads, weights, and
        the version of the rules that generate weights and inputs from them.

        Tolerances and timing policy are left out on purpose: changing them re-judges or re-times
        a result, it does not change what was computed.
        """
        p = self.presets[preset]
        payload = {
            "generation_rules": GENERATION_RULES,
            "family": self.family,
            "config": p.config.model_dump(mode="json"),
            "workloads": p.workloads.model_dump(mode="json"),
            "weights": self.weights.model_dump(mode="json"),
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@cache
def spec_model_for(family: str) -> type[ModelSpecBase]:
    """A ModelSpec class whose presets' config/workloads are the family's own pydantic models."""
    module = load_family(family)
    preset_cls = create_model(
        f"Preset_{family}",
        __base__=PresetBase,
        config=(module.Config, ...),
        workloads=(module.Workloads, ...),
    )
    return create_model(f"ModelSpec_{family}", __base__=ModelSpecBase, presets=(dict[str, preset_cls], ...))


ModelSpec = ModelSpecBase

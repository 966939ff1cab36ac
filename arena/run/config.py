"""The run configuration: what Hydra composed, validated by pydantic (unknown keys are errors)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from arena.errors import ArenaError
from arena.run.malloc import Malloc
from arena.specs.loader import DEFAULT_SPECS_DIR
from arena.specs.schema import DTYPES


class LocalExecutor(BaseModel):
    """Every cell on this machine, one after another (arena/run/orchestrate.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local"] = "local"


class RayExecutor(BaseModel):
    """Every cell as a task on a Ray cluster, results back into this machine's store (arena/cluster)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["ray"]
    address: str = Field("auto", description="`auto` (the cluster `ray start` joined this machine to), "
                         "HOST:PORT of the head's GCS, or ray://HOST:10001 (Ray Client, from outside the cluster)")


Executor = Annotated[LocalExecutor | RayExecutor, Field(discriminator="kind")]


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    matrix: str = Field(description="the matrix file this run was composed from")
    devices: dict[str, str] = Field(description="framework -> device on this platform")
    models: list[str] | None = Field(None, description="spec names; default: every spec in specs_dir")
    frameworks: list[str] | None = Field(None, description="default: every framework of the matrix")
    preset: str = "full"
    dtype: str = "fp32"
    threads: int | None = Field(None, gt=0, description="default: physical cores")
    results_dir: str = "results"
    cache_dir: str = "~/.cache/arena"
    specs_dir: str | None = Field(None, description="default: the repository's specs/models")
    force: bool = Field(False, description="re-run cells that already have a valid result (and measure the machine again)")
    machine_peak: bool = Field(True, description="measure this machine's GEMM and bandwidth peaks once per platform (arena/run/peak.py)")
    malloc: Malloc = Field(default_factory=Malloc, description="the C allocator's settings for every cell's process (arena/run/malloc.py)")
    executor: Executor = Field(default_factory=LocalExecutor, description="where the cells run (executor=local|ray)")
    not_run_here: dict[str, str] = Field(
        default_factory=dict, description="framework -> why this machine does not run it (a package that could not be "
        "brought here, a build it was not given): its cells are recorded `not_run` with that reason, not as the framework's `unavailable`")

    def path(self, value: str) -> Path:
        return Path(os.path.expanduser(value)).resolve()

    @property
    def specs_path(self) -> Path:
        return self.path(self.specs_dir) if self.specs_dir else DEFAULT_SPECS_DIR

    @property
    def selected_frameworks(self) -> list[str]:
        return list(self.frameworks) if self.frameworks else list(self.devices)


def validate_run_config(raw: dict) -> RunConfig:
    try:
        config = RunConfig.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            loc = ".".join(str(p) for p in e["loc"])
            if e["type"] == "extra_forbidden":
                lines.append(f"unknown setting {loc!r}; allowed: {', '.join(sorted(RunConfig.model_fields))}")
            else:
                lines.append(f"{loc} = {e.get('input')!r}: {e['msg']}")
        raise ArenaError("invalid run configuration: " + "; ".join(lines)) from None
    if config.dtype not in DTYPES:
        raise ArenaError(f"dtype = {config.dtype!r}: one of {', '.join(DTYPES)}")
    for framework in config.selected_frameworks:
        if framework not in config.devices and "." not in framework:
            raise ArenaError(
                f"framework {framework!r} has no device in matrix {config.matrix!r} "
                f"(known there: {', '.join(config.devices)}); add '+devices.{framework}=cpu' or pick another matrix"
            )
    for framework, why in config.not_run_here.items():
        if framework not in (known := {*config.devices, *config.selected_frameworks}):
            raise ArenaError(f"not_run_here.{framework}: not a framework of matrix {config.matrix!r} ({', '.join(sorted(known))})")
        if not why.strip():
            raise ArenaError(f"not_run_here.{framework}: say why this machine does not run it (the reason is recorded in its results)")
    return config

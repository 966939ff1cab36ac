"""The contract between the cell runner and a framework adapter. Plain values only; no framework code.

It is declared as data (`ADAPTER`, `family_module_hooks`) and checked by `check_adapter`, which
tests/test_contracts.py runs on every package under arena/frameworks: a missing or misspelt name, a
wrong signature, or a family that a framework neither implements nor declares in UNSUPPORTED fails the
suite. The reference every verdict compares with is `REFERENCE_FRAMEWORK`.

An adapter package `arena/frameworks/<fw>/__init__.py` declares:

    DISTRIBUTION: str                 the pip distribution whose version identifies the framework
    INSTALL_HINT: str                 what to install when it is missing
    VARIANTS: dict[str, str]          variant -> what it changes ("" is the plain framework)
    UNSUPPORTED: dict[str, str]       "family", "family/workload" or "*/workload" -> why it cannot run
                                      (never faked); "<variant>:<key>" applies to one variant only
    probe(ctx: BuildContext) -> Probe imports the framework for real and says whether the device works
    process_env(ctx) -> dict          (optional) environment to set before the framework is imported
    peak_device_memory(ctx, reset) -> int | None
                                      (optional) peak bytes allocated on an accelerator since the last
                                      reset (reset=True starts a new window); None on the CPU
    release_cached(ctx) -> None       (optional) give back what the framework's allocator keeps of freed
                                      buffers, called between workloads so each one's peak is its own

and, for the result's code fingerprint (arena/run/fingerprint.py), what the package runs besides itself:

    SOURCES: tuple[str, ...]          (optional) files and folders outside the package that determine
                                      its numbers, relative to the repository (shared adapter files,
                                      the Rust crates and Cargo.lock)
    DISTRIBUTIONS: tuple[str, ...]    (optional, default (DISTRIBUTION,)) every pip distribution whose
                                      version can change its numbers
    BINARIES: tuple[str, ...]         (optional) compiled extension modules it loads, hashed by file;
                                      "<variant>:<module>" is loaded by that variant only

and one module per family, `arena/frameworks/<fw>/<family>.py`, for every family it does not declare
unsupported as a whole (one it does declare has no module), with the same four functions:

    build(config, weights: dict[str, np.ndarray], ctx: BuildContext) -> model   (framework object)
    inference(model, inputs) -> Step
    latency(model, inputs) -> Step
    training(model, inputs) -> Step

less any workload declared unsupported for the family in every variant (it is never called).
`build` owns the `weights` dict it is given and may empty it once the model holds its own copy: the
cell drops the arrays right after `build` anyway, and a runtime that lowers a large model can need that
memory (ExecuTorch's build does so before lowering; the full SD UNet did not fit beside them in 24 GiB).
A caller that needs the arrays afterwards passes a copy.

A runtime that compiles static-shape artifacts ahead of time (ONNX export, a llama.cpp context sized
to the prompt) declares a fourth parameter, `build(config, weights, ctx, inputs)`: it then receives
the exact inputs of every workload it will run ({workload: {name: array}}), the same arrays its steps
get later. Such a model may carry `conversion` (a `Conversion` below), recorded in the result under
prepare; `arena/frameworks/conversion.py` caches conversions in `ctx.convert_dir`. Any model may carry
`settings` (a dict), added to the result's settings: what its build decided that the probe cannot know
(the operators a delegate left to other kernels, say). `build_model` below is
how callers (the cell, test adapters) call either form.

Creating a Step does the untimed set-up (moving inputs to the device, filling a KV cache); `Step.run`
is one timed iteration and must return only when the device has finished (the framework's own sync);
`Step.fetch` turns the last run's value into numpy arrays named as in the family's `OUTPUTS`, with
gradients as `grad/<official tensor name>` in PyTorch layout.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from arena.families import known_families
from arena.families.base import WORKLOADS
from arena.hooks import Hook, function, problems, require, value


# The framework every verdict compares with (PyTorch eager, fp32, on the CPU; see arena/run/cell.py),
# and the one every report's ratios are to.
REFERENCE_FRAMEWORK = "torch"

# A cell's dtype -> the array dtype name every framework understands (torch, numpy/ml_dtypes, jnp, mx).
DTYPE_NAMES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class BuildContext(BaseModel):
    """What a cell asks of a framework: the same for every framework in a run, apart from device/variant."""

    model_config = ConfigDict(frozen=True)

    device: str
    dtype: str
    threads: int
    variant: str = ""
    convert_dir: str = Field("", description="cache folder for artifacts converted from this preset's weights (keyed by spec and weights hash)")


class Probe(BaseModel):
    """What a framework says about itself on this machine, recorded in the result."""

    available: bool
    reason: str = ""
    version: str = ""
    backend: str = ""
    device_name: str = ""
    settings: dict[str, Any] = {}


class Conversion(BaseModel):
    """What a runtime fed by a conversion (ONNX export, GGUF writing) needed before it could load: the
    tool and its versions, how long the conversion took when it was made, and whether this cell reused
    a cached one. Never part of build_ms / total_ms, so those compare between a cold and a cached run."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    ms: float = Field(description="wall time of the conversion when it was made")
    cached: bool = Field(description="reused from the conversion cache (spec hash + weights hash + tool versions)")
    bytes: int = Field(description="size of the converted files")
    files: list[str] = Field(default_factory=list)


@dataclass
class Step:
    run: Callable[[], Any]
    fetch: Callable[[Any], dict[str, np.ndarray]]
    # Called right before the timed loop; the function it returns is called right after it and lists
    # what went wrong in between (a recompilation inside the timed region, say). Each problem is
    # recorded in the result and makes the cell's timing invalid.
    watch: Callable[[], Callable[[], list[str]]] = field(default=lambda: lambda: [])


def unsupported_reason(unsupported: dict[str, str], family: str, workload: str | None = None, variant: str = "") -> str:
    """Why an adapter declares a family (workload None) or one of its workloads unsupported, for all
    variants or for this one; "" if it does not."""
    keys = [family] if workload is None else [f"{family}/{workload}", f"*/{workload}"]
    for key in keys:
        reason = unsupported.get(key) or (variant and unsupported.get(f"{variant}:{key}"))
        if reason:
            return reason
    return ""


def build_model(build: Callable, config: Any, weights: dict[str, np.ndarray], ctx: BuildContext, inputs: dict[str, dict[str, np.ndarray]]) -> Any:
    """Call a family's `build`, handing it every workload's inputs only if it declares the parameter."""
    if "inputs" in inspect.signature(build).parameters:
        return build(config, weights, ctx, inputs)
    return build(config, weights, ctx)


ADAPTER = (
    value("DISTRIBUTION", str),
    value("INSTALL_HINT", str),
    value("VARIANTS", dict),
    value("UNSUPPORTED", dict),
    function("probe", ("ctx",)),
    function("process_env", ("ctx",), required=False),
    function("peak_device_memory", ("ctx", "reset"), required=False),
    function("release_cached", ("ctx",), required=False),
    value("SOURCES", tuple, required=False),
    value("DISTRIBUTIONS", tuple, required=False),
    value("BINARIES", tuple, required=False),
)


def family_module_hooks(unsupported: dict[str, str], family: str) -> tuple[Hook, ...]:
    """What `<fw>/<family>.py` defines: `build`, and a function per workload not declared unsupported."""
    build = function("build", ("config", "weights", "ctx"), ("config", "weights", "ctx", "inputs"))
    return (build, *(function(w, ("model", "inputs")) for w in WORKLOADS if not unsupported_reason(unsupported, family, w)))


def check_adapter(package: ModuleType) -> None:
    """Raise a ContractError naming every way an adapter package, or one of its family modules,
    differs from the contract. Imports each family module, so the framework has to be installed."""
    found = problems(package, ADAPTER)
    unsupported = getattr(package, "UNSUPPORTED", {})
    found += unsupported_key_problems(unsupported, getattr(package, "VARIANTS", {}))
    found += [f"BINARIES[{m!r}]: no variant {m.partition(':')[0]!r}" for m in getattr(package, "BINARIES", ())
              if ":" in m and m.partition(":")[0] not in getattr(package, "VARIANTS", {})]
    for family in known_families():
        name = f"{package.__name__}.{family}"
        declared = unsupported_reason(unsupported, family)
        if importlib.util.find_spec(name) is None:
            if not declared:
                found.append(f"{family}: no module {name}, and not declared in UNSUPPORTED")
        elif declared:
            found.append(f"{family}: declared in UNSUPPORTED, so {name} is never run")
        else:
            module = importlib.import_module(name)
            hooks = family_module_hooks(unsupported, family)
            found += [f"{family}.{p}" for p in problems(module, hooks)]
            found += [f"{family}.{w}: declared unsupported, so never called" for w in WORKLOADS
                      if hasattr(module, w) and w not in {h.name for h in hooks}]
    require(package, found)


def unsupported_key_problems(unsupported: dict[str, str], variants: dict[str, str]) -> list[str]:
    """UNSUPPORTED keys that name no variant, family or workload (such a key would declare nothing)."""
    found = []
    for key, reason in unsupported.items():
        variant, _, what = key.rpartition(":")
        family, _, workload = what.partition("/")
        if variant and variant not in variants:
            found.append(f"UNSUPPORTED[{key!r}]: no variant {variant!r}")
        if family not in (*known_families(), "*") or (family == "*" and not workload):
            found.append(f"UNSUPPORTED[{key!r}]: {family!r} is no family (nor '*' with a workload)")
        if workload and workload not in WORKLOADS:
            found.append(f"UNSUPPORTED[{key!r}]: {workload!r} is no workload")
        if not isinstance(reason, str) or not reason:
            found.append(f"UNSUPPORTED[{key!r}]: the reason is missing")
    return found

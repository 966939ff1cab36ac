"""Modular MAX: the five architectures built with MAX's Graph API from our weights by their official
names, compiled by MAX's graph compiler and run by its engine.

The architectures are `arena.functional`'s (the same functions JAX, TensorFlow and tinygrad run), called
with this package's `layers`: MAX's graph operations (`max.graph.ops`), so each architecture is written
once and a MAX graph is what it traces into. That is MAX's documented way to bring a model of your own
(docs.modular.com/max/develop/get-started-with-max-graph-in-python: a `Graph` with static input types,
`Weight`s bound at load from a weights registry, `InferenceSession.load` to compile, `Model.execute`
to run); MAX's high-level LLaMA pipeline serves generated text through its paged KV cache, not the
all-position logits the verdict compares, so it is not what is measured here.

Every graph is compiled in prepare (build_ms includes it: MAX caches compiled graphs under
~/.cache/modular, so a second run of a cell compiles from that cache). A graph's static shapes are the
workload's: one graph per workload (prefill and decode for the KV-cache decode step). Threads: MAX's CPU runtime uses
every core the process may run on, and `InferenceSession(num_threads=N)`, its documented setting,
aborts the process in MAX 26.7 (the session creates the host CPU device before it applies the option:
"AsyncRT::getOrCreateCPUDevice called requesting different options"), so a cell runs only where its
threads are the cores it has (`probe` says so otherwise). Inputs are bound once as device Buffers;
each timed call is `Model.execute`, followed by the device's synchronize. Training: MAX has no
backward pass (no autodiff in the Graph API or the engine), so it is unsupported.
"""

from __future__ import annotations

import os

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "max"
DISTRIBUTIONS = ("max", "max-core")
SOURCES = ("arena/frameworks/layouts.py", "arena/functional")  # the architectures, written once
INSTALL_HINT = 'pip install -e ".[max]"'
VARIANTS = {"": "Graph API build of the arena.functional architectures, compiled per workload at static shapes, the cell's threads"}
UNSUPPORTED = {
    "*/training": "MAX is an inference engine: its Graph API and engine have no automatic differentiation or backward pass (MAX 26.7)",
}

# Arena dtype -> MAX DType name. Only fp32 runs so far: see `probe`.
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def max_dtype(ctx: BuildContext):
    from max.dtype import DType

    return getattr(DType, DTYPES[ctx.dtype])


def is_gpu(ctx: BuildContext) -> bool:
    return ctx.device.partition(":")[0] in ("cuda", "gpu")


def device_ref(ctx: BuildContext):
    from max.graph import DeviceRef

    return DeviceRef.GPU(int(ctx.device.partition(":")[2] or 0)) if is_gpu(ctx) else DeviceRef.CPU()


def driver_device(ctx: BuildContext):
    from max.driver import CPU, Accelerator

    return Accelerator(int(ctx.device.partition(":")[2] or 0)) if is_gpu(ctx) else CPU()


def probe(ctx: BuildContext) -> Probe:
    from importlib.metadata import version

    import max.driver

    found = version(DISTRIBUTION)
    kind = ctx.device.partition(":")[0]
    if kind not in ("cpu", "cuda", "gpu"):
        return Probe(available=False, reason=f"MAX {found} runs on x86/ARM CPUs and NVIDIA/AMD GPUs; Arena does not map device {ctx.device!r} to it", version=found)
    if ctx.dtype != "fp32":
        return Probe(available=False, reason=f"Arena's MAX adapter runs fp32 only so far (its weights registry is fed numpy arrays, which have no bfloat16); not a limit of MAX {found}", version=found)
    cores = len(os.sched_getaffinity(0))
    if ctx.threads != cores:
        return Probe(available=False, reason=(
            f"MAX {found} cannot run on {ctx.threads} thread(s) here: its CPU runtime uses every core the process has ({cores}), "
            "and InferenceSession(num_threads=...) aborts the process in this release"), version=found)  # fmt: skip
    if is_gpu(ctx) and max.driver.accelerator_count() == 0:
        return Probe(available=False, reason=f"MAX {found} finds no accelerator on this machine", version=found)
    device = driver_device(ctx)
    name = getattr(device, "label", kind)
    settings = {"device": name, "num_threads": f"{cores} (MAX's default: every core the process has)", "max_core": version("max-core"),
                "compile": "per workload at static shapes in prepare; MAX's compile cache ~/.cache/modular"}  # fmt: skip
    if is_gpu(ctx):
        settings["target"] = max.driver.accelerator_architecture_name()
    else:
        settings["target"] = "the host CPU (MAX compiles its CPU kernels for the machine it runs on)"
    return Probe(available=True, version=found, backend=f"MAX {found} engine ({name})", device_name=name, settings=settings)

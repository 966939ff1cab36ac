"""TensorFlow: pure functions over a flat dict of official-named `tf.Variable`s, every timed call a
traced `tf.function`, training with `tf.GradientTape`.

The two variants are TensorFlow's two documented ways to run a fixed computation fast:
    tensorflow      `tf.function` graphs on TensorFlow's own kernels (oneDNN on x86 CPUs as the wheel
                    ships it, Grappler's default graph rewrites, e.g. conv + bias + ReLU fusion)
                    https://www.tensorflow.org/guide/function
    tensorflow-xla  `tf.function(jit_compile=True)`: each timed function compiled whole by XLA
                    https://www.tensorflow.org/xla/tutorials/jit_compile
Every timed function is traced once, before the timed calls; a retrace during them is recorded as a
problem (see `common.tracing_watch`).

The layouts are JAX's (the closest port): Linear weights stay PyTorch's [out, in] (MatMul takes
transpose_b without a copy), convolutions are channels-last with HWIO kernels, converted once at build
by `arena.frameworks.layouts` ("spatial_first"; TensorFlow's CPU convolutions take only NHWC).
"""

from __future__ import annotations

import importlib.metadata
import os

from arena.frameworks.contract import BuildContext, Probe


def installed_distribution() -> str:
    """`tensorflow-cpu` (the CPU-only wheel, Linux x86-64) or `tensorflow` (every other platform, and
    the CUDA install): both provide the `tensorflow` module; the one installed names the framework."""
    for name in ("tensorflow-cpu", "tensorflow"):
        try:
            importlib.metadata.version(name)
            return name
        except importlib.metadata.PackageNotFoundError:
            pass
    return "tensorflow"


DISTRIBUTION = installed_distribution()
DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu")  # whichever is installed; the other reads as absent
SOURCES = ("arena/frameworks/layouts.py", "arena/functional")  # the architectures, written once
INSTALL_HINT = 'pip install -e ".[tensorflow]"'
CUDA_INSTALL_HINT = 'pip install "tensorflow[and-cuda]"'
VARIANTS = {
    "": "tf.function graphs of every timed call on TensorFlow's own kernels (oneDNN and Grappler as shipped)",
    "xla": "tf.function(jit_compile=True): every timed call compiled whole by XLA",
}
UNSUPPORTED: dict[str, str] = {}

# Arena device name -> TensorFlow device type. TensorFlow's Metal plug-in (tensorflow-metal) has had no
# release since 1.2.0 (2025-01), so Apple machines run TensorFlow on the CPU.
DEVICE_TYPES = {"cpu": "CPU", "cuda": "GPU", "gpu": "GPU"}


def device_type(ctx: BuildContext) -> str | None:
    return DEVICE_TYPES.get(ctx.device.split(":")[0])


def device_index(ctx: BuildContext) -> int:
    return int(ctx.device.split(":")[1]) if ":" in ctx.device else 0


# XLA's CPU scheduler orders ops for concurrency by default, at the price of memory: measured with JAX
# (the same compiler), SD 1.5 training needed 10.9 GiB of temporaries with it and 3.9 GiB with the
# memory-minimising order, and was OOM-killed at 24 GiB. The order of independent ops changes no number.
CPU_XLA_FLAGS = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def process_env(ctx: BuildContext) -> dict[str, str]:
    """Only TensorFlow's C++ INFO lines are silenced (warnings stay), and the XLA variant on the CPU
    takes XLA's memory-minimising scheduler; nothing here changes a number. oneDNN stays as the wheel
    ships it (TF_ENABLE_ONEDNN_OPTS is left alone and recorded)."""
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "1")}
    if ctx.variant == "xla" and device_type(ctx) == "CPU":
        env["XLA_FLAGS"] = " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), CPU_XLA_FLAGS) if f)
    return env


def onednn_enabled() -> bool:
    """Whether TensorFlow's oneDNN kernels are on: the flag TensorFlow's own tests read
    (test_util.IsMklEnabled); it follows TF_ENABLE_ONEDNN_OPTS and the platform default."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def probe(ctx: BuildContext) -> Probe:
    """Thread pools, visible devices and TF32 are set here, before any op runs (TensorFlow refuses to
    change them once its runtime is initialised). Inter-op parallelism is 1, so ops run one at a time
    on `threads` intra-op threads, as every other framework's cell does (Intel's guide for TensorFlow on
    CPUs: one inter-op thread per socket, intra-op threads = cores)."""
    import tensorflow as tf

    version, kind = tf.__version__, device_type(ctx)
    tf.config.threading.set_intra_op_parallelism_threads(ctx.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if kind is None:
        return Probe(available=False, reason=f"TensorFlow has no device {ctx.device!r} here (cpu; cuda with {CUDA_INSTALL_HINT})", version=version)
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "CPU":
        tf.config.set_visible_devices([], "GPU")  # a CPU cell's ops must not be placed on a GPU
    else:
        if device_index(ctx) >= len(gpus):
            built = "a CUDA build" if tf.test.is_built_with_cuda() else f"a CPU-only build ({DISTRIBUTION})"
            return Probe(available=False, reason=f"TensorFlow ({built}) sees {len(gpus)} GPU(s), not {ctx.device} ({CUDA_INSTALL_HINT})", version=version)
        gpu = gpus[device_index(ctx)]
        tf.config.set_visible_devices([gpu], "GPU")
        tf.config.experimental.set_memory_growth(gpu, True)  # allocate as needed, so the peak means something
    # fp32 means fp32: TensorFlow runs fp32 matmuls and convolutions in TF32 on Ampere+ GPUs by default.
    tensor_float_32 = ctx.dtype != "fp32"
    tf.config.experimental.enable_tensor_float_32_execution(tensor_float_32)
    settings = {
        "jit_compile": ctx.variant == "xla",
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": onednn_enabled(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(unset: the platform default)"),
        "tensor_float_32": tf.config.experimental.tensor_float_32_execution_enabled(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if kind == "CPU":
        backend = f"TensorFlow {version} CPU ({'oneDNN' if settings['onednn'] else 'Eigen'} kernels{', XLA' if settings['jit_compile'] else ''})"
        name = "cpu"
    else:
        info = tf.config.experimental.get_device_details(gpus[device_index(ctx)])
        backend = f"TensorFlow {version} GPU (CUDA {tf.sysconfig.get_build_info().get('cuda_version', '?')}{', XLA' if settings['jit_compile'] else ''})"
        name = info.get("device_name", "GPU")
    return Probe(available=True, version=version, backend=backend, device_name=name, settings=settings)


def peak_device_memory(ctx: BuildContext, reset: bool) -> int | None:
    """TensorFlow's GPU allocator peak since the last reset; None on the CPU (the RSS is the figure there)."""
    import tensorflow as tf

    if device_type(ctx) != "GPU":
        return None
    if reset:
        tf.config.experimental.reset_memory_stats("GPU:0")
    return tf.config.experimental.get_memory_info("GPU:0")["peak"]

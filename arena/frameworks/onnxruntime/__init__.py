"""ONNX Runtime: graphs exported from the PyTorch reference modules with torch.onnx (the dynamo
exporter), run by an InferenceSession with every graph optimisation on.

ONNX Runtime is a deployment runtime: the export is its model-conversion step, part of `prepare`
(recorded apart, cached by spec, weights and exporter versions). Training is not what it is for here.
Shapes are static per preset (every workload's sizes are fixed), except the batch dimension of the
ResNet and UNet graphs, which serve inference and the batch-1 latency workload alike.
"""

from __future__ import annotations

from arena.frameworks.contract import BuildContext, Probe
from arena.frameworks.device_check import first_kernel

DISTRIBUTION = "onnxruntime"
# The graphs are exported from the PyTorch reference modules.
DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnx", "onnxscript", "torch", "torchvision", "transformers", "diffusers")
SOURCES = ("arena/frameworks/conversion.py", "arena/frameworks/graph_steps.py", "arena/frameworks/torch", "arena/frameworks/device_check.py")
INSTALL_HINT = 'pip install -e ".[onnx]" (onnxruntime-gpu instead of onnxruntime for CUDA)'
VARIANTS = {"": "graphs exported by torch.onnx (dynamo), ORT_ENABLE_ALL graph optimisation, sequential execution"}
TRAINING = (
    "ONNX Runtime is benchmarked as an inference runtime; its training path (onnxruntime-training "
    "artifacts and on-device training) is a separate package and workflow, not a forward+backward of these graphs"
)
UNSUPPORTED = {"*/training": TRAINING}

# Arena device -> the execution provider that must run the graph (the CPU provider is the fallback
# for nodes the accelerator's provider does not take, and is recorded as such).
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "coreml": "CoreMLExecutionProvider"}
PROVIDER_OPTIONS = {
    # fp32 means fp32: no TF32 (as for torch and JAX); exhaustive cuDNN search, as torch's benchmark mode would.
    "CUDAExecutionProvider": {"use_tf32": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"},
    "CoreMLExecutionProvider": {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"},
}


def providers(ctx: BuildContext) -> list[tuple[str, dict[str, str]]]:
    """The provider list for a session: the cell's own first, then the CPU provider as fallback."""
    name = PROVIDERS[ctx.device.split(":")[0]]
    options = dict(PROVIDER_OPTIONS.get(name, {}))
    if name == "CUDAExecutionProvider" and ":" in ctx.device:
        options["device_id"] = ctx.device.split(":")[1]
    chosen = [(name, options)]
    return chosen if name == "CPUExecutionProvider" else [*chosen, ("CPUExecutionProvider", {})]


def probe(ctx: BuildContext) -> Probe:
    import onnxruntime as ort

    version = ort.__version__
    device = ctx.device.split(":")[0]
    if device not in PROVIDERS:
        return Probe(available=False, reason=f"no ONNX Runtime execution provider for device {ctx.device!r} (known: {', '.join(PROVIDERS)})", version=version)
    if ctx.dtype != "fp32":
        return Probe(available=False, reason="the graphs are exported in fp32 only (the CPU provider has almost no bf16/fp16 kernels)", version=version)
    provider = PROVIDERS[device]
    if provider not in ort.get_available_providers():
        hint = " (install onnxruntime-gpu instead of onnxruntime)" if provider == "CUDAExecutionProvider" else ""
        return Probe(available=False, reason=f"{provider} is not in this onnxruntime build{hint}; it has {ort.get_available_providers()}", version=version)
    if provider != "CPUExecutionProvider" and (unusable := first_kernel(provider, lambda: matmul_session(ctx))):
        return Probe(available=False, reason=unusable, version=version)
    settings = {
        "exporter": "torch.onnx.export(dynamo=True, optimize=True)",
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "execution_mode": "ORT_SEQUENTIAL",
        "intra_op_threads": ctx.threads,
        "inter_op_threads": 1,
        "intra_op_allow_spinning": True,
        "providers": [p for p, _ in providers(ctx)],
        "provider_options": {p: o for p, o in providers(ctx) if o},
    }
    return Probe(available=True, version=version, backend=f"ONNX Runtime {version} {provider}", device_name=ort.get_device(), settings=settings)


def matmul_session(ctx: BuildContext) -> None:
    """A one-MatMul graph run once in a session opened as the cells open theirs (`common.session`, which
    raises when ONNX Runtime put the graph on its CPU provider instead, as it does with only a warning
    when the requested one cannot be loaded: a CUDA library missing, no CoreML on this machine)."""
    import tempfile
    from pathlib import Path

    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from arena.frameworks.onnxruntime.common import session

    square = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [64, 64]) for name in ("x", "y")]
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "x"], ["y"])], "probe", square[:1], square[1:])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe-matmul.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        session(path, ctx).run(None, {"x": np.ones((64, 64), np.float32)})

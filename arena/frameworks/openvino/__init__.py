"""OpenVINO: the ONNX graphs Arena already exports for ONNX Runtime, converted to OpenVINO IR and run by
the CPU plugin (or an Intel GPU / NPU where one is present) with the precision and hints set explicitly.

Conversion path. OpenVINO takes PyTorch modules (`openvino.convert_model` on a traced module) or ONNX
files; we read the ONNX graphs of `arena/frameworks/onnxruntime/export/` (torch.onnx's dynamo exporter,
opset 20, traced from the reference modules). The ONNX front-end is OpenVINO's longest-supported input,
those graphs are already the verified deployment graphs of the five families (KV-cache decode with past
K/V in and present K/V out, the VLA denoise step), and the export is shared: the cell's conversion
folder holds it once for ONNX Runtime and OpenVINO alike. The PyTorch front-end would trace the same
wrappers a second time (TorchScript or torch.export, its own op translations) for the same graphs, and
the export, the slow part of the conversion, would no longer be shared. The ONNX graphs go through `openvino.convert_model` and are saved as IR (`.xml` + `.bin`,
`compress_to_fp16=False`: `save_model` halves weights by default), which is what a deployment ships
and what the plugin reads fastest; `convert` records both steps (openvino/convert.py).

Execution, as OpenVINO's performance guide has it: IR read, reshaped to the workload's static shapes
(ResNet's and the UNet's graphs have a symbolic batch: one compiled model per batch size, the latency
one compiled when its step is set up), compiled with `PERFORMANCE_HINT=LATENCY` (one stream: every
timed call is one synchronous request, which a THROUGHPUT hint would split across streams it cannot
fill), `INFERENCE_NUM_THREADS` = the cell's threads and `INFERENCE_PRECISION_HINT` set from the cell's
dtype: the CPU plugin computes in bf16 by default wherever the CPU has AVX512-BF16 or AMX, so an fp32
cell must ask for f32 (a bf16 cell gets bf16 and is judged by the spec's bf16 tolerances). Inputs are bound to the request once; each timed
call is `infer()`, which returns when the outputs are written. Every setting, as the compiled model
reports it back, is in the result's settings; a compiled model whose precision is not the one asked
for is an error. Where each practice is documented (docs.openvino.ai/2025/openvino-workflow/...):
running-inference/optimize-inference/high-level-performance-hints.html (hints over low-level settings),
.../optimize-inference/precision-control.html (bf16 by default where the CPU has it; f32 on request),
.../inference-devices-and-modes/cpu-device/performance-hint-and-thread-scheduling.html (threads),
model-preparation/conversion-parameters.html (save_model compresses weights to fp16 by default).
"""

from __future__ import annotations

import numpy as np

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "openvino"
# The IR is converted from the ONNX graphs, which are exported from the PyTorch reference modules.
DISTRIBUTIONS = ("openvino", "onnx", "onnxscript", "torch", "torchvision", "transformers", "diffusers")
SOURCES = ("arena/frameworks/conversion.py", "arena/frameworks/graph_steps.py", "arena/frameworks/onnxruntime/export", "arena/frameworks/torch")
INSTALL_HINT = 'pip install -e ".[openvino]"'
VARIANTS = {"": "ONNX graphs (torch.onnx dynamo) converted to IR, static shapes, LATENCY hint, precision hint from the cell's dtype"}
UNSUPPORTED = {
    "*/training": (
        "OpenVINO is an inference runtime: its IR has no backward pass (training belongs to the source "
        "framework; OpenVINO's training-time tool, NNCF, compresses models and trains through PyTorch)"
    ),
}

# Arena device -> OpenVINO device name.
DEVICES = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
# Arena dtype -> INFERENCE_PRECISION_HINT, and the device capability it needs (OPTIMIZATION_CAPABILITIES).
PRECISIONS = {"fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16")}
# Read back from a compiled model into the result: the ones set, and the defaults that shape the run.
REPORTED = (
    "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS", "NUM_STREAMS", "EXECUTION_MODE_HINT",
    "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE", "DYNAMIC_QUANTIZATION_GROUP_SIZE",
)


def device_name(ctx: BuildContext) -> str:
    kind, _, index = ctx.device.partition(":")
    return DEVICES[kind] + (f".{index}" if index else "")


def compile_config(ctx: BuildContext) -> dict[str, str]:
    """The properties every model of the cell is compiled with."""
    return {
        "INFERENCE_PRECISION_HINT": PRECISIONS[ctx.dtype][0],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(ctx.threads),
    }


def effective_settings(compiled) -> dict[str, str]:
    """What a compiled model reports for the REPORTED properties it has (an accelerator lacks some)."""
    supported = set(compiled.get_property("SUPPORTED_PROPERTIES"))
    return {key: _text(compiled.get_property(key)) for key in REPORTED if key in supported}


def _text(value) -> str:
    """A property value as OpenVINO spells it in a config: f32, LATENCY, ANY_CORE, 2, True."""
    if hasattr(value, "get_type_name"):  # an element type
        return value.get_type_name()
    return getattr(value, "name", None) or str(value)  # an enum member, else the value


def probe(ctx: BuildContext) -> Probe:
    import openvino as ov
    import openvino.opset13 as ops

    version = ov.get_version().split("-")[0]
    core = ov.Core()
    kind = ctx.device.split(":")[0]
    if kind not in DEVICES:
        return Probe(available=False, reason=f"no OpenVINO device for {ctx.device!r} (known: {', '.join(DEVICES)})", version=version)
    device = device_name(ctx)
    # "GPU" names the first of GPU.0, GPU.1, ...
    if device not in core.available_devices + [d.split(".")[0] for d in core.available_devices]:
        return Probe(available=False, reason=f"OpenVINO finds no {device} device on this machine (it has {core.available_devices})", version=version)
    if ctx.dtype not in PRECISIONS:
        return Probe(available=False, reason=f"no OpenVINO inference precision for dtype {ctx.dtype}", version=version)
    capabilities = core.get_property(device, "OPTIMIZATION_CAPABILITIES")
    if PRECISIONS[ctx.dtype][1] not in capabilities:
        return Probe(available=False, reason=f"{device} cannot compute in {ctx.dtype} (its capabilities: {capabilities})", version=version)
    # A one-node model compiled with the cell's properties: what the plugin makes of them, read back.
    x = ops.parameter([1, 8], np.float32)
    compiled = core.compile_model(ov.Model([ops.relu(x)], [x]), device, compile_config(ctx))
    settings = {
        "conversion": "torch.onnx.export(dynamo=True, opset 20) -> openvino.convert_model -> save_model(compress_to_fp16=False)",
        "shapes": "static per workload (symbolic batch reshaped)",
        "compile_config": compile_config(ctx),
        "effective": effective_settings(compiled),
        "default_inference_precision": _text(core.get_property(device, "INFERENCE_PRECISION_HINT")),
        "optimization_capabilities": list(capabilities),
    }
    full_name = core.get_property(device, "FULL_DEVICE_NAME")
    return Probe(available=True, version=version, backend=f"OpenVINO {version} {device} plugin", device_name=full_name, settings=settings)

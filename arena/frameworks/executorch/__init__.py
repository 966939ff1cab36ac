"""ExecuTorch: PyTorch's edge runtime. The reference modules (built by `arena.frameworks.torch`) are
captured by torch.export, lowered with `to_edge_transform_and_lower` and the XNNPACK partitioner into one
`.pte` program per model (one method per exported graph, weights shared between methods), and run by
ExecuTorch's C++ runtime through its Python bindings (`executorch.runtime`).

ExecuTorch is a deployment runtime: the export and lowering are its conversion step, cached by spec,
weights, versions and converting code (`arena/frameworks/conversion.py`) and recorded apart from
`prepare`. Every method has static shapes (XNNPACK plans its memory for them): the ResNet and UNet
programs carry one method per batch size. KV-cache decode steps take the past K/V as inputs and return
the present K/V, as in the ONNX graphs (the same wrapper modules, arena/frameworks/onnxruntime/export/).
Operators the XNNPACK partitioner leaves out run on ExecuTorch's own CPU kernels instead and are listed
per method in the model's settings (`not_delegated`) and in the conversion folder's methods.json. The
cell does not copy a built model's settings into the result yet: that one line in arena/run/child.py
(branch `executorch`, 5469a6b) changes every cell's fingerprint, so it lands with the next change that
re-runs the matrix anyway.

Not ExecuTorch's own LLM export path (executorch/examples/models/llama, smollm2): it exports ExecuTorch's
Llama re-implementation (llama_transformer.py, weights converted from torchtune's layout, which needs
torchtune) with the KV cache as in-place mutable buffers of a fixed context length and its own SDPA, so a
cell would measure and verify that model, not the reference module every other framework is checked
against; and it has no Whisper decoder with a cache (examples/models/whisper exports a cacheless
decoder's hidden states).
"""

from __future__ import annotations

import importlib.metadata

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "executorch"
# The programs are exported from the PyTorch reference modules; torchao is pinned by executorch.
DISTRIBUTIONS = ("executorch", "torch", "torchao", "torchvision", "transformers", "diffusers")
SOURCES = ("arena/frameworks/conversion.py", "arena/frameworks/graph_steps.py", "arena/frameworks/torch", "arena/frameworks/onnxruntime/export")
INSTALL_HINT = 'pip install -e ".[executorch]"'
VARIANTS = {"": "torch.export -> to_edge_transform_and_lower(XnnpackPartitioner) -> .pte, run by executorch.runtime (XNNPACK delegate)"}
# ExecuTorch's training path: torch.export of forward + loss, `_export_forward_backward` (the joint
# forward + backward graph), to_edge, to_executorch, run by `executorch.extension.training` on the portable
# kernels (XNNPACK takes no backward). Where each family stops, tried with executorch 1.5.1 on torch 2.15:
TIED = (
    "ExecuTorch's training path cannot export it: torch.export lifts the tied embedding / output-head weight "
    "under both names ({names}) and the graph reads only one, so `_export_forward_backward` stops on "
    "'Found a parameter that did not receive a gradient' (pytorch#101192); untied, to_executorch then has no "
    "kernel for SDPA's backward (aten::_scaled_dot_product_flash_attention_for_cpu_backward)"
)
UNSUPPORTED = {
    "llama/training": TIED.format(names="model.embed_tokens.weight, lm_head.weight"),
    "whisper/training": TIED.format(names="model.decoder.embed_tokens.weight, proj_out.weight"),
    "resnet/training": (
        "ExecuTorch's training path cannot lower train-mode BatchNorm: to_executorch finds no out variant (no "
        "ExecuTorch kernel) for aten::_native_batch_norm_legit_functional in the joint forward + backward graph"
    ),
    "unet2d_condition/training": (
        "ExecuTorch's training path cannot lower attention's backward: to_executorch finds no out variant (no "
        "ExecuTorch kernel) for aten::_scaled_dot_product_flash_attention_for_cpu_backward"
    ),
    "vla_expert/training": (
        "ExecuTorch's training path converts the joint forward + backward program, but its runtime cannot load "
        "it: no kernel is registered for aten::empty_permuted.out (5 instructions of the backward)"
    ),
}

# Arena device -> the ExecuTorch backend that must run the delegated graph (what the programs are lowered to).
BACKENDS = {"cpu": "XnnpackBackend"}
# Devices ExecuTorch has a delegate for that Arena does not lower to (each needs its partitioner and a
# machine to verify it on): the backend's registered name, and where a runtime with it comes from. The
# PyPI wheel's runtime links XNNPACK everywhere, QNN and OpenVINO on Linux, Core ML and MPS on macOS.
OTHER_BACKENDS = {
    "cuda": ("CudaBackend", "ExecuTorch's CUDA delegate (AOTInductor + Triton) needs a runtime built from source with EXECUTORCH_BUILD_CUDA=ON"),
    "coreml": ("CoreMLBackend", "the macOS wheel's runtime links it"),
    "mps": ("MPSBackend", "the macOS wheel's runtime links it"),
}


def probe(ctx: BuildContext) -> Probe:
    import executorch.extension.pybindings.portable_lib as runtime_lib
    from executorch.runtime import Runtime

    version = importlib.metadata.version("executorch")
    registered = Runtime.get().backend_registry.registered_backend_names
    device = ctx.device.split(":")[0]
    if device not in BACKENDS:
        return Probe(available=False, reason=other_backend_reason(device, registered), version=version)
    if ctx.dtype != "fp32":
        return Probe(available=False, reason="the programs are exported in fp32 only", version=version)
    if BACKENDS[device] not in registered:
        return Probe(available=False, reason=f"{BACKENDS[device]} is not in this executorch build; it has {registered}", version=version)
    # XNNPACK runs on ExecuTorch's one process-wide pthreadpool (its XNNCompiler creates every runtime
    # with get_pthreadpool()), sized by default from the machine's cores. Resizing it is safe only before
    # a delegate holds it: here, before any program is loaded.
    runtime_lib._unsafe_reset_threadpool(ctx.threads)
    settings = {
        "exporter": "torch.export.export (non-strict), eval mode, no_grad",
        "lowering": "to_edge_transform_and_lower(partitioner=[XnnpackPartitioner()]), default edge and backend configs",
        "runtime": "executorch.runtime (the C++ runtime through its Python bindings), default program verification",
        "threadpool_threads": runtime_lib._threadpool_get_thread_count(),
        "backends_registered": registered,
        "static_shapes": "one method per workload shape; decode steps take past K/V and return present K/V",
    }
    return Probe(available=True, version=version, backend=f"ExecuTorch {version} {BACKENDS[device]}", device_name="cpu", settings=settings)


def other_backend_reason(device: str, registered: list[str]) -> str:
    """Why a cell on a device other than XNNPACK's CPU is unavailable: the runtime lacks the delegate
    (the framework's distribution), or it has it and Arena does not lower to it (ours)."""
    if device not in OTHER_BACKENDS:
        return f"ExecuTorch has no delegate for device {device!r} that Arena knows of; this runtime registers {registered}"
    backend, source = OTHER_BACKENDS[device]
    if backend not in registered:
        return f"this ExecuTorch runtime has no {backend} (it registers {registered}): {source}"
    return (f"this runtime registers {backend}, but Arena lowers the programs with the XNNPACK partitioner only: "
            f"the {device} delegate is not wired up in Arena (it needs its partitioner, and a machine with {device} to verify it on)")

"""PyTorch: the reference (eager, fp32, CPU) and the torch.compile variant.

Official implementations wherever a maintained package has one: transformers (llama, whisper),
diffusers (unet2d_condition), torchvision (resnet); the SmolVLA expert follows lerobot's module
structure and names (no maintained standalone package for the expert alone).
"""

from __future__ import annotations

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "torch"
INSTALL_HINT = 'pip install -e ".[torch]"'
VARIANTS = {
    "": "eager mode",
    "compile": "torch.compile (inductor, default mode); compilation happens in prepare/warmup, never in timed calls",
}
UNSUPPORTED: dict[str, str] = {}

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def probe(ctx: BuildContext) -> Probe:
    import torch

    torch.set_num_threads(ctx.threads)
    settings = {"intra_op_threads": torch.get_num_threads(), "matmul_precision": torch.get_float32_matmul_precision()}
    device = ctx.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return Probe(available=False, reason="torch was built without CUDA or no NVIDIA GPU is visible", version=torch.__version__)
        name, backend = torch.cuda.get_device_name(), f"CUDA {torch.version.cuda}"
    elif device == "mps":
        if not torch.backends.mps.is_available():
            return Probe(available=False, reason="MPS is not available (needs Apple Silicon and macOS 12.3+)", version=torch.__version__)
        name, backend = "Apple GPU (MPS)", "MPS"
    elif device == "cpu":
        name, backend = "cpu", f"CPU ({torch.backends.cpu.get_cpu_capability()})"
    else:
        return Probe(available=False, reason=f"torch has no device {device!r}", version=torch.__version__)
    if ctx.variant == "compile":
        settings["compile_mode"] = "default"
    return Probe(available=True, version=torch.__version__, backend=backend, device_name=name, settings=settings)

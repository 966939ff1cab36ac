"""PyTorch: the reference (eager, fp32, CPU) and the torch.compile variant.

Official implementations wherever a maintained package has one: transformers (llama, whisper),
diffusers (unet2d_condition), torchvision (resnet); the SmolVLA expert follows lerobot's module
structure and names (no maintained standalone package for the expert alone).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from arena.frameworks.contract import BuildContext, Probe
from arena.frameworks.device_check import first_kernel

DISTRIBUTION = "torch"
DISTRIBUTIONS = ("torch", "torchvision", "transformers", "diffusers")  # the official implementations
SOURCES = ("arena/frameworks/device_check.py",)
INSTALL_HINT = 'pip install -e ".[torch]"'
VARIANTS = {
    "": "eager mode",
    "compile": "torch.compile (inductor, default mode); compilation happens in prepare/warmup, never in timed calls",
}
UNSUPPORTED: dict[str, str] = {}


def process_env(ctx: BuildContext) -> dict[str, str]:
    """A fresh, private compile cache per cell, so `prepare` of torch-compile is a cold compile (an
    inductor cache left by an earlier run would hide most of the compile time)."""
    if ctx.variant != "compile":
        return {}
    cache = tempfile.mkdtemp(prefix="arena-inductor-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    return {"TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": os.path.join(cache, "triton")}


def peak_device_memory(ctx: BuildContext, reset: bool) -> int | None:
    """CUDA's allocator high-water mark; MPS reports only what its driver holds now (no peak)."""
    import torch

    if ctx.device.startswith("cuda"):
        if reset:
            torch.cuda.reset_peak_memory_stats(ctx.device)
        return torch.cuda.max_memory_allocated(ctx.device)
    if ctx.device == "mps":
        return torch.mps.driver_allocated_memory()
    return None


def probe(ctx: BuildContext) -> Probe:
    import torch

    torch.set_num_threads(ctx.threads)
    # fp32 means fp32: no TF32 in matmuls or cuDNN convolutions (torch's CUDA default allows it in
    # convolutions), or GPU cells would fail fp32 tolerances for a reason that is not the framework's.
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    settings = {
        "intra_op_threads": torch.get_num_threads(),
        "matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
    }
    device = ctx.device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return Probe(available=False, reason="torch was built without CUDA or no NVIDIA GPU is visible", version=torch.__version__)
        name, backend = torch.cuda.get_device_name(), f"CUDA {torch.version.cuda}"
    elif device == "mps":
        if not torch.backends.mps.is_available():
            return Probe(available=False, reason="MPS is not available (needs Apple Silicon and macOS 12.3+)", version=torch.__version__)
        # GitHub's macOS VMs answer True above and fail the first allocation (pytorch/pytorch#125197).
        if unusable := first_kernel("torch's mps device", lambda: mps_matmul(torch)):
            return Probe(available=False, reason=unusable, version=torch.__version__)
        name, backend = "Apple GPU (MPS)", "MPS"
    elif device == "cpu":
        name, backend = "cpu", f"CPU ({torch.backends.cpu.get_cpu_capability()})"
    else:
        return Probe(available=False, reason=f"torch has no device {device!r}", version=torch.__version__)
    if ctx.variant == "compile":
        settings["compile_mode"] = "default"
        settings["compile_cache"] = "cold: a fresh inductor cache per cell"
    return Probe(available=True, version=torch.__version__, backend=backend, device_name=name, settings=settings)


def mps_matmul(torch) -> None:
    """A 64x64 matmul on the MPS device, waited for."""
    x = torch.ones(64, 64, device="mps")
    (x @ x).sum().item()
    torch.mps.synchronize()

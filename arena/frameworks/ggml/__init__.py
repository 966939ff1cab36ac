"""GGML: llama.cpp (through llama-cpp-python) for the LLaMA family and whisper.cpp (its C API, through
ctypes, from the library pywhispercpp ships) for Whisper.

Both are inference runtimes fed by a file conversion, made from the shared safetensors inside `build`
and cached (`arena/frameworks/conversion.py`): a GGUF for llama.cpp, whisper.cpp's own GGML format for
Whisper (it reads no GGUF). llama.cpp runs all-F32 weights with an F32 KV cache, so its differences
from the reference are its own F32 arithmetic. whisper.cpp cannot: its CPU conv1d aborts on F32
kernels (whisper.cpp#2557), so its file has F16 matrices like every published whisper.cpp model, and
its attention and KV caches are F16 by design; the Whisper spec declares the output tolerance this
needs, with the reason (`output_tolerance_overrides`), and the verdict says so.
"""

from __future__ import annotations

import importlib.metadata

from arena.frameworks.contract import BuildContext, Probe
from arena.frameworks.device_check import first_kernel

DISTRIBUTION = "llama-cpp-python"
DISTRIBUTIONS = ("llama-cpp-python", "pywhispercpp", "gguf")
SOURCES = ("arena/frameworks/conversion.py", "arena/frameworks/device_check.py")
INSTALL_HINT = 'pip install -e ".[ggml]" (builds llama.cpp from source; CMAKE_ARGS="-DGGML_CUDA=on" for CUDA)'
VARIANTS = {"": "llama.cpp (F32 weights, F32 KV cache) and whisper.cpp (F16 matrices, its only CPU option), flash attention off"}
UNSUPPORTED = {
    "*/training": "llama.cpp and whisper.cpp are inference runtimes: neither exposes a backward pass",
    "resnet": "no maintained ggml runtime runs a torchvision ResNet from its weights",
    "vla_expert": "no maintained ggml runtime runs the SmolVLA action expert (lerobot) from its weights",
    "unet2d_condition": (
        "stable-diffusion.cpp, the ggml runtime for SD, exposes only prompt-to-image generation (its own CLIP, "
        "sampler and VAE, 8-bit image out): no UNet forward on given latents, timestep and context, so "
        "nothing it computes can be compared with the reference UNet's output"
    ),
}

# Arena device -> what llama.cpp calls offloading every layer (its GPU back-ends are build flags).
GPU_DEVICES = ("cuda", "metal")
GGML_DEVICE_NAMES = {"cuda": "CUDA", "metal": "Metal"}  # how ggml names the device (CUDA0, Metal)


def probe(ctx: BuildContext) -> Probe:
    import llama_cpp

    version = llama_cpp.__version__
    if ctx.dtype != "fp32":
        return Probe(available=False, reason="the converted files are F32 only (quantised GGML types are a different model)", version=version)
    device = ctx.device.split(":")[0]
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    if device in GPU_DEVICES and not gpu:
        return Probe(available=False, reason=f"this llama.cpp build has no GPU back-end (rebuild with CMAKE_ARGS for {device})", version=version)
    if device != "cpu" and device not in GPU_DEVICES:
        return Probe(available=False, reason=f"no ggml back-end for device {ctx.device!r}", version=version)
    if device in GPU_DEVICES:
        from arena.frameworks.ggml.backend_check import matmul_on

        if unusable := first_kernel(f"llama.cpp's {device} back-end", lambda: matmul_on(GGML_DEVICE_NAMES[device])):
            return Probe(available=False, reason=unusable, version=version)
    system_info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    settings = {
        "n_threads": ctx.threads,
        "n_threads_batch": ctx.threads,
        "llama_cpp_weights_and_kv_cache": "F32 GGUF, F32 KV cache",
        "whisper_cpp_weights_and_kv_cache": "F16 matrices, F32 vectors (ftype 1); F16 KV caches (fixed in whisper.cpp)",
        "flash_attn": False,
        "n_gpu_layers": -1 if device in GPU_DEVICES else 0,
        "llama_cpp_system_info": system_info,
        "whisper_cpp": f"libwhisper from pywhispercpp {_version('pywhispercpp')}",
    }
    return Probe(available=True, version=version, backend=f"llama.cpp (llama-cpp-python {version}) {device}", device_name=device, settings=settings)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"

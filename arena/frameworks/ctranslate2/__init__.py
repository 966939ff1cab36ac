"""CTranslate2: the inference engine under faster-whisper and WhisperX, for SmolLM2 (its LLaMA
support, `ctranslate2.Generator`) and Whisper (`ctranslate2.models.Whisper`).

CTranslate2 runs models converted by its own converters. Ours is its Transformers converter on a local
Hugging Face folder written from the shared weights (`convert.py`), at fp32 (no quantization, compute
type "float32"), cached by spec, weights, versions and converting code like every conversion
(`arena/frameworks/conversion.py`) and recorded apart from prepare.

Best practice, from CTranslate2's documentation (opennmt.net/CTranslate2: "Performance tips",
"Multithreading and parallelism", "Environment variables"; the same pages are docs/*.md in the
repository): one model replica (`inter_threads=1`) with `intra_threads` = the cell's threads, which is
how a single request is served with the lowest latency; the default CPU dispatch (see `cpu_backend`);
the LLM's prompt state kept with `static_prompt`, the API it documents for caching a prefix.

What each family can and cannot time is in its file: SmolLM2's latency is one decode step on a cached
prompt; Whisper's API has no such step, so only its inference runs (see whisper.py).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from arena.frameworks.contract import BuildContext, Probe

DISTRIBUTION = "ctranslate2"
# The conversion builds the reference module (torch, transformers) and saves it as the HF folder the
# converter reads; CTranslate2's converter then loads it through transformers.
DISTRIBUTIONS = ("ctranslate2", "torch", "transformers", "safetensors")
SOURCES = ("arena/frameworks/conversion.py", "arena/frameworks/torch", "arena/frameworks/onnxruntime/export/__init__.py")
INSTALL_HINT = 'pip install -e ".[ctranslate2]"'
VARIANTS = {"": "CTranslate2's Transformers converter, fp32 (compute_type float32), one replica with intra_threads = cell threads"}
NO_ARCHITECTURE = "CTranslate2 has no {what} architecture: its converters and runtime cover Transformer text and speech models only"
UNSUPPORTED = {
    "*/training": "CTranslate2 is an inference engine: it has no backward pass",
    "resnet": NO_ARCHITECTURE.format(what="convolutional image-classifier (ResNet)"),
    "unet2d_condition": NO_ARCHITECTURE.format(what="diffusion UNet"),
    "vla_expert": NO_ARCHITECTURE.format(what="SmolVLA action-expert (flow-matching)"),
    "whisper/latency": (
        "CTranslate2's Whisper API has no decoder step on a kept cache: every `generate` call starts a new decoder "
        "state and feeds the text prefix token by token (only the task tokens after <|startoftranscript|> are "
        "forwarded at once), so one step after a cached decoder_len-token prefix can be neither run nor timed alone; "
        "timing generate over the prefix and the next token would time decoder_len + 1 steps"
    ),
}
COMPUTE_TYPE = "float32"


def probe(ctx: BuildContext) -> Probe:
    import ctranslate2

    version = ctranslate2.__version__
    device = ctx.device.split(":")[0]
    if ctx.dtype != "fp32":
        return Probe(available=False, reason="the cells run CTranslate2's float32 compute type only (its int8/float16/bfloat16 types are quantisations of the converted weights)", version=version)
    if device not in ("cpu", "cuda"):
        return Probe(available=False, reason=f"CTranslate2 runs on cpu and cuda only, not {ctx.device!r}", version=version)
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        return Probe(available=False, reason="CTranslate2 finds no CUDA device here (get_cuda_device_count() = 0; its macOS wheel has no CUDA)", version=version)
    settings = {
        "compute_type": COMPUTE_TYPE,
        "quantization": "none (converted with quantization='float32')",
        "intra_threads": ctx.threads,
        "inter_threads": 1,
        "supported_compute_types": sorted(ctranslate2.get_supported_compute_types(device)),
    }
    backend = f"CTranslate2 {version} {device}"
    if device == "cpu":
        settings |= cpu_backend()
        backend += f" ({settings['sgemm_backend']})"
    return Probe(available=True, version=version, backend=backend, device_name=device, settings=settings)


def cpu_backend() -> dict[str, str]:
    """The CPU kernels CTranslate2 picks here, by its own rules (src/cpu/backend.cc, src/cpu/cpu_isa.cc),
    which it prints at model load with CT2_VERBOSE=1 ("SGEMM backend", "Selected ISA"). The PyPI wheels
    are built with MKL and oneDNN on Linux x86-64 (python/tools/prepare_build_environment_linux.sh),
    Accelerate and Ruy on macOS, OpenBLAS and Ruy on Linux aarch64. On x86-64, fp32 GEMMs go to Intel MKL
    on GenuineIntel CPUs (CT2_USE_MKL overrides) and to oneDNN elsewhere; CTranslate2's own kernels use
    AVX2 where the CPU has it (AVX512 only when CT2_FORCE_CPU_ISA asks, which we leave to the default).
    Checked on the AMD EPYC lab machine: CT2_VERBOSE=1 printed "SGEMM backend: DNNL", "Selected ISA: AVX2"."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        use_mkl = os.environ.get("CT2_USE_MKL", "").lower()
        mkl = use_mkl in ("1", "true") if use_mkl else _genuine_intel()
        return {"sgemm_backend": "Intel MKL (packed GEMM)" if mkl else "oneDNN (DNNL)",
                "cpu_isa": os.environ.get("CT2_FORCE_CPU_ISA", "AVX2 (CTranslate2's default where the CPU has AVX2)")}
    if platform.system() == "Darwin":
        return {"sgemm_backend": "Apple Accelerate", "cpu_isa": "NEON"}
    return {"sgemm_backend": "OpenBLAS", "cpu_isa": "NEON"}


def _genuine_intel() -> bool:
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False

"""A 64x64 matmul on one of ggml's devices, through ggml's C API (the library llama-cpp-python ships).

`llama_supports_gpu_offload()` says what llama.cpp was built with, not whether the GPU it was built for
works on this machine (a Metal build in a VM without Metal, a CUDA build without a driver); llama.cpp
would then run the layers it cannot offload on the CPU and the cell would measure that. The probe runs
this first (arena/frameworks/device_check.py).
"""

from __future__ import annotations

import ctypes
from functools import cache

GGML_TYPE_F32 = 0
GGML_STATUS_SUCCESS = 0
N = 64


class InitParams(ctypes.Structure):
    """struct ggml_init_params, passed by value to ggml_init."""

    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


@cache
def ggml_library() -> ctypes.CDLL:
    """libggml as llama-cpp-python loaded it (ggml-base's symbols resolve through it), its functions typed once."""
    from llama_cpp import _ggml

    lib = _ggml.libggml
    p, size = ctypes.c_void_p, ctypes.c_size_t
    signatures = {
        "ggml_backend_dev_count": ([], size), "ggml_backend_dev_get": ([size], p), "ggml_backend_dev_name": ([p], ctypes.c_char_p),
        "ggml_backend_dev_init": ([p, ctypes.c_char_p], p), "ggml_backend_free": ([p], None),
        "ggml_tensor_overhead": ([], size), "ggml_graph_overhead": ([], size),
        "ggml_init": ([InitParams], p), "ggml_free": ([p], None),
        "ggml_new_tensor_2d": ([p, ctypes.c_int, ctypes.c_int64, ctypes.c_int64], p), "ggml_mul_mat": ([p, p, p], p),
        "ggml_new_graph": ([p], p), "ggml_build_forward_expand": ([p, p], None),
        "ggml_backend_alloc_ctx_tensors": ([p, p], p), "ggml_backend_buffer_free": ([p], None),
        "ggml_backend_tensor_set": ([p, p, size, size], None), "ggml_backend_tensor_get": ([p, p, size, size], None),
        "ggml_backend_graph_compute": ([p, p], ctypes.c_int),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


def device_names() -> list[str]:
    lib = ggml_library()
    return [lib.ggml_backend_dev_name(lib.ggml_backend_dev_get(i)).decode() for i in range(lib.ggml_backend_dev_count())]


def matmul_on(name_prefix: str) -> None:
    """Run ones(64x64) @ ones(64x64) on the first ggml device whose name starts with `name_prefix`
    ("Metal", "CUDA", "CPU") and check the result; raise with what failed."""
    lib, names = ggml_library(), device_names()
    index = next((i for i, name in enumerate(names) if name.startswith(name_prefix)), None)
    if index is None:
        raise RuntimeError(f"ggml lists no {name_prefix} device; it has {names}")
    backend = lib.ggml_backend_dev_init(lib.ggml_backend_dev_get(index), None)
    if not backend:
        raise RuntimeError(f"ggml could not initialise {names[index]}")
    context = lib.ggml_init(InitParams(lib.ggml_tensor_overhead() * 4 + lib.ggml_graph_overhead(), None, True))
    buffer = None
    try:
        a = lib.ggml_new_tensor_2d(context, GGML_TYPE_F32, N, N)
        product = lib.ggml_mul_mat(context, a, a)
        graph = lib.ggml_new_graph(context)
        lib.ggml_build_forward_expand(graph, product)
        buffer = lib.ggml_backend_alloc_ctx_tensors(context, backend)
        if not buffer:
            raise RuntimeError(f"allocating {N}x{N} tensors on {names[index]} failed")
        lib.ggml_backend_tensor_set(a, (ctypes.c_float * (N * N))(*[1.0] * (N * N)), 0, 4 * N * N)
        status = lib.ggml_backend_graph_compute(backend, graph)
        if status != GGML_STATUS_SUCCESS:
            raise RuntimeError(f"computing a matmul on {names[index]} returned ggml_status {status}")
        result = (ctypes.c_float * (N * N))()
        lib.ggml_backend_tensor_get(product, result, 0, 4 * N * N)
        if any(v != N for v in result):
            raise RuntimeError(f"a matmul of ones on {names[index]} gave {sorted(set(result))[:4]}, not {N}")
    finally:
        if buffer:
            lib.ggml_backend_buffer_free(buffer)
        lib.ggml_free(context)
        lib.ggml_backend_free(backend)

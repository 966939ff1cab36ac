"""An accelerator a framework reports but cannot use is `unavailable`, with how its first use failed.

This machine has no Metal, CoreML or CUDA, so each test makes the framework report one (the answer a
macOS VM without Metal, or a CUDA build without a driver, gives) and runs the real probe: its small
allocation and kernel then fails for real, as it would there. The same kernel run on the CPU shows that
the check computes something, so a probe that skipped it would not pass these tests.
"""

from __future__ import annotations

import pytest

from arena.frameworks import load_adapter
from arena.frameworks.contract import BuildContext
from arena.frameworks.device_check import first_kernel

REPORTED_BUT_FAILED = "is reported available, but a small allocation and kernel on it failed"


def probe(framework: str, device: str):
    adapter, _ = load_adapter(framework)
    return adapter.probe(BuildContext(device=device, dtype="fp32", threads=1))


def test_a_trial_that_runs_passes_and_one_that_raises_is_the_reason():
    assert first_kernel("gpu", lambda: 1 + 1) == ""

    def allocation_fails():
        raise RuntimeError("MPS backend out of memory (MPS allocated: 0 bytes)")

    reason = first_kernel("torch's mps device", allocation_fails)
    assert reason.startswith(f"torch's mps device {REPORTED_BUT_FAILED}") and "RuntimeError: MPS backend out of memory" in reason


def test_mlx_reporting_metal_without_a_gpu_is_unavailable(monkeypatch):
    mx = pytest.importorskip("mlx.core")
    if mx.metal.is_available():
        pytest.skip("this machine has the device (Metal): nothing to fake")
    monkeypatch.setattr(mx.metal, "is_available", lambda: True)
    found = probe("mlx", "gpu")
    assert not found.available and REPORTED_BUT_FAILED in found.reason and "gpu" in found.reason, found.reason
    assert probe("mlx", "cpu").available


def test_onnxruntime_falling_back_to_its_cpu_provider_is_unavailable(monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    listed = ort.get_available_providers()
    if "CoreMLExecutionProvider" in listed:
        pytest.skip("this machine has the device (CoreML): nothing to fake")
    monkeypatch.setattr(ort, "get_available_providers", lambda: [*listed, "CoreMLExecutionProvider"])
    found = probe("onnxruntime", "coreml")
    assert not found.available and REPORTED_BUT_FAILED in found.reason, found.reason
    assert "asked for CoreMLExecutionProvider, the session runs on ['CPUExecutionProvider']" in found.reason, found.reason
    assert probe("onnxruntime", "cpu").available


def test_llama_cpp_built_for_a_gpu_it_cannot_find_is_unavailable(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    from arena.frameworks.ggml import backend_check

    if any(name.startswith(("Metal", "CUDA")) for name in backend_check.device_names()):
        pytest.skip("this machine has the device (a llama.cpp GPU): nothing to fake")
    backend_check.matmul_on("CPU")  # the same 64x64 matmul runs and checks out on ggml's CPU device
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: True)
    for device, name in (("metal", "Metal"), ("cuda", "CUDA")):
        found = probe("ggml", device)
        assert not found.available and REPORTED_BUT_FAILED in found.reason, found.reason
        assert f"ggml lists no {name} device; it has ['CPU']" in found.reason, found.reason


def test_torch_reporting_mps_without_a_usable_gpu_is_unavailable(monkeypatch):
    """What GitHub's hosted macOS VMs do: torch.backends.mps.is_available() is True, allocations fail."""
    torch = pytest.importorskip("torch")
    if torch.backends.mps.is_available():
        pytest.skip("this machine has the device (MPS): nothing to fake")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    found = probe("torch", "mps")
    assert not found.available and found.reason.startswith(f"torch's mps device {REPORTED_BUT_FAILED}"), found.reason
    assert probe("torch", "cpu").available

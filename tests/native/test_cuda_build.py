"""Candle's CUDA build of arena._native (rust_ext/cuda/build.sh), checked on a machine without a GPU.

The link stub that stands in for the driver is checked in every run: compiled and called, it fails every
driver call with CUDA_ERROR_NO_DEVICE and describes that error. The build itself (about 10 minutes cold on
2 cores, 1.8 GB of CUDA wheels from PyPI) is the `cuda_build` group, outside CI's time
(python -m pytest -q -m cuda_build): the extension built with the feature loads here with the stub as
its driver, says which devices it has and what it was compiled for, turns the driver's "no device" into
the cell's unavailable reason, and computes on the CPU exactly what the CPU build computes."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "rust_ext" / "cuda"))
import driver_stub  # noqa: E402  (a build script's helper, not a package)

BINDINGS = """
extern "C" {
    pub fn cuInit(Flags: ::core::ffi::c_uint) -> CUresult;
    fn cuDeviceGet(device: *mut CUdevice, ordinal: ::core::ffi::c_int) -> CUresult;
    fn cuGetErrorString(error: CUresult, pStr: *mut *const ::core::ffi::c_char) -> CUresult;
}
pub unsafe fn cuInit(Flags: ::core::ffi::c_uint) -> CUresult {
"""


def test_the_driver_stub_fails_every_call_with_no_device_and_describes_the_error(tmp_path):
    source = tmp_path / "stub.c"
    source.write_text(driver_stub.stub_source(BINDINGS))
    subprocess.run(["cc", "-shared", "-fPIC", "-o", tmp_path / "libcuda.so", source], check=True)
    driver = ctypes.CDLL(str(tmp_path / "libcuda.so"))
    assert driver.cuInit(0) == driver_stub.CUDA_ERROR_NO_DEVICE == driver.cuDeviceGet(None, 0)
    text = ctypes.c_char_p()
    assert driver.cuGetErrorString(100, ctypes.byref(text)) == 0 and b"no CUDA-capable device" in text.value
    assert driver.cuGetErrorName(100, ctypes.byref(text)) == 0 and text.value == b"CUDA_ERROR_NO_DEVICE"
    with pytest.raises(SystemExit, match="no cuInit"):
        driver_stub.stub_source("fn cudaMalloc(")


TOOLKIT_LIB = Path(os.environ.get("TOOLKIT", Path.home() / ".cache/arena/cuda-13.0")) / "nvidia/cu13/lib"

# Runs in a child: the given build loaded as arena._native, a tiny SmolLM2 on the CPU (its outputs
# saved), and for a CUDA build the devices, the build's settings and the probe's answer for "cuda".
CHILD = """
import importlib.util, json, sys
import numpy as np
path, cache, saved = sys.argv[1:4]
if path:
    spec = importlib.util.spec_from_file_location("arena._native", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["arena._native"] = module
from pathlib import Path
from arena import _native, weights
from arena.families import load_family
from arena.families.base import rng_for
from arena.frameworks import rust_native
from arena.frameworks.contract import BuildContext
from arena.specs import load_specs
spec = load_specs(names=["smollm2-135m"])["smollm2-135m"]
preset = spec.presets["tiny"]
tensors = weights.load(weights.materialize(spec, "tiny", Path(cache)).files)
build, inference, latency, training = rust_native.family_adapter("candle", "llama")
model = build(preset.config, tensors, BuildContext(device="cpu", dtype="fp32", threads=1))
inputs = load_family("llama").make_inputs(preset.config, preset.workloads, "inference", rng_for("inputs", spec.spec_hash("tiny")))
step = inference(model, inputs)
np.savez(saved, **step.fetch(step.run()))
cuda = rust_native.probe("candle", BuildContext(device="cuda", dtype="fp32", threads=1), "Candle", {})
print(json.dumps({"file": _native.__file__, "devices": _native.devices("candle"), "build_info": _native.build_info("candle"),
                  "cuda_available": cuda.available, "cuda_reason": cuda.reason}))
"""


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory) -> Path:
    if shutil.which("cargo") is None or shutil.which("cc") is None:
        pytest.skip("the CUDA build needs cargo and a C compiler")
    out = tmp_path_factory.mktemp("cuda-build")
    subprocess.run(["bash", "rust_ext/cuda/build.sh", str(out)], cwd=REPO, check=True, timeout=3600)
    return out / "_native.abi3.so"


def run_child(build: str, cache: Path, saved: Path, env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, build, str(cache), str(saved)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.cuda_build
def test_the_cuda_build_loads_without_a_gpu_reports_it_and_computes_like_the_cpu_build(cuda_build, shared_cache, tmp_path):
    # Its driver here is the link stub (a driver that finds no GPU); cuBLAS, cuRAND and the CUDA runtime
    # are the PyPI libraries it was linked against.
    env = dict(os.environ, LD_LIBRARY_PATH=f"{TOOLKIT_LIB / 'stubs'}:{TOOLKIT_LIB}")
    with_cuda = run_child(str(cuda_build), shared_cache, tmp_path / "cuda.npz", env)
    cpu_only = run_child("", shared_cache, tmp_path / "cpu.npz")
    assert with_cuda["file"] == str(cuda_build) and cpu_only["file"] != str(cuda_build)
    assert with_cuda["devices"] == ["cpu", "cuda"] and cpu_only["devices"] == ["cpu"]
    assert with_cuda["build_info"] == [["cuda_compute_capability", os.environ.get("CUDA_COMPUTE_CAP", "90")]]
    assert not with_cuda["cuda_available"]
    assert "candle's cuda device is reported available, but a small allocation and kernel on it failed" in with_cuda["cuda_reason"]
    assert "no CUDA-capable device" in with_cuda["cuda_reason"], with_cuda["cuda_reason"]
    got, expected = np.load(tmp_path / "cuda.npz"), np.load(tmp_path / "cpu.npz")
    assert set(got) == set(expected) and all(np.array_equal(got[name], expected[name]) for name in expected)

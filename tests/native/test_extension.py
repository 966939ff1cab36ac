"""The Python surface of the Rust extension (arena._native), for each framework in it: models built from
the spec's config and the official-named weights, errors that name what is wrong, panics that become
exceptions, thread pools sized from the environment, and the Rust unit tests themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from arena import weights
from arena.families import load_family
from arena.families.base import rng_for
from arena.frameworks import rust_native
from arena.frameworks.contract import BuildContext
from arena.specs import load_specs
from tests.conftest import REPO

native = pytest.importorskip("arena._native")

SPEC = load_specs(names=["smollm2-135m"])["smollm2-135m"]
CONFIG = SPEC.presets["tiny"].config
WEIGHTS = weights.generate(SPEC, "tiny")


FRAMEWORKS = ["candle", "burn"]

# How each framework words a wrongly shaped weight (Burn reports its own [in, out] Linear layout).
WRONG_SHAPE = {"candle": r"{name}.*shape \[\d+, \d+\].*needs", "burn": r"Shape mismatch for '{name}'"}
UNEXPECTED = {"candle": "lm_head.weight.*not a tensor of this model", "burn": "unexpected in the weights.*lm_head.weight"}


def llama(framework: str, tensors: dict[str, np.ndarray]):
    return native.Model(framework, "llama", CONFIG.model_dump_json(), tensors)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_model_runs_its_workloads_and_names_its_outputs(framework):
    model = llama(framework, WEIGHTS)
    assert model.parameter_names()[0] == "model.embed_tokens.weight" and len(model.parameter_names()) == len(WEIGHTS)
    family = load_family("llama")
    inputs = family.make_inputs(CONFIG, SPEC.presets["tiny"].workloads, "training", rng_for("test"))
    model.setup("training", inputs)
    model.run()
    out = model.fetch()
    assert set(out) == {"loss"} | {f"grad/{name}" for name in WEIGHTS}
    assert out["grad/model.layers.0.input_layernorm.weight"].shape == WEIGHTS["model.layers.0.input_layernorm.weight"].shape
    assert out["loss"].dtype == np.float32 and np.isfinite(out["loss"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_wrongly_shaped_weight_is_an_exception_naming_the_tensor(framework):
    name = "model.layers.1.self_attn.k_proj.weight"
    with pytest.raises(RuntimeError, match=WRONG_SHAPE[framework].format(name=name)):
        llama(framework, WEIGHTS | {name: WEIGHTS[name][:-1]})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_missing_or_unexpected_weight_is_an_exception_naming_it(framework):
    for name in ("model.norm.weight", "model.layers.0.mlp.up_proj.weight"):
        with pytest.raises(RuntimeError, match=rf"missing.*{name}|{name}.*missing"):
            llama(framework, {k: v for k, v in WEIGHTS.items() if k != name})
    with pytest.raises(RuntimeError, match=UNEXPECTED[framework]):
        llama(framework, WEIGHTS | {"lm_head.weight": WEIGHTS["model.embed_tokens.weight"]})


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_bad_inputs_and_calls_are_exceptions_with_the_reason(framework):
    model = llama(framework, WEIGHTS)
    with pytest.raises(RuntimeError, match="run before setup"):
        model.run()
    with pytest.raises(RuntimeError, match='input "input_ids" is missing'):
        model.setup("inference", {"tokens": np.zeros((1, 4), np.int64)})
    with pytest.raises(RuntimeError, match="expected a float32 or int64 numpy array, got float64"):
        model.setup("inference", {"input_ids": np.zeros((1, 4))})
    with pytest.raises(RuntimeError, match="unknown workload"):
        model.setup("serving", {})
    with pytest.raises(RuntimeError, match="llama config"):
        native.Model(framework, "llama", '{"vocab_size": "many"}', WEIGHTS)
    with pytest.raises(RuntimeError, match="no framework 'tensorflow'|no framework \"tensorflow\""):
        native.Model("tensorflow", "llama", CONFIG.model_dump_json(), WEIGHTS)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_device_check_computes_on_the_cpu_and_a_device_not_built_is_unavailable_naming_the_build(framework):
    native.first_kernel(framework, "cpu")  # a 64x64 matmul of ones, read back and checked
    if "cuda" in native.devices(framework):
        pytest.skip("this build has CUDA: tests/native/test_cuda_build.py checks it")
    with pytest.raises(RuntimeError, match=r'has no (Candle|Burn) device "cuda" \(built: \["cpu"\]'):
        native.first_kernel(framework, "cuda")
    probe = rust_native.probe(framework, BuildContext(device="cuda", dtype="fp32", threads=1), framework, {})
    assert not probe.available and f"has {framework} on ['cpu'] only, not 'cuda'" in probe.reason and "Cargo features" in probe.reason


def test_a_panic_in_native_code_is_an_exception_and_the_process_lives_on():
    with pytest.raises(RuntimeError, match="panic in native code: deliberate"):
        native.panic_for_test("deliberate")
    assert dict(native.versions()).keys() == set(FRAMEWORKS)  # still usable


def test_the_gemm_crate_is_timed_in_native_code_with_the_kernels_it_picks():
    """The machine probe's figure for Candle's and Burn's GEMM (arena/run/peak.py); on x86-64 with the
    x86-64-v4 set the crate, built with `x86-v4`, runs its AVX-512 kernels."""
    seconds = native.gemm_seconds(256, 1, 3)
    assert len(seconds) == 3 and all(0 < s < 10 for s in seconds)
    kernels = native.gemm_kernels()
    assert kernels in ("x86-64-v4 (AVX-512)", "x86-64-v3 (AVX2, FMA)", "x86-64 baseline (SSE)", "aarch64 (NEON)", "portable")
    if sys.platform == "linux" and "avx512vl" in open("/proc/cpuinfo").read() and "avx512dq" in open("/proc/cpuinfo").read():
        assert kernels == "x86-64-v4 (AVX-512)"
    assert native.GEMM_VERSION in open(REPO / "rust_ext" / "Cargo.lock").read().split('name = "gemm"\n')[1].split("\n")[0]


def test_thread_pools_are_sized_from_the_cell_before_first_use():
    code = "from arena import _native; print([dict(_native.thread_info(f)) for f in ('candle', 'burn')])"
    env = dict(os.environ, RAYON_NUM_THREADS="1", CANDLE_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert eval(out) == [{"candle_threads": 1, "rayon_threads": 1}, {"rayon_threads": 1}]


@pytest.mark.slow
@pytest.mark.cargo
@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_the_rust_unit_tests_pass():
    """`cargo test` of the whole workspace. The PyO3 module has no Rust tests (it is exercised from
    Python), but leaving it out would resolve the dependencies' features differently from the
    extension's build and rebuild burn and gemm from scratch (minutes)."""
    done = subprocess.run(
        ["cargo", "test", "--release", "--workspace", "--quiet"],
        cwd=REPO / "rust_ext", capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "test result: ok" in done.stdout

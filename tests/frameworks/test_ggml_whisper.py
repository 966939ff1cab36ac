"""whisper.cpp for Whisper: the legacy GGML file reads back exactly as written (header, names, shapes,
types, values), the C library loads with the ggml_tensor layout the encoder read-out relies on, and
whisper.cpp run on the file gives the reference's encoder output and logits within the spec's declared
ggml tolerance — but not with one weight scaled by 1.01."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from arena import weights
from arena.families import whisper as family
from arena.families.base import rng_for
from arena.frameworks.contract import BuildContext
from arena.frameworks.ggml import whisper_cpp
from arena.results.compare import compare
from arena.specs import load_specs

SPEC = load_specs(names=["whisper-tiny"])["whisper-tiny"]
PRESET = SPEC.presets["tiny"]
CONFIG = PRESET.config
WEIGHTS = weights.generate(SPEC, "tiny")
CTX = BuildContext(device="cpu", dtype="fp32", threads=1)  # one thread: no OpenMP barriers to spin on a shared machine

needs_library = pytest.mark.skipif(importlib.util.find_spec("pywhispercpp") is None, reason="pywhispercpp (libwhisper) not installed")


@pytest.mark.parametrize("ftype", [whisper_cpp.FTYPE_F16, whisper_cpp.FTYPE_F32])
def test_the_file_reads_back_as_written(tmp_path, ftype):
    hparams = whisper_cpp.file_hparams(CONFIG, ftype)
    converted = whisper_cpp.ggml_tensors(CONFIG, WEIGHTS)
    whisper_cpp.write_model(tmp_path / "model.bin", hparams, converted)
    read = whisper_cpp.read_model(tmp_path / "model.bin")

    assert read.hparams == hparams
    assert (read.hparams["n_vocab"], read.hparams["n_audio_ctx"], read.hparams["n_text_ctx"]) == (512, 32, 32)
    assert read.n_mel == CONFIG.num_mel_bins and read.n_fft == 201 and not read.filters.any()
    assert read.vocab == []
    assert list(read.tensors) == list(converted), "names, in the order written"
    assert len(converted) == len(WEIGHTS), "one whisper.cpp tensor per official tensor (proj_out is tied)"
    for name, array in converted.items():
        f16 = ftype == whisper_cpp.FTYPE_F16 and whisper_cpp.f16_tensor(name, array.ndim)
        assert read.ttypes[name] == (whisper_cpp.TTYPE_F16 if f16 else whisper_cpp.TTYPE_F32), name
        expected = array.astype(np.float16) if f16 else array
        assert read.tensors[name].dtype == expected.dtype and read.tensors[name].shape == array.shape, name
        np.testing.assert_array_equal(read.tensors[name].view(np.uint16 if f16 else np.uint32),
                                      expected.view(np.uint16 if f16 else np.uint32), err_msg=name)  # bit-exact


def test_names_shapes_and_the_mlp_padding():
    converted = whisper_cpp.ggml_tensors(CONFIG, WEIGHTS)
    d, width = CONFIG.d_model, 4 * CONFIG.d_model
    assert converted["encoder.conv1.bias"].shape == (d, 1), "conv biases as whisper.cpp declares them, not squeezed"
    assert converted["encoder.conv1.weight"].shape == (d, CONFIG.num_mel_bins, 3)
    np.testing.assert_array_equal(converted["decoder.blocks.1.cross_attn.key.weight"], WEIGHTS["model.decoder.layers.1.encoder_attn.k_proj.weight"])
    np.testing.assert_array_equal(converted["encoder.ln_post.bias"], WEIGHTS["model.encoder.layer_norm.bias"])
    assert "encoder.blocks.0.attn.key.bias" not in converted
    assert whisper_cpp.pad_mlp(CONFIG) == {"encoder": 128, "decoder": 128}
    fc1, fc2 = converted["decoder.blocks.0.mlp.0.weight"], converted["decoder.blocks.0.mlp.2.weight"]
    assert fc1.shape == (width, d) and fc2.shape == (d, width) and converted["decoder.blocks.0.mlp.0.bias"].shape == (width,)
    np.testing.assert_array_equal(fc1[:128], WEIGHTS["model.decoder.layers.0.fc1.weight"])
    assert not fc1[128:].any() and not fc2[:, 128:].any() and not converted["decoder.blocks.0.mlp.0.bias"][128:].any()
    assert whisper_cpp.f16_tensor("encoder.conv1.weight", 3) and whisper_cpp.f16_tensor("decoder.token_embedding.weight", 2)
    assert not whisper_cpp.f16_tensor("encoder.conv1.bias", 2) and not whisper_cpp.f16_tensor("encoder.positional_embedding", 2)
    with pytest.raises(ValueError, match="no whisper.cpp tensor"):
        whisper_cpp.openai_name("proj_out.weight")


@needs_library
def test_the_library_loads_with_the_layout_the_readout_relies_on():
    lib = whisper_cpp.library()
    assert lib.whisper_path.exists() and lib.version
    assert lib.whisper.whisper_decode_with_state.argtypes and lib.ggml_base.ggml_backend_tensor_get.argtypes is not None
    params = whisper_cpp.context_params()
    assert not params.flash_attn and not params.use_gpu
    whisper_cpp.check_tensor_layout(lib)


def _artifacts(runtime, model, inputs) -> dict[str, np.ndarray]:
    out = {}
    for workload in ("inference", "latency"):
        step = getattr(runtime, workload)(model, inputs[workload])
        out |= {f"{workload}/{k}": v for k, v in step.fetch(step.run()).items()}
    return out


@needs_library
def test_whisper_cpp_matches_the_reference_and_a_perturbed_weight_does_not(tmp_path):
    pytest.importorskip("torch")
    import torch

    from arena.frameworks.ggml import whisper as ggml_whisper
    from arena.frameworks.torch import whisper as torch_whisper

    inputs = {w: family.make_inputs(CONFIG, PRESET.workloads, w, rng_for("inputs", SPEC.spec_hash("tiny"))) for w in ("inference", "latency")}
    with torch.inference_mode():
        reference = _artifacts(torch_whisper, torch_whisper.build(CONFIG, WEIGHTS, CTX), inputs)
    tolerances, why = SPEC.tolerances_for("ggml", "fp32", "tiny")
    assert "F16" in why

    # Conversion folders are keyed by the weights' hash in a cell; here each model gets its own.
    model = ggml_whisper.build(CONFIG, WEIGHTS, CTX.model_copy(update={"convert_dir": str(tmp_path / "plain")}), inputs)
    assert model.conversion.files == [ggml_whisper.MODEL_FILE] and not model.conversion.cached
    assert model.readout is not None, model.readout_problem
    got = _artifacts(ggml_whisper, model, inputs)
    assert got["inference/encoder_hidden_states"].shape == (2, CONFIG.max_source_positions, CONFIG.d_model)
    assert got["inference/logits"].shape == (2, 8, CONFIG.vocab_size) and got["latency/logits"].shape == (2, 1, CONFIG.vocab_size)
    verdict = compare(got, reference, tolerances)
    assert verdict.verdict == "pass", verdict.reason
    assert {c.name for c in verdict.checks} == set(reference)
    assert compare(got, reference, SPEC.tolerances_for("torch", "fp32", "tiny")[0]).verdict == "fail", "whisper.cpp is not fp32-exact: the override is needed"

    name = "model.decoder.layer_norm.weight"
    perturbed_ctx = CTX.model_copy(update={"convert_dir": str(tmp_path / "perturbed")})
    perturbed = ggml_whisper.build(CONFIG, WEIGHTS | {name: WEIGHTS[name] * np.float32(1.01)}, perturbed_ctx, inputs)
    assert compare(_artifacts(ggml_whisper, perturbed, inputs), reference, tolerances).verdict == "fail", "1.01 on one weight must not pass"

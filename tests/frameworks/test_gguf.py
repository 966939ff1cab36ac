"""The GGUF writer for llama.cpp: the file reads back with the `gguf` package exactly as written (metadata,
names, shapes, values), the Q/K permutation is the one llama.cpp's RoPE needs, and llama.cpp run on the file
gives the reference's logits — but not without the permutation."""

from __future__ import annotations

import os

import numpy as np
import pytest

from arena import weights
from arena.frameworks.contract import BuildContext
from arena.specs import load_specs

pytest.importorskip("gguf")
from arena.frameworks.ggml import gguf_llama  # noqa: E402

SPEC = load_specs(names=["smollm2-135m"])["smollm2-135m"]
CONFIG = SPEC.presets["tiny"].config
WEIGHTS = weights.generate(SPEC, "tiny")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "model.gguf"
    gguf_llama.write(CONFIG, WEIGHTS, path)
    return path


def test_the_file_reads_back_as_written(written):
    fields, tensors = gguf_llama.read(written)
    assert fields["general.architecture"] == "llama"
    assert fields["tokenizer.ggml.model"] == "no_vocab"
    expected = {
        "llama.vocab_size": CONFIG.vocab_size, "llama.embedding_length": CONFIG.hidden_size,
        "llama.block_count": CONFIG.num_hidden_layers, "llama.feed_forward_length": CONFIG.intermediate_size,
        "llama.attention.head_count": CONFIG.num_attention_heads, "llama.attention.head_count_kv": CONFIG.num_key_value_heads,
        "llama.context_length": CONFIG.max_position_embeddings, "llama.rope.dimension_count": CONFIG.kv_dim_per_head,
        "general.file_type": 0,
    }
    assert {k: fields[k] for k in expected} == expected
    assert fields["llama.rope.freq_base"] == pytest.approx(CONFIG.rope_theta)
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(CONFIG.rms_norm_eps)

    converted = gguf_llama.gguf_tensors(CONFIG, WEIGHTS)
    assert set(tensors) == set(converted)
    assert "output.weight" not in tensors, "tied head: llama.cpp reuses token_embd"
    assert len(tensors) == len(WEIGHTS)  # one GGUF tensor per official tensor (lm_head is tied, not stored)
    for name, array in converted.items():
        assert tensors[name].dtype == np.float32 and tensors[name].shape == array.shape, name
        np.testing.assert_array_equal(tensors[name], array, err_msg=name)
    np.testing.assert_array_equal(tensors["blk.1.ffn_down.weight"], WEIGHTS["model.layers.1.mlp.down_proj.weight"])


def test_the_permutation_pairs_rotate_half_dimensions_adjacently():
    heads, head_dim, cols = 2, 8, 3
    rows = np.arange(heads * head_dim, dtype=np.float32)[:, None].repeat(cols, 1)  # row i holds i
    permuted = gguf_llama.rope_pairs_adjacent(rows, heads)[:, 0].astype(int).tolist()
    # per head, old rows j and j + d/2 (a rotate-half pair) become new rows 2j and 2j + 1
    assert permuted == [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15]


def llama_cpp_logits(path, ids: np.ndarray) -> np.ndarray:
    from arena.frameworks.ggml import llama

    model = llama.Model(path, CONFIG, BuildContext(device="cpu", dtype="fp32", threads=1), n_ctx=ids.shape[1] + 1, rows=1, conversion=None)
    return llama.prefill(model.contexts[0], ids[0]).copy()


def test_llama_cpp_matches_the_reference_only_with_the_permutation(written, tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("torch")
    from arena.frameworks.torch import llama as torch_llama

    ids = np.random.default_rng(0).integers(0, CONFIG.vocab_size, (1, 12))
    reference = torch_llama.inference(torch_llama.build(CONFIG, WEIGHTS, BuildContext(device="cpu", dtype="fp32", threads=1)), {"input_ids": ids})
    expected = reference.fetch(reference.run())["logits"][0]
    permuted_error = np.abs(llama_cpp_logits(written, ids) - expected).max()
    assert permuted_error < 1e-5

    monkeypatch.setattr(gguf_llama, "rope_pairs_adjacent", lambda weight, heads: weight)
    gguf_llama.write(CONFIG, WEIGHTS, tmp_path / "unpermuted.gguf")
    unpermuted_error = np.abs(llama_cpp_logits(tmp_path / "unpermuted.gguf", ids) - expected).max()
    # A wrong RoPE pairing moves the logits far outside the spec's fp32 tolerance, and by a thousand times
    # the permuted file's error.
    assert unpermuted_error > max(SPEC.tolerances_for("torch", "fp32", "tiny")[0].output.atol, 1000 * permuted_error)


def test_a_damaged_gguf_in_the_cache_is_converted_again(tmp_path, capsys):
    """llama.cpp's build through the real conversion cache: a truncated GGUF (which llama.cpp refuses to
    load) is found, said in one line, converted again, and gives the first file's logits."""
    pytest.importorskip("llama_cpp")
    from arena.frameworks.ggml import llama

    ctx = BuildContext(device="cpu", dtype="fp32", threads=1, convert_dir=str(tmp_path))
    ids = np.random.default_rng(0).integers(0, CONFIG.vocab_size, (1, 12))

    def logits_and_conversion():
        model = llama.build(CONFIG, WEIGHTS, ctx, {"inference": {"input_ids": ids}})
        logits = llama.prefill(model.contexts[0], ids[0]).copy()
        model.contexts[0].close()  # the file is mapped: truncating it under a live model would crash it
        return logits, model.conversion

    expected, first = logits_and_conversion()
    (gguf_file,) = tmp_path.glob(f"*/{llama.GGUF_FILE}")
    size = gguf_file.stat().st_size
    os.truncate(gguf_file, size - 1024)
    logits, again = logits_and_conversion()
    assert capsys.readouterr().err == (f"arena: cached conversion {gguf_file.parent} damaged "
                                       f"({llama.GGUF_FILE}: size {size - 1024} of {size} bytes); converting again\n")
    assert not first.cached and not again.cached and gguf_file.stat().st_size == size
    np.testing.assert_array_equal(logits, expected)
    assert logits_and_conversion()[1].cached

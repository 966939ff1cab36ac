"""A GGUF file for llama.cpp from the LLaMA family's official-named weights: F32, tokenizer-free.

What llama.cpp's own converter (convert_hf_to_gguf.py) does for a LLaMA checkpoint, restated for our
weights: GGUF tensor names, the hyper-parameters under `llama.*`, and the Q/K row permutation. HF's
LLaMA applies RoPE rotate-half style (dimension j pairs with j + d/2); llama.cpp's `llama` architecture
rotates adjacent pairs (2j, 2j+1). Reordering the rows of q_proj and k_proj per head so that old row
j / j + d/2 becomes new row 2j / 2j + 1 turns one into the other, and leaves q.k (so the attention and
the outputs) unchanged. With tied embeddings `output.weight` is left out: llama.cpp then uses
`token_embd.weight` for the head, as the converter does. `tokenizer.ggml.model = "no_vocab"` with the
vocabulary size makes a model that takes token ids only (llama.cpp's own tests write models this way).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

from arena.families.llama import Config

ARCH = "llama"
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}


def gguf_name(name: str) -> str:
    """HF state-dict name -> GGUF tensor name (KeyError for a name llama.cpp has no place for)."""
    if name in TOP_NAMES:
        return TOP_NAMES[name]
    _, _, layer, rest = name.split(".", 3)  # model.layers.<i>.<rest>
    return f"blk.{int(layer)}.{LAYER_NAMES[rest]}"


def rope_pairs_adjacent(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from rotate-half pairing to adjacent pairing (llama.cpp's RoPE)."""
    rows, cols = weight.shape
    return weight.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def gguf_tensors(config: Config, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The GGUF name -> float32 array (numpy/PyTorch order; the writer reverses to ggml order)."""
    tensors = {}
    for name, array in weights.items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        array = np.ascontiguousarray(array, dtype=np.float32)
        if name.endswith("self_attn.q_proj.weight"):
            array = rope_pairs_adjacent(array, config.num_attention_heads)
        elif name.endswith("self_attn.k_proj.weight"):
            array = rope_pairs_adjacent(array, config.num_key_value_heads)
        tensors[gguf_name(name)] = array
    return tensors


def write(config: Config, weights: dict[str, np.ndarray], path: Path) -> None:
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_name("arena-generated llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.kv_dim_per_head)
    writer.add_value_length(config.kv_dim_per_head)
    writer.add_rope_dimension_count(config.kv_dim_per_head)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("no_vocab")
    for name, array in gguf_tensors(config, weights).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def read(path: Path) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    """(metadata key -> value, tensor name -> array in numpy order): the file as llama.cpp sees it."""
    reader = gguf.GGUFReader(str(path))
    fields = {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}
    return fields, {t.name: np.array(t.data) for t in reader.tensors}

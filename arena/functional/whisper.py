"""Whisper, written once for JAX, TensorFlow and tinygrad: transformers' WhisperForConditionalGeneration
restated as pure functions of the official-named parameters; `nn` is the framework's layers module.

Follows transformers `models/whisper/modeling_whisper.py`: encoder = Conv1d(k3, p1) + GELU,
Conv1d(k3, s2, p1) + GELU, plus the fixed sinusoid table, pre-LN layers, final LayerNorm; decoder =
token embedding + learned positions, pre-LN layers with causal self-attention and cross-attention to the
encoder output, final LayerNorm, `proj_out` tied to `model.decoder.embed_tokens` (one parameter, so its
gradient adds into the embedding's, as with torch's tied parameter). WhisperAttention's k_proj has no
bias, and the query is multiplied by head_dim**-0.5 *before* the product (attention then runs with
scale 1), in HF's order. Exact (erf) GELU, LayerNorm eps 1e-5. The sinusoid table is frozen
(requires_grad=False in HF; each framework's `build` keeps it out of the trained parameters).
No deviations. Layers are Python loops, so a trace (jit, tf.function, TinyJit) unrolls them.

Layouts are the framework's, through `nn`: the mel input arrives in its convolution layout (NLC for
JAX and TensorFlow, NCL for tinygrad) and `nn.pixels_to_tokens` turns the convolutions' output into
[batch, frames, d_model]; K/V are in its attention layout (`nn.split_heads`), and a decode step's new
K/V join the cache by `nn.append_positions`.
"""

from __future__ import annotations

from arena.families.whisper import EMBED_TOKENS, ENCODER_POSITIONS, Config
from arena.functional.layers import Layers, Params, Tensor

KV = tuple[Tensor, Tensor]  # keys, values, each in the framework's attention layout
DECODER_POSITIONS = "model.decoder.embed_positions.weight"


def to_heads(nn: Layers, x: Tensor, heads: int) -> Tensor:
    """[B, T, heads * head_dim] -> the framework's attention layout (Whisper's config gives the number
    of heads; `nn.split_heads` takes head_dim)."""
    return nn.split_heads(x, x.shape[-1] // heads)


def keys_values(nn: Layers, p: Params, name: str, x: Tensor, heads: int) -> KV:
    """k_proj has no bias in Whisper (`linear` adds one only where the weights have it)."""
    return to_heads(nn, nn.linear(p, f"{name}.k_proj", x), heads), to_heads(nn, nn.linear(p, f"{name}.v_proj", x), heads)


def attend(nn: Layers, p: Params, name: str, x: Tensor, kv: KV, heads: int, causal: bool) -> Tensor:
    """WhisperAttention with its K/V given: q_proj(x) * head_dim**-0.5 (HF scales the query first, then
    attends with scale 1; the order changes the rounding), then out_proj."""
    q = to_heads(nn, nn.linear(p, f"{name}.q_proj", x), heads)
    q = q * q.shape[-1] ** -0.5  # head_dim: the last axis in every attention layout
    return nn.linear(p, f"{name}.out_proj", nn.attention(q, *kv, causal=causal, scale=1.0))


def mlp(nn: Layers, p: Params, prefix: str, x: Tensor) -> Tensor:
    return nn.linear(p, f"{prefix}.fc2", nn.gelu(nn.linear(p, f"{prefix}.fc1", x)))


def encoder_layer(nn: Layers, p: Params, prefix: str, x: Tensor, heads: int) -> Tensor:
    """WhisperEncoderLayer: x + attn(norm(x)), then x + mlp(norm(x))."""
    h = nn.layer_norm(p, f"{prefix}.self_attn_layer_norm", x)
    x = x + attend(nn, p, f"{prefix}.self_attn", h, keys_values(nn, p, f"{prefix}.self_attn", h, heads), heads, causal=False)
    return x + mlp(nn, p, prefix, nn.layer_norm(p, f"{prefix}.final_layer_norm", x))


def encode(nn: Layers, p: Params, config: Config, mel: Tensor) -> Tensor:
    """WhisperEncoder: mel (2 * S frames of mel_bins, in the convolution layout) -> [B, S, d_model]
    after the final LayerNorm."""
    x = nn.gelu(nn.conv(p, "model.encoder.conv1", mel, padding=1))  # 2S frames of d_model
    x = nn.gelu(nn.conv(p, "model.encoder.conv2", x, stride=2, padding=1))  # S frames
    x = nn.pixels_to_tokens(x) + p[ENCODER_POSITIONS]  # [B, S, d]
    for i in range(config.encoder_layers):
        x = encoder_layer(nn, p, f"model.encoder.layers.{i}", x, config.encoder_attention_heads)
    return nn.layer_norm(p, "model.encoder.layer_norm", x)


def cross_keys_values(nn: Layers, p: Params, config: Config, encoded: Tensor) -> list[KV]:
    """Every decoder layer's encoder_attn K/V of the encoder output (what HF's cross-attention cache holds)."""
    heads = config.decoder_attention_heads
    return [keys_values(nn, p, f"model.decoder.layers.{i}.encoder_attn", encoded, heads) for i in range(config.decoder_layers)]


def decoder_layer(nn: Layers, p: Params, prefix: str, x: Tensor, cross: KV, past: KV | None, heads: int) -> tuple[Tensor, KV]:
    """WhisperDecoderLayer: causal self-attention, cross-attention, MLP, each pre-LN with a residual.
    Returns the output and this layer's self-attention K/V including the new tokens."""
    h = nn.layer_norm(p, f"{prefix}.self_attn_layer_norm", x)
    k, v = keys_values(nn, p, f"{prefix}.self_attn", h, heads)
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = nn.append_positions(past[0], k), nn.append_positions(past[1], v)
    x = x + attend(nn, p, f"{prefix}.self_attn", h, (k, v), heads, causal=True)
    h = nn.layer_norm(p, f"{prefix}.encoder_attn_layer_norm", x)
    x = x + attend(nn, p, f"{prefix}.encoder_attn", h, cross, heads, causal=False)
    return x + mlp(nn, p, prefix, nn.layer_norm(p, f"{prefix}.final_layer_norm", x)), (k, v)


def decode(nn: Layers, p: Params, config: Config, ids: Tensor, cross: list[KV], start: int = 0, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
    """WhisperDecoder + proj_out: logits [B, T, vocab] for `ids` [B, T] at positions start.. (a Python
    int: the position slice is static), after the self-attention cache `past` if given; and every
    layer's self-attention K/V including the new tokens."""
    table = p[EMBED_TOKENS]
    x = nn.embedding(table, ids) + p[DECODER_POSITIONS][start : start + ids.shape[1]]
    present = []
    for i in range(config.decoder_layers):
        prefix = f"model.decoder.layers.{i}"
        x, kv = decoder_layer(nn, p, prefix, x, cross[i], past[i] if past else None, config.decoder_attention_heads)
        present.append(kv)
    x = nn.layer_norm(p, "model.decoder.layer_norm", x)
    return nn.unembed(x, table), present  # proj_out is tied to embed_tokens


def forward(nn: Layers, p: Params, config: Config, mel: Tensor, ids: Tensor) -> dict[str, Tensor]:
    """Encoder on the mel input, then the teacher-forced decoder over `ids`."""
    encoded = encode(nn, p, config, mel)
    logits, _ = decode(nn, p, config, ids, cross_keys_values(nn, p, config, encoded))
    return {"encoder_hidden_states": encoded, "logits": logits}


def prefill(nn: Layers, p: Params, config: Config, mel: Tensor, ids: Tensor) -> tuple[list[KV], list[KV]]:
    """What a decode step reads: every layer's cross-attention K/V of the encoded mel, and the prefix
    `ids`' self-attention cache."""
    cross = cross_keys_values(nn, p, config, encode(nn, p, config, mel))
    return cross, decode(nn, p, config, ids, cross)[1]


def loss(nn: Layers, p: Params, config: Config, mel: Tensor, ids: Tensor, labels: Tensor) -> Tensor:
    """Mean CE of the decoder logits against `labels` (already shifted once by the family)."""
    return nn.cross_entropy(forward(nn, p, config, mel, ids)["logits"], labels)

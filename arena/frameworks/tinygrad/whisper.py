"""Whisper in tinygrad: transformers' WhisperForConditionalGeneration restated as pure functions of the
official-named weights (the JAX package's whisper.py, in PyTorch's NCL layout).

Follows transformers `models/whisper/modeling_whisper.py`: encoder = Conv1d(k3, p1) + GELU,
Conv1d(k3, s2, p1) + GELU, plus the fixed sinusoid table, pre-LN layers, final LayerNorm; decoder =
token embedding + learned positions, pre-LN layers with causal self-attention and cross-attention to the
encoder output, final LayerNorm, `proj_out` tied to `model.decoder.embed_tokens` (so its gradient adds
into the embedding's, as with torch's tied parameter). WhisperAttention's k_proj has no bias, and the
query is multiplied by head_dim**-0.5 *before* the product (attention then runs with scale 1), in HF's
order. Exact (erf) GELU, LayerNorm eps 1e-5. The sinusoid table is frozen (requires_grad=False in HF).
No deviations.
"""

from __future__ import annotations

import numpy as np
from tinygrad import Tensor

from arena.families.whisper import EMBED_TOKENS, ENCODER_POSITIONS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tinygrad.common import Model, Params, build_model, forward_step, to_device, training_step
from arena.frameworks.tinygrad.layers import attention, conv, cross_entropy, embedding, gelu, layer_norm, linear, split_heads

KV = tuple[Tensor, Tensor]  # keys, values [batch, heads, positions, head_dim]
DECODER_POSITIONS = "model.decoder.embed_positions.weight"


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=(ENCODER_POSITIONS,))


def heads(x: Tensor, count: int) -> Tensor:
    return split_heads(x, x.shape[-1] // count)  # [B, H, T, D]


def keys_values(p: Params, name: str, x: Tensor, count: int) -> KV:
    """k_proj has no bias in Whisper (`linear` adds one only where the weights have it)."""
    return heads(linear(p, f"{name}.k_proj", x), count), heads(linear(p, f"{name}.v_proj", x), count)


def attend(p: Params, name: str, x: Tensor, kv: KV, count: int, causal: bool) -> Tensor:
    """WhisperAttention with its K/V given: q_proj(x) * head_dim**-0.5 (HF scales the query first, then
    attends with scale 1; the order changes the rounding), then out_proj."""
    q = heads(linear(p, f"{name}.q_proj", x), count)
    q = q * q.shape[-1] ** -0.5
    return linear(p, f"{name}.out_proj", attention(q, *kv, causal=causal, scale=1.0))


def mlp(p: Params, prefix: str, x: Tensor) -> Tensor:
    return linear(p, f"{prefix}.fc2", gelu(linear(p, f"{prefix}.fc1", x)))


def encoder_layer(p: Params, prefix: str, x: Tensor, count: int) -> Tensor:
    """WhisperEncoderLayer: x + attn(norm(x)), then x + mlp(norm(x))."""
    h = layer_norm(p, f"{prefix}.self_attn_layer_norm", x)
    x = x + attend(p, f"{prefix}.self_attn", h, keys_values(p, f"{prefix}.self_attn", h, count), count, causal=False)
    return x + mlp(p, prefix, layer_norm(p, f"{prefix}.final_layer_norm", x))


def encode(p: Params, config: Config, mel: Tensor) -> Tensor:
    """WhisperEncoder: mel [B, mel_bins, 2 * S] -> [B, S, d_model] after the final LayerNorm."""
    x = gelu(conv(p, "model.encoder.conv1", mel, padding=1))  # [B, d, 2S]
    x = gelu(conv(p, "model.encoder.conv2", x, stride=2, padding=1))  # [B, d, S]
    x = x.transpose(1, 2) + p[ENCODER_POSITIONS]  # [B, S, d]
    for i in range(config.encoder_layers):
        x = encoder_layer(p, f"model.encoder.layers.{i}", x, config.encoder_attention_heads)
    return layer_norm(p, "model.encoder.layer_norm", x)


def cross_keys_values(p: Params, config: Config, encoded: Tensor) -> list[KV]:
    """Every decoder layer's encoder_attn K/V of the encoder output (what HF's cross-attention cache holds)."""
    count = config.decoder_attention_heads
    return [keys_values(p, f"model.decoder.layers.{i}.encoder_attn", encoded, count) for i in range(config.decoder_layers)]


def decoder_layer(p: Params, prefix: str, x: Tensor, cross: KV, past: KV | None, count: int) -> tuple[Tensor, KV]:
    """WhisperDecoderLayer: causal self-attention, cross-attention, MLP, each pre-LN with a residual.
    Returns the output and this layer's self-attention K/V including the new tokens."""
    h = layer_norm(p, f"{prefix}.self_attn_layer_norm", x)
    k, v = keys_values(p, f"{prefix}.self_attn", h, count)
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = past[0].cat(k, dim=2), past[1].cat(v, dim=2)
    x = x + attend(p, f"{prefix}.self_attn", h, (k, v), count, causal=True)
    h = layer_norm(p, f"{prefix}.encoder_attn_layer_norm", x)
    x = x + attend(p, f"{prefix}.encoder_attn", h, cross, count, causal=False)
    return x + mlp(p, prefix, layer_norm(p, f"{prefix}.final_layer_norm", x)), (k, v)


def decode(p: Params, config: Config, ids: Tensor, cross: list[KV], start: int = 0, past: list[KV] | None = None) -> tuple[Tensor, list[KV]]:
    """WhisperDecoder + proj_out: logits [B, T, vocab] for `ids` [B, T] at positions start.. (a Python
    int), after the self-attention cache `past` if given; and every layer's self-attention K/V including
    the new tokens."""
    table = p[EMBED_TOKENS]
    x = embedding(table, ids) + p[DECODER_POSITIONS][start : start + ids.shape[1]]
    present = []
    for i in range(config.decoder_layers):
        x, kv = decoder_layer(p, f"model.decoder.layers.{i}", x, cross[i], past[i] if past else None, config.decoder_attention_heads)
        present.append(kv)
    x = layer_norm(p, "model.decoder.layer_norm", x)
    return x @ table.T, present  # proj_out is tied to embed_tokens


def forward(p: Params, config: Config, mel: Tensor, ids: Tensor) -> dict[str, Tensor]:
    """Encoder on the mel input, then the teacher-forced decoder over `ids`."""
    encoded = encode(p, config, mel)
    logits, _ = decode(p, config, ids, cross_keys_values(p, config, encoded))
    return {"encoder_hidden_states": encoded, "logits": logits}


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    t = to_device(inputs, model.ctx)
    return forward_step(lambda mel, ids: forward(model.params, model.config, mel, ids), model, t["input_features"], t["decoder_input_ids"])


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. The encoder output's cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed, realised); every timed call decodes the next token
    at position decoder_len against those same tensors (the step never writes into them)."""
    config, p, t = model.config, model.params, to_device(inputs, model.ctx)
    prefix_len = t["decoder_input_ids"].shape[1]
    cross = cross_keys_values(p, config, encode(p, config, t["input_features"]))
    past = decode(p, config, t["decoder_input_ids"], cross)[1]
    Tensor.realize(*(x for kv in cross + past for x in kv))

    def step(token: Tensor) -> dict[str, Tensor]:
        return {"logits": decode(p, config, token, cross, prefix_len, past)[0]}

    return forward_step(step, model, t["next_decoder_input_ids"])


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Mean CE of the decoder logits against `labels` (already shifted once by the family), backward
    through decoder and encoder; the sinusoid table is frozen."""
    t = to_device(inputs, model.ctx)

    def loss(mel: Tensor, ids: Tensor, labels: Tensor) -> Tensor:
        return cross_entropy(forward(model.params, model.config, mel, ids)["logits"], labels)

    return training_step(model, loss, t["input_features"], t["decoder_input_ids"], t["labels"])

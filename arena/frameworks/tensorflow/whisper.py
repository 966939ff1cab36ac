"""Whisper in TensorFlow: transformers' WhisperForConditionalGeneration restated as pure functions of
the official-named variables.

Follows transformers `models/whisper/modeling_whisper.py`: encoder = Conv1d(k3, p1) + GELU,
Conv1d(k3, s2, p1) + GELU, plus the fixed sinusoid table, pre-LN layers, final LayerNorm; decoder =
token embedding + learned positions, pre-LN layers with causal self-attention and cross-attention to the
encoder output, final LayerNorm, `proj_out` tied to `model.decoder.embed_tokens` (one variable, so its
gradient adds into the embedding's, as with torch's tied parameter). WhisperAttention's k_proj has no
bias, and the query is multiplied by head_dim**-0.5 *before* the product (attention then runs with
scale 1), in HF's order. Exact (erf) GELU, LayerNorm eps 1e-5. The sinusoid table is frozen
(requires_grad=False in HF). No deviations. Layers are Python loops, so tracing unrolls them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from arena.families.whisper import EMBED_TOKENS, ENCODER_POSITIONS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.tensorflow.common import Model, Params, build_model, device, forward_step, function, to_device, training_step
from arena.frameworks.tensorflow.layers import attention, conv, cross_entropy, dense, embedding, gelu, layer_norm, linear

KV = tuple[tf.Tensor, tf.Tensor]  # keys, values [batch, positions, heads, head_dim]
DECODER_POSITIONS = "model.decoder.embed_positions.weight"


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    return build_model(config, weights, ctx, frozen=(ENCODER_POSITIONS,))


def split_heads(x: tf.Tensor, heads: int) -> tf.Tensor:
    b, t, _ = x.shape
    return tf.reshape(x, [b, t, heads, -1])  # [B, T, H, D]


def keys_values(p: Params, name: str, x: tf.Tensor, heads: int) -> KV:
    """k_proj has no bias in Whisper (`linear` adds one only where the weights have it)."""
    return split_heads(linear(p, f"{name}.k_proj", x), heads), split_heads(linear(p, f"{name}.v_proj", x), heads)


def attend(p: Params, name: str, x: tf.Tensor, kv: KV, heads: int, causal: bool) -> tf.Tensor:
    """WhisperAttention with its K/V given: q_proj(x) * head_dim**-0.5 (HF scales the query first, then
    attends with scale 1; the order changes the rounding), then out_proj."""
    q = split_heads(linear(p, f"{name}.q_proj", x), heads)
    q = q * q.shape[-1] ** -0.5
    return linear(p, f"{name}.out_proj", attention(q, *kv, causal=causal, scale=1.0))


def mlp(p: Params, prefix: str, x: tf.Tensor) -> tf.Tensor:
    return linear(p, f"{prefix}.fc2", gelu(linear(p, f"{prefix}.fc1", x)))


def encoder_layer(p: Params, prefix: str, x: tf.Tensor, heads: int) -> tf.Tensor:
    """WhisperEncoderLayer: x + attn(norm(x)), then x + mlp(norm(x))."""
    h = layer_norm(p, f"{prefix}.self_attn_layer_norm", x)
    x = x + attend(p, f"{prefix}.self_attn", h, keys_values(p, f"{prefix}.self_attn", h, heads), heads, causal=False)
    return x + mlp(p, prefix, layer_norm(p, f"{prefix}.final_layer_norm", x))


def encode(p: Params, config: Config, mel: tf.Tensor) -> tf.Tensor:
    """WhisperEncoder: mel [B, 2 * S, mel_bins] (channels-last) -> [B, S, d_model] after the final LayerNorm."""
    x = gelu(conv(p, "model.encoder.conv1", mel, padding=1))  # [B, 2S, d]
    x = gelu(conv(p, "model.encoder.conv2", x, stride=2, padding=1))  # [B, S, d]
    x = x + p[ENCODER_POSITIONS]
    for i in range(config.encoder_layers):
        x = encoder_layer(p, f"model.encoder.layers.{i}", x, config.encoder_attention_heads)
    return layer_norm(p, "model.encoder.layer_norm", x)


def cross_keys_values(p: Params, config: Config, encoded: tf.Tensor) -> list[KV]:
    """Every decoder layer's encoder_attn K/V of the encoder output (what HF's cross-attention cache holds)."""
    heads = config.decoder_attention_heads
    return [keys_values(p, f"model.decoder.layers.{i}.encoder_attn", encoded, heads) for i in range(config.decoder_layers)]


def decoder_layer(p: Params, prefix: str, x: tf.Tensor, cross: KV, past: KV | None, heads: int) -> tuple[tf.Tensor, KV]:
    """WhisperDecoderLayer: causal self-attention, cross-attention, MLP, each pre-LN with a residual.
    Returns the output and this layer's self-attention K/V including the new tokens."""
    h = layer_norm(p, f"{prefix}.self_attn_layer_norm", x)
    k, v = keys_values(p, f"{prefix}.self_attn", h, heads)
    if past is not None:  # a decode step: the new token's K/V join the cached ones
        k, v = tf.concat([past[0], k], axis=1), tf.concat([past[1], v], axis=1)
    x = x + attend(p, f"{prefix}.self_attn", h, (k, v), heads, causal=True)
    h = layer_norm(p, f"{prefix}.encoder_attn_layer_norm", x)
    x = x + attend(p, f"{prefix}.encoder_attn", h, cross, heads, causal=False)
    return x + mlp(p, prefix, layer_norm(p, f"{prefix}.final_layer_norm", x)), (k, v)


def decode(p: Params, config: Config, ids: tf.Tensor, cross: list[KV], start: int = 0, past: list[KV] | None = None) -> tuple[tf.Tensor, list[KV]]:
    """WhisperDecoder + proj_out: logits [B, T, vocab] for `ids` [B, T] at positions start.. (a Python
    int: the position slice is static), after the self-attention cache `past` if given; and every
    layer's self-attention K/V including the new tokens."""
    table = p[EMBED_TOKENS]
    x = embedding(table, ids) + p[DECODER_POSITIONS][start : start + ids.shape[1]]
    present = []
    for i in range(config.decoder_layers):
        prefix = f"model.decoder.layers.{i}"
        x, kv = decoder_layer(p, prefix, x, cross[i], past[i] if past else None, config.decoder_attention_heads)
        present.append(kv)
    x = layer_norm(p, "model.decoder.layer_norm", x)
    return dense(x, table), present  # proj_out is tied to embed_tokens


def forward(p: Params, config: Config, mel: tf.Tensor, ids: tf.Tensor) -> dict[str, tf.Tensor]:
    """Encoder on the mel input, then the teacher-forced decoder over `ids`."""
    encoded = encode(p, config, mel)
    logits, _ = decode(p, config, ids, cross_keys_values(p, config, encoded))
    return {"encoder_hidden_states": encoded, "logits": logits}


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    tensors = to_device(inputs, model.ctx, channels_last=["input_features"])
    return forward_step(
        model, lambda p, mel, ids: forward(p, model.config, mel, ids),
        tensors["input_features"], tensors["decoder_input_ids"],
    )  # fmt: skip


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. The encoder output's cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed); every timed call decodes the next token at
    position decoder_len against those same tensors (immutable: nothing to crop)."""
    config, p, tensors = model.config, model.params, to_device(inputs, model.ctx, channels_last=["input_features"])
    prefix_len = tensors["decoder_input_ids"].shape[1]

    def prefill(mel: tf.Tensor, ids: tf.Tensor) -> tuple[list[KV], list[KV]]:
        cross = cross_keys_values(p, config, encode(p, config, mel))
        return cross, decode(p, config, ids, cross)[1]

    with tf.device(device(model.ctx)):
        cross, past = function(model.ctx, prefill)(tensors["input_features"], tensors["decoder_input_ids"])

    def step(p: Params, token: tf.Tensor, cross: list[KV], past: list[KV]) -> dict[str, tf.Tensor]:
        return {"logits": decode(p, config, token, cross, prefix_len, past)[0]}

    return forward_step(model, step, tensors["next_decoder_input_ids"], cross, past)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Mean CE of the decoder logits against `labels` (already shifted once by the family), backward
    through decoder and encoder; the sinusoid table is frozen (a non-trainable variable)."""
    tensors = to_device(inputs, model.ctx, channels_last=["input_features"])

    def loss(p: Params, mel: tf.Tensor, ids: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return cross_entropy(forward(p, model.config, mel, ids)["logits"], labels)

    return training_step(model, loss, tensors["input_features"], tensors["decoder_input_ids"], tensors["labels"])

"""Whisper in MLX: transformers' WhisperForConditionalGeneration as an `mlx.nn` module tree with the
official names.

Follows transformers `models/whisper/modeling_whisper.py`: encoder = Conv1d(k3, p1) + GELU,
Conv1d(k3, s2, p1) + GELU, plus the fixed sinusoid table, pre-LN layers, final LayerNorm; decoder =
token embedding + learned positions, pre-LN layers with causal self-attention and cross-attention to the
encoder output, final LayerNorm, `proj_out` tied to `model.decoder.embed_tokens` (`as_linear`, so its
gradient adds into the embedding's, as with torch's tied parameter). WhisperAttention's k_proj has no
bias, and the query is multiplied by head_dim**-0.5 *before* the product (attention then runs with
scale 1), in HF's order. Exact (erf) GELU (`nn.gelu`), LayerNorm eps 1e-5. The sinusoid table is frozen
(requires_grad=False in HF). MLX's Conv1d is channels-last: the mel input arrives [B, frames, mel_bins]
(`to_device(channels_last=...)`), and the conv output is already [B, positions, d_model]. No deviations.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from arena.families.whisper import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.mlx.common import forward_step, load, to_device, training_step
from arena.frameworks.mlx.layers import attention, cross_entropy, split_heads

KV = tuple[mx.array, mx.array]  # keys, values [batch, heads, positions, head_dim]


class Attention(nn.Module):
    """WhisperAttention: self- or cross-attention depending on where its K/V come from."""

    def __init__(self, dims: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dims, dims)
        self.k_proj = nn.Linear(dims, dims, bias=False)
        self.v_proj = nn.Linear(dims, dims)
        self.out_proj = nn.Linear(dims, dims)

    def keys_values(self, x: mx.array) -> KV:
        return split_heads(self.k_proj(x), self.heads), split_heads(self.v_proj(x), self.heads)

    def __call__(self, x: mx.array, kv: KV, mask: str | None = None) -> mx.array:
        q = split_heads(self.q_proj(x), self.heads)
        q = q * q.shape[-1] ** -0.5  # HF scales the query first, then attends with scale 1
        return self.out_proj(attention(q, *kv, mask=mask, scale=1.0))


class EncoderLayer(nn.Module):
    """WhisperEncoderLayer: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dims: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = Attention(dims, heads)
        self.self_attn_layer_norm = nn.LayerNorm(dims)
        self.fc1 = nn.Linear(dims, ffn)
        self.fc2 = nn.Linear(ffn, dims)
        self.final_layer_norm = nn.LayerNorm(dims)

    def mlp_block(self, x: mx.array) -> mx.array:
        """x + fc2(gelu(fc1(final_layer_norm(x)))): the last residual block of both layer kinds."""
        return x + self.fc2(nn.gelu(self.fc1(self.final_layer_norm(x))))

    def __call__(self, x: mx.array) -> mx.array:
        h = self.self_attn_layer_norm(x)
        return self.mlp_block(x + self.self_attn(h, self.self_attn.keys_values(h)))


class DecoderLayer(EncoderLayer):
    """WhisperDecoderLayer: causal self-attention, cross-attention, MLP, each pre-LN with a residual."""

    def __init__(self, dims: int, heads: int, ffn: int):
        super().__init__(dims, heads, ffn)
        self.encoder_attn = Attention(dims, heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(dims)

    def __call__(self, x: mx.array, cross: KV, past: KV | None) -> tuple[mx.array, KV]:
        """Returns the output and this layer's self-attention K/V including the new tokens."""
        h = self.self_attn_layer_norm(x)
        k, v = self.self_attn.keys_values(h)
        if past is not None:  # a decode step: the new token's K/V join the cached ones
            k, v = mx.concatenate([past[0], k], axis=2), mx.concatenate([past[1], v], axis=2)
        mask = "causal" if x.shape[1] > 1 else None  # one new token sees the whole cache
        x = x + self.self_attn(h, (k, v), mask)
        x = x + self.encoder_attn(self.encoder_attn_layer_norm(x), cross)
        return self.mlp_block(x), (k, v)


class Encoder(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        d = c.d_model
        self.conv1 = nn.Conv1d(c.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(c.max_source_positions, d)
        self.embed_positions.freeze()  # the fixed sinusoid table: requires_grad=False in HF
        self.layers = [EncoderLayer(d, c.encoder_attention_heads, c.encoder_ffn_dim) for _ in range(c.encoder_layers)]
        self.layer_norm = nn.LayerNorm(d)

    def __call__(self, mel: mx.array) -> mx.array:
        """mel [B, 2 * S, mel_bins] (channels-last) -> [B, S, d_model] after the final LayerNorm."""
        x = nn.gelu(self.conv1(mel))  # [B, 2S, d]
        x = nn.gelu(self.conv2(x)) + self.embed_positions.weight  # [B, S, d]
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


class Decoder(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        d = c.d_model
        self.embed_tokens = nn.Embedding(c.vocab_size, d)
        self.embed_positions = nn.Embedding(c.max_target_positions, d)
        self.layers = [DecoderLayer(d, c.decoder_attention_heads, c.decoder_ffn_dim) for _ in range(c.decoder_layers)]
        self.layer_norm = nn.LayerNorm(d)

    def cross_keys_values(self, encoded: mx.array) -> list[KV]:
        """Every layer's encoder_attn K/V of the encoder output (what HF's cross-attention cache holds)."""
        return [layer.encoder_attn.keys_values(encoded) for layer in self.layers]

    def __call__(self, ids: mx.array, cross: list[KV], offset: int, past: list[KV] | None) -> tuple[mx.array, list[KV]]:
        """Final hidden states [B, T, d_model] for `ids` [B, T] at positions offset.., after the
        self-attention cache `past` if given; and every layer's self-attention K/V."""
        x = self.embed_tokens(ids) + self.embed_positions.weight[offset : offset + ids.shape[1]]
        present = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, cross[i], past[i] if past else None)
            present.append(kv)
        return self.layer_norm(x), present


class WhisperModel(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)


class WhisperForConditionalGeneration(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.model = WhisperModel(c)

    def decode(self, ids: mx.array, cross: list[KV], offset: int = 0, past: list[KV] | None = None) -> tuple[mx.array, list[KV]]:
        """Logits [B, T, vocab] (proj_out tied to embed_tokens) and every layer's self-attention K/V."""
        x, present = self.model.decoder(ids, cross, offset, past)
        return self.model.decoder.embed_tokens.as_linear(x), present

    def __call__(self, mel: mx.array, ids: mx.array) -> dict[str, mx.array]:
        """Encoder on the mel input, then the teacher-forced decoder over `ids`."""
        encoded = self.model.encoder(mel)
        logits, _ = self.decode(ids, self.model.decoder.cross_keys_values(encoded))
        return {"encoder_hidden_states": encoded, "logits": logits}


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> WhisperForConditionalGeneration:
    return load(WhisperForConditionalGeneration(config), weights, ctx)


def inputs_on_device(model: WhisperForConditionalGeneration, inputs: dict[str, np.ndarray]) -> dict[str, mx.array]:
    """The mel input [B, mel_bins, frames] goes channels-last for MLX's Conv1d."""
    return to_device(inputs, model.ctx, channels_last=["input_features"])


def inference(model: WhisperForConditionalGeneration, inputs: dict[str, np.ndarray]) -> Step:
    tensors = inputs_on_device(model, inputs)
    return forward_step(lambda mel, ids: model(mel, ids), tensors["input_features"], tensors["decoder_input_ids"])


def latency(model: WhisperForConditionalGeneration, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. The encoder output's cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed); every timed call decodes the next token at
    position decoder_len against those same arrays (immutable, so nothing to crop)."""
    tensors = inputs_on_device(model, inputs)
    prefix_len = tensors["decoder_input_ids"].shape[1]
    cross = model.model.decoder.cross_keys_values(model.model.encoder(tensors["input_features"]))
    _, past = model.decode(tensors["decoder_input_ids"], cross)
    mx.eval(cross, past)

    def step(token: mx.array, cross: list[KV], past: list[KV]) -> dict[str, mx.array]:
        return {"logits": model.decode(token, cross, prefix_len, past)[0]}

    return forward_step(step, tensors["next_decoder_input_ids"], cross, past)


def training(model: WhisperForConditionalGeneration, inputs: dict[str, np.ndarray]) -> Step:
    """Mean CE of the decoder logits against `labels` (already shifted once by the family), backward
    through decoder and encoder; the sinusoid table is frozen."""
    tensors = inputs_on_device(model, inputs)

    def loss(mel: mx.array, ids: mx.array, labels: mx.array) -> mx.array:
        return cross_entropy(model(mel, ids)["logits"], labels)

    return training_step(model, loss, tensors["input_features"], tensors["decoder_input_ids"], tensors["labels"])

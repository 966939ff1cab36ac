"""Whisper: encoder-decoder speech recogniser (whisper-tiny, -base, -small, … shapes).

Official implementation: transformers `models/whisper/modeling_whisper.py`
(WhisperForConditionalGeneration); config fields are `WhisperConfig`'s, tensor names the HF state-dict
keys. The encoder is two GELU Conv1d layers (the second with stride 2, so `2 * max_source_positions` mel
frames become `max_source_positions` positions) plus a fixed sinusoid position table, then pre-LN
transformer layers; the decoder is a pre-LN transformer with learned positions, causal self-attention and
cross-attention to the encoder output. `proj_out` is tied to `model.decoder.embed_tokens` and so is not
part of the weight layout (frameworks tie it when loading).

Workloads (`batch`, `decoder_len`; the mel input is always `num_mel_bins x 2*max_source_positions`,
80 x 3000 = 30 s for every published Whisper, because HF's encoder rejects any other length):
    inference  encoder on the mel input + teacher-forced decoder over `decoder_len` tokens; returns the
               encoder output (after its final LayerNorm) [batch, max_source_positions, d_model] and the
               logits [batch, decoder_len, vocab]
    latency    one decoder step with a KV cache: the self-attention cache holds the `decoder_len` prefix
               and the cross-attention cache the encoder output (both filled untimed); the timed call
               decodes token `decoder_len + 1`; logits [batch, 1, vocab]
    training   decoder cross-entropy, forward + backward through decoder *and* encoder. A token row of
               length `decoder_len + 1` is drawn; decoder_input_ids = tokens[:, :-1], labels = tokens[:, 1:]
               are both given to the model, so labels are shifted exactly once, here, and nowhere else.
               Loss = mean CE over all batch x decoder_len labels. (HF's `labels=`-only path builds
               [decoder_start_token_id, labels[:, :-1]], the same ids, since every row starts with it.)

Inputs: the mel input imitates Whisper's log-mel features (see `_log_mel`): a log10 power
spectrogram with a spectral tilt, a loudness envelope and noise, put through Whisper's own normalisation
(clamp to max - 8, then (x + 4) / 4), so values lie in about [-1, 1.5] as for real speech. Token rows
start with `decoder_start_token_id` (<|startoftranscript|>) followed by ids drawn uniformly from the
vocabulary without `pad_token_id` (its embedding row is zero and HF's nn.Embedding(padding_idx=...) masks
its gradient; real transcripts do not contain it). Every workload makes the same draws in the same
order, so for the same seed they share the mel and token row, and the training loss can be recomputed
from inference logits (`reference_loss`).

Weights follow WhisperPreTrainedModel._init_weights (and PreTrainedModel._init_weights it calls):
Linear/Conv1d/Embedding weights N(0, init_std), the `pad_token_id` row of embed_tokens zero, and
`model.encoder.embed_positions.weight` the fixed sinusoid table of `sinusoids()` (requires_grad=False
in HF: no gradient is reported for it). Three changes make every parameter matter (see
arena/families/base.py): biases N(0, 0.02) instead of zero, LayerNorm weights 1 + N(0, 0.1) and biases
N(0, 0.02) instead of one/zero (at HF's init 98 of whisper.cpp's 167 tensors would be constant), and
q_proj/k_proj weights scaled by `qk_gain` so attention is not near uniform: every attention input is
layer-normalised, so q and k have spread init_std * sqrt(d_model) (0.16 tiny, 0.39 whisper-tiny) and
the gain brings the logits to a spread of 2.
Inputs repeat tokens: a quarter of each row's text tokens repeat an earlier one (`with_repeats`).

Deviations from the official config: `activation_function` is fixed to "gelu" (exact erf GELU, every
Whisper checkpoint); `scale_embedding` is fixed to false (HF computes embed_scale but never applies it,
so true would mean different things in different frameworks); dropout, layerdrop and SpecAugment are left
at their config defaults (off). No architectural deviation.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from arena.families.base import FamilyConfig, FamilyWorkloads, cross_entropy, norm_weight, normal, qk_gain, small_bias, with_repeats

OUTPUTS = {"inference": ("encoder_hidden_states", "logits"), "latency": ("logits",), "training": ("loss",)}

ENCODER_POSITIONS = "model.encoder.embed_positions.weight"  # fixed sinusoids, requires_grad=False in HF
EMBED_TOKENS = "model.decoder.embed_tokens.weight"  # proj_out.weight is tied to this


class Config(FamilyConfig):
    vocab_size: int = Field(gt=0)
    num_mel_bins: int = Field(gt=0, description="mel channels of the input (80; 128 for large-v3)")
    d_model: int = Field(gt=0)
    encoder_layers: int = Field(gt=0)
    encoder_attention_heads: int = Field(gt=0)
    decoder_layers: int = Field(gt=0)
    decoder_attention_heads: int = Field(gt=0)
    encoder_ffn_dim: int = Field(gt=0)
    decoder_ffn_dim: int = Field(gt=0)
    max_source_positions: int = Field(gt=0, description="encoder positions; the mel input has twice as many frames")
    max_target_positions: int = Field(gt=0, description="decoder positions (learned table)")
    activation_function: Literal["gelu"] = "gelu"
    scale_embedding: Literal[False] = Field(False, description="HF never applies embed_scale in Whisper")
    init_std: float = Field(0.02, gt=0, description="std of the normal init (HF _init_weights)")
    pad_token_id: int = Field(ge=0, description="<|endoftext|>; its embedding row is zero (padding_idx)")
    bos_token_id: int = Field(ge=0)
    eos_token_id: int = Field(ge=0)
    decoder_start_token_id: int = Field(ge=0, description="<|startoftranscript|>, first token of every row")

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        for heads in ("encoder_attention_heads", "decoder_attention_heads"):
            if self.d_model % getattr(self, heads):
                raise ValueError(f"{heads} ({getattr(self, heads)}) must divide d_model ({self.d_model})")
        if self.d_model % 2 or self.d_model < 4:
            raise ValueError(f"d_model ({self.d_model}) must be even and >= 4 for the sinusoid position table")
        for token in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            if getattr(self, token) >= self.vocab_size:
                raise ValueError(f"{token} ({getattr(self, token)}) must be below vocab_size ({self.vocab_size})")
        return self

    @property
    def num_frames(self) -> int:
        """Mel frames of the input: conv2 has stride 2, HF's encoder requires exactly this length."""
        return 2 * self.max_source_positions


class Workloads(FamilyWorkloads):
    batch: int = Field(gt=0, description="utterances per call (all three workloads)")
    decoder_len: int = Field(
        gt=0, description="teacher-forced decoder tokens (inference, training) and latency self-attention cache length"
    )


def check_fits(config: Config, workloads: Workloads) -> None:
    """Cross-checks between config and workloads (the spec schema validates the two separately)."""
    if workloads.decoder_len + 1 > config.max_target_positions:
        raise ValueError(
            f"decoder_len ({workloads.decoder_len}) + 1 must not exceed max_target_positions "
            f"({config.max_target_positions}): the latency step decodes position decoder_len"
        )


def parameter_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    d, m = config.d_model, config.num_mel_bins

    def attention(p: str) -> dict[str, tuple[int, ...]]:  # k_proj has no bias in Whisper
        return {
            f"{p}.k_proj.weight": (d, d),
            f"{p}.v_proj.weight": (d, d),
            f"{p}.v_proj.bias": (d,),
            f"{p}.q_proj.weight": (d, d),
            f"{p}.q_proj.bias": (d,),
            f"{p}.out_proj.weight": (d, d),
            f"{p}.out_proj.bias": (d,),
        }

    def norm(p: str) -> dict[str, tuple[int, ...]]:
        return {f"{p}.weight": (d,), f"{p}.bias": (d,)}

    def mlp(p: str, ffn: int) -> dict[str, tuple[int, ...]]:
        return {f"{p}.fc1.weight": (ffn, d), f"{p}.fc1.bias": (ffn,), f"{p}.fc2.weight": (d, ffn), f"{p}.fc2.bias": (d,)}

    shapes = {
        "model.encoder.conv1.weight": (d, m, 3),
        "model.encoder.conv1.bias": (d,),
        "model.encoder.conv2.weight": (d, d, 3),
        "model.encoder.conv2.bias": (d,),
        ENCODER_POSITIONS: (config.max_source_positions, d),
    }
    for i in range(config.encoder_layers):
        p = f"model.encoder.layers.{i}"
        shapes |= attention(f"{p}.self_attn") | norm(f"{p}.self_attn_layer_norm")
        shapes |= mlp(p, config.encoder_ffn_dim) | norm(f"{p}.final_layer_norm")
    shapes |= norm("model.encoder.layer_norm")
    shapes |= {EMBED_TOKENS: (config.vocab_size, d), "model.decoder.embed_positions.weight": (config.max_target_positions, d)}
    for i in range(config.decoder_layers):
        p = f"model.decoder.layers.{i}"
        shapes |= attention(f"{p}.self_attn") | norm(f"{p}.self_attn_layer_norm")
        shapes |= attention(f"{p}.encoder_attn") | norm(f"{p}.encoder_attn_layer_norm")
        shapes |= mlp(p, config.decoder_ffn_dim) | norm(f"{p}.final_layer_norm")
    shapes |= norm("model.decoder.layer_norm")
    return shapes


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """HF's `sinusoids()` (= openai/whisper model.py): [sin(t * inv) | cos(t * inv)] over `channels // 2`
    log-spaced timescales. The exponent and t * inv are formed in float32 as torch does (they set the
    arguments); exp/sin/cos are evaluated in float64 and rounded, so entries agree with torch's float32
    libm to its last-ulp differences (measured max 1.5e-5 at whisper-tiny's 1500 x 384)."""
    f32 = np.float32
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = np.exp((f32(-increment) * np.arange(channels // 2, dtype=f32)).astype(np.float64)).astype(f32)
    scaled_time = (np.arange(length, dtype=f32)[:, None] * inv_timescales[None, :]).astype(np.float64)
    return np.concatenate([np.sin(scaled_time), np.cos(scaled_time)], axis=1).astype(f32)


def init_tensor(name: str, shape: tuple[int, ...], config: Config, rng: np.random.Generator) -> np.ndarray:
    """WhisperPreTrainedModel._init_weights (modeling_whisper.py) over PreTrainedModel._init_weights, with
    the changes of the module docstring (every bias and LayerNorm random, sharper attention)."""
    if name == ENCODER_POSITIONS:
        return sinusoids(*shape)
    if "layer_norm" in name and name.endswith(".weight"):
        return norm_weight(rng, shape)
    if name.endswith(".bias"):
        return small_bias(rng, shape)
    weight = normal(rng, shape, config.init_std)
    if name == EMBED_TOKENS:
        weight[config.pad_token_id] = 0.0  # nn.Embedding(padding_idx=pad_token_id): that row is zeroed
    if name.endswith(("q_proj.weight", "k_proj.weight")):
        spread = config.init_std * config.d_model**0.5
        weight *= np.float32(qk_gain(spread, spread))
    return weight


def _log_mel(rng: np.random.Generator, batch: int, mel_bins: int, frames: int) -> np.ndarray:
    """Log-mel features in Whisper's range, shape [batch, mel_bins, frames].

    A log10 power spectrogram: a spectral tilt (low bands louder, 0 to -2 decades), a loudness envelope
    that changes every 16 frames (160 ms, syllable-like) and per-bin noise; then Whisper's normalisation
    (openai/whisper audio.py `log_mel_spectrogram`, HF WhisperFeatureExtractor): clamp to max - 8 per
    utterance, then (x + 4) / 4.
    """
    tilt = np.linspace(0.0, -2.0, mel_bins)[None, :, None]
    blocks = -(-frames // 16)
    envelope = np.repeat(rng.standard_normal((batch, 1, blocks)), 16, axis=-1)[..., :frames]
    log_spec = -1.8 + tilt + 0.8 * envelope + 0.5 * rng.standard_normal((batch, mel_bins, frames))
    log_spec = np.maximum(log_spec, log_spec.max(axis=(1, 2), keepdims=True) - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def make_inputs(config: Config, workloads: Workloads, workload: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same mel input and token row for every workload (drawn in the same order), split per workload."""
    check_fits(config, workloads)
    b, t = workloads.batch, workloads.decoder_len
    mel = _log_mel(rng, b, config.num_mel_bins, config.num_frames)
    text = rng.integers(0, config.vocab_size - 1, (b, t), dtype=np.int64)
    text += text >= config.pad_token_id  # uniform over the vocabulary without the padding id
    text = with_repeats(rng, text)
    start = np.full((b, 1), config.decoder_start_token_id, np.int64)
    tokens = np.concatenate([start, text], axis=1)  # [batch, decoder_len + 1]
    if workload == "latency":
        return {"input_features": mel, "decoder_input_ids": tokens[:, :-1], "next_decoder_input_ids": tokens[:, -1:]}
    if workload == "training":
        return {"input_features": mel, "decoder_input_ids": tokens[:, :-1], "labels": tokens[:, 1:]}
    return {"input_features": mel, "decoder_input_ids": tokens[:, :-1]}


def reference_loss(config: Config, workloads: Workloads, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> float:
    """Mean cross-entropy of the decoder logits against `labels` (already shifted once by make_inputs):
    logits[:, t] predicts labels[:, t] = tokens[:, t + 1]. `outputs` are the inference outputs for the
    training inputs (they share input_features and decoder_input_ids)."""
    return cross_entropy(outputs["logits"], inputs["labels"])


def _encoder_macs(config: Config) -> tuple[float, float]:
    """Multiply-adds of the encoder for one utterance: (conv1, everything else)."""
    d, s = config.d_model, config.max_source_positions
    conv1 = config.num_frames * d * config.num_mel_bins * 3  # kernel 3, stride 1: one output per frame
    conv2 = s * d * d * 3  # kernel 3, stride 2: max_source_positions outputs
    per_position = 4 * d * d + 2 * d * config.encoder_ffn_dim + 2 * s * d  # q,k,v,o + fc1,fc2 + QK^T,PV
    return conv1, conv2 + config.encoder_layers * s * per_position


def _decoder_macs(config: Config, new_tokens: int, context: int, cross_kv: bool) -> float:
    """Multiply-adds of the decoder for one utterance: `new_tokens` queries over `context` self-attention
    keys and all encoder positions; `cross_kv` adds the k/v projection of the encoder output (cached, so
    absent, in the latency step)."""
    d, s = config.d_model, config.max_source_positions
    self_attn = 4 * d * d + 2 * context * d
    cross_attn = 2 * d * d + 2 * s * d  # q and out projections + QK^T, PV over the encoder positions
    per_token = config.decoder_layers * (self_attn + cross_attn + 2 * d * config.decoder_ffn_dim)
    per_token += d * config.vocab_size  # proj_out
    kv = config.decoder_layers * s * 2 * d * d if cross_kv else 0
    return new_tokens * per_token + kv


def flops(config: Config, workloads: Workloads, workload: str) -> float:
    """2 FLOPs per multiply-add of the matmuls, convolutions and attention products.

    Attention is counted over the full score matrix (what dense kernels compute, also for the causal
    decoder), as in PaLM's appendix B. Left out: LayerNorm, GELU, softmax, residual adds, embedding
    lookups and the loss (< 1 % at whisper-tiny sizes).
    """
    check_fits(config, workloads)
    b, t = workloads.batch, workloads.decoder_len
    conv1, encoder_rest = _encoder_macs(config)
    forward = conv1 + encoder_rest + _decoder_macs(config, t, t, cross_kv=True)
    if workload == "inference":
        return 2.0 * b * forward
    if workload == "latency":
        return 2.0 * b * _decoder_macs(config, 1, t + 1, cross_kv=False)
    # Backward costs twice the forward (gradients w.r.t. activations and w.r.t. weights), except that
    # conv1 needs no gradient w.r.t. the mel input: one conv1-sized product fewer.
    return 2.0 * b * (3 * forward - conv1)


def work_items(workloads: Workloads, workload: str) -> tuple[float, str]:
    if workload == "latency":
        return workloads.batch, "tokens"
    return workloads.batch, "utterances"

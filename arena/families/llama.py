"""LLaMA-style causal LM (SmolLM2, Llama 2/3 shapes).

Official implementation: transformers `models/llama/modeling_llama.py` (LlamaForCausalLM); config
fields are `LlamaConfig`'s. Tensor names are the HF state-dict keys. Known deviations: none in the
architecture; `hidden_act` is fixed to SiLU (SwiGLU) and attention/MLP biases to off, as in every
SmolLM2 / Llama checkpoint.

Workloads:
    inference  prefill of `prompt_len` tokens, all-position logits [batch, prompt_len, vocab]
    latency    one decode step: the token after the prompt, with a KV cache of the `prompt_len`-token
               prompt (the cache is filled untimed), logits [batch, 1, vocab]
    training   causal-LM cross-entropy, forward + backward. Labels are the input ids and are shifted
               exactly once: logits[:, t] predicts input_ids[:, t + 1] (HF's `labels=` convention).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from arena.families.base import FamilyConfig, FamilyWorkloads, cross_entropy, norm_weight, normal, qk_gain, require_divides, with_repeats

OUTPUTS = {"inference": ("logits",), "latency": ("logits",), "training": ("loss",)}


class Config(FamilyConfig):
    vocab_size: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    intermediate_size: int = Field(gt=0)
    num_hidden_layers: int = Field(gt=0)
    num_attention_heads: int = Field(gt=0)
    num_key_value_heads: int = Field(gt=0)
    head_dim: int | None = Field(None, gt=0, description="defaults to hidden_size / num_attention_heads")
    max_position_embeddings: int = Field(gt=0)
    rms_norm_eps: float = Field(gt=0)
    rope_theta: float = Field(gt=0)
    tie_word_embeddings: bool
    hidden_act: Literal["silu"] = "silu"
    initializer_range: float = Field(0.02, gt=0, description="std of the normal init (HF _init_weights)")

    @model_validator(mode="after")
    def _heads(self) -> Config:
        require_divides("num_key_value_heads", self.num_key_value_heads, "num_attention_heads", self.num_attention_heads)
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}) unless head_dim is given"
            )
        if self.kv_dim_per_head % 2:
            raise ValueError(f"head_dim ({self.kv_dim_per_head}) must be even for rotate-half RoPE")
        return self

    @property
    def kv_dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads


class Workloads(FamilyWorkloads):
    batch: int = Field(gt=0, description="sequences per call (all three workloads)")
    prompt_len: int = Field(gt=1, description="prompt tokens: prefill length and latency KV-cache length")


def check_fits(config: Config, workloads: Workloads) -> None:
    """Cross-checks between config and workloads (the spec schema validates the two separately)."""
    if workloads.prompt_len + 1 > config.max_position_embeddings:
        raise ValueError(
            f"prompt_len ({workloads.prompt_len}) + 1 must not exceed max_position_embeddings "
            f"({config.max_position_embeddings}): the latency step decodes position prompt_len"
        )

def parameter_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    h, d = config.hidden_size, config.kv_dim_per_head
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    shapes = {"model.embed_tokens.weight": (config.vocab_size, h)}
    for i in range(config.num_hidden_layers):
        p = f"model.layers.{i}"
        shapes |= {
            f"{p}.self_attn.q_proj.weight": (q, h),
            f"{p}.self_attn.k_proj.weight": (kv, h),
            f"{p}.self_attn.v_proj.weight": (kv, h),
            f"{p}.self_attn.o_proj.weight": (h, q),
            f"{p}.mlp.gate_proj.weight": (config.intermediate_size, h),
            f"{p}.mlp.up_proj.weight": (config.intermediate_size, h),
            f"{p}.mlp.down_proj.weight": (h, config.intermediate_size),
            f"{p}.input_layernorm.weight": (h,),
            f"{p}.post_attention_layernorm.weight": (h,),
        }
    shapes["model.norm.weight"] = (h,)
    if not config.tie_word_embeddings:
        shapes["lm_head.weight"] = (config.vocab_size, h)
    return shapes


def init_tensor(name: str, shape: tuple[int, ...], config: Config, rng: np.random.Generator) -> np.ndarray:
    """HF LlamaPreTrainedModel._init_weights (every matrix N(0, initializer_range)) with two changes that
    make every parameter matter (arena/families/base.py):

    - RMSNorm weights 1 + N(0, 0.1) instead of 1, so no two norms are interchangeable;
    - q_proj and k_proj scaled by `qk_gain`: their inputs are RMS-normalised (unit spread), so q and k
      have spread initializer_range * sqrt(hidden_size) at HF's init (0.16 at the tiny preset, 0.48 at
      SmolLM2-135M), which makes attention nearly uniform; the gain brings the logits to a spread of 2.
    """
    if name.endswith("norm.weight"):
        return norm_weight(rng, shape)
    weight = normal(rng, shape, config.initializer_range)
    if name.endswith(("q_proj.weight", "k_proj.weight")):
        spread = config.initializer_range * config.hidden_size**0.5
        weight *= np.float32(qk_gain(spread, spread))
    return weight


def make_inputs(config: Config, workloads: Workloads, workload: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Token ids uniform over the vocabulary, a quarter of them repeating an earlier token of the row (as
    text does; see `with_repeats`); the same prompt for all three workloads."""
    prompt = with_repeats(rng, rng.integers(0, config.vocab_size, (workloads.batch, workloads.prompt_len), dtype=np.int64))
    if workload == "latency":
        next_token = rng.integers(0, config.vocab_size, (workloads.batch, 1), dtype=np.int64)
        return {"input_ids": prompt, "next_input_ids": next_token}
    return {"input_ids": prompt}


def reference_loss(config: Config, workloads: Workloads, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> float:
    """Causal-LM cross-entropy from all-position logits, shifting the labels exactly once."""
    logits, ids = outputs["logits"], inputs["input_ids"]
    return cross_entropy(logits[:, :-1], ids[:, 1:])


def _forward_flops(config: Config, batch: int, new_tokens: int, context: int) -> float:
    """2 FLOPs per multiply-add over `new_tokens` tokens attending to `context` keys each.

    Attention is counted over the full score matrix (what dense kernels compute, also for the causal
    prefill), as in PaLM's appendix B; norms, RoPE and softmax are left out (< 1 %).
    """
    h, d, i = config.hidden_size, config.kv_dim_per_head, config.intermediate_size
    q, kv = config.num_attention_heads * d, config.num_key_value_heads * d
    projections = h * q + 2 * h * kv + q * h + 3 * h * i
    attention = 2 * config.num_attention_heads * d * context  # QK^T and PV, per new token
    per_token = config.num_hidden_layers * (projections + attention) + h * config.vocab_size
    return 2.0 * batch * new_tokens * per_token


def flops(config: Config, workloads: Workloads, workload: str) -> float:
    b, t = workloads.batch, workloads.prompt_len
    if workload == "inference":
        return _forward_flops(config, b, t, t)
    if workload == "latency":
        return _forward_flops(config, b, 1, t + 1)
    # backward costs twice the forward (grad w.r.t. activations and w.r.t. weights)
    return 3.0 * _forward_flops(config, b, t, t)


def work_items(workloads: Workloads, workload: str) -> tuple[float, str]:
    if workload == "latency":
        return workloads.batch, "tokens"
    return workloads.batch * workloads.prompt_len, "tokens"

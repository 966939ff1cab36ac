"""LLaMA in MLX: transformers' LlamaForCausalLM as an `mlx.nn` module tree with the official names.

Follows transformers `models/llama/modeling_llama.py` (and mlx-lm's `models/llama.py`, which is the
same model): RMSNorm, rotate-half RoPE (`nn.RoPE(traditional=False)`) with the spec's rope_theta,
grouped-query attention through `mx.fast.scaled_dot_product_attention` (K/V heads not repeated), SwiGLU
MLP, tied or separate lm_head. No deviations.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.mlx.common import forward_step, load, to_device, training_step
from arena.frameworks.mlx.layers import LlamaMLP, attention, cross_entropy, split_heads

KV = tuple[mx.array, mx.array]  # keys, values [batch, kv_heads, positions, head_dim]


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        d = c.kv_dim_per_head
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.q_proj = nn.Linear(c.hidden_size, self.heads * d, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, self.kv_heads * d, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, self.kv_heads * d, bias=False)
        self.o_proj = nn.Linear(self.heads * d, c.hidden_size, bias=False)
        self.rope = nn.RoPE(d, traditional=False, base=c.rope_theta)

    def __call__(self, x: mx.array, offset: int, past: KV | None) -> tuple[mx.array, KV]:
        q = self.rope(split_heads(self.q_proj(x), self.heads), offset=offset)
        k = self.rope(split_heads(self.k_proj(x), self.kv_heads), offset=offset)
        v = split_heads(self.v_proj(x), self.kv_heads)
        if past is not None:  # a decode step: the new token's K/V join the cached ones
            k, v = mx.concatenate([past[0], k], axis=2), mx.concatenate([past[1], v], axis=2)
        mask = "causal" if x.shape[1] > 1 else None  # one new token sees the whole cache
        return self.o_proj(attention(q, k, v, mask=mask)), (k, v)


class DecoderLayer(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = LlamaMLP(c.hidden_size, c.intermediate_size)
        self.input_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.post_attention_layernorm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)

    def __call__(self, x: mx.array, offset: int, past: KV | None) -> tuple[mx.array, KV]:
        h, kv = self.self_attn(self.input_layernorm(x), offset, past)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class LlamaModel(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = [DecoderLayer(c) for _ in range(c.num_hidden_layers)]
        self.norm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)


class LlamaForCausalLM(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.tied = c.tie_word_embeddings
        self.model = LlamaModel(c)
        if not self.tied:
            self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def __call__(self, ids: mx.array, offset: int = 0, cache: list[KV] | None = None) -> tuple[mx.array, list[KV]]:
        """Logits [batch, tokens, vocab] for `ids` at positions offset.., after `cache` if given; and
        every layer's K/V including the new tokens."""
        x = self.model.embed_tokens(ids)
        new_cache = []
        for i, layer in enumerate(self.model.layers):
            x, kv = layer(x, offset, cache[i] if cache else None)
            new_cache.append(kv)
        x = self.model.norm(x)
        logits = self.model.embed_tokens.as_linear(x) if self.tied else self.lm_head(x)
        return logits, new_cache


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> LlamaForCausalLM:
    return load(LlamaForCausalLM(config), weights, ctx)


def inference(model: LlamaForCausalLM, inputs: dict[str, np.ndarray]) -> Step:
    return forward_step(lambda ids: {"logits": model(ids)[0]}, to_device(inputs, model.ctx)["input_ids"])


def latency(model: LlamaForCausalLM, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The prompt's cache is filled once (untimed); every timed call
    decodes the next token against that same cache (MLX arrays are immutable, so nothing to crop)."""
    tensors = to_device(inputs, model.ctx)
    prompt_len = tensors["input_ids"].shape[1]
    _, cache = model(tensors["input_ids"])
    mx.eval(cache)
    return forward_step(lambda token, cache: {"logits": model(token, prompt_len, cache)[0]}, tensors["next_input_ids"], cache)


def training(model: LlamaForCausalLM, inputs: dict[str, np.ndarray]) -> Step:
    """Causal-LM cross-entropy: logits[:, t] predicts input_ids[:, t + 1] (labels shifted once)."""
    ids = to_device(inputs, model.ctx)["input_ids"]

    def loss(ids: mx.array) -> mx.array:
        logits, _ = model(ids)
        return cross_entropy(logits[:, :-1], ids[:, 1:])

    return training_step(model, loss, ids)

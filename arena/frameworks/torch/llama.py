"""LLaMA in PyTorch: transformers' LlamaForCausalLM, built from the spec's config, loaded strictly.

Official implementation: transformers `models/llama/modeling_llama.py`. No deviations: this *is* the
official module. Attention is SDPA (transformers' default); the KV cache is transformers' DynamicCache.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from arena.families.llama import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.torch.common import Model, forward_step, load_strict, to_device, torch_dtype, training_step


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    hf_config = LlamaConfig(**config.model_dump(), attn_implementation="sdpa")
    module = LlamaForCausalLM(hf_config)
    load_strict(module, weights, tied={"lm_head.weight": "model.embed_tokens.weight"} if config.tie_word_embeddings else None)
    module.to(torch.device(ctx.device), torch_dtype(ctx)).eval()
    return Model(module, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    ids = to_device(inputs, model.device, model.dtype)["input_ids"]
    return forward_step(lambda: {"logits": model.forward(input_ids=ids, use_cache=False).logits}, model.device, model.ctx)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decode step after the prompt. The cache is filled once (untimed) and cropped back to the
    prompt after every step, so each timed call sees the same `prompt_len`-token cache."""
    tensors = to_device(inputs, model.device, model.dtype)
    prompt_len = tensors["input_ids"].shape[1]
    with torch.inference_mode():
        cache = model.module(input_ids=tensors["input_ids"], use_cache=True).cache
    position = torch.full_like(tensors["next_input_ids"], prompt_len)

    def decode():
        logits = model.forward(input_ids=tensors["next_input_ids"], cache=cache, position_ids=position, use_cache=True).logits
        cache.crop(-1)  # drop the decoded token again
        return {"logits": logits}

    return forward_step(decode, model.device, model.ctx)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Causal-LM cross-entropy; HF shifts `labels` once internally, so labels are the input ids."""
    ids = to_device(inputs, model.device, model.dtype)["input_ids"]
    model.module.train()
    return training_step(model.module, lambda: model.forward(input_ids=ids, labels=ids, use_cache=False).loss, model.device, model.ctx)

"""Whisper in PyTorch: transformers' WhisperForConditionalGeneration, built from the spec's config,
loaded strictly.

Official implementation: transformers `models/whisper/modeling_whisper.py`. No deviations: this *is* the
official module. Attention is SDPA (transformers' default); the decoder's KV cache is transformers'
EncoderDecoderCache (self-attention DynamicCache + cross-attention DynamicCache).
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration

from arena.families.whisper import EMBED_TOKENS, Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.torch.common import Model, forward_step, load_strict, to_device, torch_dtype, training_step


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    hf_config = WhisperConfig(**config.model_dump(), tie_word_embeddings=True, attn_implementation="sdpa")
    module = WhisperForConditionalGeneration(hf_config)
    load_strict(module, weights, tied={"proj_out.weight": EMBED_TOKENS})
    module.to(torch.device(ctx.device), torch_dtype(ctx)).eval()
    return Model(module, ctx)


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    tensors = to_device(inputs, model.device, model.dtype)

    def run() -> dict[str, torch.Tensor]:
        out = model.forward(input_features=tensors["input_features"], decoder_input_ids=tensors["decoder_input_ids"], use_cache=False)
        return {"encoder_hidden_states": out.encoder_last_hidden_state, "logits": out.logits}

    return forward_step(run, model.device, model.ctx)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """One decoder step after the prefix. Encoder output, cross-attention K/V and the prefix's
    self-attention cache are computed once (untimed); after every step the self-attention cache is
    cropped back to the prefix (crop only touches it), so each timed call sees the same cache."""
    tensors = to_device(inputs, model.device, model.dtype)
    prefix_len = tensors["decoder_input_ids"].shape[1]
    with torch.inference_mode():
        out = model.module(input_features=tensors["input_features"], decoder_input_ids=tensors["decoder_input_ids"], use_cache=True)
    cache = out.cache  # EncoderDecoderCache; is_updated is set, so cross-attention reuses its cached K/V
    encoder_outputs = (out.encoder_last_hidden_state,)  # the encoder is not run again
    position = torch.full_like(tensors["next_decoder_input_ids"], prefix_len)

    def decode() -> dict[str, torch.Tensor]:
        logits = model.forward(
            encoder_outputs=encoder_outputs,
            decoder_input_ids=tensors["next_decoder_input_ids"],
            decoder_position_ids=position,
            cache=cache,
            use_cache=True,
        ).logits
        cache.crop(-1)  # drop the decoded token from the self-attention cache again
        return {"logits": logits}

    return forward_step(decode, model.device, model.ctx)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Decoder cross-entropy through decoder and encoder. decoder_input_ids and labels are both given
    (labels = tokens[:, 1:], already shifted once), so HF does not shift again; its loss is then the
    mean CE of logits against labels. The encoder's sinusoid table has requires_grad=False."""
    tensors = to_device(inputs, model.device, model.dtype)
    model.module.train()  # dropout and layerdrop are 0 in the config: train mode changes nothing numerically

    def loss() -> torch.Tensor:
        return model.forward(
            input_features=tensors["input_features"],
            decoder_input_ids=tensors["decoder_input_ids"],
            labels=tensors["labels"],
            use_cache=False,
        ).loss

    return training_step(model.module, loss, model.device, model.ctx)

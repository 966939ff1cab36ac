"""SD UNet in PyTorch: diffusers' UNet2DConditionModel, built from the spec's config, loaded strictly.

Official implementation: diffusers `models/unets/unet_2d_condition.py`. No deviations: this *is* the
official module. The config fields are diffusers' own, so they pass straight to the constructor
(everything the family does not expose keeps diffusers' default, which is SD's value). Attention runs
through diffusers' default AttnProcessor2_0 (torch SDPA).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from arena.families.unet2d_condition import Config
from arena.frameworks.contract import BuildContext, Step
from arena.frameworks.torch.common import Model, forward_step, load_strict, to_device, torch_dtype, training_step


def make_module(config: Config) -> UNet2DConditionModel:
    """The official module with PyTorch's default init (weights are replaced by `load_strict`)."""
    return UNet2DConditionModel(**config.model_dump())


def build(config: Config, weights: dict[str, np.ndarray], ctx: BuildContext) -> Model:
    module = make_module(config)
    load_strict(module, weights)
    # nn.Module.to, not ModelMixin.to: the latter only adds a warning about `_keep_in_fp32_modules`,
    # which is empty for this model.
    torch.nn.Module.to(module, torch.device(ctx.device), torch_dtype(ctx)).eval()
    return Model(module, ctx)


def _unet(model: Model, t: dict[str, torch.Tensor]) -> torch.Tensor:
    # sample [B, C, H, W], timestep [B] int64, encoder_hidden_states [B, M, D] -> predicted noise [B, C, H, W]
    return model.forward(t["sample"], t["timestep"], encoder_hidden_states=t["encoder_hidden_states"], return_dict=False)[0]


def inference(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    tensors = to_device(inputs, model.device, model.dtype)
    return forward_step(lambda: {"sample": _unet(model, tensors)}, model.device, model.ctx)


def latency(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """The same call as inference at latency_batch (the inputs already have that batch)."""
    return inference(model, inputs)


def training(model: Model, inputs: dict[str, np.ndarray]) -> Step:
    """Noise-prediction MSE, mean over all elements. Like diffusers' train_text_to_image.py, the loss is
    taken in float32 when the cell runs in half precision."""
    tensors = to_device(inputs, model.device, model.dtype)
    model.module.train()  # dropout is 0 and GroupNorm/LayerNorm have no train mode: same math as eval

    def loss() -> torch.Tensor:
        pred = _unet(model, tensors)
        if pred.dtype in (torch.float16, torch.bfloat16):
            return F.mse_loss(pred.float(), tensors["noise"].float())
        return F.mse_loss(pred, tensors["noise"])

    return training_step(model.module, loss, model.device, model.ctx)

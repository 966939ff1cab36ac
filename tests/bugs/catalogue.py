"""The injected bugs: realistic mistakes of an implementation, each of which the verdict must catch.

A bug is one entry of BUGS: what it is, the check(s) expected to fail, and per family how it is injected
into a real implementation (the PyTorch reference's official modules unless `frameworks` names others):

    config   the family config the framework is built from (RoPE theta ÷ 10)
    weights  the weights dict that reaches the framework, before it converts or loads them (a converter
             writing a tensor into the wrong slot, a loader swapping q and k)
    process  a torch function replaced for the whole cell process before the build (tanh GELU, the
             attention scale, a dropped causal mask: the implementation's call of it is the bug)
    model    the built torch model, patched in place (a module attribute, a forward hook, a forward
             that ignores its bias, a training step's labels or loss)

Nothing here imports torch at import time: the adapter package and the catch-table command import this
file in processes that run no framework. The patches import it when a cell's child applies them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from arena.families import known_families

FAMILIES = tuple(known_families())
# A bug of the forward computation moves outputs, the loss or the gradients (at tiny sizes attention is
# nearly uniform, so a changed score scale may show in the gradients alone): any check may catch it.
FORWARD = ("inference/", "latency/", "training/")


@dataclass(frozen=True)
class Injection:
    config: Callable[[Any], Any] | None = None
    weights: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None
    process: Callable[[], None] | None = None
    model: Callable[[Any], None] | None = None

    @property
    def kind(self) -> str:
        """Where the bug goes in, as the catch table names it."""
        return next(k for k in ("config", "weights", "process", "model") if getattr(self, k))


@dataclass(frozen=True)
class Bug:
    name: str  # no dash: the adapter's variant is `<name>-<framework>`
    what: str
    caught_by: tuple[str, ...]  # check-name prefixes; at least one of them must fail
    families: dict[str, Injection]
    frameworks: tuple[str, ...] = ("torch",)


# --- the injections ------------------------------------------------------------------------------


def module(model, name: str):
    """A submodule of the built torch model by its official dotted name (an error names what is missing)."""
    return model.module.get_submodule(name)


def scale_norm_eps(model) -> None:
    """Every normalisation's epsilon ×0.1: RMSNorm (transformers' `variance_epsilon`), LayerNorm,
    GroupNorm and BatchNorm (`eps`, read at every call)."""
    import torch

    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)
    for m in model.module.modules():
        if hasattr(m, "variance_epsilon"):
            m.variance_epsilon *= 0.1
        elif isinstance(m, norms):
            m.eps *= 0.1


def config_divided(field_name: str, by: float) -> Callable[[Any], Any]:
    return lambda config: config.model_copy(update={field_name: getattr(config, field_name) / by})


def tanh_gelu() -> None:
    """F.gelu always takes the tanh approximation. Installed before the build: transformers' GELU
    module keeps the function it found at construction."""
    import torch.nn.functional as F  # noqa: N812

    exact = F.gelu
    F.gelu = lambda x, approximate="none": exact(x, approximate="tanh")


def patch_sdpa(wrap: Callable[[Callable], Callable]) -> Callable[[], None]:
    """Replace torch's scaled_dot_product_attention, which transformers' and diffusers' attention call."""

    def install() -> None:
        import torch.nn.functional as F  # noqa: N812

        F.scaled_dot_product_attention = wrap(F.scaled_dot_product_attention)

    return install


def scaled_sdpa(factor: float) -> Callable[[Callable], Callable]:
    def wrap(sdpa):
        def scaled(query, key, value, *args, scale=None, **kwargs):
            default = query.shape[-1] ** -0.5
            return sdpa(query, key, value, *args, scale=(default if scale is None else scale) * factor, **kwargs)

        return scaled

    return wrap


def unmasked_sdpa(sdpa):
    """Attention with no mask at all: neither a mask tensor nor is_causal (no input here has padding)."""

    def unmasked(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        return sdpa(query, key, value, None, dropout_p, False, **kwargs)

    return unmasked


def scaled_eager(factor: float) -> Callable[[Callable], Callable]:
    """lerobot's eager attention with its scores ×factor (the query scaled before its d**-0.5)."""
    return lambda attend: lambda mask, q, k, v, num_heads: attend(mask, q * factor, k, v, num_heads)


def everything_visible(masks):
    """The action tokens' mask without its causal part: each sees the whole chunk."""

    def unmasked(*args):
        mask, positions = masks(*args)
        return mask.new_ones(mask.shape), positions

    return unmasked


def patch_vla(name: str, wrap: Callable[[Callable], Callable]) -> Callable[[], None]:
    """Replace one of the lerobot functions the torch SmolVLA expert calls (looked up at every call)."""

    def install() -> None:
        from arena.frameworks.torch import vla_expert

        setattr(vla_expert, name, wrap(getattr(vla_expert, name)))

    return install


def swapped(a: str, b: str) -> Callable[[dict], dict]:
    """Two tensors swapped in the weights dict; where one has fewer rows (k_proj beside q_proj under
    grouped-query attention) it swaps with the other's leading rows."""

    def swap(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x, y = weights[a].copy(), weights[b].copy()
        if x.shape[1:] != y.shape[1:]:
            raise ValueError(f"{a} {x.shape} and {b} {y.shape} have no rows of the same shape")
        n = min(len(x), len(y))
        x[:n], y[:n] = weights[b][:n], weights[a][:n]
        return weights | {a: x, b: y}

    return swap


def labels_shifted_again(model) -> None:
    """The labels the model's forward gets are shifted one more position (the last becomes -100, which
    the loss ignores), on top of the shift the model or the data already makes."""
    forward = model.forward

    def shifted(*args, labels=None, **kwargs):
        if labels is not None:
            labels = labels.roll(-1, dims=1)
            labels[:, -1] = -100
        return forward(*args, labels=labels, **kwargs)

    model.forward = shifted


def batchnorm_modules(model) -> list:
    import torch

    return [m for m in model.module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def eval_batchnorm_in_training(model) -> None:
    """The torch ResNet model sets the module's mode before every call; BatchNorm stays in eval mode
    (running statistics) whatever the mode asked."""
    bns = batchnorm_modules(model)

    def set_training(training: bool) -> None:
        model.module.train(training)
        for bn in bns:
            bn.eval()

    model.set_training = set_training


def detached_batchnorm_statistics(model) -> None:
    """Train-mode BatchNorm normalises with the batch mean and variance as constants: the forward is
    the same, the backward misses the statistics' own gradient."""
    import torch.nn.functional as F  # noqa: N812

    for bn in batchnorm_modules(model):

        def forward(x, bn=bn, plain=bn.forward):
            if not bn.training:
                return plain(x)
            mean, var = x.mean((0, 2, 3)).detach(), x.var((0, 2, 3), unbiased=False).detach()
            return F.batch_norm(x, mean, var, bn.weight, bn.bias, training=False, eps=bn.eps)

        bn.forward = forward


def dropped_bias(name: str) -> Callable[[Any], None]:
    """One Linear computes without its bias. The parameter stays and its gradient comes back zero, as
    autodiff returns for a parameter the computation does not use (JAX, or a torch `0 * bias`)."""

    def inject(model) -> None:
        import torch.nn.functional as F  # noqa: N812

        linear = module(model, name)
        linear.forward = lambda x: F.linear(x, linear.weight) + 0 * linear.bias

    return inject


def scaled_residual(skip_from: str, added_by: str, factor: float = 0.99) -> Callable[[Any], None]:
    """One residual connection carries factor·x instead of x: x is read where the skip starts (the input
    of `skip_from`) and (1 - factor)·x is taken off the output of `added_by`, the module whose output is
    added to it."""

    def inject(model) -> None:
        skip = {}

        def read(_, args):
            skip["x"] = args[0]

        module(model, skip_from).register_forward_pre_hook(read)
        module(model, added_by).register_forward_hook(lambda _, args, out: out - (1 - factor) * skip["x"])

    return inject


def scaled_shortcut(name: str, factor: float = 0.99) -> Callable[[Any], None]:
    """A residual that is a module's output (a projection shortcut) scaled by factor."""
    return lambda model: module(model, name).register_forward_hook(lambda _, args, out: out * factor)


def flip_sin_to_cos(model) -> None:
    """diffusers' timestep projection puts sin first where SD puts cos first."""
    time_proj = module(model, "time_proj")
    time_proj.flip_sin_to_cos = not time_proj.flip_sin_to_cos


def cos_then_sin(embedding):
    """lerobot's time embedding is [sin | cos]; the bug's is [cos | sin]."""

    def swapped(time, dimension, min_period, max_period):
        return embedding(time, dimension, min_period, max_period).roll(dimension // 2, dims=1)

    return swapped


def negated_flow_target(model) -> None:
    """The flow-matching loss regresses the velocity on actions - noise instead of noise - actions
    (lerobot VLAFlowMatching.forward, restated with the sign flipped)."""
    import torch.nn.functional as F  # noqa: N812

    flow = model.module.model

    def loss(prefix_keys, prefix_values, mask, positions, noise, actions, time):
        t = time[:, None, None]
        x_t = (t * noise + (1 - t) * actions).to(noise.dtype)
        v_t = flow.denoise_step(prefix_keys, prefix_values, mask, positions, x_t, time)
        return F.mse_loss(actions - noise, v_t, reduction="none").mean()  # the bug: u_t = noise - actions

    model.loss = loss


# --- the catalogue -------------------------------------------------------------------------------

VLA_LAYER = "model.vlm_with_expert.lm_expert.layers.0"  # a self-attention layer (self_attn_every_n_layers)
UNET_ATTN = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"

BUGS = {bug.name: bug for bug in [
    Bug("norm_eps_tenth", "every RMSNorm / LayerNorm / GroupNorm / BatchNorm epsilon ×0.1", FORWARD,
        {family: Injection(model=scale_norm_eps) for family in FAMILIES}),
    Bug("rope_theta_tenth", "RoPE theta ÷10 (the config's rope_theta / rope_max_wavelength)", FORWARD, {
        "llama": Injection(config=config_divided("rope_theta", 10)),
        "vla_expert": Injection(config=config_divided("rope_max_wavelength", 10)),
    }),
    Bug("tanh_gelu", "GELU as its tanh approximation instead of the exact erf form", FORWARD,
        {family: Injection(process=tanh_gelu) for family in ("whisper", "unet2d_condition")}),
    Bug("attention_scale", "attention scores scaled by 1.05 / sqrt(head_dim)", FORWARD, {
        **{family: Injection(process=patch_sdpa(scaled_sdpa(1.05))) for family in ("llama", "whisper", "unet2d_condition")},
        "vla_expert": Injection(process=patch_vla("eager_attention", scaled_eager(1.05))),
    }),
    Bug("no_causal_mask", "self-attention without its causal mask (the decoder's; the action chunk's)", FORWARD, {
        "llama": Injection(process=patch_sdpa(unmasked_sdpa)),
        "whisper": Injection(process=patch_sdpa(unmasked_sdpa)),
        "vla_expert": Injection(process=patch_vla("suffix_mask_and_positions", everything_visible)),
    }),
    Bug("qk_swapped", "one layer's query and key projections loaded into each other's place "
        "(grouped-query attention: k_proj with q_proj's leading rows, the part of the same shape)", FORWARD, {
        family: Injection(weights=swapped(f"{layer}.{q}.weight", f"{layer}.{k}.weight")) for family, layer, q, k in [
            ("llama", "model.layers.0.self_attn", "q_proj", "k_proj"),
            ("whisper", "model.encoder.layers.0.self_attn", "q_proj", "k_proj"),
            ("unet2d_condition", UNET_ATTN, "to_q", "to_k"),
            ("vla_expert", f"{VLA_LAYER}.self_attn", "q_proj", "k_proj"),
        ]
    }),
    Bug("labels_shifted_twice", "the training labels shifted once more on top of the shift already made", ("training/loss",),
        {family: Injection(model=labels_shifted_again) for family in ("llama", "whisper")}),
    Bug("bn_eval_in_training", "BatchNorm left in eval mode (running statistics) in the training step", ("training/loss",),
        {"resnet": Injection(model=eval_batchnorm_in_training)}),
    Bug("bn_stats_detached", "train-mode BatchNorm's batch statistics detached from the backward", ("training/grads",),
        {"resnet": Injection(model=detached_batchnorm_statistics)}),
    Bug("bias_dropped", "one Linear layer's bias left out of its computation", ("training/grads",), {
        "whisper": Injection(model=dropped_bias("model.encoder.layers.0.fc1")),
        "resnet": Injection(model=dropped_bias("fc")),
        "unet2d_condition": Injection(model=dropped_bias("time_embedding.linear_1")),
        "vla_expert": Injection(model=dropped_bias("model.action_in_proj")),
    }),
    Bug("residual_scaled", "one residual connection scaled by 0.99", FORWARD, {
        "llama": Injection(model=scaled_residual("model.layers.0.input_layernorm", "model.layers.0.self_attn.o_proj")),
        "whisper": Injection(model=scaled_residual("model.encoder.layers.0.self_attn_layer_norm", "model.encoder.layers.0.self_attn.out_proj")),
        "resnet": Injection(model=scaled_shortcut("layer1.0.downsample")),
        "unet2d_condition": Injection(model=scaled_residual("down_blocks.0.resnets.0.norm1", "down_blocks.0.resnets.0.conv2")),
        "vla_expert": Injection(model=scaled_residual(f"{VLA_LAYER}.input_layernorm", f"{VLA_LAYER}.self_attn.o_proj")),
    }),
    Bug("timestep_sin_cos_swapped", "the sinusoidal timestep embedding's sin and cos halves swapped", FORWARD, {
        "unet2d_condition": Injection(model=flip_sin_to_cos),
        "vla_expert": Injection(process=patch_vla("create_sinusoidal_pos_embedding", cos_then_sin)),
    }),
    Bug("flow_target_negated", "the flow-matching target's sign flipped (actions - noise)", ("training/loss",),
        {"vla_expert": Injection(model=negated_flow_target)}),
    Bug("converter_slot_swap", "the conversion (ONNX export, GGUF / GGML file) writes two same-shaped tensors "
        "into each other's slot", FORWARD, {
        family: Injection(weights=swapped(a, b)) for family, a, b in [
            ("llama", "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"),
            ("whisper", "model.decoder.layers.0.self_attn.v_proj.weight", "model.decoder.layers.0.self_attn.out_proj.weight"),
            ("resnet", "bn1.weight", "bn1.bias"),
            ("unet2d_condition", f"{UNET_ATTN}.to_v.weight", f"{UNET_ATTN}.to_out.0.weight"),
            ("vla_expert", f"{VLA_LAYER}.mlp.gate_proj.weight", f"{VLA_LAYER}.mlp.up_proj.weight"),
        ]
    }, frameworks=("onnxruntime", "ggml")),
]}

# Rows the verdict does not catch (yet), by `<bug>-<framework>/<family>/<preset>`, each with why. The
# test fails if one of them is caught after all: the entry must then go.
UNCAUGHT: dict[str, str] = {}

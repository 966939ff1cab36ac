"""What the torch family files share: tensors in and out, the device sync, compile, the training step."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from arena.frameworks.contract import DTYPE_NAMES, BuildContext, Step


def torch_dtype(ctx: BuildContext) -> torch.dtype:
    return getattr(torch, DTYPE_NAMES[ctx.dtype])


class Model:
    """A built model: the torch module, where and in which dtype it runs, and its forward (compiled in
    the torch-compile variant). Family files subclass it where they need more."""

    def __init__(self, module: torch.nn.Module, ctx: BuildContext):
        self.module, self.ctx = module, ctx
        self.device, self.dtype = torch.device(ctx.device), torch_dtype(ctx)
        self.forward = maybe_compile(module, ctx)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def to_device(arrays: dict[str, np.ndarray], device: torch.device, float_dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """numpy -> torch on the device; floating inputs take the cell's dtype, integers stay integers."""
    out = {}
    for name, array in arrays.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(device)
        out[name] = tensor.to(float_dtype) if tensor.is_floating_point() else tensor
    return out


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """float32 for every cell dtype; float64 stays (arena.calibrate's fp64 run is the truth it measures)."""
    return tensor.detach().to("cpu", torch.promote_types(tensor.dtype, torch.float32)).numpy()


def load_strict(module: torch.nn.Module, weights: dict[str, np.ndarray], tied: dict[str, str] | None = None) -> None:
    """Load official-named weights with strict key checking; `tied` maps a derived key to its source."""
    state = {name: torch.from_numpy(array) for name, array in weights.items()}
    for derived, source in (tied or {}).items():
        state[derived] = state[source]
    module.load_state_dict(state, strict=True)


def maybe_compile(fn: Callable, ctx: BuildContext) -> Callable:
    return torch.compile(fn) if ctx.variant == "compile" else fn


def compile_watch(ctx: BuildContext) -> Callable[[], Callable[[], list[str]]]:
    """A Step.watch that reports any dynamo compilation during the timed calls."""
    if ctx.variant != "compile":
        return lambda: lambda: []
    from torch._dynamo.utils import counters

    def watch() -> Callable[[], list[str]]:
        graphs_before = counters["stats"]["unique_graphs"]

        def problems() -> list[str]:
            extra = counters["stats"]["unique_graphs"] - graphs_before
            return [f"torch.compile produced {extra} new graph(s) during the timed calls"] if extra else []

        return problems

    return watch


def forward_step(fn: Callable[[], dict[str, torch.Tensor]], device: torch.device, ctx: BuildContext) -> Step:
    """An inference-mode step: `fn` returns named output tensors."""

    def run():
        with torch.inference_mode():
            out = fn()
        sync(device)
        return out

    return Step(run=run, fetch=lambda out: {k: to_numpy(v) for k, v in out.items()}, watch=compile_watch(ctx))


def training_step(
    module: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], device: torch.device, ctx: BuildContext,
    outputs: Callable[[], dict[str, torch.Tensor]] = lambda: {},
) -> Step:
    """Forward + loss + backward as one unit; gradients come back under the official parameter names,
    with what `outputs` reads from the module after the last call (ResNet: its BatchNorm statistics)."""
    params = dict(module.named_parameters())

    def run():
        for p in params.values():
            p.grad = None
        loss = loss_fn()
        loss.backward()
        sync(device)
        return loss.detach()

    def fetch(loss: torch.Tensor) -> dict[str, np.ndarray]:
        grads = {f"grad/{name}": to_numpy(p.grad) for name, p in params.items() if p.grad is not None}
        missing = [name for name, p in params.items() if p.requires_grad and p.grad is None]
        if missing:
            raise RuntimeError(f"no gradient reached {len(missing)} parameters, e.g. {missing[:3]}")
        return {"loss": to_numpy(loss)} | grads | {name: to_numpy(t) for name, t in outputs().items()}

    return Step(run=run, fetch=fetch, watch=compile_watch(ctx))


def to_float64(model: Model) -> Model:
    """The same model in float64, for measuring how far fp32 is from the truth (`arena.calibrate`; not a
    cell dtype). transformers' LlamaRMSNorm upcasts to float32 whatever the input, which would cap a
    float64 run at float32 accuracy; here the norms compute in the input dtype."""
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    model.module.double()
    for norm in model.module.modules():
        if isinstance(norm, LlamaRMSNorm):
            norm.forward = _rms_norm_in_input_dtype.__get__(norm)
    model.dtype = torch.float64
    return model


def _rms_norm_in_input_dtype(self, x: torch.Tensor) -> torch.Tensor:
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

"""How far is the reference from the truth? `python -m arena.calibrate MODEL [PRESET ...]`

Runs the PyTorch reference once in fp32 and once in fp64 on the same weights and inputs as every cell
(in this process, on the CPU, no timing) and prints the differences that a spec's fp32 tolerances are
calibrated on: about 10x each (`Fp64Difference` in arena/specs/schema.py), written next to them in the
spec. Where a difference exceeds the spec's tolerance, or sits within 3x of it, that is said.

Official modules upcast with `.float()` in places (HF's loss functions, the torch adapters' losses for
half-precision cells), which would cap the float64 run at float32 accuracy; during the fp64 run
`Tensor.float` therefore keeps float64 (and LlamaRMSNorm computes in its input dtype, see
`to_float64`).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from arena import weights
from arena.families import load_family
from arena.families.base import WORKLOADS, rng_for
from arena.frameworks.contract import REFERENCE_FRAMEWORK, BuildContext
from arena.results.artifact import projections, sample_indices
from arena.specs import load_specs
from arena.specs.schema import Fp64Difference, ModelSpec


def measure(spec: ModelSpec, preset: str, tensors: dict[str, np.ndarray], threads: int) -> tuple[Fp64Difference, float]:
    """The fp32-vs-fp64 differences of the torch reference, and the largest |output| (for rtol).

    The fp32 run's outputs wait on disk while the fp64 one runs, and the fp64 gradients are compared
    one tensor at a time straight from the module: SD 1.5's 860 M parameters in float64 are 6.9 GB,
    their gradients as much again, and a second copy of either would not fit in 24 GiB."""
    with tempfile.TemporaryDirectory(prefix="arena-calibrate-") as scratch:
        folder = Path(scratch)
        for workload, named in run_reference(spec, preset, tensors, float64=False, threads=threads):
            for name, array in named:
                np.save(folder / _file_name(workload, name), array)
        output_max_abs = grad_norm_rel = grad_rel_l2 = grad_sample_rel_l2 = grad_projection_rel = loss_abs = largest = 0.0
        for workload, named in run_reference(spec, preset, tensors, float64=True, threads=threads):
            for name, truth in named:
                got, truth = np.load(folder / _file_name(workload, name), mmap_mode="r").astype(np.float64), np.asarray(truth, np.float64)
                if name == "loss":
                    loss_abs = float(abs(got - truth).max())
                elif name.startswith("grad/"):
                    norm = float(np.linalg.norm(truth))
                    if norm:
                        grad_norm_rel = max(grad_norm_rel, abs(float(np.linalg.norm(got)) - norm) / norm)
                        grad_rel_l2 = max(grad_rel_l2, float(np.linalg.norm(got - truth)) / norm)
                        param = name.removeprefix("grad/")
                        moved = projections(param, got.reshape(-1)) - projections(param, truth.reshape(-1))
                        grad_projection_rel = max(grad_projection_rel, float(np.max(np.abs(moved))) / norm)
                        sampled = sample_indices(param, truth.size)
                        got_s, truth_s = got.reshape(-1)[sampled], truth.reshape(-1)[sampled]
                        if np.linalg.norm(truth_s):
                            grad_sample_rel_l2 = max(grad_sample_rel_l2, float(np.linalg.norm(got_s - truth_s) / np.linalg.norm(truth_s)))
                else:
                    output_max_abs, largest = max(output_max_abs, float(np.abs(got - truth).max())), max(largest, float(np.abs(truth).max()))
    measured = Fp64Difference(output_max_abs=output_max_abs, loss_abs=loss_abs, grad_norm_rel=grad_norm_rel, grad_rel_l2=grad_rel_l2,
                              grad_sample_rel_l2=grad_sample_rel_l2, grad_projection_rel=grad_projection_rel)
    return measured, largest


def _file_name(workload: str, name: str) -> str:
    return f"{workload}--{name.replace('/', '--')}.npy"


def run_reference(spec: ModelSpec, preset: str, tensors: dict[str, np.ndarray], float64: bool, threads: int):
    """(workload, its (name, array) pairs) for one untimed call of each workload of the torch reference.
    Training's pairs come one at a time, each gradient leaving the module as it is handed out (the
    training step's fetch would copy every gradient at once)."""
    import torch

    from arena.frameworks.torch.common import to_float64

    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision("highest")
    family = load_family(spec.family)
    impl = importlib.import_module(f"arena.frameworks.torch.{spec.family}")
    config, sizes = spec.presets[preset].config, spec.presets[preset].workloads
    model = impl.build(config, tensors, BuildContext(device="cpu", dtype="fp32", threads=threads))
    model = to_float64(model) if float64 else model
    with _float_keeps_float64() if float64 else contextlib.nullcontext():
        for workload in WORKLOADS:
            inputs = family.make_inputs(config, sizes, workload, rng_for("inputs", spec.spec_hash(preset)))
            step = getattr(impl, workload)(model, inputs)
            value = step.run()
            yield workload, (iter(step.fetch(value).items()) if workload != "training" else _gradients(model.module, value))


def _gradients(module, loss):
    from arena.frameworks.torch.common import to_numpy

    yield "loss", to_numpy(loss)
    for name, parameter in module.named_parameters():
        if parameter.grad is not None:
            yield f"grad/{name}", to_numpy(parameter.grad)
            parameter.grad = None


@contextlib.contextmanager
def _float_keeps_float64():
    import torch

    original = torch.Tensor.float
    torch.Tensor.float = lambda self, *a, **k: self if self.dtype == torch.float64 else original(self, *a, **k)
    try:
        yield
    finally:
        torch.Tensor.float = original


def report(spec: ModelSpec, preset: str, measured: Fp64Difference) -> list[str]:
    """The measurement as the spec writes it, and how the spec's fp32 tolerances at this preset relate."""
    tol, _ = spec.tolerances_for(REFERENCE_FRAMEWORK, "fp32", preset)
    lines = [f"{spec.name} {preset}: fp64_difference: {{output_max_abs: {measured.output_max_abs:.2g}, loss_abs: {measured.loss_abs:.2g}, "
             f"grad_norm_rel: {measured.grad_norm_rel:.2g}, grad_rel_l2: {measured.grad_rel_l2:.2g}, grad_sample_rel_l2: {measured.grad_sample_rel_l2:.2g}, "
             f"grad_projection_rel: {measured.grad_projection_rel:.2g}}}"]
    for what, limit, value in (("output atol", tol.output.atol, measured.output_max_abs), ("loss atol", tol.loss.atol, measured.loss_abs),
                               ("grad norm_rtol", tol.grad.norm_rtol, measured.grad_norm_rel), ("grad sample_rel_l2", tol.grad.sample_rel_l2, max(measured.grad_rel_l2, measured.grad_sample_rel_l2 or 0.0)),
                               ("grad projection_rel", tol.grad.projection_limit, projection_measure(measured))):
        ratio = limit / value if value else float("inf")
        lines.append(f"  {what} {limit:g} = {ratio:.3g}x the measurement" + ("  <-- within 3x: too tight" if ratio < 3 else ""))
    return lines


def projection_measure(measured: Fp64Difference) -> float:
    """What projection_rel is calibrated on: the projections' own statistic where it was measured; before
    that, the whole tensors' rel L2 (which it exceeds by the largest |z|, so limits set on it were tight)."""
    return measured.grad_rel_l2 if measured.grad_projection_rel is None else measured.grad_projection_rel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m arena.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("presets", nargs="*", default=["tiny", "full"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache-dir", default="~/.cache/arena")
    args = parser.parse_args(argv)
    spec = load_specs(names=[args.model])[args.model]
    for preset in args.presets:
        tensors = weights.load(weights.materialize(spec, preset, Path(args.cache_dir).expanduser()).files)
        measured, largest = measure(spec, preset, tensors, args.threads)
        print("\n".join(report(spec, preset, measured)) + f"\n  largest |output| {largest:.3g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ExecuTorch conversion on a toy module, in this process (the five families run as cells in
test_conformance.py): a program made once and reused, its method computing what torch computes, and
every operator the XNNPACK partitioner did not take named in the model's settings. And why a device
other than XNNPACK's CPU is unavailable: the runtime's lack, or Arena's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("executorch")

import torch  # noqa: E402

from arena.frameworks import executorch as adapter  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.frameworks.executorch import common  # noqa: E402
from arena.frameworks.onnxruntime.export import Graph  # noqa: E402


class Toy(torch.nn.Module):
    """A linear layer, which XNNPACK takes, then a cumulative sum, which it has no kernel for."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).cumsum(-1)


def test_a_program_computes_what_torch_does_and_names_what_xnnpack_left_out(tmp_path):
    torch.manual_seed(0)
    toy = Toy().eval()
    x = np.random.default_rng(0).standard_normal((2, 8), dtype=np.float32)
    calls = []

    def methods(config, weights, inputs, threads):
        calls.append(threads)
        return [Graph("forward", toy, inputs["inference"], ("y",))]

    ctx = BuildContext(device="cpu", dtype="fp32", threads=1, convert_dir=str(tmp_path))
    model = common.build(methods, None, {}, ctx, {"inference": {"x": x}})
    again = common.build(methods, None, {}, ctx, {"inference": {"x": x}})

    assert calls == [1] and not model.conversion.cached and again.conversion.cached
    assert sorted(model.conversion.files) == [common.METHODS, common.PROGRAM]
    assert model.settings == {"not_delegated": {"forward": {"aten::cumsum": 1}}}
    step = model.step("forward", {"x": x}, returns=("y",))
    with torch.no_grad():
        expected = toy(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(step.fetch(step.run())["y"], expected, rtol=1e-5, atol=1e-6)


def test_a_device_without_its_delegate_says_whose_limit_it_is():
    cuda = adapter.probe(BuildContext(device="cuda", dtype="fp32", threads=1))
    assert not cuda.available and "this ExecuTorch runtime has no CudaBackend" in cuda.reason and "EXECUTORCH_BUILD_CUDA=ON" in cuda.reason
    # A runtime that has the delegate (the macOS wheel's MPS) is not used either: Arena lowers to XNNPACK only.
    assert "Arena lowers the programs with the XNNPACK partitioner only" in adapter.other_backend_reason("mps", ["XnnpackBackend", "MPSBackend"])
    assert "no delegate for device 'vulkan'" in adapter.other_backend_reason("vulkan", ["XnnpackBackend"])

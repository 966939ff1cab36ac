"""OpenVINO's fp32 path, without a cell: the IR keeps fp32 weights and an fp32 cell computes in f32 (the
CPU plugin's default is bf16 where the CPU has AVX512-BF16 or AMX, and save_model's is fp16 weights),
and a device OpenVINO does not find is unavailable with the reason."""

from __future__ import annotations

import numpy as np
import pytest

ov = pytest.importorskip("openvino")
onnx = pytest.importorskip("onnx")

from arena.frameworks import openvino as adapter  # noqa: E402
from arena.frameworks.contract import BuildContext  # noqa: E402
from arena.frameworks.openvino.convert import to_ir  # noqa: E402


def matmul_onnx(folder, weight: np.ndarray) -> None:
    """y = x @ weight, the weight an initializer, as the exporter writes one."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weight"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, weight.shape[1]])],
        [numpy_helper.from_array(weight, "weight")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), folder / "model.onnx")


def test_an_fp32_cell_runs_fp32_weights_in_f32(tmp_path):
    rng = np.random.default_rng(0)
    # Values that bf16 (8 bits of mantissa) and fp16 (11) both round by far more than f32 does.
    weight, x = (1 + rng.standard_normal((256, 64)) * 1e-3).astype(np.float32), rng.standard_normal((4, 256)).astype(np.float32)
    (tmp_path / "onnx").mkdir(), (tmp_path / "ir").mkdir()
    matmul_onnx(tmp_path / "onnx", weight)
    to_ir(tmp_path / "onnx", tmp_path / "ir")

    ctx = BuildContext(device="cpu", dtype="fp32", threads=2)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(tmp_path / "ir" / "model.xml"), "CPU", adapter.compile_config(ctx))
    y = compiled.create_infer_request().infer({"x": x})[0]
    exact = x.astype(np.float64) @ weight.astype(np.float64)
    assert np.abs(y - exact).max() < 1e-4 * np.abs(exact).max()
    assert adapter.effective_settings(compiled)["INFERENCE_PRECISION_HINT"] == "f32"


def test_the_probe_records_the_settings_the_plugin_applied():
    probe = adapter.probe(BuildContext(device="cpu", dtype="fp32", threads=2))
    assert probe.available, probe.reason
    effective = probe.settings["effective"]
    assert effective["INFERENCE_PRECISION_HINT"] == "f32" and effective["PERFORMANCE_HINT"] == "LATENCY"
    assert effective["INFERENCE_NUM_THREADS"] == "2" and effective["NUM_STREAMS"] == "1"


def test_a_device_openvino_does_not_find_is_unavailable_with_the_reason():
    found = {d.split(".")[0] for d in ov.Core().available_devices}
    missing = [device for device, name in adapter.DEVICES.items() if name not in found]
    if not missing:
        pytest.skip(f"OpenVINO finds every device it knows here: {sorted(found)}")
    probe = adapter.probe(BuildContext(device=missing[0], dtype="fp32", threads=2))
    assert not probe.available and f"no {adapter.DEVICES[missing[0]]} device" in probe.reason

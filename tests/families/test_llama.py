"""The llama family against transformers' LlamaForCausalLM, and its loss on a hand-computable case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from arena import weights
from arena.families import llama
from arena.families.base import rng_for
from arena.frameworks.contract import BuildContext
from arena.specs import load_specs

SPEC = load_specs(names=["smollm2-135m"])["smollm2-135m"]
CONFIG, WORKLOADS = SPEC.presets["tiny"].config, SPEC.presets["tiny"].workloads


@pytest.fixture(scope="module")
def impl():
    pytest.importorskip("torch")
    from arena.frameworks.torch import llama

    return llama


@pytest.fixture(scope="module")
def model(impl):
    """The tiny reference model, built once from the generated weights."""
    return impl.build(CONFIG, weights.generate(SPEC, "tiny"), BuildContext(device="cpu", dtype="fp32", threads=2))


def inputs_for(workload: str) -> dict[str, np.ndarray]:
    return llama.make_inputs(CONFIG, WORKLOADS, workload, rng_for("inputs"))


def test_causal_lm_loss_shifts_labels_exactly_once():
    """ids [0, 1, 2], vocab 3: position 0 must predict id 1, position 1 id 2; position 2 predicts nothing.

    logits[0] strongly favours 1 (10 vs 0): loss log(1 + 2e-10); logits[1] uniform: loss ln 3.
    logits[2] is garbage that a double shift or no shift would pick up.
    """
    logits = np.array([[[0.0, 10.0, 0.0], [0.0, 0.0, 0.0], [1000.0, -1000.0, 0.0]]])
    ids = np.array([[0, 1, 2]])
    expected = (math.log(1 + 2 * math.exp(-10)) + math.log(3)) / 2
    got = llama.reference_loss(None, None, {"input_ids": ids}, {"logits": logits})
    assert got == pytest.approx(expected, rel=1e-12)


def test_full_config_is_smollm2_135m():
    config = SPEC.presets["full"].config
    shapes = llama.parameter_shapes(config)
    assert sum(math.prod(s) for s in shapes.values()) == 134_515_008  # published parameter count (tied)
    assert "lm_head.weight" not in shapes


@pytest.mark.parametrize("preset", ["tiny", "full"])
def test_names_and_shapes_match_transformers(preset):
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    config = SPEC.presets[preset].config
    with torch.device("meta"):
        module = LlamaForCausalLM(LlamaConfig(**config.model_dump()))
    official = {n: tuple(t.shape) for n, t in module.state_dict().items() if n != "lm_head.weight"}
    assert llama.parameter_shapes(config) == official


def test_reference_training_loss_matches_numpy_and_is_about_ln_vocab(impl, model):
    inputs = inputs_for("inference")
    step = impl.inference(model, inputs)
    logits = step.fetch(step.run())
    step = impl.training(model, inputs_for("training"))
    loss = float(step.fetch(step.run())["loss"])
    assert loss == pytest.approx(llama.reference_loss(CONFIG, WORKLOADS, inputs, logits), rel=1e-5)
    assert abs(loss - math.log(CONFIG.vocab_size)) < 0.1, "an LM at init scores about ln(vocab)"


def test_decode_step_equals_the_last_position_of_a_longer_prefill(impl, model):
    """The KV-cache decode step computes what a full forward over prompt + token computes."""
    inputs = inputs_for("latency")
    step = impl.latency(model, inputs)
    decoded = step.fetch(step.run())["logits"]
    assert np.array_equal(decoded, step.fetch(step.run())["logits"]), "every timed call sees the same cache"
    longer = {"input_ids": np.concatenate([inputs["input_ids"], inputs["next_input_ids"]], axis=1)}
    full = impl.inference(model, longer)
    np.testing.assert_allclose(decoded[:, 0], full.fetch(full.run())["logits"][:, -1], atol=1e-5)


def test_flops_match_torch_flop_counter(model):
    """FlopCounterMode counts matmuls (2 per MAC), incl. SDPA, and nothing else: the same convention."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.module(input_ids=torch.from_numpy(inputs_for("inference")["input_ids"]), use_cache=False)
    assert llama.flops(CONFIG, WORKLOADS, "inference") == pytest.approx(counter.get_total_flops(), rel=0.01)

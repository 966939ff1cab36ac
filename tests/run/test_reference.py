"""A verdict does not depend on whether torch was in the same run: the reference runs on demand."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.mark.slow
def test_reference_is_computed_on_demand_and_cached(run_matrix, tmp_path):
    cache = tmp_path / "fresh-cache"
    results = run_matrix(["smollm2-135m"], ["tests.faults-plain", "tests.faults-perturb-torch"], cache_dir=cache)
    plain, perturbed = results["smollm2-135m:tests.faults-plain"], results["smollm2-135m:tests.faults-perturb-torch"]
    assert plain.correctness.verdict == "pass", plain.correctness.reason
    assert perturbed.correctness.verdict == "fail"
    assert plain.correctness.reference == perturbed.correctness.reference
    references = list((cache / "reference").glob("smollm2-135m-tiny-*.npz"))
    assert len(references) == 1, "one reference, computed once and reused"
    logits = next(c for c in plain.correctness.checks if c.name == "inference/logits")
    assert logits.figures["max_abs"] == 0.0, "the same implementation in another process is bit-identical"


@pytest.mark.slow
def test_official_model_loaded_by_hand_matches_the_reference_cell(run_matrix, tmp_path):
    """Independent of arena's adapter: transformers' own model, the weights file loaded strictly by
    hand, the runner's inputs — its logits equal what the reference cell stored."""
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from arena.families import llama
    from arena.families.base import rng_for
    from arena.specs import load_specs

    cache = tmp_path / "cache"
    result = run_matrix(["smollm2-135m"], ["torch"], cache_dir=cache)["smollm2-135m:torch"]
    assert result.correctness.verdict == "reference"
    spec = load_specs(names=["smollm2-135m"])["smollm2-135m"]
    preset = spec.presets["tiny"]
    (weights_file,) = cache.glob("weights/smollm2-135m-tiny-*/model.safetensors")
    state = load_file(str(weights_file))
    module = LlamaForCausalLM(LlamaConfig(**preset.config.model_dump())).eval()
    module.load_state_dict(state | {"lm_head.weight": state["model.embed_tokens.weight"]}, strict=True)
    inputs = llama.make_inputs(preset.config, preset.workloads, "inference", rng_for("inputs", result.spec_hash))
    with torch.no_grad():
        logits = module(input_ids=torch.from_numpy(inputs["input_ids"])).logits.numpy()
    (reference,) = cache.glob("reference/smollm2-135m-tiny-*.npz")
    np.testing.assert_allclose(logits, np.load(reference)["inference/logits"], rtol=0, atol=1e-5)

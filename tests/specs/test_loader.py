"""Spec validation: every shipped spec loads, and each kind of mistake names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from arena.calibrate import projection_measure
from arena.errors import ArenaError, SpecError
from arena.specs import load_spec, load_specs
from tests.conftest import REPO, SPEC_NAMES

LLAMA = REPO / "specs" / "models" / "smollm2-135m.yaml"


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_shipped_spec_loads_with_full_and_tiny(name):
    spec = load_spec(REPO / "specs" / "models" / f"{name}.yaml")
    assert {"full", "tiny"} <= set(spec.presets)
    assert spec.spec_hash("full") != spec.spec_hash("tiny")


def _broken(tmp_path: Path, edit, name: str = "smollm2-135m") -> Path:
    raw = yaml.safe_load(LLAMA.read_text())
    edit(raw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw) if isinstance(raw, dict) else raw)
    return path


def _set(path: str, value):
    def edit(raw):
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value

    return edit


def _delete(path: str):
    def edit(raw):
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        del node[last]

    return edit


MISTAKES = [
    # (edit, the field path the message must name, a phrase the message must contain)
    (_set("presets.full.config.num_key_value_heads", 4), "presets.full.config", "must divide num_attention_heads (9)"),
    (_set("presets.tiny.config.hidden_sise", 64), "presets.tiny.config.hidden_sise", "allowed: "),
    (_set("presets.full.config.hidden_size", "wide"), "presets.full.config.hidden_size", "valid integer"),
    (_set("presets.full.config.hidden_size", -5), "presets.full.config.hidden_size", "greater than 0"),
    (_delete("presets.tiny.config.vocab_size"), "presets.tiny.config.vocab_size", "required field is missing"),
    (_set("family", "lama"), "family", "Did you mean llama"),
    (_delete("family"), "family", "required"),
    (_set("colour", "red"), "colour", "unknown field; allowed: "),
    (_delete("presets.tiny"), "(top level)", "presets must include full, tiny"),
    (_set("timing.min_reps", 0), "timing.min_reps", "greater than or equal to 1"),
    (_set("timing.max_reps", 2), "timing", "max_reps (2) must be >= min_reps"),
    (_set("presets.full.workloads.prompt_len", 1), "presets.full.workloads.prompt_len", "greater than 1"),
    (_set("presets.full.workloads.seq_len", 128), "presets.full.workloads.seq_len", "allowed: batch, prompt_len"),
    (_set("weights", {"source": "local"}), "weights", "needs a path"),
    (_set("tolerances", {"fp64": {}}), "tolerances.fp64", "'fp32', 'fp16' or 'bf16'"),
    (_set("presets.full.config.hidden_act", "relu"), "presets.full.config.hidden_act", "'silu'"),
    (_set("output_tolerance_overrides", {"ggml": {"dtypes": {"fp32": {"atol": 1, "rtol": 0}}}}), "output_tolerance_overrides.ggml.why", "required"),
    (_set("output_tolerance_overrides", {"ggml": {"why": "short", "dtypes": {}}}), "output_tolerance_overrides.ggml.why", "at least 20"),
]


def test_a_framework_override_replaces_the_output_tolerance_only_and_says_why(tmp_path):
    why = "this runtime keeps its KV cache in fp16 whatever the cell's dtype"
    loose = {"atol": 0.01, "rtol": 0.01, "min_cosine": 0.999}
    spec = load_spec(_broken(tmp_path, _set("output_tolerance_overrides", {"ggml": {"why": why, "dtypes": {"fp32": loose}}})))
    base, _ = spec.tolerances_for("torch", "fp32", "full")
    tolerances, note = spec.tolerances_for("ggml", "fp32", "full")
    assert note == why and tolerances.output.atol == 0.01 and tolerances.loss == base.loss and tolerances.grad == base.grad
    assert spec.tolerances_for("ggml-somevariant", "fp32", "full")[1] == why, "variants share their framework's override"
    assert spec.tolerances_for("tests.faults-perturb-ggml", "fp32", "full")[1] == why, "a wrapper is judged as what it wraps"
    assert spec.tolerances_for("jax", "fp32", "full") == (base, "") and base.output.atol != 0.01


@pytest.mark.parametrize("edit,field,phrase", MISTAKES, ids=[f"{m[1]}:{m[2][:24]}" for m in MISTAKES])
def test_mistake_names_file_and_field(tmp_path, edit, field, phrase):
    path = _broken(tmp_path, edit)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert str(path) in message
    assert field in message
    assert phrase in message


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nfamily: [llama\n")
    with pytest.raises(SpecError, match=f"{path}: not valid YAML"):
        load_spec(path)


def test_name_must_match_file(tmp_path):
    path = _broken(tmp_path, lambda raw: None, name="other-name")
    with pytest.raises(SpecError, match="name = 'smollm2-135m': must equal the file name"):
        load_spec(path)


def test_unknown_model_suggests_close_names():
    with pytest.raises(ArenaError, match="Did you mean smollm2-135m"):
        load_specs(names=["smollm2-136m"])


def test_new_family_member_is_one_yaml_file(tmp_path):
    """SmolLM2-360M: a new file in a specs folder, no code: it validates and gets its own hash."""
    raw = yaml.safe_load(LLAMA.read_text())
    raw["name"] = "smollm2-360m"
    raw["presets"]["full"]["config"].update(hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                                            num_attention_heads=15, num_key_value_heads=5)
    (tmp_path / "smollm2-360m.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "smollm2-135m.yaml").write_text(LLAMA.read_text())
    specs = load_specs(tmp_path)
    assert specs["smollm2-360m"].spec_hash("full") != specs["smollm2-135m"].spec_hash("full")
    assert specs["smollm2-360m"].presets["full"].config.kv_dim_per_head == 64


MISFITS = [
    # (spec, preset, workload sizes that do not fit its config, what the family's check_fits says)
    ("whisper-tiny", "tiny", {"decoder_len": 10_000}, "decoder_len (10000) + 1 must not exceed max_target_positions (32)"),
    ("smollm2-135m", "tiny", {"prompt_len": 256}, "prompt_len (256) + 1 must not exceed max_position_embeddings (256)"),
    ("sd15-unet", "full", {"latent_size": 63}, "latent_size (63) must be divisible by 2**(len(block_out_channels) - 1) (8)"),
    ("resnet-50", "tiny", {"batch": 1, "image_size": 16}, "batch (1) x the last stage's 1x1 pixels at image_size (16) must be at least 2"),
]


@pytest.mark.parametrize("name,preset,sizes,phrase", MISFITS, ids=[m[0] for m in MISFITS])
def test_config_and_workloads_are_cross_checked(tmp_path, name, preset, sizes, phrase):
    raw = yaml.safe_load((REPO / "specs" / "models" / f"{name}.yaml").read_text())
    raw["presets"][preset]["workloads"].update(sizes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert f"{path}: presets.{preset}.workloads: {phrase}" in str(err.value)


@pytest.mark.parametrize("name", SPEC_NAMES)
@pytest.mark.parametrize("preset", ["tiny", "full"])
def test_every_fp32_tolerance_is_calibrated_on_the_reference_at_its_preset(name, preset):
    """About 10x the reference's own fp32-vs-fp64 difference (python -m arena.calibrate): not so tight
    that rounding fails a correct framework (>= 5x), not so loose that it hides a bug (<= 30x, or the
    floors of a few fp32 ulps, 32 for the loss, where the measurement is smaller than that)."""
    tolerances, _ = load_specs(names=[name])[name].tolerances_for("torch", "fp32", preset)
    measured = tolerances.fp64_difference
    assert measured is not None, f"{name} {preset}: fp32 tolerances without their fp64_difference"
    for what, limit, value, floor in (
        ("output atol", tolerances.output.atol, measured.output_max_abs, 2e-6),
        ("loss atol", tolerances.loss.atol, measured.loss_abs, 4e-5),  # 32 fp32 ulps of a loss up to 16
        ("grad norm_rtol", tolerances.grad.norm_rtol, measured.grad_norm_rel, 1e-6),
        ("grad sample_rel_l2", tolerances.grad.sample_rel_l2, max(measured.grad_rel_l2, measured.grad_sample_rel_l2 or 0.0), 1e-6),
        ("grad projection_rel", tolerances.grad.projection_limit, projection_measure(measured), 1e-6),
    ):
        assert limit >= 5 * value, f"{name} {preset}: {what} {limit:g} is within 5x of the reference's own error {value:g}"
        assert limit <= max(30 * value, floor), f"{name} {preset}: {what} {limit:g} is over 30x the reference's own error {value:g}"


def test_a_preset_without_fp32_tolerances_is_named(tmp_path):
    raw = yaml.safe_load((REPO / "specs" / "models" / "smollm2-135m.yaml").read_text())
    del raw["presets"]["tiny"]["tolerances"]
    path = tmp_path / "smollm2-135m.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ArenaError, match="fp32 tolerances are needed for every preset.*missing for tiny"):
        load_spec(path)

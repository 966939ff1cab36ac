"""Generated weights: deterministic, seeded per tensor name (not by order), official names, cached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors import SafetensorError
from safetensors.numpy import save_file

from arena import weights
from arena.errors import ArenaError
from arena.families import load_family
from arena.specs import load_specs
from tests.conftest import SPEC_NAMES


@pytest.fixture(scope="module")
def llama():
    return load_specs(names=["smollm2-135m"])["smollm2-135m"]


def test_generation_is_deterministic(llama):
    a, b = weights.generate(llama, "tiny"), weights.generate(llama, "tiny")
    assert list(a) == list(b)
    assert all(np.array_equal(a[n], b[n]) for n in a)


def test_tensor_values_do_not_depend_on_order_or_on_other_tensors(llama):
    """A model with fewer layers shares its tensors byte for byte: seeds come from names alone."""
    family = load_family("llama")
    config = llama.presets["tiny"].config
    smaller = config.model_copy(update={"num_hidden_layers": 1})
    shapes = family.parameter_shapes(config)
    full = weights.generate(llama, "tiny")
    from arena.families.base import rng_for

    for name, shape in reversed(list(family.parameter_shapes(smaller).items())):
        again = family.init_tensor(name, shape, smaller, rng_for(llama.weights.seed, name))
        assert np.array_equal(again, full[name]), name
    assert set(family.parameter_shapes(smaller)) < set(shapes)


def test_another_seed_gives_other_weights(llama):
    other = llama.model_copy(update={"weights": llama.weights.model_copy(update={"seed": 1})})
    a, b = weights.generate(llama, "tiny"), weights.generate(other, "tiny")
    assert not np.array_equal(a["model.layers.0.mlp.up_proj.weight"], b["model.layers.0.mlp.up_proj.weight"])


def test_materialize_caches_and_hashes(tmp_path, llama):
    first = weights.materialize(llama, "tiny", tmp_path)
    mtime = (tmp_path / "weights").glob("*/model.safetensors").__next__().stat().st_mtime_ns
    second = weights.materialize(llama, "tiny", tmp_path)
    assert first == second
    assert next((tmp_path / "weights").glob("*/model.safetensors")).stat().st_mtime_ns == mtime
    loaded = weights.load(first.files)
    generated = weights.generate(llama, "tiny")
    assert all(np.array_equal(loaded[n], generated[n]) for n in generated)


@pytest.mark.parametrize("damage", ["truncate model.safetensors", "truncate manifest.json", "delete arena-manifest.json"])
def test_a_damaged_weights_cache_is_regenerated_with_one_line(tmp_path, llama, capsys, damage):
    """A truncated file (safetensors then fails with 'incomplete metadata'), or a folder without a manifest
    (written before manifests were kept): found, said in one line, regenerated to the same weights."""
    first = weights.materialize(llama, "tiny", tmp_path)
    folder = Path(first.files[0]).parent
    action, name = damage.split()
    size = (folder / name).stat().st_size
    if action == "truncate":
        os.truncate(folder / name, size // 2)
        problem = f"{name}: size {size // 2} of {size} bytes"
    else:
        (folder / name).unlink()
        problem = "no manifest to check it against"
    if name == "model.safetensors":
        with pytest.raises(SafetensorError):
            weights.load(first.files)

    second = weights.materialize(llama, "tiny", tmp_path)
    assert capsys.readouterr().err == f"arena: cached weights {folder} damaged ({problem}); regenerating\n"
    assert second == first, "the same files and weights hash"
    loaded, generated = weights.load(second.files), weights.generate(llama, "tiny")
    assert all(np.array_equal(loaded[n], generated[n]) for n in generated)
    assert weights.materialize(llama, "tiny", tmp_path) == first and capsys.readouterr().err == "", "healed: reused silently"


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_generated_tensors_match_the_declared_layout(name):
    spec = load_specs(names=[name])[name]
    family = load_family(spec.family)
    tensors = weights.generate(spec, "tiny")
    weights.check_layout(tensors, family.parameter_shapes(spec.presets["tiny"].config), name)
    for tensor_name, array in tensors.items():
        assert np.all(np.isfinite(array)), tensor_name


def test_layout_errors_name_the_tensors(llama):
    family = load_family("llama")
    shapes = family.parameter_shapes(llama.presets["tiny"].config)
    tensors = weights.generate(llama, "tiny")
    del tensors["model.norm.weight"]
    tensors["model.layers.0.mlp.up_proj.weight"] = tensors["model.layers.0.mlp.up_proj.weight"][:3]
    tensors["extra.weight"] = np.zeros(2, np.float32)
    with pytest.raises(ArenaError) as err:
        weights.check_layout(tensors, shapes, "ckpt")
    message = str(err.value)
    assert "missing tensors: model.norm.weight" in message
    assert "unexpected tensors: extra.weight" in message
    assert "model.layers.0.mlp.up_proj.weight: expected (160, 64), found (3, 64)" in message


def test_local_checkpoint_goes_through_the_same_loader(tmp_path, llama):
    tensors = weights.generate(llama, "tiny")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    local = llama.model_copy(update={"weights": llama.weights.model_copy(update={"source": "local", "path": str(tmp_path)})})
    found = weights.materialize(local, "tiny", tmp_path / "cache")
    assert found.source.startswith("local:")
    assert weights.load(found.files).keys() == tensors.keys()
    empty = local.model_copy(update={"weights": local.weights.model_copy(update={"path": str(tmp_path / "nothing")})})
    with pytest.raises(ArenaError, match="no .safetensors files there"):
        weights.materialize(empty, "tiny", tmp_path / "cache")


def test_a_local_checkpoint_is_read_once_until_it_changes(tmp_path, llama):
    tensors = weights.generate(llama, "tiny")
    checkpoint = tmp_path / "ckpt" / "model.safetensors"
    checkpoint.parent.mkdir()
    save_file(tensors, str(checkpoint))
    local = llama.model_copy(update={"weights": llama.weights.model_copy(update={"source": "local", "path": str(checkpoint.parent)})})
    first = weights.materialize(local, "tiny", tmp_path / "cache")
    [record] = (tmp_path / "cache" / "weights").glob("local-*.json")
    known = json.loads(record.read_text())
    assert known["weights_hash"] == first.weights_hash
    # Proof that the unchanged file is not read again: a hash planted in the record is what comes back.
    record.write_text(json.dumps(known | {"weights_hash": "planted"}))
    assert weights.materialize(local, "tiny", tmp_path / "cache").weights_hash == "planted"

    name = next(iter(tensors))  # same names and shapes, so the same size: only the bytes differ
    save_file(tensors | {name: tensors[name] * 2}, str(tmp_path / "new.safetensors"))
    os.replace(tmp_path / "new.safetensors", checkpoint)
    changed = weights.materialize(local, "tiny", tmp_path / "cache")
    assert changed.weights_hash not in {"planted", first.weights_hash}


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_no_parameter_class_is_constant_and_no_two_tensors_are_interchangeable(name):
    """A conversion that swaps, drops or misplaces a tensor must change the model: no generated tensor
    is constant (norm weights, biases, BN statistics included) and no two same-shaped ones are equal."""
    spec = load_specs(names=[name])[name]
    tensors = {n: a for n, a in weights.generate(spec, "tiny").items() if a.dtype.kind == "f"}
    constant = [n for n, a in tensors.items() if a.size > 1 and np.ptp(a) == 0]
    assert not constant, f"constant tensors: {constant[:5]}"
    seen: dict[bytes, str] = {}
    for tensor_name, array in tensors.items():
        key = array.tobytes() + str(array.shape).encode()
        assert key not in seen, f"{tensor_name} equals {seen.get(key)}"
        seen[key] = tensor_name


@pytest.mark.parametrize(("name", "workload", "ids"), [
    ("smollm2-135m", "training", "input_ids"),
    ("whisper-tiny", "training", "decoder_input_ids"),
    ("resnet-50", "training", "labels"),
])
@pytest.mark.parametrize("preset", ["tiny", "full"])
def test_token_and_label_inputs_repeat(name, workload, ids, preset):
    """An embedding (or per-class) gradient that overwrites instead of accumulating must be wrong."""
    from arena.families.base import rng_for

    spec = load_specs(names=[name])[name]
    family, p = load_family(spec.family), spec.presets[preset]
    drawn = family.make_inputs(p.config, p.workloads, workload, rng_for("inputs", spec.spec_hash(preset)))[ids]
    rows = drawn.reshape(-1, drawn.shape[-1])
    assert all(len(np.unique(row)) < len(row) for row in rows), f"{name} {preset}: a row of {ids} without repeats"

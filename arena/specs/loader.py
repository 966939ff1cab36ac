"""Read and validate spec files. Every problem is a SpecError that names the file and the field path.

    specs/models/smollm2-360m.yaml: presets.full.config.num_key_value_heads = 4: must divide num_attention_heads (15)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from arena.errors import ArenaError, SpecError, unknown_name
from arena.families import known_families, load_family
from arena.specs.schema import ModelSpec, spec_model_for

DEFAULT_SPECS_DIR = Path(__file__).resolve().parents[2] / "specs" / "models"


def spec_files(specs_dir: Path = DEFAULT_SPECS_DIR) -> list[Path]:
    """Every spec in the folder; files starting with '_' are not models."""
    if not specs_dir.is_dir():
        raise ArenaError(f"{specs_dir}: no such specs folder")
    return sorted(p for p in specs_dir.glob("*.yaml") if not p.name.startswith("_"))


def load_spec(path: Path) -> ModelSpec:
    raw = _read_yaml(path)
    family = raw.get("family")
    if not isinstance(family, str):
        raise SpecError(f"{path}: family = {family!r}: required, one of {', '.join(known_families())}")
    if family not in known_families():
        raise SpecError(f"{path}: family = {family!r}: {unknown_name('family', family, known_families())}")
    try:
        spec = spec_model_for(family).model_validate(raw)
    except ValidationError as err:
        raise SpecError(_describe(path, err, spec_model_for(family))) from None
    if spec.name != path.stem:
        raise SpecError(f"{path}: name = {spec.name!r}: must equal the file name ({path.stem!r})")
    for preset_name, preset in spec.presets.items():
        try:
            load_family(family).check_fits(preset.config, preset.workloads)
        except ValueError as err:
            raise SpecError(f"{path}: presets.{preset_name}.workloads: {err}") from None
    return spec


def load_specs(specs_dir: Path = DEFAULT_SPECS_DIR, names: list[str] | None = None) -> dict[str, ModelSpec]:
    """All specs by name, or only `names` (unknown names are errors with suggestions)."""
    files = {p.stem: p for p in spec_files(specs_dir)}
    for name in names or []:
        if name not in files:
            raise unknown_name("model", name, files)
    return {name: load_spec(files[name]) for name in (names or files)}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"{path}: no such spec file") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the top level must be a mapping of fields, got {type(raw).__name__}")
    return raw


def _describe(path: Path, err: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(part) for part in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            allowed = _allowed_fields(model, e["loc"][:-1])
            msg = f"unknown field; allowed: {', '.join(allowed)}" if allowed else "unknown field"
            lines.append(f"{path}: {loc}: {msg}")
        elif e["type"] == "missing":
            lines.append(f"{path}: {loc}: required field is missing")
        else:
            lines.append(f"{path}: {loc} = {e.get('input')!r}: {msg}")
    return "\n".join(lines)


def _allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    """Walk the pydantic model along an error location to list the fields allowed there."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None:
            # dict[str, X]: the key is free-form, the value type is the next model
            args = getattr(current, "__args__", ())
            current = args[-1] if args else None
            continue
        field = fields.get(part)
        if field is None:
            # a dict's key (e.g. a preset name): step into the dict's value type
            continue
        current = field.annotation
        args = getattr(current, "__args__", ())
        if args and not hasattr(current, "model_fields"):
            models = [a for a in args if hasattr(a, "model_fields")]
            current = models[0] if models else args[-1]
    return sorted(getattr(current, "model_fields", {}))

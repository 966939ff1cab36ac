"""Model specs: YAML files validated into frozen pydantic models. See schema.py and loader.py."""

from arena.specs.loader import DEFAULT_SPECS_DIR, load_spec, load_specs, spec_files
from arena.specs.schema import ModelSpec

__all__ = ["DEFAULT_SPECS_DIR", "ModelSpec", "load_spec", "load_specs", "spec_files"]

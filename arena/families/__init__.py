"""Model families: one module per family, named by the spec's `family` field.

A family module is the single source of truth for its architecture's *data*: the config schema
(official HF / diffusers / torchvision field names), the workload sizes, the official tensor names and
shapes, the init rule for generated weights, the input generators, a numpy reference for its loss, and
the analytic FLOP count. It imports numpy and pydantic only, so every framework, the weight generator
and the site can use it without pulling in a framework.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from arena.errors import unknown_name


def known_families() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_") and m.name != "base"
    )


def load_family(name: str) -> ModuleType:
    """Import `arena.families.<name>`; an unknown name is a user error with suggestions."""
    if name not in known_families():
        raise unknown_name("family", name, known_families())
    return importlib.import_module(f"{__name__}.{name}")

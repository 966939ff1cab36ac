"""Framework adapters: one package per framework, reached by name only inside a cell's child process.

A framework name is `<package>` or `<package>-<variant>` (`torch`, `torch-compile`): the package is
`arena.frameworks.<package>`, the variant a best-practice option it declares in `VARIANTS`. A name
with a dot is a module path (`tests.faults-hang`), so out-of-tree adapters plug in the same way.
Nothing in this file imports a framework.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from arena.errors import unknown_name


def split_name(framework: str) -> tuple[str, str]:
    """`torch-compile` -> (`arena.frameworks.torch`, `compile`); `tests.faults-hang` -> (`tests.faults`, `hang`)."""
    package, _, variant = framework.partition("-")
    return (package if "." in package else f"{__name__}.{package}"), variant


def known_packages() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def load_adapter(framework: str) -> tuple[ModuleType, str]:
    """The adapter package and variant for a framework name. Imports the adapter, not the framework."""
    module_name, variant = split_name(framework)
    if "." not in framework and module_name.rsplit(".", 1)[-1] not in known_packages():
        raise unknown_name("framework", framework, known_packages())
    adapter = importlib.import_module(module_name)
    if variant not in adapter.VARIANTS:
        raise unknown_name("framework", framework, variant_names(framework.partition("-")[0], adapter))
    return adapter, variant


def variant_names(package: str, adapter: ModuleType) -> list[str]:
    """`torch`, `torch-compile`: the framework names of a package, one per variant it declares."""
    return [f"{package}{'-' + v if v else ''}" for v in adapter.VARIANTS]


def framework_names() -> list[str]:
    """Every framework in arena/frameworks, each variant a name of its own."""
    return [name for package in known_packages() for name in variant_names(package, importlib.import_module(f"{__name__}.{package}"))]

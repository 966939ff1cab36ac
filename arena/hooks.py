"""A module contract as data: the names a module must or may define, each a function with fixed
parameters, a value of a given type or a class derived from a given base.

Checking a module against its table (`problems`) replaces finding hooks by name with a default: a hook
spelt wrongly is then an error (missing, if required; "a misspelt X?", if optional and the name is
close), not a check that silently never runs. The tables are `FAMILY` (arena/families/base.py) and
`ADAPTER` with its family modules' hooks (arena/frameworks/contract.py).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from types import ModuleType

from arena.errors import ArenaError

# How close a defined name must be to an absent hook's to be reported as its misspelling (difflib's
# ratio: `process_envs` -> process_env 0.96, `peak_memory` -> peak_device_memory 0.76 is not caught).
MISSPELLING_CUTOFF = 0.8


class ContractError(ArenaError):
    """A module that does not provide what its contract says, with every problem found."""


@dataclass(frozen=True)
class Hook:
    name: str
    signatures: tuple[tuple[str, ...], ...] = ()  # a function taking one of these positional parameter lists
    kind: type | None = None  # a value of this type
    base: type | None = None  # a class derived from this one
    required: bool = True

    def mismatch(self, found: object) -> str:
        """What is wrong with the module's object for this hook; "" if it fits."""
        if self.signatures:
            if not callable(found):
                return f"must be a function ({self.spelled()}), not {type(found).__name__}"
            parameters = positional_parameters(found)
            return "" if parameters in self.signatures else f"takes ({', '.join(parameters)}); the contract says {self.spelled()}"
        if self.base:
            fits = isinstance(found, type) and issubclass(found, self.base)
            return "" if fits else f"must be a class derived from {self.base.__name__}"
        if self.kind and not isinstance(found, self.kind):
            return f"must be a {self.kind.__name__}, not {type(found).__name__}"
        return ""

    def spelled(self) -> str:
        return " or ".join(f"{self.name}({', '.join(p)})" for p in self.signatures)


def function(name: str, *signatures: tuple[str, ...], required: bool = True) -> Hook:
    return Hook(name, signatures=signatures, required=required)


def value(name: str, kind: type, required: bool = True) -> Hook:
    return Hook(name, kind=kind, required=required)


def subclass(name: str, base: type) -> Hook:
    return Hook(name, base=base)


def positional_parameters(fn) -> tuple[str, ...]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds)


def problems(module: ModuleType, hooks: tuple[Hook, ...]) -> list[str]:
    """Every way `module` differs from the hook table: a required hook missing, a hook of the wrong
    kind or signature, a public name that looks like a misspelt absent hook."""
    found = []
    for hook in hooks:
        if hasattr(module, hook.name):
            if mismatch := hook.mismatch(getattr(module, hook.name)):
                found.append(f"{hook.name}: {mismatch}")
        elif hook.required:
            found.append(f"{hook.name}: missing")
    declared = {hook.name for hook in hooks}
    absent = [hook.name for hook in hooks if not hasattr(module, hook.name)]
    for name in vars(module):
        close = difflib.get_close_matches(name, absent, n=1, cutoff=MISSPELLING_CUTOFF)
        if close and name not in declared and not name.startswith("_"):
            found.append(f"{name}: not in the contract; a misspelt {close[0]}?")
    return found


def require(module: ModuleType, found: list[str]) -> None:
    """Raise the module's problems, if any, as one error naming it."""
    if found:
        raise ContractError(f"{module.__name__}: {'; '.join(found)}")

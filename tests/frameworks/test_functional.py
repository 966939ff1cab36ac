"""The `Layers` contract of arena.functional: every framework that runs the shared
architectures provides each operation under its name, with the contract's parameter names (the
architectures pass some by keyword), so a gap fails here rather than inside a trace."""

from __future__ import annotations

import importlib
import inspect

import pytest

from arena.functional.layers import Layers

FRAMEWORKS = ("jax", "tensorflow", "tinygrad", "max")  # each package is named after the module it needs


def contract() -> dict[str, inspect.Signature | None]:
    """Every member of `Layers`: a method's signature without `self`, None for a constant."""
    members: dict[str, inspect.Signature | None] = {name: None for name in Layers.__annotations__}
    for name, member in vars(Layers).items():
        if inspect.isfunction(member):
            params = list(inspect.signature(member).parameters.values())[1:]
            members[name] = inspect.Signature(params)
    return members


def test_contract_lists_the_operations_the_architectures_use() -> None:
    members = contract()
    assert {"CHANNEL_AXIS", "FLOAT32"} <= {n for n, s in members.items() if s is None}
    assert {"linear", "attention", "split_heads", "pixels_to_tokens", "conv"} <= set(members)


@pytest.mark.parametrize("package", FRAMEWORKS)
def test_layers_module_meets_the_contract(package: str) -> None:
    pytest.importorskip(package)
    layers = importlib.import_module(f"arena.frameworks.{package}.layers")
    members = contract()
    missing = [name for name in members if not hasattr(layers, name)]
    assert not missing, f"arena.frameworks.{package}.layers lacks {missing}"
    for name, wanted in members.items():
        if wanted is None:
            continue
        member = getattr(layers, name)
        assert callable(member), f"{package}.layers.{name} is not callable"
        try:
            have = inspect.signature(member).parameters
        except ValueError:  # a builtin ufunc (jnp.sin) has no introspectable signature; its arity is the contract's
            continue
        names = [p.name for p in wanted.parameters.values()]
        positional = [p for p in have.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        assert len(positional) >= len(names) or any(p.kind is p.VAR_POSITIONAL for p in have.values()), (
            f"{package}.layers.{name}{inspect.signature(member)} takes fewer arguments than the contract's {names}"
        )
        keywords = [n for n, p in wanted.parameters.items() if p.default is not p.empty]
        lacking = [n for n in keywords if n not in have and not any(p.kind is p.VAR_KEYWORD for p in have.values())]
        assert not lacking, f"{package}.layers.{name} lacks the keyword parameters {lacking}"

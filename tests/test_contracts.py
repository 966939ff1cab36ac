"""Every family module and every framework adapter (each family module of it included) keeps its
contract, read from the folders: a new family or framework is checked as soon as its files exist, and a
missing, misspelt or wrongly shaped hook fails here rather than switching a check off at run time."""

from __future__ import annotations

import importlib
import textwrap
import types

import pytest

from arena.families import known_families, load_family
from arena.families.base import check_family
from arena.frameworks import known_packages
from arena.frameworks.contract import check_adapter
from arena.hooks import ContractError

# The test suite's own adapters (tests.faults-<variant>, tests.bugs-<bug>-<framework>) run through the
# same runner, so they keep the same contract.
TEST_ADAPTERS = ["tests.faults", "tests.bugs"]


@pytest.mark.parametrize("family", known_families())
def test_every_family_keeps_the_contract(family):
    check_family(load_family(family))


@pytest.mark.parametrize("adapter", [f"arena.frameworks.{p}" for p in known_packages()] + TEST_ADAPTERS)
def test_every_adapter_keeps_the_contract_and_runs_or_declares_every_family(adapter):
    try:
        check_adapter(importlib.import_module(adapter))
    except ModuleNotFoundError as err:
        if err.name.startswith(("arena", "tests")):
            raise
        pytest.skip(f"{adapter}'s family modules need {err.name}, which is not installed")


def test_a_family_with_a_misnamed_hook_is_rejected():
    """The bug this contract was written for: the UNet's cross-check was named check_sizes, the loader
    looked for check_fits, and a spec whose latents do not halve cleanly loaded without complaint."""
    misnamed = types.ModuleType("misnamed_unet")
    vars(misnamed).update((k, v) for k, v in vars(load_family("unet2d_condition")).items() if not k.startswith("__"))
    misnamed.check_sizes = vars(misnamed).pop("check_fits")
    misnamed.OUTPUTS = {"inference": ("sample",), "training": ("loss",)}
    with pytest.raises(ContractError) as err:
        check_family(misnamed)
    assert "check_fits: missing" in str(err.value)
    assert "one entry per workload" in str(err.value)


def test_an_adapter_with_misnamed_hooks_and_families_is_rejected(tmp_path, monkeypatch):
    package = tmp_path / "misnamed_fw"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        DISTRIBUTION = "numpy"
        INSTALL_HINT = "(test)"
        VARIANTS = {"": "plain"}
        UNSUPPORTED = {"resnett": "typo of a family", "vla_expert": "a real family", "fast:whisper": "no such variant"}
        BINARIES = ("misnamed_fw._plain", "fast:misnamed_fw._fast")

        def probe(ctx): ...
        def process_envs(ctx): ...  # the runner looks for process_env
    '''))
    (package / "llama.py").write_text(textwrap.dedent('''
        def build(config, weights): ...
        def inference(model, inputs): ...
        def latency(model, inputs): ...
        def train(model, inputs): ...
    '''))
    (package / "vla_expert.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ContractError) as err:
        check_adapter(importlib.import_module("misnamed_fw"))
    message = str(err.value)
    for problem in (
        "process_envs: not in the contract; a misspelt process_env?",
        "UNSUPPORTED['resnett']: 'resnett' is no family",
        "UNSUPPORTED['fast:whisper']: no variant 'fast'",
        "BINARIES['fast:misnamed_fw._fast']: no variant 'fast'",
        "resnet: no module misnamed_fw.resnet, and not declared in UNSUPPORTED",
        "vla_expert: declared in UNSUPPORTED, so misnamed_fw.vla_expert is never run",
        "llama.build: takes (config, weights); the contract says build(config, weights, ctx) or build(config, weights, ctx, inputs)",
        "llama.training: missing",
    ):
        assert problem in message

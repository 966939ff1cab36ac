"""Every family module keeps its contract, read from the folder: a new family is checked as soon as its
file exists, and a missing, misspelt or wrongly shaped hook fails here rather than switching a check
off at run time."""

from __future__ import annotations

import types

import pytest

from arena.families import known_families, load_family
from arena.families.base import check_family
from arena.hooks import ContractError


@pytest.mark.parametrize("family", known_families())
def test_every_family_keeps_the_contract(family):
    check_family(load_family(family))


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


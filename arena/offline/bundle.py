"""The wheels a host without network needs to run Arena beside the frameworks it already has."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from arena.errors import ArenaError

# What the lent H200 host has (the device machine's README): its own torch, JAX, numpy and compilers.
# Nothing of theirs is brought: a second torch beside the host's CUDA build would be a different stack.
HOST_HAS = ("torch", "jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda13-pjrt", "numpy", "triton", "pip", "setuptools")
# torchvision's binary operators are built against one torch release: the host's torch 2.11 takes 0.26.
HOST_PINS = {"torchvision": "==0.26.0"}
EXTRAS = ("torch", "jax", "tinygrad")  # tinygrad: pure Python, its CUDA back-end uses the host's driver and NVRTC
BUDGET_MIB = 64  # what the device tool carries, working tree included
# The wheels a manylinux x86_64 host takes, newest rule first.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64")


def target_environment(python: str) -> dict[str, str]:
    """Marker values of the host (Linux x86_64, CPython `python`), not of this machine."""
    return {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux", "platform_system": "Linux",
            "platform_machine": "x86_64", "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix"}


def requirements(extras: tuple[str, ...] = EXTRAS, host_has: tuple[str, ...] = HOST_HAS, pins: dict[str, str] | None = None,
                 python: str = "3.12") -> dict[str, str]:
    """Distribution -> version specifier for Arena's requirements with `extras` and everything they
    require in turn on the host, less what the host has: `==` the version this checkout runs with where
    it is installed here, else the requirement's own specifier; `pins` override both."""
    pins = {canonicalize_name(k): v for k, v in (pins if pins is not None else HOST_PINS).items()}
    skip = {canonicalize_name(name) for name in host_has}
    environment = target_environment(python)
    found: dict[str, str] = {}
    todo = requires("arena", extras)
    while todo:
        requirement, extra = todo.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker and not requirement.marker.evaluate(environment | {"extra": extra}):
            continue
        if name == "arena":  # an extra that takes in others (ctranslate2 -> arena[torch])
            todo += requires("arena", tuple(requirement.extras))
            continue
        if name in skip or name in found:
            continue
        try:
            found[name] = pins.get(name) or f"=={importlib.metadata.version(name)}"
            todo += requires(name, tuple(requirement.extras))
        except importlib.metadata.PackageNotFoundError:  # needed on the host's Python only
            found[name] = pins.get(name) or str(requirement.specifier)
    return dict(sorted(found.items()))


def requires(distribution: str, extras: tuple[str, ...]) -> list[tuple[Requirement, str]]:
    """An installed distribution's requirements, each with every extra (and none) its marker may name."""
    return [(Requirement(r), extra) for r in importlib.metadata.requires(distribution) or [] for extra in ("", *extras)]


def download(wanted: dict[str, str], folder: Path, python: str = "3.12") -> list[Path]:
    """Each requirement as a wheel for the host into `folder` (an sdist-only pure-Python package, such
    as antlr4-python3-runtime 4.9.3, is built into a wheel here); `requirements.txt` pins what came."""
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    for name, specifier in wanted.items():
        binary = [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                  *platforms, "-d", str(folder), f"{name}{specifier}"]
        if subprocess.run(binary, capture_output=True).returncode != 0:
            built = subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder), f"{name}{specifier}"], capture_output=True, text=True)
            if built.returncode != 0:
                raise ArenaError(f"no wheel of {name}{specifier} for CPython {python} on Linux x86_64, and none could be built: {built.stderr[-500:]}")
    wheels = sorted(folder.glob("*.whl"))
    lines = ["{}=={}".format(*parse_wheel_filename(w.name)[:2]) for w in wheels]
    (folder / "requirements.txt").write_text("\n".join(lines) + "\n")
    return wheels


def check_budget(wheels: list[Path], tree_bytes: int, budget_mib: float = BUDGET_MIB) -> int:
    """Bytes the wheels take; an error naming the largest when they and the working tree exceed the budget."""
    total = sum(w.stat().st_size for w in wheels)
    if total + tree_bytes > budget_mib * 2**20:
        largest = ", ".join(f"{w.name} {w.stat().st_size / 2**20:.1f} MiB" for w in sorted(wheels, key=lambda w: -w.stat().st_size)[:5])
        raise ArenaError(f"the wheels ({total / 2**20:.1f} MiB) and the working tree ({tree_bytes / 2**20:.1f} MiB) exceed "
                         f"{budget_mib} MiB; the largest: {largest}")
    return total


def tracked_bytes(repo: Path) -> int:
    """The size of the checkout's tracked files: what travels besides the bundle."""
    names = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / n.decode()).stat().st_size for n in names if n and (repo / n.decode()).is_file())

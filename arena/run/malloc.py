"""The C allocator's settings for every cell's process: the same for every framework, set by the parent
before the child starts (glibc reads them once, at the process's first allocation), recorded in each
result's settings and part of its fingerprint.

Why the run controls them: measured on the same cells, these settings moved a framework's times by up
to a third, faster or slower depending on how it allocates (a fresh buffer per operation, a caching
allocator, one plan for a whole step), so a setting left in the shell that started a run would silently
move some frameworks' figures and not others. The run's default is glibc's own, what every framework's users get:
no setting measured was better for every framework (README, "The memory allocator").

The settings are glibc's documented environment variables (mallopt(3), "Environment variables"):
`MALLOC_MMAP_THRESHOLD_` (requests of at least this many bytes get their own mapping; setting it also
turns off glibc's dynamic threshold, which starts at 128 KiB and rises to 32 MiB as large blocks are
freed) and `MALLOC_TRIM_THRESHOLD_` (free memory at the top of the heap above this many bytes is given
back to the system). Other C libraries (macOS) ignore them; the result says which library the cell had,
and names a preloaded library (`LD_PRELOAD`, e.g. jemalloc), which replaces the allocator altogether.
"""

from __future__ import annotations

import os
import platform

from pydantic import BaseModel, ConfigDict, Field

VARIABLES = {"mmap_threshold": "MALLOC_MMAP_THRESHOLD_", "trim_threshold": "MALLOC_TRIM_THRESHOLD_"}
GLIBC_DEFAULT = "glibc's default"


class Malloc(BaseModel):
    """The run's `malloc` setting (arena/conf/config.yaml); null leaves glibc's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mmap_threshold: int | None = Field(None, ge=0, description="bytes: MALLOC_MMAP_THRESHOLD_ (null: glibc's dynamic threshold)")
    trim_threshold: int | None = Field(None, ge=0, description="bytes: MALLOC_TRIM_THRESHOLD_ (null: glibc's default)")

    def env(self) -> dict[str, str | None]:
        """Each variable's value for the child, None to remove one the parent inherited: a cell runs under
        exactly the run's settings, never under whatever the shell that started the run had set."""
        return {var: None if getattr(self, field) is None else str(getattr(self, field)) for field, var in VARIABLES.items()}

    def component(self) -> str:
        """The fingerprint component: a result measured under other settings is re-run."""
        return " ".join(f"{var}={value if value is not None else 'default'}" for var, value in self.env().items())


def apply(env: dict[str, str], malloc: Malloc) -> dict[str, str]:
    """A child's environment with the run's allocator settings."""
    env = dict(env)
    for var, value in malloc.env().items():
        if value is None:
            env.pop(var, None)
        else:
            env[var] = value
    return env


def in_effect() -> dict[str, str]:
    """What this process's allocator started with, for its result: the C library and each variable."""
    library, version = platform.libc_ver()
    recorded = {"library": f"{library} {version}".strip() or platform.system()}
    if preloaded := os.environ.get("LD_PRELOAD"):
        recorded["LD_PRELOAD"] = preloaded
    if library != "glibc":
        return recorded | {"note": "not glibc: the MALLOC_* settings do not apply"}
    return recorded | {var: os.environ.get(var, GLIBC_DEFAULT) for var in VARIABLES.values()}

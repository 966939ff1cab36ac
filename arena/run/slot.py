"""The machine's timing slot: one cell process at a time on a machine, whoever started it.

Timing fidelity beats throughput: two cells side by side on one machine would each time the other's
contention. A local run is sequential by construction, and on a Ray cluster each node offers one
`arena_slot` resource that every cell takes, so Ray never places two cells on one node. This lock
makes it true of the *machine* as well: two Ray nodes on one host (a loopback test cluster), a node
started with `arena_slot: 2` by mistake, or a local run beside a cluster worker all wait their turn.

`flock` is released by the kernel when its holder dies, so a lost worker never leaves the machine
locked. The lock file lives in the system's temporary folder, which is per machine. `ARENA_TIMING_SLOT`
names another lock file: the test suite gives each of its workers its own, since what it times is not a
result (so it never waits behind a benchmark on the machine, and must not be run beside one).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "arena-timing-slot.lock"
LOCK_ENV = "ARENA_TIMING_SLOT"


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / LOCK_NAME)


@contextmanager
def timing_slot(on_wait: Callable[[str], None] = lambda holder: None) -> Iterator[None]:
    """Hold the machine's timing slot; `on_wait(holder)` is told who has it if we must wait."""
    path = lock_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {os.uname().nodename}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock

"""One cell process at a time per machine, and a cell process never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from tests.conftest import REPO, gone


def python(code: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, text=True, stdout=subprocess.PIPE, **kwargs)


def hold_slot(seconds: float) -> subprocess.Popen:
    """A process that holds the timing slot for `seconds` (returned once it holds it)."""
    holder = python(f"""
        import time
        from arena.run.slot import timing_slot
        with timing_slot():
            print("held", flush=True)
            time.sleep({seconds})
    """)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_holder_waits_for_the_first():
    holder = hold_slot(2)
    waiter = python("""
        import time
        from arena.run.slot import timing_slot
        start = time.monotonic()
        with timing_slot(on_wait=lambda holder: print("waiting for", holder, flush=True)):
            print(f"{time.monotonic() - start:.2f}", flush=True)
    """)
    out, _ = waiter.communicate(timeout=30)
    holder.wait(timeout=30)
    waited_line, seconds = out.strip().splitlines()
    assert waited_line.startswith(f"waiting for pid {holder.pid} on ")
    assert float(seconds) > 1.0, "the slot was taken only once the first holder let go"


def test_the_slot_is_free_again_when_its_holder_is_killed():
    holder = hold_slot(600)
    holder.kill()
    holder.wait(timeout=30)
    waiter = python("""
        from arena.run.slot import timing_slot
        with timing_slot(on_wait=lambda holder: print("waited", flush=True)):
            print("got it", flush=True)
    """)
    out, _ = waiter.communicate(timeout=30)
    assert out.strip() == "got it"


def test_a_cell_process_dies_with_its_parent():
    """The parent hands the child the read end of a pipe (as run_cell does); killing the parent closes
    the write end, and the child's lifeline kills its process group."""
    parent = python("""
        import os, subprocess, sys, time
        read, write = os.pipe()
        child = subprocess.Popen(
            [sys.executable, "-c", f"from arena.run.child import follow_parent; import time; follow_parent({read}); time.sleep(600)"],
            pass_fds=(read,), start_new_session=True)
        os.close(read)
        print(child.pid, flush=True)
        time.sleep(600)
    """)
    child_pid = int(parent.stdout.readline())
    time.sleep(1.0)
    assert psutil.pid_exists(child_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    assert gone(child_pid, timeout=15), "the child outlived its parent"


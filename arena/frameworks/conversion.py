"""Converted artifacts (ONNX graphs, GGUF files) made from the shared weights, cached between cells.

Runtimes fed by a conversion step (ONNX Runtime, llama.cpp, whisper.cpp) convert inside `build`, so
the conversion is part of prepare; it is recorded apart (`Prepare.conversion`) because it is a one-off
cost of the deployment path, not of the runtime. The cell gives each framework a folder keyed by the
spec hash and the weights hash (`BuildContext.convert_dir`); the adapter adds a subfolder named after
the converter's versions and a hash of the converting code (editing an exporter must not reuse what the
old one wrote). A conversion is made in a temporary folder and renamed into place when it is complete,
so a crash mid-way never leaves a half-written artifact that a later cell would trust, and it is checked
against its manifest before reuse: a damaged one is converted again (arena/cache.py).
"""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from arena import cache
from arena.frameworks.contract import Conversion

RECORD = "conversion.json"


def conversion_folder(convert_dir: str, tool_id: str, code: Path) -> Path:
    """`<convert_dir>/<tool_id>-<hash of the .py files under code>`; without a cell folder (a direct
    call: tests, the exporters' own checks), a private temporary one that goes when the process ends."""
    root = Path(convert_dir) if convert_dir else _private_folder()
    files = sorted(code.rglob("*.py")) if code.is_dir() else [code]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    return root / f"{tool_id}-{digest}"


def _private_folder() -> Path:
    # Removed at exit: each direct call converts afresh, and a suite of them would otherwise leave
    # gigabytes of graphs in the temp folder.
    folder = Path(tempfile.mkdtemp(prefix="arena-convert-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def cached_conversion(folder: Path, tool: str, make: Callable[[Path], None]) -> Conversion:
    """Reuse `folder` if a complete, undamaged conversion is there, else convert again (`make(scratch)`)."""
    cached = cache.reusable(folder, "conversion", "converting again")
    if not cached:
        cache.build_folder(folder, lambda scratch: _convert(scratch, tool, make))
    return Conversion.model_validate_json((folder / RECORD).read_text()).model_copy(update={"cached": cached})


def _convert(folder: Path, tool: str, make: Callable[[Path], None]) -> None:
    """`make(folder)`, timed, and its record beside what it wrote."""
    started = time.perf_counter()
    make(folder)
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    conversion = Conversion(
        tool=tool, ms=(time.perf_counter() - started) * 1e3, cached=False,
        bytes=sum(f.stat().st_size for f in files), files=[str(f.relative_to(folder)) for f in files],
    )
    (folder / RECORD).write_text(conversion.model_dump_json(indent=1))

"""The results folder: `<results_dir>/<platform_id>/<model>/<preset>/<framework>-<device>-<dtype>.json`,
and beside each platform's models its measured peaks, `<results_dir>/<platform_id>/machine.json` (arena/results/machine.py).

Files are written atomically (temp file + rename), so a crash never leaves half a JSON behind.
Results from any number of machines merge by copying folders: the platform id keeps them apart.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from arena.errors import ArenaError
from arena.results import machine
from arena.results.schema import SCHEMA_VERSION, Result


def result_path(results_dir: Path, platform_id: str, model: str, preset: str, file_stem: str) -> Path:
    return results_dir / platform_id / model / preset / f"{file_stem}.json"


def results_by_platform(results_dir: Path, model: str, preset: str, file_stem: str) -> dict[str, Result]:
    """One cell's valid results on every platform in the store, keyed by platform id (for a cluster run,
    which learns the platform of the machine that will run a cell only when it runs it)."""
    found = {}
    for path in sorted(results_dir.glob(f"*/{model}/{preset}/{file_stem}.json")):
        result = read_result(path)
        if result is not None:
            found[path.relative_to(results_dir).parts[0]] = result
    return found


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_result(path: Path) -> Result:
    """A valid result; a missing, truncated or foreign file is an ArenaError naming the file and the field."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ArenaError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return Result.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
        raise ArenaError(f"{path}: not a result of schema v{SCHEMA_VERSION}: {where}: {first['msg']}{more}") from None


def read_result(path: Path) -> Result | None:
    """A valid result, or None if the file is missing, truncated or of another schema (a re-run redoes it)."""
    try:
        return load_result(path)
    except ArenaError:
        return None


def result_files(folder: Path) -> list[Path]:
    """Every result file under a folder: the JSON files but each platform's machine peaks (machine.FILE)."""
    return sorted(p for p in folder.rglob("*.json") if p.name != machine.FILE)


def iter_results(results_dir: Path) -> Iterator[tuple[Path, Result]]:
    for path in result_files(results_dir):
        result = read_result(path)
        if result is not None:
            yield path, result

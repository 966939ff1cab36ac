"""The results folder: `<results_dir>/<platform_id>/<model>/<preset>/<framework>-<device>-<dtype>.json`.

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

from arena.results.schema import Result


def result_path(results_dir: Path, platform_id: str, model: str, preset: str, file_stem: str) -> Path:
    return results_dir / platform_id / model / preset / f"{file_stem}.json"


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


def read_result(path: Path) -> Result | None:
    """A valid result, or None if the file is missing, truncated or of another schema."""
    try:
        return Result.model_validate_json(path.read_text())
    except (OSError, ValueError, ValidationError):
        return None


def iter_results(results_dir: Path) -> Iterator[tuple[Path, Result]]:
    for path in sorted(results_dir.rglob("*.json")):
        result = read_result(path)
        if result is not None:
            yield path, result

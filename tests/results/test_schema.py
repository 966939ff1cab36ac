"""The result schema: a real result round-trips, and the JSON Schema exports through the command."""

from __future__ import annotations

import json
import subprocess
import sys

from arena.results.schema import SCHEMA_VERSION, Result, json_schema
from arena.results.stats import summarize
from arena.run.system import describe


def _result() -> Result:
    return Result.model_validate({
        "run_id": "r1", "created": "2026-11-28T00:00:00+00:00", "model": "m", "family": "llama", "preset": "tiny",
        "framework": "torch", "device": "cpu", "dtype": "fp32", "threads": 2, "status": "ok", "spec_hash": "abc",
        "system": describe().model_dump(),
        "metrics": {"inference": {"stats": summarize([1.0, 2.0, 3.0]).model_dump(), "throughput": 5.0, "throughput_unit": "tokens/s"}},
    })


def test_round_trip():
    result = _result()
    again = Result.model_validate_json(result.model_dump_json())
    assert again == result
    assert again.schema_version == SCHEMA_VERSION


def test_unknown_fields_are_rejected():
    payload = json.loads(_result().model_dump_json()) | {"surprise": 1}
    try:
        Result.model_validate(payload)
    except ValueError as err:
        assert "surprise" in str(err)
    else:
        raise AssertionError("an unknown field was accepted")


def test_schema_export_command(tmp_path):
    out = tmp_path / "result.schema.json"
    subprocess.run([sys.executable, "-m", "arena.results", "schema", str(out)], check=True)
    schema = json.loads(out.read_text())
    assert schema == json.loads(json.dumps(json_schema()))
    assert {"status", "metrics", "correctness", "system", "spec_hash"} <= set(schema["properties"])


def test_a_cell_that_did_not_finish_cannot_carry_pass():
    payload = json.loads(_result().model_dump_json()) | {"correctness": {"verdict": "pass"}}
    assert Result.model_validate(payload).correctness.verdict == "pass"
    for status in ("error", "timeout", "crashed"):
        try:
            Result.model_validate(payload | {"status": status})
        except ValueError as err:
            assert "cannot have the verdict 'pass'" in str(err)
        else:
            raise AssertionError(f"status {status} with verdict pass was accepted")

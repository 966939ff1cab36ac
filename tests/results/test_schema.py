"""The result schema: a real result round-trips, a v1 result reads as v2, and the JSON Schema exports through the command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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


def test_a_v1_result_reads_as_v2_without_the_interval_of_a_low_sample():
    """Schema v1 gave every median an interval, 3 calls or 300; read now, a low-sample one loses it."""
    v1 = json.loads(_result().model_dump_json())
    v1["schema_version"] = 1
    few = {k: v for k, v in summarize([1.0, 2.0, 3.0]).model_dump().items() if k != "low_sample"}
    many = {k: v for k, v in summarize([1.0, 2.0, 3.0, 4.0, 5.0]).model_dump().items() if k != "low_sample"}
    v1["metrics"]["inference"]["stats"] = few | {"ci95_low_ms": 1.0, "ci95_high_ms": 3.0}
    v1["metrics"]["training"] = {"stats": many}
    del v1["metrics"]["inference"]["warmup_ms"]
    read = Result.model_validate(v1)
    assert read.schema_version == 1, "the version it was written with"
    inference, training = read.metrics.inference, read.metrics.training
    assert inference.stats.low_sample and (inference.stats.ci95_low_ms, inference.stats.ci95_high_ms) == (None, None)
    assert inference.warmup_ms == [], "v1 did not record warm-up calls"
    assert not training.stats.low_sample and training.stats.ci95_low_ms == many["ci95_low_ms"]


def test_a_v2_result_must_say_whether_it_is_low_sample():
    payload = json.loads(_result().model_dump_json())
    del payload["metrics"]["inference"]["stats"]["low_sample"]
    with pytest.raises(ValueError, match="low_sample"):
        Result.model_validate(payload)

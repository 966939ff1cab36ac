"""The outputs cached for verdicts heal or say what is wrong: a damaged reference is found, said in one
line, and the reference run again; a damaged kept copy of a cell's outputs is replaced; re-judging names
a damaged file instead of failing on it. The reference cell is a stand-in here (its outputs written as the
child would), so the tests need neither torch nor the machine's timing slot; the judging is the real one."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pytest

from arena import weights
from arena.run import orchestrate
from arena.run.config import RunConfig
from arena.run.rejudge import why_not_rejudgeable
from arena.run.system import describe

OUTPUTS = {"inference/logits": np.random.default_rng(0).standard_normal((2, 8, 16)).astype(np.float32)}


@pytest.fixture
def judged(tmp_path, monkeypatch):
    """A candle cell of SmolLM2 tiny whose outputs agree with the reference's, ready to be judged; the
    reference cell is a stand-in that counts its runs."""
    run = orchestrate.plan(RunConfig(
        matrix="test", devices={"candle": "cpu"}, models=["smollm2-135m"], frameworks=["candle"], preset="tiny",
        results_dir=str(tmp_path / "results"), cache_dir=str(tmp_path / "cache")))
    (cell,) = run.cells
    spec, system = run.specs[cell.model], describe()
    weights_file = weights.materialize(spec, cell.preset, run.cache_dir)
    finished = orchestrate.unfinished_result(run, cell, spec, weights_file, system).model_copy(update={"status": "ok"})
    references = []

    def reference_cell(run, cell, spec, weights_file, system, mode):
        assert mode == "reference" and cell.framework == "torch"
        references.append(cell)
        np.savez(orchestrate.cell_file(run, cell, system, mode, ".npz"), **OUTPUTS)
        return finished

    monkeypatch.setattr(orchestrate, "run_cell", reference_cell)
    artifact = orchestrate.cell_file(run, cell, system, "measure", ".npz")
    np.savez(artifact, **OUTPUTS)
    return SimpleNamespace(
        run=run, references=references, artifact=artifact,
        reference=orchestrate.reference_path(run, spec, cell.preset, weights_file.weights_hash),
        judge=lambda: orchestrate.judge(run, cell, spec, weights_file, system, finished),
        result=lambda correctness: finished.model_copy(update={"correctness": correctness, "fingerprint": orchestrate.code_fingerprint(run, cell)}),
    )


def test_a_damaged_reference_is_run_again_with_one_line(judged, capsys):
    assert judged.judge().verdict == "pass" and len(judged.references) == 1
    size = judged.reference.stat().st_size
    os.truncate(judged.reference, size // 2)
    assert judged.judge().verdict == "pass" and len(judged.references) == 2
    assert capsys.readouterr().err == (f"arena: cached reference outputs {judged.reference} damaged "
                                       f"({judged.reference.name}: size {size // 2} of {size} bytes); running the reference again\n")
    assert judged.judge().verdict == "pass" and len(judged.references) == 2 and capsys.readouterr().err == "", "healed: reused"


def test_a_damaged_kept_copy_of_a_cells_outputs_is_replaced(judged, capsys):
    digest = orchestrate.keep_outputs(judged.run.cache_dir, judged.artifact)
    kept = orchestrate.outputs_path(judged.run.cache_dir, digest)
    os.truncate(kept, 10)
    assert orchestrate.keep_outputs(judged.run.cache_dir, judged.artifact) == digest
    assert capsys.readouterr().err.startswith(f"arena: cached cell outputs {kept} damaged ({kept.name}: size 10 of ")
    assert kept.read_bytes() == judged.artifact.read_bytes()


@pytest.mark.parametrize("damaged", ["outputs", "reference"])
def test_rejudging_names_a_damaged_file_instead_of_reading_it(judged, damaged):
    result = judged.result(judged.judge())
    cache_dir = judged.run.cache_dir
    assert why_not_rejudgeable(result, judged.run.specs, cache_dir, judged.run.source) == ""
    file = orchestrate.outputs_path(cache_dir, result.correctness.outputs) if damaged == "outputs" else judged.reference
    size = file.stat().st_size
    os.truncate(file, 100)
    assert why_not_rejudgeable(result, judged.run.specs, cache_dir, judged.run.source) == (
        f"its {damaged} {file} in the cache is damaged ({file.name}: size 100 of {size} bytes)")
    assert file.stat().st_size == 100, "left for a run to replace"

"""The reference's cached outputs heal: a damaged file is found, said in one line, and the reference is run
again. The reference cell is a stand-in here (its outputs written as the child would), so the test needs
neither torch nor the machine's timing slot; the judging around it is the real one."""

from __future__ import annotations

import os

import numpy as np

from arena import weights
from arena.run import orchestrate
from arena.run.config import RunConfig
from arena.run.system import describe

OUTPUTS = {"inference/logits": np.random.default_rng(0).standard_normal((2, 8, 16)).astype(np.float32)}


def test_a_damaged_reference_is_run_again_with_one_line(tmp_path, monkeypatch, capsys):
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
    np.savez(orchestrate.cell_file(run, cell, system, "measure", ".npz"), **OUTPUTS)  # the candidate agrees

    def verdict() -> str:
        return orchestrate.judge(run, cell, spec, weights_file, system, finished).verdict

    assert verdict() == "pass" and len(references) == 1
    reference = orchestrate.reference_path(run, spec, cell.preset, weights_file.weights_hash)
    size = reference.stat().st_size
    os.truncate(reference, size // 2)
    assert verdict() == "pass" and len(references) == 2
    assert capsys.readouterr().err == (f"arena: cached reference outputs {reference} damaged "
                                       f"({reference.name}: size {size // 2} of {size} bytes); running the reference again\n")
    assert verdict() == "pass" and len(references) == 2 and capsys.readouterr().err == "", "healed: reused"

"""A cell — one model × preset × framework × device × dtype — and the job handed to its child process."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arena.frameworks.contract import REFERENCE_FRAMEWORK
from arena.results.schema import System


class Cell(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    preset: str
    framework: str
    device: str
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.model}/{self.preset}/{self.framework}@{self.device}/{self.dtype}"

    @property
    def file_stem(self) -> str:
        return f"{self.framework}-{self.device.replace(':', '_')}-{self.dtype}"

    @property
    def is_reference(self) -> bool:
        """The eager fp32 CPU PyTorch cell: the one every other cell is compared with."""
        return self.framework == REFERENCE_FRAMEWORK and self.device == "cpu" and self.dtype == "fp32"


# The child's exit status when it has just converted its model (an ONNX export, say): the converter's
# memory would sit under every workload's peak (torch.export kept ~1 GB of heap under a ResNet-50 in
# ONNX Runtime, whose workloads peak at 0.3 GB from the cached graph), so the parent starts the cell
# once more, and that child reads the cached artifact. 75 is sysexits' EX_TEMPFAIL ("try again"): no
# framework exits with it, so a crash is never taken for a conversion.
CONVERTED = 75


class CellJob(BaseModel):
    """Everything the child needs, as a file: the child imports nothing the parent has decided."""

    model_config = ConfigDict(extra="forbid")

    cell: Cell
    spec_path: str
    mode: Literal["measure", "reference"] = "measure"  # reference: outputs only, one call per workload
    threads: int
    run_id: str
    weights_files: list[str]
    weights_hash: str
    weights_source: str
    result_path: str
    artifact_path: str
    convert_dir: str = ""  # where framework conversions of this preset's weights are cached
    system: System
    lifeline_fd: int | None = Field(None, description="read end of a pipe whose write end only the parent holds: EOF means the parent died")

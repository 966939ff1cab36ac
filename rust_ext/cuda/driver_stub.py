"""The C source of a link stub for libcuda.so.1 (the CUDA driver, which no PyPI package carries):
every driver function that the locked cudarc's bindings declare, each returning CUDA_ERROR_NO_DEVICE.

    python rust_ext/cuda/driver_stub.py RUST_EXT OUT.c

Linked against it, the extension names libcuda.so.1 (NEEDED) and the GPU host's driver provides the
functions; loaded with the stub itself, the extension behaves as on a machine whose driver finds no GPU.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

CUDA_ERROR_NO_DEVICE = 100
# The two functions that describe an error fill in a string (a caller reads it back): a stub that only
# returned an error code would leave the caller a dangling pointer.
DESCRIBED = {
    "cuGetErrorName": "CUDA_ERROR_NO_DEVICE",
    "cuGetErrorString": "no CUDA-capable device is detected (the libcuda link stub, not a driver)",
}
# cudarc's driver bindings declare each function inside an `extern "C"` block as `fn cuName(`.
DECLARATION = re.compile(r"^\s*(?:pub\s+)?fn (cu[A-Za-z0-9_]+)\(", re.MULTILINE)


def cudarc_bindings(rust_ext: Path) -> Path:
    """The driver bindings of the cudarc that Cargo.lock pins (cargo metadata finds its source)."""
    metadata = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--features", "arena-native/candle-cuda"],
                                         cwd=rust_ext, check=True, capture_output=True, text=True).stdout)
    (manifest,) = [p["manifest_path"] for p in metadata["packages"] if p["name"] == "cudarc"]
    return Path(manifest).parent / "src" / "driver" / "sys" / "mod.rs"


def stub_source(bindings: str) -> str:
    names = sorted(set(DECLARATION.findall(bindings)))
    if "cuInit" not in names:
        raise SystemExit("no cuInit among cudarc's driver bindings: has their layout changed?")
    described = [f'int {name}(int error, const char **text) {{ *text = "{text}"; return 0; }}' for name, text in DESCRIBED.items()]
    failing = [f"int {name}(void) {{ return {CUDA_ERROR_NO_DEVICE}; }}" for name in names if name not in DESCRIBED]
    body = "\n".join(described + failing)
    return f"/* libcuda.so.1 link stub: {len(names)} driver functions, each CUDA_ERROR_NO_DEVICE */\n{body}\n"


def main(argv: list[str]) -> int:
    rust_ext, out = Path(argv[0]), Path(argv[1])
    out.write_text(stub_source(cudarc_bindings(rust_ext).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env bash
# arena._native with Candle's CUDA back-end, built on a machine without a GPU or a CUDA install, for a GPU
# host that has no Rust (the lent H200 host). From the repository root:
#   bash rust_ext/cuda/build.sh [OUT]        (OUT default: build/cuda; writes OUT/_native.abi3.so)
# Settings: CUDA_COMPUTE_CAP (default 90, Hopper), TOOLKIT (default ~/.cache/arena/cuda-13.0),
# CARGO_TARGET_DIR (default rust_ext/target-cuda, apart from the CPU build's target/).
#
# What it needs, all from PyPI:
#  - nvcc with its front-end, NVVM, the CUDA runtime headers and CCCL: candle-kernels compiles its kernels
#    to PTX (and its MoE kernels to a static library) at build time;
#  - libcudart, libcublas(Lt), libcurand (and libnvrtc): candle-core links cudarc with `dynamic-linking`,
#    so the extension names them (NEEDED) and the linker must find them;
#  - libcuda, the driver, is no PyPI package: a link stub stands in (every driver function of cudarc's
#    bindings, each returning CUDA_ERROR_NO_DEVICE), as NVIDIA's own toolkit stub does. On the GPU host
#    the driver's libcuda.so.1 is loaded instead.
# The toolkit is 13.0, the oldest CUDA 13: PTX from nvcc 13.0 (ISA 9.0) loads on every CUDA 13 driver.
set -euo pipefail
out=$(realpath -m "${1:-build/cuda}")
repo=$(pwd)
toolkit=$(realpath -m "${TOOLKIT:-$HOME/.cache/arena/cuda-13.0}")
python=${PYTHON:-python3}
packages=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96
          nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14)
root=$toolkit/nvidia/cu13

if [ ! -x "$root/bin/nvcc" ] || [ ! -e "$root/lib/libcublas.so.13" ]; then
    mkdir -p "$toolkit/wheels"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --dest "$toolkit/wheels" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 "${packages[@]}"
    for wheel in "$toolkit"/wheels/*.whl; do "$python" -m zipfile -e "$wheel" "$toolkit"; done
    chmod +x "$root"/bin/* "$root"/nvvm/bin/*
fi

# The linker's names for the libraries (the wheels carry only the versioned files).
for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    ln -sf "$lib" "$root/lib/${lib%.so.*}.so"
done
mkdir -p "$root/lib/stubs"
"$python" "$repo/rust_ext/cuda/driver_stub.py" "$repo/rust_ext" "$root/lib/stubs/driver_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" "$root/lib/stubs/driver_stub.c"
ln -sf stubs/libcuda.so "$root/lib/libcuda.so"
ln -sf libcuda.so "$root/lib/stubs/libcuda.so.1"  # for loading the build here (tests/native/test_cuda_build.py)

export CUDA_ROOT=$root PATH=$root/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/rust_ext/target-cuda}
# An extension module does not link libpython (maturin sets the same): the host's Python is 3.12.
export PYO3_BUILD_EXTENSION_MODULE=1
(cd "$repo/rust_ext" && cargo build --release -p arena-native --features candle-cuda)
mkdir -p "$out"
strip -o "$out/_native.abi3.so" "$CARGO_TARGET_DIR/release/lib_native.so"
echo "$out/_native.abi3.so: $(du -m "$out/_native.abi3.so" | cut -f1) MiB, kernels for compute capability $CUDA_COMPUTE_CAP"

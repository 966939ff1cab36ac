#!/usr/bin/env bash
# arena._native_mkl: Candle built with its `mkl` feature, Candle's documented x86 path (its README:
# "Optimized CPU backend with optional MKL support for x86"), for the `candle-mkl` cells. From the repository root:
#   bash rust_ext/mkl/build.sh [OUT]     (OUT default: arena, so the cells find it; writes OUT/_native_mkl.abi3.so)
# Settings: MKL (default ~/.cache/arena/mkl-2026.2, where the wheels are unpacked), CARGO_TARGET_DIR
# (default rust_ext/target-mkl, apart from the default build's target/: Cargo unifies features, so one
# build cannot hold candle-core with and without MKL).
#
# candle-core 0.11.1's `mkl` feature pins intel-mkl-src 0.8.1 with `mkl-static-lp64-iomp`: MKL and Intel's
# OpenMP runtime linked statically. intel-mkl-tool finds them under $MKLROOT (it walks the folder for
# libmkl_core.a, mkl.h and libiomp5.a); its fallback, a download from a container registry, cannot work
# here. So MKLROOT is the three PyPI wheels Intel publishes (mkl-static, mkl-include, intel-openmp),
# unpacked into one folder. x86-64 only (MKL has no other build); Burn is left out of this module.
set -euo pipefail
out=$(realpath -m "${1:-arena}")
repo=$(pwd)
mkl=$(realpath -m "${MKL:-$HOME/.cache/arena/mkl-2026.2}")
python=${PYTHON:-python3}
packages=(mkl-static==2026.2.0 mkl-include==2026.2.1 intel-openmp==2026.2.0)

if [ ! -e "$mkl/lib/libmkl_core.a" ] || [ ! -e "$mkl/include/mkl.h" ] || [ ! -e "$mkl/lib/libiomp5.a" ]; then
    mkdir -p "$mkl/wheels"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$mkl/wheels" \
        --platform manylinux_2_28_x86_64 "${packages[@]}"
    # The wheels' payload is in <name>.data/data/{lib,include}: unpacked into one prefix, it is an MKLROOT.
    # Only what the static lp64 + Intel OpenMP link reads and the C headers intel-mkl-tool looks for: 683 MB
    # of the wheels' 1.12 GB of payload (2026.2 wheels).
    for wheel in "$mkl"/wheels/*.whl; do
        "$python" - "$wheel" "$mkl" <<'PYEOF'
import sys, zipfile
wheel, root = sys.argv[1:]
wanted = ("lib/libmkl_core.a", "lib/libmkl_intel_lp64.a", "lib/libmkl_intel_thread.a", "lib/libiomp5.a")
with zipfile.ZipFile(wheel) as z:
    for member in z.namelist():
        _, sep, rest = member.partition(".data/data/")
        if sep and (rest in wanted or (rest.startswith("include/") and rest.endswith(".h"))):
            z.getinfo(member).filename = rest
            z.extract(z.getinfo(member), root)
PYEOF
    done
    rm -rf "$mkl/wheels"
fi

export MKLROOT=$mkl
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/rust_ext/target-mkl}
export PYO3_BUILD_EXTENSION_MODULE=1  # as maturin: an extension module does not link libpython
(cd "$repo/rust_ext" && cargo build --release -p arena-native --no-default-features --features candle-mkl)
mkdir -p "$out"
strip -o "$out/_native_mkl.abi3.so" "$CARGO_TARGET_DIR/release/lib_native.so"
echo "$out/_native_mkl.abi3.so: $(du -m "$out/_native_mkl.abi3.so" | cut -f1) MiB (MKL linked statically)"

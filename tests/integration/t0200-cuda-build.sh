#!/bin/sh
# The cuda backend builds and links: where nvcc is installed, `make CUDA=1`
# into its own build directory (build-cuda, reused between runs, or
# $ENCORE_CUDA_BUILD) must succeed warning-free (the Makefile makes warnings
# errors on both sides), the resulting encore must run, and the cuda op test
# must pass (it compares every op with the cpu on a GPU and skips without
# one). Skipped where nvcc is absent. Bounded to 180 s of building.
set -u
cd "$(dirname "$0")/../.." || exit 1
cuda_home=${CUDA_HOME:-/usr/local/cuda}
if [ ! -x "$cuda_home/bin/nvcc" ]; then
    echo "1..0 # SKIP no nvcc at $cuda_home/bin/nvcc"
    exit 0
fi
build=${ENCORE_CUDA_BUILD:-build-cuda}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
# a make that started us passes its jobserver through MAKEFLAGS: run clean
unset MAKEFLAGS MFLAGS MAKELEVEL
# ... and its variables (make asan's SANITIZE): this checks the CUDA build as
# users make it, into a directory the sanitized build does not share.
unset SANITIZE CFLAGS LDLIBS
echo "1..4"

if timeout 180 make CUDA=1 CUDA_HOME="$cuda_home" BUILD="$build" -j2 all \
    "$build/tests/t_backend_cuda" >"$tmp/make.log" 2>&1; then
    echo "ok 1 - make CUDA=1 BUILD=$build builds"
else
    echo "not ok 1 - make CUDA=1 BUILD=$build builds"
    tail -n 40 "$tmp/make.log" | sed 's/^/# /'
fi

if grep -q -i -E 'warning' "$tmp/make.log"; then
    echo "not ok 2 - the build prints no warnings"
    grep -i -E 'warning' "$tmp/make.log" | head -n 20 | sed 's/^/# /'
else
    echo "ok 2 - the build prints no warnings"
fi

if "$build/bin/encore" --help >"$tmp/help.txt" 2>&1 && grep -q '^usage: encore' "$tmp/help.txt"; then
    echo "ok 3 - $build/bin/encore --help runs"
else
    echo "not ok 3 - $build/bin/encore --help runs"
    head -n 20 "$tmp/help.txt" | sed 's/^/# /'
fi

# the op test's own TAP: a plan of 1..0 # SKIP without a device
if "$build/tests/t_backend_cuda" >"$tmp/ops.tap" 2>&1 && ! grep -q '^not ok' "$tmp/ops.tap"; then
    echo "ok 4 - t_backend_cuda passes: $(grep -m1 '^1\.\.' "$tmp/ops.tap" || echo 'no plan')"
else
    echo "not ok 4 - t_backend_cuda passes"
    grep -E '^not ok|^#' "$tmp/ops.tap" | head -n 40 | sed 's/^/# /'
fi

#!/usr/bin/env bash
# On an AMD CPU with AVX-512, where MKL (inside torch) keeps to its AVX2 kernels: runs
# COMMAND (a PyTorch benchmark) with bench/mkl_intel_cpu.c preloaded and prints its JSON lines
# relabelled "impl": "torch-mkl512" (PyTorch as an Intel AVX-512 CPU runs it). Elsewhere it
# prints nothing. Used by bench/run.sh, train.sh and generate.sh.
#   bash bench/mkl512.sh COMMAND [ARG ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
grep -q AuthenticAMD /proc/cpuinfo && grep -qw avx512f /proc/cpuinfo && command -v gcc >/dev/null || exit 0
shim="$root/target/bench/libmkl_intel_cpu.so"
if [ ! -f "$shim" ] || [ "$root/bench/mkl_intel_cpu.c" -nt "$shim" ]; then
  mkdir -p "$root/target/bench"
  gcc -shared -fPIC -O2 -o "$shim" "$root/bench/mkl_intel_cpu.c"
fi
LD_PRELOAD="$shim" "$@" | sed 's/"impl": "torch"/"impl": "torch-mkl512"/'

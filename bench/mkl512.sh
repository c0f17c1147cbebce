#!/usr/bin/env bash
# Prints the path of a built bench/mkl_intel_cpu.c shim when this is an AMD CPU with AVX-512
# (where MKL, inside torch, keeps to its AVX2 kernels), else nothing. The benchmarks then add
# a PyTorch run with it preloaded ("torch-mkl512": PyTorch as an Intel AVX-512 CPU runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if grep -q AuthenticAMD /proc/cpuinfo && grep -qw avx512f /proc/cpuinfo && command -v gcc >/dev/null; then
  mkdir -p target/bench
  gcc -shared -fPIC -O2 -o target/bench/libmkl_intel_cpu.so bench/mkl_intel_cpu.c
  echo "$PWD/target/bench/libmkl_intel_cpu.so"
fi

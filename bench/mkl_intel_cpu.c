/* MKL picks its AVX-512 kernels only on Intel CPUs: on AMD it runs AVX2 code even where the
 * CPU has AVX-512 (measured on a 2-core AMD EPYC Zen 5: torch's 1024x768x3072 matmul 229
 * GFLOP/s, 544 with this shim). bench/run.sh preloads this into a second PyTorch run on
 * AMD CPUs with AVX-512, so the table also shows PyTorch as an Intel machine would run it.
 * It overrides the symbol MKL asks ("is this an Intel CPU?") and changes nothing else. */
int mkl_serv_intel_cpu_true(void) { return 1; }

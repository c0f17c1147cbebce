#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#define N 1003
/* noinline so gcc folds set1_ps(*p) into an embedded broadcast memory operand {1to16} */
__attribute__((noinline)) static __m512 fma_bcast(__m512 x, __m512 y, const float *p) {
    return _mm512_fmadd_ps(x, _mm512_set1_ps(*p), y);
}   /* not a multiple of 16 -> exercises masked tail */

int main(int argc, char **argv) {
    int wrong = (argc > 1 && strcmp(argv[1], "--wrong") == 0);
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        printf("FAIL: cpu does not support avx512f\n");
        return 1;
    }
    printf("avx512f supported: yes, avx512bw: %d, avx512vl: %d\n",
           __builtin_cpu_supports("avx512bw") != 0, __builtin_cpu_supports("avx512vl") != 0);

    static float a[N], b[N], c[N], out[N], ref[N];
    float scale = 1.5f;
    for (int i = 0; i < N; i++) {
        a[i] = (float)(i % 97) * 0.25f - 3.0f;
        b[i] = (float)(i % 13) + 0.5f;
        c[i] = (float)(i % 7) - 2.0f;
        out[i] = -999.0f;
    }
    volatile float *ps = &scale;
    float s = *ps;  /* loaded float -> broadcast */
    __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= N; i += 16) {
        __m512 va = _mm512_loadu_ps(a + i);
        __m512 vb = _mm512_loadu_ps(b + i);
        __m512 vc = _mm512_loadu_ps(c + i);
        __m512 t = _mm512_fmadd_ps(va, vb, vc);      /* a*b + c */
        t = fma_bcast(t, vc, &scale);                 /* (a*b+c)*s + c, embedded broadcast */
        _mm512_storeu_ps(out + i, t);
    }
    if (i < N) {
        __mmask16 m = (__mmask16)((1u << (N - i)) - 1);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i);
        __m512 vb = _mm512_maskz_loadu_ps(m, b + i);
        __m512 vc = _mm512_maskz_loadu_ps(m, c + i);
        __m512 t = _mm512_fmadd_ps(va, vb, vc);
        t = _mm512_fmadd_ps(t, vs, vc);
        _mm512_mask_storeu_ps(out + i, m, t);
    }
    /* AVX512BW + VL: byte compare into mask on 256-bit vectors */
    unsigned char x[32], y[32];
    for (int k = 0; k < 32; k++) { x[k] = (unsigned char)k; y[k] = (unsigned char)(k % 3 ? k : 255); }
    __mmask32 eq = _mm256_cmpeq_epi8_mask(_mm256_loadu_si256((void*)x), _mm256_loadu_si256((void*)y));
    unsigned refeq = 0;
    for (int k = 0; k < 32; k++) if (x[k] == y[k]) refeq |= 1u << k;

    for (int k = 0; k < N; k++) ref[k] = fmaf(fmaf(a[k], b[k], c[k]), scale, c[k]);
    if (wrong) ref[N - 1] += 1.0f;

    int bad = 0;
    for (int k = 0; k < N; k++) {
        if (out[k] != ref[k]) {
            if (bad < 5) printf("mismatch at %d: simd=%f scalar=%f\n", k, out[k], ref[k]);
            bad++;
        }
    }
    if ((unsigned)eq != refeq) { printf("mask mismatch %08x vs %08x\n", (unsigned)eq, refeq); bad++; }
    double sum = 0; for (int k = 0; k < N; k++) sum += out[k];
    printf("sum=%f mask=%08x\n", sum, (unsigned)eq);
    printf("%s\n", bad ? "FAIL" : "PASS");
    return bad ? 1 : 0;
}

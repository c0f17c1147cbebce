#define _GNU_SOURCE
/* Several threads keep thread-specific values in zmm16/zmm31 and k5 while spinning;
   preemption (1 CPU) forces the kernel to XSAVE/XRSTOR the AVX-512 state. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
static long N = 20000000;
static void *worker(void *arg) {
    unsigned t = (unsigned)(long)arg, bad = 0;
    for (int round = 0; round < 4; round++) {
        unsigned val = 0x1000 * (t + 1) + round, kexp = (0x1111u * (t + 1)) & 0xffff, eq, kout;
        __asm__ volatile(
            "vpbroadcastd %[v], %%zmm16\n\t"
            "vmovdqa64 %%zmm16, %%zmm31\n\t"
            "kmovw %[k], %%k5\n\t"
            "mov %[n], %%rcx\n"
            "1: dec %%rcx\n\t jnz 1b\n\t"
            "vpbroadcastd %[v], %%zmm30\n\t"
            "vpcmpeqd %%zmm30, %%zmm16, %%k2\n\t"
            "vpcmpeqd %%zmm30, %%zmm31, %%k3\n\t"
            "kandw %%k2, %%k3, %%k2\n\t"
            "kmovw %%k2, %[eq]\n\t"
            "kmovw %%k5, %[ko]\n\t"
            : [eq] "=r"(eq), [ko] "=r"(kout)
            : [v] "r"(val), [k] "r"(kexp), [n] "r"(N)
            : "rcx", "xmm16", "xmm30", "xmm31", "k2", "k3", "k5", "cc");
        if (eq != 0xffff || kout != kexp) { printf("thread %u round %d: zmm eq=%04x k5=%04x (want %04x)\n", t, round, eq, kout, kexp); bad++; }
    }
    struct rusage ru; getrusage(RUSAGE_THREAD, &ru);
    printf("thread %u: %ld involuntary context switches\n", t, ru.ru_nivcsw);
    return (void *)(long)bad;
}
int main(int argc, char **argv) {
    if (argc > 1) N = atol(argv[1]);
    pthread_t th[4]; long bad = 0;
    for (long i = 0; i < 4; i++) pthread_create(&th[i], 0, worker, (void *)i);
    for (int i = 0; i < 4; i++) { void *r; pthread_join(th[i], &r); bad += (long)r; }
    printf("%s (4 threads x 4 rounds x %ld spins)\n", bad ? "FAIL" : "PASS", N);
    return bad != 0;
}

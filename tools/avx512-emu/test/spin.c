#include <stdio.h>
#include <stdlib.h>
#include <time.h>
/* executes ~4*N instructions in a tight loop */
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000000L;
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
    unsigned long x = 1, i = n;
    __asm__ volatile("1: add %0, %0\n\t xor $3, %0\n\t dec %1\n\t jnz 1b" : "+r"(x), "+r"(i));
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%ld iterations (%ld insns), guest-clock %.3f s, x=%lu\n", n, 4*n, (b.tv_sec-a.tv_sec)+(b.tv_nsec-a.tv_nsec)/1e9, x);
    return 0;
}

#include <stdio.h>
#include <stdlib.h>
/* ~6*N instructions, 4 of them 512-bit FMAs */
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000L;
    __asm__ volatile("vpxord %%zmm0,%%zmm0,%%zmm0; vpxord %%zmm1,%%zmm1,%%zmm1; vpxord %%zmm2,%%zmm2,%%zmm2; vpxord %%zmm3,%%zmm3,%%zmm3" ::: "xmm0","xmm1","xmm2","xmm3");
    long i = n;
    __asm__ volatile("1: vfmadd231ps %%zmm4,%%zmm5,%%zmm0\n\t vfmadd231ps %%zmm4,%%zmm5,%%zmm1\n\t"
                     "vfmadd231ps %%zmm4,%%zmm5,%%zmm2\n\t vfmadd231ps %%zmm4,%%zmm5,%%zmm3\n\t dec %0\n\t jnz 1b" : "+r"(i) :: "xmm0","xmm1","xmm2","xmm3");
    printf("%ld iterations (%ld insns, %ld zmm FMAs)\n", n, 6*n, 4*n);
    return 0;
}

/* One core's floating-point peak, measured: 12 independent chains of fused multiply-adds, written in
 * assembly so that the compiler can neither merge nor drop them, on the widest vectors the CPU has.
 * Prints "f32 <GFLOP/s> f64 <GFLOP/s> <isa>" (best of 5 runs of ~0.2 s each, or as the arguments say).  bench/harness.py compiles
 * and runs it; the ratio tables use it for "% of core peak".  x86-64 only (elsewhere it prints nothing). */
#include <stdio.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define CHAINS(op, r)                                                                            \
    op " %%" r "12, %%" r "13, %%" r "0\n" op " %%" r "12, %%" r "13, %%" r "1\n"                   \
    op " %%" r "12, %%" r "13, %%" r "2\n" op " %%" r "12, %%" r "13, %%" r "3\n"                   \
    op " %%" r "12, %%" r "13, %%" r "4\n" op " %%" r "12, %%" r "13, %%" r "5\n"                   \
    op " %%" r "12, %%" r "13, %%" r "6\n" op " %%" r "12, %%" r "13, %%" r "7\n"                   \
    op " %%" r "12, %%" r "13, %%" r "8\n" op " %%" r "12, %%" r "13, %%" r "9\n"                   \
    op " %%" r "12, %%" r "13, %%" r "10\n" op " %%" r "12, %%" r "13, %%" r "11\n"

#define CLOBBER(r) r "0", r "1", r "2", r "3", r "4", r "5", r "6", r "7", r "8", r "9", r "10", r "11", r "12", r "13"

/* The accumulators start at zero and grow by 0 * 0 per step: no denormals, no overflow. */
#define LOOP(name, isa, op, r, zero)                                                          \
    __attribute__((target(isa))) static void name(long n)                                       \
    {                                                                                            \
        __asm__ volatile(zero "1:\n" CHAINS(op, r) "dec %0\n jnz 1b\n"                          \
                         : "+r"(n)::CLOBBER(r), "cc");                                           \
    }

#define ZERO(r, x)                                                                               \
    x " %%" r "12, %%" r "12, %%" r "12\n" x " %%" r "13, %%" r "13, %%" r "13\n"                   \
    x " %%" r "0, %%" r "0, %%" r "0\n" x " %%" r "1, %%" r "1, %%" r "1\n"                         \
    x " %%" r "2, %%" r "2, %%" r "2\n" x " %%" r "3, %%" r "3, %%" r "3\n"                         \
    x " %%" r "4, %%" r "4, %%" r "4\n" x " %%" r "5, %%" r "5, %%" r "5\n"                         \
    x " %%" r "6, %%" r "6, %%" r "6\n" x " %%" r "7, %%" r "7, %%" r "7\n"                         \
    x " %%" r "8, %%" r "8, %%" r "8\n" x " %%" r "9, %%" r "9, %%" r "9\n"                         \
    x " %%" r "10, %%" r "10, %%" r "10\n" x " %%" r "11, %%" r "11, %%" r "11\n"

LOOP(zmm_ps, "avx512f", "vfmadd231ps", "zmm", ZERO("zmm", "vpxord"))
LOOP(zmm_pd, "avx512f", "vfmadd231pd", "zmm", ZERO("zmm", "vpxord"))
LOOP(ymm_ps, "avx2,fma", "vfmadd231ps", "ymm", ZERO("ymm", "vpxor"))
LOOP(ymm_pd, "avx2,fma", "vfmadd231pd", "ymm", ZERO("ymm", "vpxor"))

static int runs = 5;          /* argv[1] */
static double seconds = 0.2;  /* argv[2]: the shortest run that counts */

static double best_gflops(void (*fn)(long), double flop_per_iter)
{
    long n = 100000;
    double best = 0;
    for (int run = 0; run < runs; ++run) {
        double t;
        for (;;) { /* grow n until one run lasts `seconds` */
            t = now();
            fn(n);
            t = now() - t;
            if (t > seconds)
                break;
            n *= 2;
        }
        if (n * flop_per_iter / t / 1e9 > best)
            best = n * flop_per_iter / t / 1e9;
    }
    return best;
}

/* Optional arguments: the number of runs (1..100) and the seconds each lasts at least (0.001..10), e.g.
 * "1 0.03" for a quick look at how fast a core is right now (bench/harness.py's core_speeds). */
int main(int argc, char **argv)
{
    if (argc > 1 && sscanf(argv[1], "%d", &runs) != 1)
        runs = 5;
    if (argc > 2 && sscanf(argv[2], "%lf", &seconds) != 1)
        seconds = 0.2;
    if (runs < 1 || runs > 100)
        runs = 5;
    if (!(seconds >= 0.001 && seconds <= 10))
        seconds = 0.2;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        printf("f32 %.1f f64 %.1f avx512\n", best_gflops(zmm_ps, 12 * 16 * 2), best_gflops(zmm_pd, 12 * 8 * 2));
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        printf("f32 %.1f f64 %.1f avx2\n", best_gflops(ymm_ps, 12 * 8 * 2), best_gflops(ymm_pd, 12 * 4 * 2));
    return 0;
}
#else
int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
#endif

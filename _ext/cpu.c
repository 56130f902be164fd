/* Runtime choice of the kernel path and of the thread count. */
#include "mg_internal.h"

/* Portable until minigrad._kernels picks the best path at import; plain ints because a kernel racing a
 * change reads either the old or the new value, and both are valid. */
static int current_isa = MG_ISA_PORTABLE;
static int num_threads = 1;

int mg_isa_supported(int isa)
{
    switch (isa) {
    case MG_ISA_PORTABLE:
        return 1;
#if MG_X86
    case MG_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case MG_ISA_AVX512:
        /* libgcc also checks that the OS saves the zmm state (XCR0). */
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
#endif
    default:
        return 0;
    }
}

int mg_best_isa(void)
{
    int isa = MG_ISA_COUNT - 1;
    while (!mg_isa_supported(isa))
        --isa;
    return isa;
}

int mg_get_isa(void) { return current_isa; }

int mg_set_isa(int isa)
{
    if (!mg_isa_supported(isa))
        return -1;
    current_isa = isa;
    return 0;
}

int mg_active_isa(void) { return current_isa; }

int mg_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int mg_get_num_threads(void) { return mg_openmp() ? num_threads : 1; }

void mg_set_num_threads(int n) { num_threads = n < 1 ? 1 : n; }

int mg_active_threads(void) { return mg_get_num_threads(); }

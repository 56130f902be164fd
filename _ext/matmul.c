/* Matrix multiply for float32 and float64: per-path blocking and the shared driver in matmul_tmpl.h. */
#include <stdatomic.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#endif
#include <stdint.h>
#include <string.h>

#include "mg_internal.h"

/* gemm_serial sweeps each B panel down all of A's rows (instead of every panel for each row tile) when A is
 * read in place and is at most this big (per K slice): a recurrent step's state rows against its packed
 * weight.  Measured on an Intel Xeon (family 6, model 207), calls of each order alternating in one process:
 * 64 float32 (32, 128) @ packed (128, 512) addmm steps 1.13-1.20x faster on 1 thread, 1.06x on 2; the LSTM
 * forward sequence job 1.10-1.14x (float64 1.11x); plain products within noise of before. */
#define JR_OUTER_A_BYTES 65536

/* Products of at least MG_SHARE_FLOPS are cut into tasks that pool threads still awake from recent calls
 * (a loop of small products) join; from MG_WAKE_FLOPS on, sleeping pool threads are woken for them too.
 * Measured here: a 64^3 product (0.5 MFLOP, ~5 us) loses to the hand-off; the RNN step's 32 x 128 @ 128 x 128
 * (1 MFLOP) gains 1.3-1.5x on 2 threads, also when it has to wake a sleeping helper. */
#ifndef MG_SHARE_FLOPS
#define MG_SHARE_FLOPS 1e6
#endif
#ifndef MG_WAKE_FLOPS
#define MG_WAKE_FLOPS 1e6
#endif
/* Blocking (AVX-512): KC = 256 rows of B per slice; a packed KC x NC block of B is 512 KB (half of L2), swept
 * for every MR-row panel of A.  Swept on this Zen machine over KC 128..512 and NC 256..1024 (n = 256..1024,
 * one core): within noise of each other from KC 256 on; KC 128 loses 5-10 %. */
#define KC32 256
#define NC32 512
#define KC64 256
#define NC64 256
/* Up to this many rows of A a row-major B is read in place: packing it would not pay for itself. */
#define DIRECT_B_ROWS 64

/* A thread waiting for the others in a job (mg_addmm_seq's steps): pause, then yield the core after a
 * while, so that a thread it waits for, queued on this core, gets to run. */
static inline void mg_spin_pause(int spins)
{
    if (spins < 256) {
#if MG_X86
        __builtin_ia32_pause();
#endif
    } else {
#if MG_THREADS
        sched_yield();
#endif
    }
}

/* Until `finished` (the tasks a sequence job has done) reaches `target`: the earlier steps' tasks. */
static inline void mg_wait_for(_Atomic mg_int *finished, mg_int target)
{
    for (int spins = 0; atomic_load_explicit(finished, memory_order_acquire) < target; ++spins)
        mg_spin_pause(spins);
}

#define T float
#define SFX f32
#define CFG_PORTABLE {4, 16, 256, 1024, ukr_portable_f32, NULL, NULL, 0, pack_rows_portable_f32}
#define CFG_AVX2 {6, 16, 256, 1024, mg_ukr_avx2_f32, mg_pack_t_f32, NULL, 0, pack_rows_portable_f32}
#define CFG_AVX512                                                                                         \
    {6, 64, KC32, NC32, mg_ukr_avx512_f32, mg_pack_t_f32, mg_pack_n_avx512_f32, DIRECT_B_ROWS,                   \
     mg_pack_rows_avx512_f32}
#include "matmul_tmpl.h"
#undef T
#undef SFX
#undef CFG_PORTABLE
#undef CFG_AVX2
#undef CFG_AVX512

#define T double
#define SFX f64
#define CFG_PORTABLE {4, 16, 256, 512, ukr_portable_f64, NULL, NULL, 0, pack_rows_portable_f64}
#define CFG_AVX2 {6, 8, 256, 512, mg_ukr_avx2_f64, mg_pack_t_f64, NULL, 0, pack_rows_portable_f64}
#define CFG_AVX512                                                                                         \
    {6, 32, KC64, NC64, mg_ukr_avx512_f64, mg_pack_t_f64, mg_pack_n_avx512_f64, DIRECT_B_ROWS,                   \
     mg_pack_rows_avx512_f64}
#include "matmul_tmpl.h"

/* The gated cells' fused elementwise epilogues (LSTM and GRU, torch's gate order and formulas), batch row by
 * batch row.
 *
 * Each result is computed exactly as the plain ops would compute it: sigmoid and tanh and their derivatives
 * by the serial kernels of the current path (sigmoid.c, tanh.c: the bits of mg_sigmoid / mg_tanh and their
 * backward on that path), every product and sum rounded on its own in the order the ops apply them.  So
 * the results are bitwise those of the composition (numpy's multiply and add between the kernel calls), on
 * every path and for every thread count.  Products are never fused with the sums that follow them: the
 * pragmas below forbid the compiler to contract them into FMAs.
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <string.h>

#include "mg_internal.h"

enum { MG_GATE_LSTM_FWD = 0, MG_GATE_LSTM_BWD = 1, MG_GATE_GRU_FWD = 2, MG_GATE_GRU_BWD = 3, MG_GATE_KINDS = 4 };

/* One call: `B` rows of operands whose rows lie ins[k] / outs[k] elements apart; the path's serial kernels
 * are read once per call. */
typedef struct {
    struct {
        mg_unary_f32 sig_f32, tanh_f32;
        mg_unary_f64 sig_f64, tanh_f64;
        mg_binary_f32 sig_bw_f32, tanh_bw_f32;
        mg_binary_f64 sig_bw_f64, tanh_bw_f64;
    } f;
    int kind, f64, isa;
    mg_int B, H, rows_per_task;
    const void *in[5];
    mg_int ins[5];
    void *out[4];
    mg_int outs[4];
} gate_job;

/* The AVX-512 instantiation's vectors (gates_tmpl.h, GATE_VEC): the type, its lanes, a lane mask, and the
 * intrinsic named op for the element type. */
#if MG_X86
#include <immintrin.h>
#endif
#define T float
#define SFX f32
#define GATE_V __m512
#define GATE_M __mmask16
#define GATE_W 16
#define GV_(op) _mm512_##op##_ps
#include "gates_isas.h"
#undef GATE_V
#undef GATE_M
#undef GATE_W
#undef GV_
#define T double
#define SFX f64
#define GATE_V __m512d
#define GATE_M __mmask8
#define GATE_W 8
#define GV_(op) _mm512_##op##_pd
#include "gates_isas.h"
#undef GATE_V
#undef GATE_M
#undef GATE_W
#undef GV_

typedef void (*gate_row_fn)(const gate_job *, mg_int);
#if MG_X86
static const gate_row_fn *const gate_rows_f32[MG_ISA_COUNT] = {gate_rows_f32_portable, gate_rows_f32_avx2,
                                                               gate_rows_f32_avx512};
static const gate_row_fn *const gate_rows_f64[MG_ISA_COUNT] = {gate_rows_f64_portable, gate_rows_f64_avx2,
                                                               gate_rows_f64_avx512};
#else
static const gate_row_fn *const gate_rows_f32[MG_ISA_COUNT] = {gate_rows_f32_portable};
static const gate_row_fn *const gate_rows_f64[MG_ISA_COUNT] = {gate_rows_f64_portable};
#endif

static void gate_task(void *ctx, mg_int t)
{
    const gate_job *j = ctx;
    const mg_int lo = t * j->rows_per_task, hi = j->B - lo < j->rows_per_task ? j->B : lo + j->rows_per_task;
    const gate_row_fn row = (j->f64 ? gate_rows_f64 : gate_rows_f32)[j->isa][j->kind];
    for (mg_int r = lo; r < hi; ++r)
        row(j, r);
}

/* Rows are shared between threads from about as many elements as tanh's arrays are (16384 with threads
 * still awake, 65536 waking them); each row is one task's or another's, never split. */
#define GATE_SHARE_ELEMS 16384
#define GATE_WAKE_ELEMS 65536

/* The job's path and serial kernels (the current path's). */
static void gate_setup(gate_job *j, int kind, int f64, mg_int B, mg_int H)
{
    const int isa = mg_get_isa();
    j->kind = kind;
    j->isa = isa;
    j->f64 = f64;
    j->B = B;
    j->H = H;
    j->f.sig_f32 = mg_sigmoid_serial_f32(isa);
    j->f.tanh_f32 = mg_tanh_serial_f32(isa);
    j->f.sig_f64 = mg_sigmoid_serial_f64(isa);
    j->f.tanh_f64 = mg_tanh_serial_f64(isa);
    j->f.sig_bw_f32 = mg_sigmoid_backward_serial_f32(isa);
    j->f.tanh_bw_f32 = mg_tanh_backward_serial_f32(isa);
    j->f.sig_bw_f64 = mg_sigmoid_backward_serial_f64(isa);
    j->f.tanh_bw_f64 = mg_tanh_backward_serial_f64(isa);
}

static void gate_run(gate_job *j, int kind, int f64, mg_int B, mg_int H, mg_int width)
{
    if (B <= 0 || H <= 0)
        return;
    gate_setup(j, kind, f64, B, H);
    const mg_int elems = B * width;
    int wake = elems >= GATE_WAKE_ELEMS;
    const int nt = mg_job_threads(elems >= GATE_SHARE_ELEMS, &wake);
    /* a few tasks per thread, each at least half the share threshold */
    mg_int rows = (B + 4 * nt - 1) / (4 * nt);
    const mg_int min_rows = (GATE_SHARE_ELEMS / 2 + width - 1) / width;
    j->rows_per_task = rows < min_rows ? min_rows : rows;
    mg_parallel_for((B + j->rows_per_task - 1) / j->rows_per_task, nt, wake, gate_task, j);
}

#define GATE_API(SFX, T)                                                                                        \
    void mg_lstm_forward_##SFX(mg_int B, mg_int H, const T *gates, mg_int gs, const T *c_prev, mg_int cps,      \
                               T *act, mg_int as, T *c, mg_int cs, T *tanh_c, mg_int tcs, T *h, mg_int hs)      \
    {                                                                                                           \
        gate_job j = {.in = {gates, c_prev}, .ins = {gs, cps}, .out = {act, c, tanh_c, h},                    \
                      .outs = {as, cs, tcs, hs}};                                                               \
        gate_run(&j, MG_GATE_LSTM_FWD, sizeof(T) == 8, B, H, 8 * H);                                            \
    }                                                                                                           \
    void mg_lstm_backward_##SFX(mg_int B, mg_int H, const T *dh, mg_int dhs, const T *dc, mg_int dcs,           \
                                const T *act, mg_int as, const T *c_prev, mg_int cps, const T *tanh_c,          \
                                mg_int tcs, T *d_gates, mg_int dgs, T *dc_prev, mg_int dcps)                    \
    {                                                                                                           \
        gate_job j = {.in = {dh, dc, act, c_prev, tanh_c}, .ins = {dhs, dcs, as, cps, tcs},                    \
                      .out = {d_gates, dc_prev}, .outs = {dgs, dcps}};                                          \
        gate_run(&j, MG_GATE_LSTM_BWD, sizeof(T) == 8, B, H, 9 * H);                                            \
    }                                                                                                           \
    void mg_gru_forward_##SFX(mg_int B, mg_int H, const T *xg, mg_int xs, const T *hg, mg_int hgs,              \
                              const T *h_prev, mg_int hps, T *act, mg_int as, T *h, mg_int hs)                  \
    {                                                                                                           \
        gate_job j = {.in = {xg, hg, h_prev}, .ins = {xs, hgs, hps}, .out = {act, h}, .outs = {as, hs}};       \
        gate_run(&j, MG_GATE_GRU_FWD, sizeof(T) == 8, B, H, 11 * H);                                            \
    }                                                                                                           \
    void mg_gru_backward_##SFX(mg_int B, mg_int H, const T *dh, mg_int dhs, const T *act, mg_int as,            \
                               const T *hn, mg_int hns, const T *h_prev, mg_int hps, T *d_xg, mg_int dxs,       \
                               T *d_hg, mg_int dhgs, T *dh_prev, mg_int dhps)                                   \
    {                                                                                                           \
        gate_job j = {.in = {dh, act, hn, h_prev}, .ins = {dhs, as, hns, hps}, .out = {d_xg, d_hg, dh_prev},  \
                      .outs = {dxs, dhgs, dhps}};                                                               \
        gate_run(&j, MG_GATE_GRU_BWD, sizeof(T) == 8, B, H, 12 * H);                                            \
    }
GATE_API(f32, float)
GATE_API(f64, double)

/* The same rows on the calling thread alone: the step epilogue of a sequence job's task (matmul_tmpl.h),
 * which owns these rows of the batch through every step. */
static void gate_serial(gate_job *j, int kind, int f64, mg_int B, mg_int H)
{
    if (B <= 0 || H <= 0)
        return;
    gate_setup(j, kind, f64, B, H);
    const gate_row_fn row = (f64 ? gate_rows_f64 : gate_rows_f32)[j->isa][kind];
    for (mg_int r = 0; r < B; ++r)
        row(j, r);
}

#define GATE_ROWS_API(SFX, T)                                                                                   \
    void mg_lstm_forward_rows_##SFX(mg_int B, mg_int H, const T *gates, mg_int gs, const T *c_prev, mg_int cps, \
                                    T *act, mg_int as, T *c, mg_int cs, T *tanh_c, mg_int tcs, T *h, mg_int hs) \
    {                                                                                                           \
        gate_job j = {.in = {gates, c_prev}, .ins = {gs, cps}, .out = {act, c, tanh_c, h},                    \
                      .outs = {as, cs, tcs, hs}};                                                               \
        gate_serial(&j, MG_GATE_LSTM_FWD, sizeof(T) == 8, B, H);                                                \
    }                                                                                                           \
    void mg_lstm_backward_rows_##SFX(mg_int B, mg_int H, const T *dh, mg_int dhs, const T *dc, mg_int dcs,      \
                                     const T *act, mg_int as, const T *c_prev, mg_int cps, const T *tanh_c,     \
                                     mg_int tcs, T *d_gates, mg_int dgs, T *dc_prev, mg_int dcps)               \
    {                                                                                                           \
        gate_job j = {.in = {dh, dc, act, c_prev, tanh_c}, .ins = {dhs, dcs, as, cps, tcs},                    \
                      .out = {d_gates, dc_prev}, .outs = {dgs, dcps}};                                          \
        gate_serial(&j, MG_GATE_LSTM_BWD, sizeof(T) == 8, B, H);                                                \
    }                                                                                                           \
    void mg_gru_forward_rows_##SFX(mg_int B, mg_int H, const T *xg, mg_int xs, const T *hg, mg_int hgs,         \
                                   const T *h_prev, mg_int hps, T *act, mg_int as, T *h, mg_int hs)             \
    {                                                                                                           \
        gate_job j = {.in = {xg, hg, h_prev}, .ins = {xs, hgs, hps}, .out = {act, h}, .outs = {as, hs}};       \
        gate_serial(&j, MG_GATE_GRU_FWD, sizeof(T) == 8, B, H);                                                 \
    }                                                                                                           \
    void mg_gru_backward_rows_##SFX(mg_int B, mg_int H, const T *dh, mg_int dhs, const T *act, mg_int as,       \
                                    const T *hn, mg_int hns, const T *h_prev, mg_int hps, T *d_xg, mg_int dxs,  \
                                    T *d_hg, mg_int dhgs, T *dh_prev, mg_int dhps)                              \
    {                                                                                                           \
        gate_job j = {.in = {dh, act, hn, h_prev}, .ins = {dhs, as, hns, hps}, .out = {d_xg, d_hg, dh_prev},  \
                      .outs = {dxs, dhgs, dhps}};                                                               \
        gate_serial(&j, MG_GATE_GRU_BWD, sizeof(T) == 8, B, H);                                                 \
    }
GATE_ROWS_API(f32, float)
GATE_ROWS_API(f64, double)

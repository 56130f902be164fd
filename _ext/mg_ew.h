/* The machinery shared by the elementwise kernels (tanh.c, sigmoid.c): the SIMD loop over an array,
 * its tails, the per-path tables and the cutting of large arrays into tasks for the thread pool. */
#ifndef MINIGRAD_EW_H
#define MINIGRAD_EW_H

#include <string.h>

#include "mg_internal.h"
#if MG_X86
#include <immintrin.h>
#endif

/* float32 arrays of at least MG_SHARE_ELEMS elements are cut into tasks for pool threads that are awake;
 * from MG_WAKE_ELEMS on (or in a stream of calls: mg_job_threads), sleeping pool threads are woken for them
 * too. */
#ifndef MG_SHARE_ELEMS
#define MG_SHARE_ELEMS 16384
#endif
#ifndef MG_WAKE_ELEMS
#define MG_WAKE_ELEMS 65536
#endif

/* Q(s) = (expm1(s) - s)/s^2 on [-ln2/2, ln2/2], a Chebyshev fit (mpmath, 60 digits; coefficients rounded
 * to the element type): exp(s) = 1 + s + s^2 Q(s). */
#define Q32_(k) (k == 0 ? 0x1p-1f : k == 1 ? 0x1.555556p-3f : k == 2 ? 0x1.5554eap-5f : k == 3 ? 0x1.1110e0p-7f \
                 : k == 4 ? 0x1.6d4324p-10f : 0x1.a124f2p-13f)
#define Q32_COUNT 6
#define Q64_(k) (k == 0 ? 0x1.0000000000000p-1 : k == 1 ? 0x1.5555555555557p-3 : k == 2 ? 0x1.5555555555556p-5 \
                 : k == 3 ? 0x1.11111111100dcp-7 : k == 4 ? 0x1.6c16c16c162d4p-10 : k == 5 ? 0x1.a01a01abe7fe1p-13 \
                 : k == 6 ? 0x1.a01a01a6d889cp-16 : k == 7 ? 0x1.71de0231960ebp-19 : k == 8 ? 0x1.27e4db646b17ep-22 \
                 : k == 9 ? 0x1.af4de97ca4194p-26 : 0x1.1f730349868cep-29)
#define Q64_COUNT 11

typedef void (*unary_f32)(mg_int, const float *, float *);
typedef void (*unary_f64)(mg_int, const double *, double *);
typedef void (*binary_f32)(mg_int, const float *, const float *, float *);
typedef void (*binary_f64)(mg_int, const double *, const double *, double *);

#if MG_X86
#define BY_ISA(name, sfx) {name##_portable_##sfx, name##_avx2_##sfx, name##_avx512_##sfx}
#else
#define BY_ISA(name, sfx) {name##_portable_##sfx}
#endif

/* A loop written once in plain C, compiled for every path and element type: GEN(ATTR, NAME, T) defines
 * name_<path>_f32 and name_<path>_f64 (the compiler vectorises each for its path's target), which BY_ISA
 * then lists. */
#if MG_X86
#define FOR_EACH_ISA(GEN, name)                                                             \
    GEN(, name##_portable_f32, float)                                                       \
    GEN(, name##_portable_f64, double)                                                      \
    GEN(MG_TARGET_AVX2, name##_avx2_f32, float)                                             \
    GEN(MG_TARGET_AVX2, name##_avx2_f64, double)                                            \
    GEN(MG_TARGET_AVX512, name##_avx512_f32, float)                                         \
    GEN(MG_TARGET_AVX512, name##_avx512_f64, double)
#else
#define FOR_EACH_ISA(GEN, name)                                                             \
    GEN(, name##_portable_f32, float)                                                       \
    GEN(, name##_portable_f64, double)
#endif

#if MG_X86
/* The loops: blocks of four vectors, then single vectors, then the tail under a lane mask (masked-off
 * lanes are never touched). */
#define SIMD_LOOP(V, W, LOADU, STOREU, TAIL_LOAD, TAIL_STORE, F)                            \
    mg_int i = 0;                                                                           \
    V xs[4], ys[4];                                                                         \
    for (; i + 4 * W <= n; i += 4 * W) {                                                    \
        for (int j = 0; j < 4; ++j)                                                         \
            xs[j] = LOADU(x + i + j * W);                                                   \
        F(4, xs, ys);                                                                       \
        for (int j = 0; j < 4; ++j)                                                         \
            STOREU(y + i + j * W, ys[j]);                                                   \
    }                                                                                       \
    for (; i + W <= n; i += W) {                                                            \
        xs[0] = LOADU(x + i);                                                               \
        F(1, xs, ys);                                                                       \
        STOREU(y + i, ys[0]);                                                               \
    }                                                                                       \
    if (i < n) {                                                                            \
        xs[0] = TAIL_LOAD(x + i, n - i);                                                    \
        F(1, xs, ys);                                                                       \
        TAIL_STORE(y + i, n - i, ys[0]);                                                    \
    }

#define M512_TAIL_LOAD_PS(p, k) _mm512_maskz_loadu_ps((__mmask16)((1u << (k)) - 1u), p)
#define M512_TAIL_STORE_PS(p, k, v) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (k)) - 1u), v)
#define M512_TAIL_LOAD_PD(p, k) _mm512_maskz_loadu_pd((__mmask8)((1u << (k)) - 1u), p)
#define M512_TAIL_STORE_PD(p, k, v) _mm512_mask_storeu_pd(p, (__mmask8)((1u << (k)) - 1u), v)

/* AVX2 has no cheap lane masks: tails are copied through a full-width buffer. */
#define AVX2_TAIL(T, V, W, SFX, LOADU, STOREU)                                              \
    MG_TARGET_AVX2 static inline V tail_load_##SFX(const T *p, mg_int k)                    \
    {                                                                                       \
        T buf[W] = {0};                                                                     \
        memcpy(buf, p, (size_t)k * sizeof(T));                                              \
        return LOADU(buf);                                                                  \
    }                                                                                       \
    MG_TARGET_AVX2 static inline void tail_store_##SFX(T *p, mg_int k, V v)                 \
    {                                                                                       \
        T buf[W];                                                                           \
        STOREU(buf, v);                                                                     \
        memcpy(p, buf, (size_t)k * sizeof(T));                                              \
    }
AVX2_TAIL(float, __m256, 8, ps, _mm256_loadu_ps, _mm256_storeu_ps)
AVX2_TAIL(double, __m256d, 4, pd, _mm256_loadu_pd, _mm256_storeu_pd)
#endif

/* Large arrays are cut into tasks of at least half the share threshold (a multiple of 64, so tasks start
 * on cache lines), a few per thread.  The path is read once per call, so a concurrent set_isa cannot mix
 * paths within one result. */
typedef struct {
    union {
        unary_f32 u32;
        unary_f64 u64;
        binary_f32 b32;
        binary_f64 b64;
    } f;
    mg_int n, chunk;
    const void *x, *y;
    void *out;
} ew_job;

/* Returns the threads for n elements, and in *wake whether sleeping ones may be woken for them. */
static int ew_split(mg_int n, mg_int share, mg_int wake_size, int *wake, ew_job *j)
{
    *wake = n >= wake_size;
    const int nt = mg_job_threads(n >= share, wake);
    mg_int chunk = (n + 4 * nt - 1) / (4 * nt);
    if (chunk < share / 2)
        chunk = share / 2;
    j->n = n;
    j->chunk = (chunk + 63) / 64 * 64;
    return nt;
}

#define EW_TASK(name, F, CALL)                                                              \
    static void name(void *ctx, mg_int t)                                                   \
    {                                                                                       \
        const ew_job *j = ctx;                                                              \
        const mg_int lo = t * j->chunk, len = j->n - lo < j->chunk ? j->n - lo : j->chunk;  \
        CALL;                                                                               \
    }
EW_TASK(ew_unary_task_f32, u32, j->f.u32(len, (const float *)j->x + lo, (float *)j->out + lo))
EW_TASK(ew_unary_task_f64, u64, j->f.u64(len, (const double *)j->x + lo, (double *)j->out + lo))
EW_TASK(ew_binary_task_f32, b32,
        j->f.b32(len, (const float *)j->x + lo, (const float *)j->y + lo, (float *)j->out + lo))
EW_TASK(ew_binary_task_f64, b64,
        j->f.b64(len, (const double *)j->x + lo, (const double *)j->y + lo, (double *)j->out + lo))

/* SHARE, WAKE: the element counts from which an array is shared with awake pool threads, and from which
 * sleeping ones are woken for it.  (float64 tanh: see tanh.c.) */
#define RUN(field, table, task, share, wake, n, X, Y, OUT)                                  \
    do {                                                                                    \
        ew_job j;                                                                           \
        j.f.field = table[mg_get_isa()];                                                 \
        j.x = X;                                                                            \
        j.y = Y;                                                                            \
        j.out = OUT;                                                                        \
        int wake_;                                                                          \
        const int nt = ew_split(n, share, wake, &wake_, &j);                                \
        mg_parallel_for((n + j.chunk - 1) / j.chunk, nt, wake_, task, &j);                  \
    } while (0)

/* Row by row: `rows` rows of `cols` contiguous elements, each operand's rows its own stride (in elements)
 * apart (a column block of a wider matrix: an LSTM gate's chunk of the gates).  The path's serial kernel
 * runs once per row; tasks are blocks of whole rows, about as many elements as RUN's, so an array splits
 * across threads where a contiguous one of its size would, and each element gets the instructions it gets
 * there. */
typedef struct {
    ew_job e;
    mg_int cols, rows_per_task, xs, ys, os;
} rows_job;

#define EW_ROWS_TASK(name, CALL)                                                            \
    static void name(void *ctx, mg_int t)                                                   \
    {                                                                                       \
        const rows_job *j = ctx;                                                            \
        const mg_int lo = t * j->rows_per_task;                                             \
        const mg_int hi = j->e.n - lo < j->rows_per_task ? j->e.n : lo + j->rows_per_task;  \
        for (mg_int r = lo; r < hi; ++r)                                                    \
            CALL;                                                                           \
    }
EW_ROWS_TASK(ew_unary_rows_task_f32,
             j->e.f.u32(j->cols, (const float *)j->e.x + r * j->xs, (float *)j->e.out + r * j->os))
EW_ROWS_TASK(ew_unary_rows_task_f64,
             j->e.f.u64(j->cols, (const double *)j->e.x + r * j->xs, (double *)j->e.out + r * j->os))
EW_ROWS_TASK(ew_binary_rows_task_f32, j->e.f.b32(j->cols, (const float *)j->e.x + r * j->xs,
                                                (const float *)j->e.y + r * j->ys, (float *)j->e.out + r * j->os))
EW_ROWS_TASK(ew_binary_rows_task_f64, j->e.f.b64(j->cols, (const double *)j->e.x + r * j->xs,
                                                (const double *)j->e.y + r * j->ys, (double *)j->e.out + r * j->os))

/* RUN over rows: X's rows XS elements apart, Y's YS (a unary kernel: Y NULL), OUT's OS. */
#define RUN_ROWS(field, table, task, share, wake, rows, cols, X, XS, Y, YS, OUT, OS)         \
    do {                                                                                    \
        if ((rows) <= 0 || (cols) <= 0)                                                     \
            break;                                                                          \
        rows_job j;                                                                         \
        j.e.f.field = table[mg_get_isa()];                                                  \
        j.e.x = X;                                                                          \
        j.e.y = Y;                                                                          \
        j.e.out = OUT;                                                                      \
        j.cols = cols;                                                                      \
        j.xs = XS;                                                                          \
        j.ys = YS;                                                                          \
        j.os = OS;                                                                          \
        int wake_;                                                                          \
        const int nt = ew_split((rows) * (cols), share, wake, &wake_, &j.e);                \
        j.rows_per_task = (j.e.chunk + (cols) - 1) / (cols);                                \
        j.e.n = rows;                                                                       \
        mg_parallel_for(((rows) + j.rows_per_task - 1) / j.rows_per_task, nt, wake_, task, &j); \
    } while (0)

#endif

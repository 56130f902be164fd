/* Column sums of a row-major matrix, out[j] = sum_i A[i, j]: the gradient of a bias broadcast down the rows
 * (every nn layer's bias, an RNN's over all its time steps: A is (T * N, H)).
 *
 * numpy reduces axis 0 of a (2048, 128) float32 array at 2.6 G elements/s (100 us, its inner loop runs down a
 * column); this pass adds whole rows into a row of accumulators, in SIMD across the columns.
 *
 * The order of the additions, for every column alike: rows in blocks of SR_BLOCK, each block summed in order in
 * the element type; the blocks' sums added in order into a double accumulator per group of SR_GROUP blocks; the
 * groups' sums added in order in double; one rounding to the element type at the end.  So a float32 column of
 * n elements carries at most about SR_BLOCK roundings of float32 error (numpy's pairwise sum: about 16 plus
 * log2(n / 128)), and neither the thread count (threads take whole blocks of columns) nor the ISA path (the
 * same operations, lane by lane) changes a bit of the result. */
#include "mg_ew.h"

#define SR_BLOCK 16
#define SR_GROUP 16
#define SR_COLS 256 /* columns per task: the accumulators (3 x 256 doubles) stay in L1 */

#define SUM_ROWS_FN(ATTR, NAME, T)                                                          \
    ATTR static void NAME(mg_int M, mg_int n, const T *a, mg_int sam, T *out)               \
    {                                                                                       \
        double group[SR_COLS], total[SR_COLS];                                              \
        T block[SR_COLS];                                                                   \
        if (M <= 0) {                                                                       \
            for (mg_int j = 0; j < n; ++j)                                                  \
                out[j] = 0;                                                                 \
            return;                                                                         \
        }                                                                                   \
        for (mg_int g0 = 0; g0 < M; g0 += SR_BLOCK * SR_GROUP) {                            \
            const mg_int g1 = M - g0 < SR_BLOCK * SR_GROUP ? M : g0 + SR_BLOCK * SR_GROUP;  \
            for (mg_int b0 = g0; b0 < g1; b0 += SR_BLOCK) {                                 \
                const mg_int b1 = g1 - b0 < SR_BLOCK ? g1 : b0 + SR_BLOCK;                  \
                for (mg_int j = 0; j < n; ++j)                                              \
                    block[j] = a[b0 * sam + j];                                             \
                for (mg_int i = b0 + 1; i < b1; ++i) {                                      \
                    const T *row = a + i * sam;                                             \
                    for (mg_int j = 0; j < n; ++j)                                          \
                        block[j] += row[j];                                                 \
                }                                                                           \
                if (b0 == g0) /* (assigned, not added to 0: a column of -0.0 sums to -0.0) */ \
                    for (mg_int j = 0; j < n; ++j)                                          \
                        group[j] = (double)block[j];                                        \
                else                                                                        \
                    for (mg_int j = 0; j < n; ++j)                                          \
                        group[j] += (double)block[j];                                       \
            }                                                                               \
            if (g0 == 0)                                                                    \
                for (mg_int j = 0; j < n; ++j)                                              \
                    total[j] = group[j];                                                    \
            else                                                                            \
                for (mg_int j = 0; j < n; ++j)                                              \
                    total[j] += group[j];                                                   \
        }                                                                                   \
        for (mg_int j = 0; j < n; ++j)                                                      \
            out[j] = (T)total[j];                                                           \
    }

typedef void (*sum_rows_f32_fn)(mg_int, mg_int, const float *, mg_int, float *);
typedef void (*sum_rows_f64_fn)(mg_int, mg_int, const double *, mg_int, double *);

FOR_EACH_ISA(SUM_ROWS_FN, sum_rows)

static const sum_rows_f32_fn sum_rows_f32_by_isa[MG_ISA_COUNT] = BY_ISA(sum_rows, f32);
static const sum_rows_f64_fn sum_rows_f64_by_isa[MG_ISA_COUNT] = BY_ISA(sum_rows, f64);

typedef struct {
    mg_int M, N, sam;
    const void *a;
    void *out;
    sum_rows_f32_fn f32;
    sum_rows_f64_fn f64;
} sum_rows_job;

static void sum_rows_task_f32(void *ctx, mg_int t)
{
    const sum_rows_job *j = ctx;
    const mg_int lo = t * SR_COLS, n = j->N - lo < SR_COLS ? j->N - lo : SR_COLS;
    j->f32(j->M, n, (const float *)j->a + lo, j->sam, (float *)j->out + lo);
}

static void sum_rows_task_f64(void *ctx, mg_int t)
{
    const sum_rows_job *j = ctx;
    const mg_int lo = t * SR_COLS, n = j->N - lo < SR_COLS ? j->N - lo : SR_COLS;
    j->f64(j->M, n, (const double *)j->a + lo, j->sam, (double *)j->out + lo);
}

/* Memory-bound like the elementwise kernels, and cheaper per element: shared with pool threads that are
 * awake from 2 * MG_SHARE_ELEMS elements on (float32 (32, 512): 1-thread / 2-thread time 0.86; (64, 512):
 * 1.25, on 2 Zen 4 cores near each other), sleeping ones woken from MG_WAKE_ELEMS (or in a stream of
 * calls: mg_job_threads). */
static void sum_rows_run(mg_int M, mg_int N, sum_rows_job *j, mg_task_fn task)
{
    const mg_int tasks = (N + SR_COLS - 1) / SR_COLS, elems = M * N;
    int wake = elems >= MG_WAKE_ELEMS;
    const int nt = mg_job_threads(tasks > 1 && elems >= 2 * MG_SHARE_ELEMS, &wake);
    mg_parallel_for(tasks, nt, wake, task, j);
}

void mg_sum_rows_f32(mg_int M, mg_int N, const float *a, mg_int sam, float *out)
{
    if (N <= 0)
        return;
    sum_rows_job j = {M, N, sam, a, out, sum_rows_f32_by_isa[mg_get_isa()], NULL};
    sum_rows_run(M, N, &j, sum_rows_task_f32);
}

void mg_sum_rows_f64(mg_int M, mg_int N, const double *a, mg_int sam, double *out)
{
    if (N <= 0)
        return;
    sum_rows_job j = {M, N, sam, a, out, NULL, sum_rows_f64_by_isa[mg_get_isa()]};
    sum_rows_run(M, N, &j, sum_rows_task_f64);
}

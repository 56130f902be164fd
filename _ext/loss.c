/* The forward pass of the squared-error loss (minigrad.ops.loss.mse_loss): diff = x - t and sum(diff^2) in
 * one pass (numpy: a subtract, a multiply and a sum, three passes and a temporary).  The sum is taken over
 * fixed chunks of SQ_CHUNK elements, eight accumulators each, in double precision for either element type;
 * the chunks' sums are then added in order.  Neither depends on the thread count, so neither does the
 * result. */
#include <stdlib.h>

#include "mg_internal.h"

#define SQ_CHUNK 8192
/* From these many elements the pass is shared with pool threads that are awake, and sleeping ones are woken
 * (it is bound by memory bandwidth: a second core adds little). */
#define SQ_SHARE 32768
#define SQ_WAKE 131072

typedef struct {
    mg_int n;
    const void *x, *t;
    void *out;
    double *part;
} sq_job;

/* The threads for n elements, and in *wake whether they may be woken. */
static int sq_threads(mg_int n, int *wake)
{
    *wake = n >= SQ_WAKE;
    return mg_job_threads(n >= SQ_SHARE, wake);
}

#define SQ_TASK(name, T)                                                                       \
    static void name(void *ctx, mg_int c)                                                      \
    {                                                                                          \
        const sq_job *j = ctx;                                                                 \
        const T *x = j->x, *t = j->t;                                                          \
        T *d = j->out;                                                                         \
        const mg_int lo = c * SQ_CHUNK, hi = j->n - lo < SQ_CHUNK ? j->n : lo + SQ_CHUNK;      \
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                \
        mg_int i = lo;                                                                         \
        for (; i + 8 <= hi; i += 8)                                                            \
            for (int k = 0; k < 8; ++k) {                                                      \
                const T v = x[i + k] - t[i + k];                                               \
                d[i + k] = v;                                                                  \
                a[k] += (double)v * (double)v;                                                 \
            }                                                                                  \
        for (int k = 0; i < hi; ++i, ++k) {                                                    \
            const T v = x[i] - t[i];                                                           \
            d[i] = v;                                                                          \
            a[k] += (double)v * (double)v;                                                     \
        }                                                                                      \
        j->part[c] = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));        \
    }
SQ_TASK(sq_task_f32, float)
SQ_TASK(sq_task_f64, double)

static int sub_sqsum(mg_int n, const void *x, const void *t, void *diff, double *sum, mg_task_fn task)
{
    *sum = 0;
    if (n <= 0)
        return 0;
    const mg_int chunks = (n + SQ_CHUNK - 1) / SQ_CHUNK;
    double one[1];
    double *part = chunks == 1 ? one : malloc((size_t)chunks * sizeof(double));
    if (!part)
        return -1;
    sq_job j = {n, x, t, diff, part};
    int wake;
    const int nt = sq_threads(n, &wake);
    mg_parallel_for(chunks, nt, wake, task, &j);
    double s = 0;
    for (mg_int c = 0; c < chunks; ++c) /* in order: the same sum whatever ran each chunk */
        s += part[c];
    if (part != one)
        free(part);
    *sum = s;
    return 0;
}

int mg_sub_sqsum_f32(mg_int n, const float *x, const float *t, float *diff, double *sum)
{
    return sub_sqsum(n, x, t, diff, sum, sq_task_f32);
}

int mg_sub_sqsum_f64(mg_int n, const double *x, const double *t, double *diff, double *sum)
{
    return sub_sqsum(n, x, t, diff, sum, sq_task_f64);
}

/* a (op) b elementwise -- add, sub, mul, div -- over large contiguous float arrays, shared with the pool.
 *
 * numpy runs an elementwise ufunc on one thread; torch cuts a large one across its threads.  A loss such as
 * (out * w).sum() over an RNN's whole output, and its backward, multiply arrays of 10^5..10^7 elements at
 * every training step: this kernel cuts them into tasks as tanh.c's do (mg_ew.h).  Each operand is either
 * contiguous (stride 1) or a single value (stride 0: a scalar, or a gradient broadcast from one).  One IEEE
 * operation per element, so the bits are numpy's on every path and at every thread count.
 */
#include "mg_ew.h"

/* the loop of one op for one operand layout: the compiler vectorises it for the function's target */
#define ARITH_LOOPS(T, EXPR)                                                                \
    if (sa && sb) {                                                                         \
        for (mg_int i = 0; i < n; ++i) {                                                    \
            const T x = a[i], y = b[i];                                                     \
            out[i] = EXPR;                                                                  \
        }                                                                                   \
    } else if (sb) {                                                                        \
        const T x = a[0];                                                                   \
        for (mg_int i = 0; i < n; ++i) {                                                    \
            const T y = b[i];                                                               \
            out[i] = EXPR;                                                                  \
        }                                                                                   \
    } else {                                                                                \
        const T y = b[0];                                                                   \
        for (mg_int i = 0; i < n; ++i) {                                                    \
            const T x = a[i];                                                               \
            out[i] = EXPR;                                                                  \
        }                                                                                   \
    }

#define ARITH_FN(ATTR, NAME, T)                                                             \
    ATTR static void NAME(int op, mg_int n, const T *a, int sa, const T *b, int sb, T *out) \
    {                                                                                       \
        switch (op) {                                                                       \
        case MG_OP_ADD:                                                                     \
            ARITH_LOOPS(T, x + y)                                                           \
            break;                                                                          \
        case MG_OP_SUB:                                                                     \
            ARITH_LOOPS(T, x - y)                                                           \
            break;                                                                          \
        case MG_OP_MUL:                                                                     \
            ARITH_LOOPS(T, x * y)                                                           \
            break;                                                                          \
        default:                                                                            \
            ARITH_LOOPS(T, x / y)                                                           \
            break;                                                                          \
        }                                                                                   \
    }

typedef void (*arith_f32)(int, mg_int, const float *, int, const float *, int, float *);
typedef void (*arith_f64)(int, mg_int, const double *, int, const double *, int, double *);

FOR_EACH_ISA(ARITH_FN, arith)

static const arith_f32 arith_f32_by_isa[MG_ISA_COUNT] = BY_ISA(arith, f32);
static const arith_f64 arith_f64_by_isa[MG_ISA_COUNT] = BY_ISA(arith, f64);

typedef struct {
    union {
        arith_f32 f32;
        arith_f64 f64;
    } f;
    int op, sa, sb;
    ew_job part; /* n, chunk: the cut (ew_split); x, y, out: the arrays */
} arith_job;

static void arith_task_f32(void *ctx, mg_int t)
{
    const arith_job *j = ctx;
    const mg_int lo = t * j->part.chunk, len = j->part.n - lo < j->part.chunk ? j->part.n - lo : j->part.chunk;
    j->f.f32(j->op, len, (const float *)j->part.x + (j->sa ? lo : 0), j->sa,
             (const float *)j->part.y + (j->sb ? lo : 0), j->sb, (float *)j->part.out + lo);
}

static void arith_task_f64(void *ctx, mg_int t)
{
    const arith_job *j = ctx;
    const mg_int lo = t * j->part.chunk, len = j->part.n - lo < j->part.chunk ? j->part.n - lo : j->part.chunk;
    j->f.f64(j->op, len, (const double *)j->part.x + (j->sa ? lo : 0), j->sa,
             (const double *)j->part.y + (j->sb ? lo : 0), j->sb, (double *)j->part.out + lo);
}

/* Memory-bound: tasks pay for their hand-off from MG_WAKE_ELEMS elements (sleeping threads woken). */
#define ARITH_RUN(FIELD, TABLE, TASK)                                                       \
    do {                                                                                    \
        arith_job j;                                                                        \
        j.f.FIELD = TABLE[mg_get_isa()];                                                    \
        j.op = op;                                                                          \
        j.sa = sa != 0;                                                                     \
        j.sb = sb != 0;                                                                     \
        j.part.x = a;                                                                       \
        j.part.y = b;                                                                       \
        j.part.out = out;                                                                   \
        int wake_;                                                                          \
        const int nt = ew_split(n, MG_WAKE_ELEMS, MG_WAKE_ELEMS, &wake_, &j.part);          \
        mg_parallel_for((n + j.part.chunk - 1) / j.part.chunk, nt, wake_, TASK, &j);        \
    } while (0)

void mg_arith_f32(int op, mg_int n, const float *a, int sa, const float *b, int sb, float *out)
{
    ARITH_RUN(f32, arith_f32_by_isa, arith_task_f32);
}

void mg_arith_f64(int op, mg_int n, const double *a, int sa, const double *b, int sb, double *out)
{
    ARITH_RUN(f64, arith_f64_by_isa, arith_task_f64);
}

/* The serial row loop of ops/fast.pyx's small ops: rows x cols, each operand's rows `ra` / `rb` elements
 * apart (0: one row for all, a bias) with element stride sa / sb (0: one value), out contiguous.  Run on
 * the caller's thread, on the current ISA path: these ops take a microsecond or less, far below any size
 * worth a hand-off. */
void mg_arith_rows_f32(int op, mg_int rows, mg_int cols, const float *a, mg_int ra, int sa, const float *b,
                       mg_int rb, int sb, float *out)
{
    const arith_f32 f = arith_f32_by_isa[mg_get_isa()];
    for (mg_int r = 0; r < rows; ++r)
        f(op, cols, a + r * ra, sa != 0, b + r * rb, sb != 0, out + r * cols);
}

void mg_arith_rows_f64(int op, mg_int rows, mg_int cols, const double *a, mg_int ra, int sa, const double *b,
                       mg_int rb, int sb, double *out)
{
    const arith_f64 f = arith_f64_by_isa[mg_get_isa()];
    for (mg_int r = 0; r < rows; ++r)
        f(op, cols, a + r * ra, sa != 0, b + r * rb, sb != 0, out + r * cols);
}

/* Declarations shared by the kernel sources; not part of the C API in kernels.h. */
#ifndef MINIGRAD_INTERNAL_H
#define MINIGRAD_INTERNAL_H

#include <stdatomic.h>

#include "kernels.h"

/* The SIMD paths need GCC/Clang function multiversioning on x86; elsewhere only the portable path exists. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define MG_X86 1
#define MG_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define MG_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define MG_X86 0
#endif

/* Threads come from minigrad's own pool (cpu.c) on POSIX systems; elsewhere the kernels run serially. */
#if defined(__unix__) || defined(__APPLE__)
#define MG_THREADS 1
#else
#define MG_THREADS 0
#endif
#define MG_MAX_THREADS 64

/* Runs fn(ctx, t) exactly once for every t < ntasks, on up to nthreads threads including the caller, and
 * returns when all have finished.  Tasks are claimed dynamically, in increasing order of t: a task may wait
 * for lower-numbered ones (mg_addmm_seq's steps), never for higher; a task's result must not depend on the
 * thread that runs it.  Without `wake` (a job too small to pay for waking a
 * sleeping thread) only pool threads that are still awake from recent jobs join in. */
typedef void (*mg_task_fn)(void *ctx, mg_int task);
void mg_parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx);
/* Pool threads awake right now (a hint: it may change at once). */
int mg_pool_awake(void);
/* The threads for a job whose kernel would share it (`share`: it is at least the kernel's share size), and
 * whether it may wake sleeping pool threads (*wake, in: it is at least the kernel's wake size).  A job below
 * the wake size gets helpers only if some are awake -- or if another such job, which found none, began or
 * ended within MG_STREAM_NS before it: then *wake is set.  So a lone job never pays for a wake-up, while
 * in a stream of them the second wakes the helpers, which then spin between jobs and share the rest
 * (float32 tanh of 16K elements called back to back: 5.2 -> 3.2 us on 2 Zen 4 cores).  With the cores far apart
 * (mg_threads_far) a job below its wake size runs alone: on a Zen 4 guest in a far phase (round trip
 * 480-570 ns), 1-thread time / 2-thread time of 14 such calls (tanh, sigmoid, tanh_backward, the LSTM gate
 * kernels, sum_rows, sub_sqsum; both dtypes) was 0.55-1.73 with 8 at or below 1.1 (float32 sigmoid of 16K
 * elements 0.66, float64 lstm_forward B=32 H=128 0.55); near (61-63 ns) 1.13-1.83. */
#define MG_STREAM_NS 100000
int mg_job_threads(int share, int *wake);

/* Which runtime mg_parallel_for hands jobs to (MINIGRAD_THREADING): minigrad's pool or OpenMP.  Set
 * between calls (a job already running finishes where it started); mg_set_threading returns -1 for a
 * runtime this build lacks.  mg_get_threading gives the one in effect: the pool in a fork child of a
 * process that used OpenMP. */
enum { MG_THREADING_POOL = 0, MG_THREADING_OPENMP = 1 };

/* Whether sharing jobs pays in this process right now, judged by each runtime from its own jobs (cpu.c).  A
 * job loses when it took longer than its caller alone would have -- the caller's time per task times the
 * tasks -- as when a helper was preempted holding a task, or never came; when a window of jobs lost more
 * time than it saved, the runtime's jobs run on the caller alone for a while, then one job tries sharing
 * again.  The pause doubles, from 50 ms up to 2 s, while such probes lose, and lasts at least a window of
 * jobs run alone, so that a probe stays a small share of the time when jobs are long.  The jobs that wake
 * helpers (a probe's first among them), up to the first one a woken helper joins, are not judged -- for
 * PROBE_WAIT_NS at most (cpu.c): they measure the wake-up, not the sharing.  So a parallel call stays near one
 * thread's speed, never far below it, on a machine whose other cores are busy or slow to answer. */
typedef struct {
    _Atomic long long serial_until; /* CLOCK_MONOTONIC ns; 0: sharing */
    long long backoff, wall, serial, warm_since; /* written by the job's caller only (one job at a time) */
    int jobs, probing, warming;
} mg_share_state;
long long mg_now_ns(void);
int mg_share_paused(mg_share_state *s);
/* t0: before the hand-off; t1, t2: around the caller's own `mine` tasks; t3: all tasks done; woke: the job
 * started or woke helpers it wanted. */
void mg_share_judge(mg_share_state *s, long long t0, long long t1, long long t2, long long t3, mg_int mine,
                    mg_int ntasks, int woke);
void mg_share_reset(mg_share_state *s);
/* How far apart the caller and the pool's helpers are, measured on the pool's own jobs: from publishing a job
 * to a helper that was spinning seeing it -- about one round trip of a cache line between the two cores.  On
 * a virtual machine whose two vCPUs the host sometimes places on one L3 cache and sometimes on two, this took
 * 55-80 ns, then 330-370 ns for tens of seconds (bench/README.md, "Near and far vCPUs"); far apart, every line
 * one thread writes and the other reads costs several times more.  The shortest of each window of
 * MG_DISTANCE_SAMPLES hand-offs decides: far when above MG_FAR_NS (a slow sample -- a helper preempted, a
 * wake-up -- never makes the cores look far).  mg_threads_far: whether the last window found them far (0
 * under OpenMP, whose hand-offs are libgomp's, and until a window is complete; MINIGRAD_TEST_CPUS_FAR=1 or 0,
 * read once, forces it for tests). */
#define MG_DISTANCE_SAMPLES 16
#define MG_FAR_NS 200
typedef struct {
    long long shortest; /* this window's shortest hand-off so far (ns) */
    int samples;        /* in this window */
    _Atomic int far;    /* the last complete window's verdict */
} mg_distance_state;
void mg_distance_sample(mg_distance_state *d, long long ns); /* (mg_threads_far: kernels.h) */

/* Test hook (MINIGRAD_TEST_HELPER_DELAY_US, read once): a helper sleeps this long after claiming each task,
 * as if preempted while holding it. */
int mg_helper_delay_us(void);
int mg_get_threading(void);
int mg_set_threading(int kind);

/* Where a helper thread may run.  Woken for a job, a helper was often put on the caller's own CPU (on a
 * virtual machine the kernel does not wake a thread on an idle vCPU that it believes descheduled, so it picks
 * the waker's), where it can only start when the caller's time slice ends: from the fourth 1024^3 float32
 * product called every 0.2 s on, the pool ran each one on one thread (20 ms instead of 10), libgomp's team
 * in 12-17 ms.  So each helper keeps its affinity to the CPUs it may use minus the caller's, and lands, when
 * woken, where it can work at once.  The mask changes (one system call) only when the caller runs on another
 * CPU than at the helper's last job; with one CPU allowed, or when the user binds OpenMP's threads
 * (OMP_PROC_BIND, OMP_PLACES, GOMP_CPU_AFFINITY), nothing changes. */
typedef struct {
    int known;    /* `allowed` was read and holds more than one CPU */
    int excluded; /* the CPU left out of the mask now (-1: none) */
#ifdef __linux__
    unsigned long allowed[16]; /* a cpu_set_t (an array of unsigned long), inherited from the thread that
                                * started the helper */
#endif
} mg_placement;
void mg_placement_init(mg_placement *p);
/* Called by a helper joining a job whose caller runs on `cpu` (-1: unknown). */
void mg_placement_avoid(mg_placement *p, int cpu);
int mg_current_cpu(void);
/* parallel_omp.c: whether it was built with OpenMP, whether OpenMP may run here (not in such a fork child),
 * its team threads likely still spinning, and its mg_parallel_for. */
int mg_omp_built(void);
int mg_omp_usable(void);
int mg_omp_awake(void);
void mg_omp_parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx);

/* Scratch memory owned by the calling thread, 64-byte aligned, at least `bytes` long; NULL when out of
 * memory (or without thread support).  Valid until the same thread asks again; kept between calls (so large
 * packing buffers are not mapped and faulted in on every product) and freed when the thread exits. */
void *mg_scratch(size_t bytes);

/* The serial tanh of one path (tanh.c), for a product's epilogue (mg_addmm): the bits of mg_tanh on that path,
 * wherever the row starts. */
typedef void (*mg_unary_f32)(mg_int n, const float *x, float *y);
typedef void (*mg_unary_f64)(mg_int n, const double *x, double *y);
mg_unary_f32 mg_tanh_serial_f32(int isa);
mg_unary_f64 mg_tanh_serial_f64(int isa);
/* The same for sigmoid (sigmoid.c) and for the derivatives of both from their saved outputs,
 * out = g * dy/dx (the gated cells' epilogues in gates.c): each the bits of its kernels.h function. */
typedef void (*mg_binary_f32)(mg_int n, const float *g, const float *y, float *out);
typedef void (*mg_binary_f64)(mg_int n, const double *g, const double *y, double *out);
mg_unary_f32 mg_sigmoid_serial_f32(int isa);
mg_unary_f64 mg_sigmoid_serial_f64(int isa);
mg_binary_f32 mg_sigmoid_backward_serial_f32(int isa);
mg_binary_f64 mg_sigmoid_backward_serial_f64(int isa);
mg_binary_f32 mg_tanh_backward_serial_f32(int isa);
mg_binary_f64 mg_tanh_backward_serial_f64(int isa);

/* The kernels read their path and thread count with kernels.h's mg_get_isa / mg_get_num_threads. */

/* Micro-kernels: C[0:mr, 0:nr] (=|+=) A[0:mr, 0:kc] @ B[0:kc, 0:nr], with A(i, k) at a[i*ars + k*aks] and
 * B(k, j) at b[k*bks + j].  A packed panel has ars = 1, aks = MR and a packed B panel bks = NR, zero-padded
 * to MR rows / NR columns; unpacked operands are read in place (only the AVX-512 kernels take an unpacked B,
 * under lane masks).  With `ci` (not NULL) C = Cin + A @ B instead, Cin(i, j) at ci[i*rsi + j]: an addmm's
 * addend read by the kernel itself, so that it is not first copied into C (`overwrite` is then ignored). */
#define MG_UKR_ARGS(T)                                                                      \
    mg_int kc, const T *a, mg_int ars, mg_int aks, const T *b, mg_int bks, T *c, mg_int rsc, mg_int csc, \
        mg_int mr, mg_int nr, int overwrite, const T *ci, mg_int rsi
/* A micro-kernel's body f(rows, args...) specialised per live row count (1-6, MR = 6 on the x86 paths): a tail
 * panel of A (mr < 6) costs only its own rows.  Each element still sees the same FMA sequence, so the split of
 * M does not change results. */
#define MG_UKR_BY_ROWS(f)                                                                   \
    switch (mr) {                                                                           \
    case 1: f(1, MG_UKR_ARGS_FWD); break;                                                   \
    case 2: f(2, MG_UKR_ARGS_FWD); break;                                                   \
    case 3: f(3, MG_UKR_ARGS_FWD); break;                                                   \
    case 4: f(4, MG_UKR_ARGS_FWD); break;                                                   \
    case 5: f(5, MG_UKR_ARGS_FWD); break;                                                   \
    default: f(6, MG_UKR_ARGS_FWD); break;                                                  \
    }
#define MG_UKR_ARGS_FWD kc, a, ars, aks, b, bks, c, rsc, csc, mr, nr, overwrite, ci, rsi
/* Packers of one panel: dst[k*W + j] = src[k*sk + j*sw] for j < w, zero for w <= j < W, k < kc.  A "_t"
 * packer needs sk == 1 (a transposed operand), an "_n" packer sw == 1 (rows contiguous). */
#define MG_PACK_ARGS(T) mg_int kc, mg_int w, mg_int W, const T *src, mg_int sk, mg_int sw, T *dst
/* The same from a table of row pointers: dst[k*W + j] = rows[k][off + j] (mg_matmul_rows). */
#define MG_PACK_ROWS_ARGS(T) mg_int kc, mg_int w, mg_int W, const T *const *rows, mg_int off, T *dst
#if MG_X86
void mg_pack_t_f32(MG_PACK_ARGS(float));
void mg_pack_t_f64(MG_PACK_ARGS(double));
void mg_pack_n_avx2_f32(MG_PACK_ARGS(float));
void mg_pack_n_avx2_f64(MG_PACK_ARGS(double));
void mg_pack_rows_avx2_f32(MG_PACK_ROWS_ARGS(float));
void mg_pack_rows_avx2_f64(MG_PACK_ROWS_ARGS(double));
void mg_pack_n_avx512_f32(MG_PACK_ARGS(float));
void mg_pack_n_avx512_f64(MG_PACK_ARGS(double));
void mg_pack_rows_avx512_f32(MG_PACK_ROWS_ARGS(float));
void mg_pack_rows_avx512_f64(MG_PACK_ROWS_ARGS(double));
void mg_ukr_avx512_f32(MG_UKR_ARGS(float));
void mg_ukr_avx512_f64(MG_UKR_ARGS(double));
void mg_ukr_avx2_f32(MG_UKR_ARGS(float));
void mg_ukr_avx2_f64(MG_UKR_ARGS(double));
#endif

/* mg_lstm_forward, mg_lstm_backward, mg_gru_forward and mg_gru_backward (kernels.h) on the calling thread
 * alone, the same bits (gates.c): the step epilogues of the gated sequence jobs (matmul_tmpl.h). */
void mg_lstm_forward_rows_f32(mg_int B, mg_int H, const float *gates, mg_int gs, const float *c_prev, mg_int cps,
                              float *act, mg_int as, float *c, mg_int cs, float *tanh_c, mg_int tcs, float *h,
                              mg_int hs);
void mg_lstm_forward_rows_f64(mg_int B, mg_int H, const double *gates, mg_int gs, const double *c_prev,
                              mg_int cps, double *act, mg_int as, double *c, mg_int cs, double *tanh_c, mg_int tcs,
                              double *h, mg_int hs);
void mg_lstm_backward_rows_f32(mg_int B, mg_int H, const float *dh, mg_int dhs, const float *dc, mg_int dcs,
                               const float *act, mg_int as, const float *c_prev, mg_int cps, const float *tanh_c,
                               mg_int tcs, float *d_gates, mg_int dgs, float *dc_prev, mg_int dcps);
void mg_lstm_backward_rows_f64(mg_int B, mg_int H, const double *dh, mg_int dhs, const double *dc, mg_int dcs,
                               const double *act, mg_int as, const double *c_prev, mg_int cps,
                               const double *tanh_c, mg_int tcs, double *d_gates, mg_int dgs, double *dc_prev,
                               mg_int dcps);

void mg_gru_forward_rows_f32(mg_int B, mg_int H, const float *xg, mg_int xs, const float *hg, mg_int hgs,
                             const float *h_prev, mg_int hps, float *act, mg_int as, float *h, mg_int hs);
void mg_gru_forward_rows_f64(mg_int B, mg_int H, const double *xg, mg_int xs, const double *hg, mg_int hgs,
                             const double *h_prev, mg_int hps, double *act, mg_int as, double *h, mg_int hs);
void mg_gru_backward_rows_f32(mg_int B, mg_int H, const float *dh, mg_int dhs, const float *act, mg_int as,
                              const float *hn, mg_int hns, const float *h_prev, mg_int hps, float *d_xg, mg_int dxs,
                              float *d_hg, mg_int dhgs, float *dh_prev, mg_int dhps);
void mg_gru_backward_rows_f64(mg_int B, mg_int H, const double *dh, mg_int dhs, const double *act, mg_int as,
                              const double *hn, mg_int hns, const double *h_prev, mg_int hps, double *d_xg,
                              mg_int dxs, double *d_hg, mg_int dhgs, double *dh_prev, mg_int dhps);

#endif

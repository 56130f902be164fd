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

/* A row-major A at least this big and at least twice as tall as B is wide is cut along M across the threads
 * (matmul_run), not into groups of B panels that each read all of it.  Measured on 2 threads of an Intel Xeon
 * (family 6, model 207), blocks alternating in one process, same bits: float32 (8192, 768) @ (768, 512)
 * 1.25-1.29x, (8192, 512) @ (512, 1024) 1.19x, (8192, 1024) @ (1024, 512) 1.13-1.22x, (2048, 512) @
 * (512, 256) 1.07-1.12x; float64 1.0-1.23x; 1024^3 unchanged.  Smaller products, which the 1 MB threshold
 * first tried left out in float32, a first layer's input projection x (T * N, I) @ W_ih.T with I = 64:
 * (2048, 64) @ (64, 128) 1.26x (float64 1.27x), (64, 384) 1.21x (1.08x), (64, 512) 1.16x (1.10x);
 * (4096, 32) @ (32, 128) 1.65x (1.48x); (1024, 64) @ (64, 128) 1.31x (1.33x); (640, 128) @ (128, 64),
 * 320 KB, 0.96x (1.12x).  Whole training steps (two bidirectional layers): float32 GRU and LSTM at B = 64,
 * H = 256 1.05x, RNN 1.03x, float64 LSTM at B = 32, H = 128 1.04x; one layer at B = 32, within the noise
 * (0.98-1.04x). */
#define MG_SPLIT_M_BYTES ((size_t)256 << 10)

/* A weight gradient's A = g.T of at least this many bytes (g comes from memory) is computed transposed
 * (matmul_tmpl.h, transposed_pays). */
#define MG_TRANSPOSE_A_BYTES ((size_t)16 << 20)
/* A packed A (a transposed operand) with a B of at most this many bytes is cut along M across the threads,
 * not along N (matmul_run).  Measured on 2 threads of a Zen 4 (family 25, model 17), processes alternating,
 * same bits: float32 (128, 32) @ (32, 512) with A = h.T 23-24 against 27-44 us, (256, 32) @ (32, 512) 44-49
 * against 49-84, (512, 32) @ (32, 512) 83-94 against 103-164, (128, 64) @ (64, 512) 43-48 against 47-103,
 * (128, 16) @ (16, 512) 13-24 against 18-28; float64 alike; (64, 64) @ (64, 256) and (128, 32) @ (32, 128)
 * unchanged.  The LSTM written from core ops, whose backward runs 64 of the first a step: 1.07x faster
 * over 9 pairs of processes.  (A bigger B -- a layer's input x (T * N, I) in its weight gradient -- stays
 * split along N: each thread then reads half of a cold operand.) */
#define MG_SMALL_B_BYTES ((size_t)256 << 10)

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
/* With the cores far apart (mg_threads_far), a plain product is shared only from MG_FAR_SHARE_FLOPS (float32
 * FLOP; a float64 FLOP counts twice, as it takes twice as long) and with K >= MG_FAR_MIN_K: its threads write
 * halves of C that the caller reads next, a line at a time across the caches, and a short K gives each line
 * few FLOPs.  Measured on a 2-vCPU Zen 4 guest in its far phases (cache-line round trip 330-370 ns), 1-thread
 * time / 2-thread time: float32 (128, 32) @ (32, 512) with A a transposed view (h.T @ g, a weight gradient
 * with K = the batch) 0.53-0.58 (near: 1.37), 32 x 128 @ 128 x 128 0.87-1.05 (near: 1.5-1.6); still above 1:
 * (32, 128) @ (128, 512) 1.1-1.33, float64 32 x 128 @ 128 x 128 1.1-1.36, 64 x 256 @ 256 x 256 1.5-1.8,
 * 256^3 1.45-1.6.  (The sequence jobs, whose threads keep their rows through every step, still gain there:
 * they keep their own rule.) */
#define MG_FAR_SHARE_FLOPS 2e6
#define MG_FAR_MIN_K 64
/* Blocking (AVX-512): KC = 256 rows of B per slice; a packed KC x NC block of B is 512 KB (half of L2), swept
 * for every MR-row panel of A.  Swept on this Zen machine over KC 128..512 and NC 256..1024 (n = 256..1024,
 * one core): within noise of each other from KC 256 on; KC 128 loses 5-10 %. */
#define KC32 256
#define NC32 512
#define KC64 256
#define NC64 256
/* Up to this many rows of A a row-major B is read in place: packing it would not pay for itself (the AVX2
 * path only while those rows of B span at most DIRECT_B_SPAN_AVX2 bytes: matmul_tmpl.h, b_in_place). */
#define DIRECT_B_ROWS 64
#define DIRECT_B_SPAN_AVX2 32768
/* An A contiguous along M (a transposed operand, a row table) is packed this many panels at a time on the
 * AVX2 path (matmul_tmpl.h, pack_a_group).  The AVX-512 paths do so only where its columns lie a multiple of
 * A_GROUP_STRIDE_AVX512 bytes apart (matmul_tmpl.h, a_grouped); elsewhere groups of 16 measured 0.95-1.06x
 * on a Zen 4 (bench/README.md). */
#define A_GROUP_AVX2 16
#define A_GROUP_AVX512 16
#define A_GROUP_STRIDE_AVX512 2048

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

/* ---- rows through every step, shared between cores that run at different speeds ----
 *
 * The recurrent layers' sequence jobs give each task whole rows of the batch through every step: a row's
 * state depends only on its own state before, so the threads never meet between steps.  Split evenly, such
 * a job waits for its slowest thread -- and a virtual machine's cores can run at different speeds for
 * minutes (one measured at 40-50 % of the other while its host sibling was busy), so that two threads then
 * took as long as one.  Here a thread that has finished its rows takes the upper half of the rows another
 * thread still has (at least MG_STEAL_MIN_ROWS each), from the next step that thread begins on: the owner
 * answers a request at its step boundary, so every row still goes through its steps in order, on one
 * thread at a time, with the same arithmetic -- the results do not change, whoever computes a row.
 * Measured on the Intel Xeon (family 6, model 207) whose cores were unequal, 64-step LSTM forward (B=32,
 * H=128) on 2 threads, blocks with and without the hand-over alternating in one process: float32 1.03x
 * faster in blocks measured with both cores at >= 90 % of each other, 1.05x with them unequal; float64
 * 1.18x and 1.13x.  The LSTM's and GRU's backward jobs keep a row's state (the cell state's gradient, the
 * direct part of h's) in their threads' scratch: they hand it over with the rows, through their last step's
 * output (mg_rows_state).
 *
 * A range's `want`: CLOSED (not running, or finished), IDLE (running, no request), ASKED (a thief waits),
 * GIVEN (the owner handed over give_lo..give_hi from step give_step on), REFUSED (too little left).  The
 * owner's release store of GIVEN publishes the rows' earlier steps, which the thief reads after its
 * acquire load. */
#define MG_STEAL_MIN_ROWS 4
#define MG_STEAL_MIN_STEPS 2
#define MG_STEAL_RANGES 64
enum { RANGE_CLOSED = 0, RANGE_IDLE, RANGE_ASKED, RANGE_GIVEN, RANGE_REFUSED };

typedef void (*mg_rows_fn)(void *job, mg_int d, mg_int s, mg_int lo, mg_int m, void *scratch);

typedef struct {
    mg_int d, lo;                      /* set before `want` becomes IDLE */
    _Atomic mg_int hi, step;           /* the owner's rows end at hi; it has done `step` steps */
    _Atomic int want;
    mg_int give_lo, give_hi, give_step; /* the owner's answer, published by want = GIVEN */
} mg_rows_range;

/* A job that keeps its rows' state in its threads' scratch between steps (the backward jobs) hands it over
 * with the rows: the state before step s lies `at[(s - 1) & 1]` elements into the scratch, a row every
 * `width` elements from the range's first row, and travels through `xfer`'s rows (`xfer_rs` elements apart:
 * an output only the rows' last owner writes, at the end). */
typedef struct {
    size_t elem; /* bytes per element; 0: the rows' state lies in the job's outputs */
    mg_int width, at[2], xfer_rs;
    char *xfer;
} mg_rows_state;

typedef struct {
    mg_int L, tasks;
    mg_rows_state state;
    _Atomic mg_int ranges, started;
    mg_rows_range range[MG_STEAL_RANGES];
} mg_rows_share;

/* Rows [lo, hi) of a range starting at own_lo, handed over before step s: their state into `xfer` (give), or
 * from it into the new owner's scratch (take, own_lo = lo). */
static void mg_rows_pass_state(const mg_rows_state *st, mg_int s, mg_int own_lo, mg_int lo, mg_int hi,
                               void *scratch, int give)
{
    if (!st->elem || s == 0)
        return;
    const size_t row = (size_t)st->width * st->elem;
    for (mg_int r = lo; r < hi; ++r) {
        char *mine = (char *)scratch + ((size_t)st->at[(s - 1) & 1] + (size_t)(r - own_lo) * st->width) * st->elem;
        char *there = st->xfer + (size_t)r * st->xfer_rs * st->elem;
        memcpy(give ? there : mine, give ? mine : there, row);
    }
}

/* Before the job: the tasks' ranges (task i: rows [lo, hi) of direction d), not yet running. */
static void mg_rows_init(mg_rows_share *sh, mg_int L, mg_int tasks)
{
    sh->L = L;
    sh->tasks = tasks;
    sh->state.elem = 0;
    atomic_init(&sh->ranges, tasks < MG_STEAL_RANGES ? tasks : MG_STEAL_RANGES);
    atomic_init(&sh->started, 0);
    for (int k = 0; k < MG_STEAL_RANGES; ++k)
        atomic_init(&sh->range[k].want, RANGE_CLOSED);
}

/* Run range r (its rows from step s0 on), answering requests at each step boundary. */
static void mg_rows_run(mg_rows_share *sh, mg_rows_range *r, mg_int s0, mg_rows_fn fn, void *job, void *scratch,
                        _Atomic int *failed)
{
    for (mg_int s = s0; s < sh->L && !atomic_load_explicit(failed, memory_order_relaxed); ++s) {
        mg_int hi = atomic_load_explicit(&r->hi, memory_order_relaxed); /* (only the owner changes it) */
        if (atomic_load_explicit(&r->want, memory_order_acquire) == RANGE_ASKED) {
            if (hi - r->lo >= 2 * MG_STEAL_MIN_ROWS && sh->L - s >= MG_STEAL_MIN_STEPS) {
                const mg_int cut = r->lo + (hi - r->lo) / 2;
                mg_rows_pass_state(&sh->state, s, r->lo, cut, hi, scratch, 1);
                r->give_lo = cut;
                r->give_hi = hi;
                r->give_step = s;
                atomic_store_explicit(&r->hi, cut, memory_order_relaxed);
                atomic_store_explicit(&r->want, RANGE_GIVEN, memory_order_release);
                hi = cut;
            } else {
                atomic_store_explicit(&r->want, RANGE_REFUSED, memory_order_release);
            }
        }
        fn(job, r->d, s, r->lo, hi - r->lo, scratch);
        atomic_store_explicit(&r->step, s + 1, memory_order_relaxed);
    }
    /* Closed: a thief still waiting sees CLOSED.  Rows handed over but not yet taken (the thief has not
     * seen GIVEN) must not be lost: wait until it has. */
    int w = atomic_load_explicit(&r->want, memory_order_acquire);
    for (int spins = 0;; ++spins) {
        if (w == RANGE_GIVEN) {
            mg_spin_pause(spins);
            w = atomic_load_explicit(&r->want, memory_order_acquire);
        } else if (atomic_compare_exchange_weak_explicit(&r->want, &w, RANGE_CLOSED, memory_order_acq_rel,
                                                         memory_order_acquire)) {
            break;
        }
    }
}

/* A range the thief may ask: running, no request pending, enough rows and steps left; the one with the
 * most work left. */
static mg_rows_range *mg_rows_victim(mg_rows_share *sh)
{
    mg_rows_range *best = NULL;
    mg_int most = 0, n = atomic_load_explicit(&sh->ranges, memory_order_acquire);
    for (mg_int k = 0; k < n && k < MG_STEAL_RANGES; ++k) {
        mg_rows_range *r = &sh->range[k];
        if (atomic_load_explicit(&r->want, memory_order_acquire) != RANGE_IDLE)
            continue;
        const mg_int rows = atomic_load_explicit(&r->hi, memory_order_relaxed) - r->lo;
        const mg_int left = sh->L - atomic_load_explicit(&r->step, memory_order_relaxed);
        if (rows >= 2 * MG_STEAL_MIN_ROWS && left > MG_STEAL_MIN_STEPS && rows * left > most) {
            most = rows * left;
            best = r;
        }
    }
    return best;
}

/* After its own rows, once every task of the job has started: take rows from ranges still running until
 * none has enough left. */
static void mg_rows_steal(mg_rows_share *sh, mg_rows_fn fn, void *job, void *scratch, _Atomic int *failed)
{
    while (!atomic_load_explicit(failed, memory_order_relaxed) &&
           atomic_load_explicit(&sh->started, memory_order_acquire) >= sh->tasks) {
        mg_rows_range *v = mg_rows_victim(sh);
        if (!v || atomic_load_explicit(&sh->ranges, memory_order_relaxed) >= MG_STEAL_RANGES)
            return;
        int w = RANGE_IDLE;
        if (!atomic_compare_exchange_strong_explicit(&v->want, &w, RANGE_ASKED, memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue; /* another thief asked first, or the owner finished */
        for (int spins = 0; (w = atomic_load_explicit(&v->want, memory_order_acquire)) == RANGE_ASKED; ++spins)
            mg_spin_pause(spins);
        if (w == RANGE_CLOSED)
            continue;
        const mg_int d = v->d, lo = v->give_lo, hi = v->give_hi, s = v->give_step;
        int seen = w; /* back to IDLE: GIVEN is waited for by a closing owner; REFUSED may meet CLOSED */
        atomic_compare_exchange_strong_explicit(&v->want, &seen, RANGE_IDLE, memory_order_acq_rel,
                                                memory_order_relaxed);
        if (w == RANGE_REFUSED)
            continue;
        mg_rows_pass_state(&sh->state, s, lo, lo, hi, scratch, 0);
        /* the rows taken become a range of their own, which others may ask in turn */
        const mg_int k = atomic_fetch_add_explicit(&sh->ranges, 1, memory_order_acq_rel);
        mg_rows_range mine, *r = k < MG_STEAL_RANGES ? &sh->range[k] : &mine;
        r->d = d;
        r->lo = lo;
        atomic_store_explicit(&r->hi, hi, memory_order_relaxed);
        atomic_store_explicit(&r->step, s, memory_order_relaxed);
        atomic_store_explicit(&r->want, k < MG_STEAL_RANGES ? RANGE_IDLE : RANGE_CLOSED, memory_order_release);
        mg_rows_run(sh, r, s, fn, job, scratch, failed);
    }
}

/* Task i of a job whose ranges mg_rows_init set up: its own rows (direction d, [lo, lo + m)), then others'. */
static void mg_rows_task(mg_rows_share *sh, mg_int i, mg_int d, mg_int lo, mg_int m, mg_rows_fn fn, void *job,
                         void *scratch, _Atomic int *failed)
{
    mg_rows_range own, *r = i < MG_STEAL_RANGES ? &sh->range[i] : &own;
    r->d = d;
    r->lo = lo;
    atomic_store_explicit(&r->hi, lo + m, memory_order_relaxed);
    atomic_store_explicit(&r->step, 0, memory_order_relaxed);
    atomic_store_explicit(&r->want, i < MG_STEAL_RANGES ? RANGE_IDLE : RANGE_CLOSED, memory_order_release);
    atomic_fetch_add_explicit(&sh->started, 1, memory_order_acq_rel);
    mg_rows_run(sh, r, 0, fn, job, scratch, failed);
    mg_rows_steal(sh, fn, job, scratch, failed);
}

#define T float
#define SFX f32
#define CFG_PORTABLE {4, 16, 256, 1024, ukr_portable_f32, NULL, NULL, 0, 0, pack_rows_portable_f32, 1, 0}
#define CFG_AVX2                                                                                           \
    {6, 16, 256, 1024, mg_ukr_avx2_f32, mg_pack_t_f32, mg_pack_n_avx2_f32, DIRECT_B_ROWS, DIRECT_B_SPAN_AVX2,         \
     mg_pack_rows_avx2_f32, A_GROUP_AVX2, 0}
#define CFG_AVX512                                                                                         \
    {6, 64, KC32, NC32, mg_ukr_avx512_f32, mg_pack_t_f32, mg_pack_n_avx512_f32, DIRECT_B_ROWS, 0,                \
     mg_pack_rows_avx512_f32, A_GROUP_AVX512, A_GROUP_STRIDE_AVX512}
#include "matmul_tmpl.h"
#undef T
#undef SFX
#undef CFG_PORTABLE
#undef CFG_AVX2
#undef CFG_AVX512

#define T double
#define SFX f64
#define CFG_PORTABLE {4, 16, 256, 512, ukr_portable_f64, NULL, NULL, 0, 0, pack_rows_portable_f64, 1, 0}
#define CFG_AVX2                                                                                           \
    {6, 8, 256, 512, mg_ukr_avx2_f64, mg_pack_t_f64, mg_pack_n_avx2_f64, DIRECT_B_ROWS, DIRECT_B_SPAN_AVX2,          \
     mg_pack_rows_avx2_f64, A_GROUP_AVX2, 0}
#define CFG_AVX512                                                                                         \
    {6, 32, KC64, NC64, mg_ukr_avx512_f64, mg_pack_t_f64, mg_pack_n_avx512_f64, DIRECT_B_ROWS, 0,                \
     mg_pack_rows_avx512_f64, A_GROUP_AVX512, A_GROUP_STRIDE_AVX512}
#include "matmul_tmpl.h"

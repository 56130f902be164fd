/* Runtime choice of the kernel path and of the thread count; per-thread scratch memory; the thread pool. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sched_getcpu */
#endif
#include "mg_internal.h"

#include <stdatomic.h>

/* Portable until minigrad._kernels picks the best path at import.  Kernels read these without the GIL while
 * another thread may set them: atomics, relaxed because a kernel racing a change may read either the old or
 * the new value (both are valid) and nothing else is published through them. */
static atomic_int current_isa = MG_ISA_PORTABLE;
static atomic_int num_threads = 1;

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

int mg_get_isa(void) { return atomic_load_explicit(&current_isa, memory_order_relaxed); }

int mg_set_isa(int isa)
{
    if (!mg_isa_supported(isa))
        return -1;
    atomic_store_explicit(&current_isa, isa, memory_order_relaxed);
    return 0;
}

int mg_openmp(void) { return MG_THREADS; }

static atomic_int threading = MG_THREADING_POOL;

int mg_get_threading(void)
{
    const int kind = atomic_load_explicit(&threading, memory_order_relaxed);
    return kind == MG_THREADING_OPENMP && !mg_omp_usable() ? MG_THREADING_POOL : kind;
}

int mg_set_threading(int kind)
{
    if (kind != MG_THREADING_POOL && !(kind == MG_THREADING_OPENMP && mg_omp_built()))
        return -1;
    atomic_store_explicit(&threading, kind, memory_order_relaxed);
    return 0;
}

int mg_get_num_threads(void)
{
    return MG_THREADS ? atomic_load_explicit(&num_threads, memory_order_relaxed) : 1;
}

void mg_set_num_threads(int n)
{
    n = n < 1 ? 1 : n > MG_MAX_THREADS ? MG_MAX_THREADS : n;
    atomic_store_explicit(&num_threads, n, memory_order_relaxed);
}


#include <stdlib.h>
#if MG_THREADS
#include <pthread.h>

static int helper_delay;
static pthread_once_t delay_once = PTHREAD_ONCE_INIT;
static void read_helper_delay(void)
{
    const char *v = getenv("MINIGRAD_TEST_HELPER_DELAY_US");
    helper_delay = v ? atoi(v) : 0;
}

int mg_helper_delay_us(void)
{
    pthread_once(&delay_once, read_helper_delay);
    return helper_delay;
}

/* ---- whether sharing pays (mg_internal.h) ---- */
#include <time.h>

/* A window of jobs judged together: at least SHARE_WINDOW jobs and WINDOW_NS of their time.  (16 jobs alone
 * were 160 us of 10 us products, and on a VM a helper holding a task now and then stalled for 170 us: one
 * stall lost the window, while over 2000 such products sharing took 0.55x of one thread's time.)  The first
 * pause after a losing window, and the longest; how long the judge waits, job after job, for helpers it woke
 * (or a probe for its helpers) to take a task before it judges without them. */
#define SHARE_WINDOW 16
#define WINDOW_NS 1000000LL
#define PROBE_WAIT_NS 1000000LL
#define BACKOFF_MIN_NS 50000000LL
#define BACKOFF_MAX_NS 2000000000LL

long long mg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mg_share_paused(mg_share_state *s)
{
    const long long until = atomic_load_explicit(&s->serial_until, memory_order_relaxed);
    return until && mg_now_ns() < until;
}

/* The pause lasts the backoff, and at least a window of jobs run alone (`job`: one job's time on the caller
 * alone): a probe then costs a small share of the time even when each job takes longer than the backoff. */
static void share_pause(mg_share_state *s, long long now, long long job)
{
    s->backoff = !s->backoff                    ? BACKOFF_MIN_NS
                 : s->backoff < BACKOFF_MAX_NS / 2 ? 2 * s->backoff
                                                   : BACKOFF_MAX_NS;
    const long long window = SHARE_WINDOW * job;
    atomic_store_explicit(&s->serial_until, now + (window > s->backoff ? window : s->backoff),
                          memory_order_relaxed);
    s->probing = 1;
    s->warming = 1; /* by the probe its helpers are asleep: it starts as a wake-up (its first job: below) */
    s->warm_since = -1;
}

void mg_share_judge(mg_share_state *s, long long t0, long long t1, long long t2, long long t3, mg_int mine,
                    mg_int ntasks, int woke)
{
    if (mine <= 0)
        return; /* the helpers ran every task: no estimate of the caller alone, and nobody was late */
    const long long serial = (long long)((double)(t2 - t1) * (double)ntasks / (double)mine);
    /* Helpers woken (or started) for this job: it pays the wake-up call and mostly ends before they arrive,
     * and the first job they join waits on a helper not yet up to speed.  Traced on a Zen 4 VM, 10 us
     * products after an idle moment: the waking job took 22-55 us against 12-26 us alone, the next 3-5 ran
     * before the helper came (100-130 us), and the first it joined took 13.5 us against 10 alone; every job
     * after that 5.5.  Counted, those jobs made the first window of a process lose, and they were all a
     * probe saw, so a loop of such products stayed on one thread for good (0.97x of one thread).  So the
     * jobs from the waking one to the first a helper joins are not judged -- up to PROBE_WAIT_NS (in time,
     * not jobs: a woken helper took longer than four 10 us products), so that helpers that never come
     * still count. */
    if (woke && !s->warming) {
        s->warming = 1;
        s->warm_since = t0;
    }
    if (s->warming) {
        if (s->warm_since < 0)
            s->warm_since = t0; /* a probe's first job */
        if (t3 - s->warm_since < PROBE_WAIT_NS) {
            if (mine < ntasks)
                s->warming = 0; /* a helper joined: the next job is judged */
            return;
        }
        s->warming = 0;
    }
    if (s->probing) {
        /* The probe: the first job after a pause that is judged decides alone, so a process whose helpers
         * stay late loses one job per pause, not a window.  By then the helpers are asleep; the jobs of its
         * wake-up (above) were what a probe saw before, and they always lost, so one slow moment kept a
         * process on one thread for good (an LSTM step from core ops: 12.5 ms, then 19-20 ms for the rest of
         * the process). */
        s->probing = 0;
        if (t3 - t0 > serial)
            share_pause(s, t3, serial);
        else
            s->backoff = 0;
        return;
    }
    s->wall += t3 - t0;
    s->serial += serial;
    if (++s->jobs < SHARE_WINDOW || s->wall < WINDOW_NS)
        return;
    if (s->wall > s->serial)
        share_pause(s, t3, s->serial / s->jobs);
    s->wall = s->serial = 0;
    s->jobs = 0;
}

void mg_share_trace(mg_int n, const long long *jobs, long long *paused_for)
{
    mg_share_state s = {0};
    long long now = 0;
    for (mg_int k = 0; k < n; ++k) {
        const long long *j = jobs + 6 * k; /* idle gap, wall, caller's own tasks, tasks it ran, tasks, woke */
        now += j[0];
        const long long until = atomic_load_explicit(&s.serial_until, memory_order_relaxed);
        if (until && now < until) {
            now += j[2]; /* paused: the caller runs the job alone, and nothing is judged */
        } else {
            mg_share_judge(&s, now, now, now + j[2], now + j[1], (mg_int)j[3], (mg_int)j[4], (int)j[5]);
            now += j[1];
        }
        const long long after = atomic_load_explicit(&s.serial_until, memory_order_relaxed);
        paused_for[k] = after > now ? after - now : 0;
    }
}

void mg_distance_sample(mg_distance_state *d, long long ns)
{
    if (ns < 0)
        return;
    if (d->samples == 0 || ns < d->shortest)
        d->shortest = ns;
    if (++d->samples >= MG_DISTANCE_SAMPLES) {
        atomic_store_explicit(&d->far, d->shortest > MG_FAR_NS, memory_order_relaxed);
        d->samples = 0;
    }
}

void mg_distance_trace(mg_int n, const long long *ns, int *far)
{
    mg_distance_state d = {0};
    for (mg_int k = 0; k < n; ++k) {
        mg_distance_sample(&d, ns[k]);
        far[k] = atomic_load_explicit(&d.far, memory_order_relaxed);
    }
}

void mg_share_reset(mg_share_state *s)
{
    atomic_store_explicit(&s->serial_until, 0, memory_order_relaxed);
    s->backoff = s->wall = s->serial = s->warm_since = 0;
    s->jobs = s->probing = s->warming = 0;
}

/* ---- where helpers run (mg_internal.h) ---- */
#include <sched.h>

int mg_current_cpu(void)
{
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
}

#ifdef __linux__
_Static_assert(sizeof(cpu_set_t) <= sizeof(((mg_placement *)0)->allowed), "mg_placement holds a cpu_set_t");
#endif

void mg_placement_init(mg_placement *p)
{
    p->known = 0;
    p->excluded = -1;
#ifdef __linux__
    cpu_set_t *allowed = (cpu_set_t *)p->allowed;
    p->known = pthread_getaffinity_np(pthread_self(), sizeof *allowed, allowed) == 0 && CPU_COUNT(allowed) > 1;
#endif
}

void mg_placement_avoid(mg_placement *p, int cpu)
{
#ifdef __linux__
    const cpu_set_t *allowed = (const cpu_set_t *)p->allowed;
    if (!p->known || cpu == p->excluded || cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, allowed))
        return;
    cpu_set_t others = *allowed;
    CPU_CLR(cpu, &others);
    /* the kernel moves this thread off `cpu` before the call returns */
    if (pthread_setaffinity_np(pthread_self(), sizeof others, &others) == 0)
        p->excluded = cpu;
#else
    (void)p;
    (void)cpu;
#endif
}

/* ---- per-thread scratch ---- */
typedef struct {
    void *p;
    size_t n;
} scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *s)
{
    free(((scratch_t *)s)->p);
    free(s);
}

static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0; }

void *mg_scratch(size_t bytes)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok)
        return NULL;
    scratch_t *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        if (pthread_setspecific(scratch_key, s)) {
            free(s);
            return NULL;
        }
    }
    if (s->n < bytes) {
        /* Grow by at least half, so that a sequence of growing products reallocates only a few times. */
        size_t n = bytes > s->n + s->n / 2 ? bytes : s->n + s->n / 2;
        n = (n + 4095) / 4096 * 4096;
        void *p = aligned_alloc(64, n);
        if (!p)
            return NULL;
        free(s->p);
        s->p = p;
        s->n = n;
    }
    return s->p;
}

/* ---- thread pool ----
 *
 * Helper threads are started on the first parallel call and then wait for jobs, spinning for a short while
 * (a kernel called in a loop finds them awake) before sleeping on a condition variable.  A job is a number
 * of independent tasks claimed one at a time through one atomic word (generation | next task | task count),
 * and the calling thread claims tasks too.  The caller never waits for a helper to arrive -- on a busy
 * machine a helper that is not scheduled in time simply finds no task left -- only for the tasks helpers
 * have claimed to finish.  So a parallel call is never much slower than running its tasks serially, and
 * which thread runs a task does not change its result.  One job at a time: a second caller that finds the
 * pool busy runs its tasks itself.
 */
#include <stdint.h>
#include <unistd.h>

#define BITS 20
#define FIELD ((1ull << BITS) - 1)
#define GEN(s) ((s) >> (2 * BITS))
#define NEXT(s) (((s) >> BITS) & FIELD)
#define COUNT(s) ((s) & FIELD)
/* About 200 microseconds of spinning before a helper sleeps (a pause is ~60 cycles on Zen 4). */
#define SPIN 10000

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER; /* held by the caller running a job */
static pthread_mutex_t sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleep_cond = PTHREAD_COND_INITIALIZER;
static _Atomic uint64_t pool_state;
static atomic_long pool_done;  /* tasks of the current job finished */
static atomic_int pool_joined; /* helpers that took a slot in the current job */
static atomic_int pool_sleepers;
static atomic_int pool_slots; /* helpers allowed into the current job */
/* helpers started: written under pool_lock, read without it by mg_pool_awake (a hint, hence relaxed) */
static atomic_int pool_helpers;
static mg_task_fn job_fn;
static void *job_ctx;
static atomic_int job_cpu = -1; /* the CPU the caller of the current job runs on (-1: unknown) */

/* A helper on the caller's own CPU would only time-slice that core with the caller (on a busy machine the
 * scheduler may put them there): it stays out of the job, and sleeps rather than spins. */
static inline int on_callers_cpu(void)
{
    const int cpu = atomic_load_explicit(&job_cpu, memory_order_relaxed);
    return cpu >= 0 && mg_current_cpu() == cpu;
}

static inline void cpu_relax(void)
{
#if MG_X86
    __builtin_ia32_pause();
#endif
}

static mg_share_state pool_share;
static mg_distance_state pool_distance;
/* When the first helper that was spinning saw the current job (> 0); before that, -(generation + 1). */
static _Atomic long long claim_ns;

static int far_forced = -1;
static pthread_once_t far_once = PTHREAD_ONCE_INIT;
static void read_far_forced(void)
{
    const char *v = getenv("MINIGRAD_TEST_CPUS_FAR");
    if (v && (v[0] == '0' || v[0] == '1') && v[1] == 0)
        far_forced = v[0] - '0';
}

int mg_threads_far(void)
{
    pthread_once(&far_once, read_far_forced);
    if (far_forced >= 0)
        return far_forced;
    if (mg_get_threading() != MG_THREADING_POOL)
        return 0;
    return atomic_load_explicit(&pool_distance.far, memory_order_relaxed);
}

/* Claim and run tasks of generation gen until none is left; returns how many this thread ran.  job_fn and
 * job_ctx are read only after a successful claim, which orders them after the caller's publication of gen;
 * they cannot change before this task is counted done. */
static mg_int run_tasks(uint64_t gen, int helper)
{
    mg_int ran = 0;
    uint64_t s = atomic_load(&pool_state);
    while (GEN(s) == gen && NEXT(s) < COUNT(s) && !(helper && on_callers_cpu())) {
        if (atomic_compare_exchange_weak(&pool_state, &s, s + (1ull << BITS))) {
            if (helper && mg_helper_delay_us())
                usleep((useconds_t)mg_helper_delay_us());
            job_fn(job_ctx, (mg_int)NEXT(s));
            atomic_fetch_add(&pool_done, 1);
            ++ran;
            s = atomic_load(&pool_state);
        }
    }
    return ran;
}

static void *helper_main(void *arg)
{
    uint64_t seen = GEN(atomic_load(&pool_state));
    mg_placement where;
    (void)arg;
#ifdef __linux__
    pthread_setname_np(pthread_self(), "minigrad-pool"); /* as top -H and /proc/<pid>/task/<tid>/comm show it */
#endif
    mg_placement_init(&where);
    for (;;) {
        uint64_t s = atomic_load(&pool_state);
        /* On the caller's CPU (the caller moved there since the last job) it sleeps at once: spinning
         * there, even yielding, took a share of the caller's core at every job -- two threads ran the RNN
         * step slower than one.  Joining the next job moves it off (mg_placement_avoid). */
        for (int spins = 0; GEN(s) == seen && spins < SPIN; ++spins) {
            if (spins % 64 == 0 && on_callers_cpu())
                break;
            cpu_relax();
            s = atomic_load(&pool_state);
        }
        if (GEN(s) != seen) {
            /* seen while spinning: the hand-off's latency (only the first helper's, only for this job) */
            long long tag = -(long long)GEN(s) - 1;
            atomic_compare_exchange_strong(&claim_ns, &tag, mg_now_ns());
        } else {
            pthread_mutex_lock(&sleep_lock);
            atomic_fetch_add(&pool_sleepers, 1);
            while (GEN(s = atomic_load(&pool_state)) == seen)
                pthread_cond_wait(&sleep_cond, &sleep_lock);
            atomic_fetch_sub(&pool_sleepers, 1);
            pthread_mutex_unlock(&sleep_lock);
        }
        seen = GEN(s);
        if (atomic_fetch_add(&pool_joined, 1) < atomic_load(&pool_slots)) {
            mg_placement_avoid(&where, atomic_load_explicit(&job_cpu, memory_order_relaxed));
            run_tasks(seen, 1);
        }
    }
    return NULL;
}

/* A forked child has none of the helpers: start afresh. */
static void pool_after_fork_child(void)
{
    pthread_mutex_init(&pool_lock, NULL);
    pthread_mutex_init(&sleep_lock, NULL);
    pthread_cond_init(&sleep_cond, NULL);
    atomic_store(&pool_sleepers, 0);
    atomic_store_explicit(&pool_helpers, 0, memory_order_relaxed);
    mg_share_reset(&pool_share);
    pool_distance.samples = 0; /* the child's threads may run anywhere: measure afresh */
    atomic_store_explicit(&pool_distance.far, 0, memory_order_relaxed);
}

int mg_pool_awake(void)
{
    if (mg_get_threading() == MG_THREADING_OPENMP)
        return mg_omp_awake();
    const int helpers = atomic_load_explicit(&pool_helpers, memory_order_relaxed);
    const int awake = helpers - atomic_load(&pool_sleepers);
    return awake > 0 ? awake : 0;
}

/* When the last job that wanted helpers and found none awake (mg_job_threads) began, and once it has run
 * (on its caller alone), when it ended: a stream is told by the gap between such jobs, however long each
 * takes (a sanitizer build's take 10-100x as long). */
static _Atomic long long lone_job_ns;
static _Thread_local int lone_job_running; /* this thread's next mg_parallel_for is such a job */

int mg_job_threads(int share, int *wake)
{
    const int nt = share ? mg_get_num_threads() : 1;
    if (nt == 1 || *wake)
        return nt;
    if (mg_threads_far())
        return 1;
    if (mg_pool_awake())
        return nt;
    const long long now = mg_now_ns();
    if (now - atomic_exchange_explicit(&lone_job_ns, now, memory_order_relaxed) < MG_STREAM_NS) {
        *wake = 1;
        return nt;
    }
    lone_job_running = 1;
    return 1;
}

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static void pool_init(void) { pthread_atfork(NULL, NULL, pool_after_fork_child); }

static void parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx);

void mg_parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx)
{
    const int lone = lone_job_running;
    lone_job_running = 0;
    parallel_for(ntasks, nthreads, wake, fn, ctx);
    if (lone)
        atomic_store_explicit(&lone_job_ns, mg_now_ns(), memory_order_relaxed);
}

static void parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx)
{
    mg_int t = 0;
    if (mg_get_threading() == MG_THREADING_OPENMP) {
        mg_omp_parallel_for(ntasks, nthreads, wake, fn, ctx);
        return;
    }
    if (nthreads > 1 && ntasks > 1 && (uint64_t)ntasks <= FIELD && !mg_share_paused(&pool_share) &&
        pthread_mutex_trylock(&pool_lock) == 0) {
        /* only this thread writes pool_helpers while it holds pool_lock */
        int helpers = atomic_load_explicit(&pool_helpers, memory_order_relaxed);
        if (!wake && atomic_load(&pool_sleepers) >= helpers) {
            /* a small job, and every helper asleep: waking one would cost more than it saves */
            pthread_mutex_unlock(&pool_lock);
            goto serial;
        }
        pthread_once(&pool_once, pool_init);
        const int want = (nthreads < ntasks ? nthreads : (int)ntasks) - 1;
        /* helpers this job starts, or wakes (only a job that may wake them does): the judge leaves out
         * their warm-up */
        const int woke = helpers < want || (wake && helpers - atomic_load(&pool_sleepers) < want);
        while (helpers < want) {
            pthread_t th;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            const int failed = pthread_create(&th, &attr, helper_main, NULL);
            pthread_attr_destroy(&attr);
            if (failed)
                break;
            atomic_store_explicit(&pool_helpers, ++helpers, memory_order_relaxed);
        }
        if (helpers > 0) {
            const long long t0 = mg_now_ns();
            job_fn = fn;
            job_ctx = ctx;
            atomic_store_explicit(&job_cpu, mg_current_cpu(), memory_order_relaxed);
            atomic_store(&pool_slots, want);
            atomic_store(&pool_done, 0);
            atomic_store(&pool_joined, 0);
            const uint64_t gen = (GEN(atomic_load(&pool_state)) + 1) & ((1ull << (64 - 2 * BITS)) - 1);
            atomic_store_explicit(&claim_ns, -(long long)gen - 1, memory_order_relaxed);
            const long long published = mg_now_ns();
            atomic_store(&pool_state, gen << (2 * BITS) | (uint64_t)ntasks);
            if (wake && atomic_load(&pool_sleepers) > 0) {
                pthread_mutex_lock(&sleep_lock);
                pthread_cond_broadcast(&sleep_cond);
                pthread_mutex_unlock(&sleep_lock);
            }
            const long long t1 = mg_now_ns();
            const mg_int mine = run_tasks(gen, 0);
            const long long t2 = mg_now_ns();
            /* Only tasks that helpers claimed can still be running.  Yield soon: a helper just woken may
             * be queued on this very core. */
            for (int spins = 0; atomic_load(&pool_done) < ntasks; ++spins) {
                if (spins < 256)
                    cpu_relax();
                else
                    sched_yield();
            }
            mg_share_judge(&pool_share, t0, t1, t2, mg_now_ns(), mine, ntasks, woke);
            const long long claimed = atomic_load(&claim_ns);
            if (claimed > 0 && !woke)
                mg_distance_sample(&pool_distance, claimed - published);
            pthread_mutex_unlock(&pool_lock);
            return;
        }
        pthread_mutex_unlock(&pool_lock);
    }
serial:
    for (; t < ntasks; ++t)
        fn(ctx, t);
}
#else
/* No POSIX threads: one buffer per thread, never freed. */
void *mg_scratch(size_t bytes)
{
    static _Thread_local void *p;
    static _Thread_local size_t n;
    if (n < bytes) {
        const size_t m = (bytes + 4095) / 4096 * 4096;
        void *q = aligned_alloc(64, m);
        if (!q)
            return NULL;
        free(p);
        p = q;
        n = m;
    }
    return p;
}

int mg_pool_awake(void) { return 0; }

int mg_job_threads(int share, int *wake)
{
    (void)share;
    (void)wake;
    return 1;
}

int mg_threads_far(void) { return 0; }

void mg_parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx)
{
    (void)nthreads;
    (void)wake;
    for (mg_int t = 0; t < ntasks; ++t)
        fn(ctx, t);
}
#endif

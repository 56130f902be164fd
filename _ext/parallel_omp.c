/* The parallel loop on OpenMP (MINIGRAD_THREADING=openmp), beside minigrad's own pool in cpu.c.  Built
 * only when the compiler takes -fopenmp (setup.py); mg_omp_built() is 0 otherwise, and the pool runs every
 * job. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include "mg_internal.h"

#if defined(_OPENMP) && MG_THREADS
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

/* One job at a time, as in the pool: libgomp keeps a team per calling thread, so concurrent callers would
 * each start their own and oversubscribe the cores; a caller that finds a job running runs its tasks
 * itself. */
static atomic_flag busy = ATOMIC_FLAG_INIT;
static atomic_int used;   /* a team was started in this process */
static atomic_int forked; /* this process is a fork child of one that had started a team */
static atomic_int last_team;
static _Atomic long long last_end_ns;
/* libgomp's threads spin for a while after a region (GOMP_SPINCOUNT, 300000 polls by default; none with
 * OMP_WAIT_POLICY=passive) before they sleep: within this long of the last region they count as awake. */
#define AWAKE_NS 200000

static mg_share_state omp_share;

/* Each team thread keeps off the caller's CPU (mg_internal.h: mg_placement), unless the user binds OpenMP's
 * threads. */
static _Thread_local mg_placement where;
static _Thread_local int where_ready;
static int user_binds;
static pthread_once_t binds_once = PTHREAD_ONCE_INIT;
static void read_binds(void)
{
    user_binds = getenv("OMP_PROC_BIND") || getenv("OMP_PLACES") || getenv("GOMP_CPU_AFFINITY");
}

/* libgomp's threads do not survive fork, and some versions hang in the child's next region: a child of a
 * process that used OpenMP runs its jobs on the pool instead. */
static void after_fork_child(void)
{
    if (atomic_load(&used))
        atomic_store(&forked, 1);
    atomic_flag_clear(&busy);
    mg_share_reset(&omp_share);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void register_fork(void) { pthread_atfork(NULL, NULL, after_fork_child); }

int mg_omp_built(void) { return 1; }

int mg_omp_usable(void) { return !atomic_load(&forked); }

int mg_omp_awake(void)
{
    if (mg_now_ns() - atomic_load_explicit(&last_end_ns, memory_order_relaxed) > AWAKE_NS)
        return 0;
    return atomic_load_explicit(&last_team, memory_order_relaxed) - 1;
}

void mg_omp_parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx)
{
    int n = nthreads < ntasks ? nthreads : (int)ntasks;
    if (n > 1 && !wake && mg_omp_awake() <= 0)
        n = 1; /* a small job, and the team asleep: waking it would cost more than it saves */
    if (n > 1 && !mg_share_paused(&omp_share) && !atomic_flag_test_and_set(&busy)) {
        pthread_once(&fork_once, register_fork);
        pthread_once(&binds_once, read_binds);
        const int caller_cpu = user_binds ? -1 : mg_current_cpu();
        const int woke = mg_omp_awake() < n - 1; /* the team (or part of it) starts or wakes for this region */
        atomic_store(&used, 1);
        const int delay = mg_helper_delay_us();
        atomic_long next = 0;
        long long t1 = 0, t2 = 0;
        mg_int mine = 0;
        const long long t0 = mg_now_ns();
        /* Tasks claimed one at a time, as in the pool: a thread that starts late only finds fewer left (but
         * the region's closing barrier still waits for it); which thread runs a task does not change its
         * result. */
#pragma omp parallel num_threads(n)
        {
            const int master = omp_get_thread_num() == 0;
            mg_int ran = 0;
            if (master) {
                t1 = mg_now_ns();
            } else if (caller_cpu >= 0) { /* for the next wake-up: this one is over */
                if (!where_ready) {
                    mg_placement_init(&where);
                    where_ready = 1;
                }
                mg_placement_avoid(&where, caller_cpu);
            }
            for (mg_int t; (t = atomic_fetch_add(&next, 1)) < ntasks; ++ran) {
                if (!master && delay)
                    usleep((useconds_t)delay);
                fn(ctx, t);
            }
            if (master) {
                t2 = mg_now_ns();
                mine = ran;
            }
        }
        const long long t3 = mg_now_ns();
        mg_share_judge(&omp_share, t0, t1, t2, t3, mine, ntasks, woke);
        atomic_store_explicit(&last_team, n, memory_order_relaxed);
        atomic_store_explicit(&last_end_ns, t3, memory_order_relaxed);
        atomic_flag_clear(&busy);
        return;
    }
    for (mg_int t = 0; t < ntasks; ++t)
        fn(ctx, t);
}
#else
int mg_omp_built(void) { return 0; }
int mg_omp_usable(void) { return 0; }
int mg_omp_awake(void) { return 0; }
void mg_omp_parallel_for(mg_int ntasks, int nthreads, int wake, mg_task_fn fn, void *ctx)
{
    (void)nthreads;
    (void)wake;
    for (mg_int t = 0; t < ntasks; ++t)
        fn(ctx, t);
}
#endif

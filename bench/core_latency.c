/* How far apart two CPUs are: the round trip of one cache line between a thread pinned to each, in
 * nanoseconds.  One thread writes an odd counter value, the other answers with the next even one, and so on;
 * a round trip is two transfers of the line.  Prints "round_trip_ns <best of the runs>" (Linux only;
 * elsewhere it prints nothing).  bench/harness.py compiles and runs it: on a virtual machine the two vCPUs
 * sometimes sit on one L3 cache and sometimes on two (measured on a 2-vCPU Zen 4 guest: 55-80 ns, then
 * 330-370 ns for tens of seconds at a time), and every 2-thread figure depends on which.
 *
 * Arguments: CPU_A CPU_B [runs (1..100, default 5)] [round trips per run (1000..10^7, default 20000)]. */
#if defined(__linux__)
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_long line;
static long trips = 20000;
static int cpu_b;
static atomic_int ok_b = 1;

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The answering side: waits for each odd value and writes the next even one. */
static void *answer(void *arg)
{
    const long runs = (long)arg;
    if (pin(cpu_b))
        atomic_store(&ok_b, 0);
    for (long i = 0; i < runs * trips; ++i) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
            if (!atomic_load_explicit(&ok_b, memory_order_relaxed))
                return NULL;
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int cpu_a, runs = 5;
    if (argc < 3 || sscanf(argv[1], "%d", &cpu_a) != 1 || sscanf(argv[2], "%d", &cpu_b) != 1 || cpu_a < 0 ||
        cpu_b < 0 || cpu_a >= CPU_SETSIZE || cpu_b >= CPU_SETSIZE || cpu_a == cpu_b) {
        fprintf(stderr, "usage: %s CPU_A CPU_B [runs] [round trips per run]\n", argv[0]);
        return 2;
    }
    if (argc > 3 && (sscanf(argv[3], "%d", &runs) != 1 || runs < 1 || runs > 100))
        runs = 5;
    if (argc > 4 && (sscanf(argv[4], "%ld", &trips) != 1 || trips < 1000 || trips > 10000000))
        trips = 20000;
    if (pin(cpu_a)) {
        fprintf(stderr, "cannot run on CPU %d\n", cpu_a);
        return 1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, answer, (void *)(long)runs)) {
        fprintf(stderr, "cannot start a thread\n");
        return 1;
    }
    double best = 0;
    long i = 0;
    for (int run = 0; run < runs && atomic_load(&ok_b); ++run) {
        const double t0 = now();
        for (long k = 0; k < trips; ++k, ++i) {
            atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
                if (!atomic_load_explicit(&ok_b, memory_order_relaxed))
                    break;
        }
        const double ns = (now() - t0) * 1e9 / (double)trips;
        if (run == 0 || ns < best)
            best = ns;
    }
    if (!atomic_load(&ok_b)) {
        atomic_store(&ok_b, 0);
        pthread_join(t, NULL);
        fprintf(stderr, "cannot run on CPU %d\n", cpu_b);
        return 1;
    }
    pthread_join(t, NULL);
    printf("round_trip_ns %.1f\n", best);
    return 0;
}
#else
int main(void) { return 0; } /* not Linux: nothing to pin, nothing printed */
#endif

/* corelat.c: how far apart two CPUs are, as the time one cache line takes
 * to go from one to the other and back.
 *
 *   corelat CPU_A CPU_B     prints nanoseconds per round trip (median of 5)
 *
 * Why: on a VM the host may run the two vCPUs on cores that share a cache
 * (here about 100 ns per round trip) or on cores that do not (about 400
 * ns).  In the second case everything the server and the load generator
 * pass to each other through the kernel costs more to copy, and the
 * large-message figures drop by a third.  run.py measures this around every
 * run, so that a report says which case it measured.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BOUNCES 20000
#define ROUNDS 5

static _Atomic long line __attribute__((aligned(64)));
static int cpu_b;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "corelat: cannot run on CPU %d\n", cpu);
        exit(2);
    }
}

/* CPU B answers every odd value with the next even one. */
static void *answer(void *unused)
{
    (void)unused;
    pin(cpu_b);
    for (long i = 0; i < (long)BOUNCES * ROUNDS; i++) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: corelat CPU_A CPU_B\n");
        return 2;
    }
    int cpu_a = atoi(argv[1]);
    cpu_b = atoi(argv[2]);
    pin(cpu_a);
    pthread_t other;
    if (pthread_create(&other, NULL, answer, NULL) != 0) {
        fprintf(stderr, "corelat: cannot start a thread\n");
        return 2;
    }
    double per_round[ROUNDS];
    long i = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (int k = 0; k < BOUNCES; k++, i++) {
            atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
                ;
        }
        per_round[r] = (now_ns() - t0) / BOUNCES;
    }
    pthread_join(other, NULL);
    qsort(per_round, ROUNDS, sizeof per_round[0], by_value);
    printf("%.1f\n", per_round[ROUNDS / 2]);
    return 0;
}

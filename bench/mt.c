/* Threads: what crossing a thread costs.
 *
 *   bench_mt [round_trips [runs]]
 *
 * Rows, each the median of interleaved runs, wall-clock ns:
 *   - unbuffered channel round trip, both coroutines on one thread, with a
 *     channel made before the process had a pool (a thread's own) and one
 *     made after (shared: every call takes its lock);
 *   - the same between coroutines of two pool threads;
 *   - a pthread mutex + condition variable ping-pong between two threads;
 *   - the wake of a sleeping pool thread: from a spawn posted to its
 *     inbox until the coroutine runs there, and of a plain thread in
 *     pthread_cond_wait, each asleep for 200 us first;
 * and a burst of 10,000 spawns to a sleeping thread, with the doorbell
 * rings it cost and the times the thread went to sleep meanwhile.
 *
 * Links the static library: it reads the scheduler's doorbell counters. */
#define _GNU_SOURCE
#include "lib/sched.h"
#include <coro.h>

#include "bench.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static double wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long trips = 200000;

static void die(const char *what, int err)
{
    fprintf(stderr, "bench_mt: %s: error %d\n", what, err);
    exit(1);
}

/* ------------------------------------------------------ channel ping-pong */

static coro_chan_t *ping, *pong;
static double t_begin, t_end;

static void *ponger(void *arg)
{
    (void)arg;
    int v;
    for (long i = 0; i < trips; i++) {
        coro_chan_recv(ping, &v, -1);
        coro_chan_send(pong, &v, -1);
    }
    return NULL;
}

static void *pinger(void *arg)
{
    (void)arg;
    int v = 1;
    t_begin = wall_ns();
    for (long i = 0; i < trips; i++) {
        coro_chan_send(ping, &v, -1);
        coro_chan_recv(pong, &v, -1);
    }
    t_end = wall_ns();
    return NULL;
}

static void make_chans(void)
{
    int err;
    if ((err = coro_chan_create(&ping, sizeof(int), 0)) ||
        (err = coro_chan_create(&pong, sizeof(int), 0)))
        die("coro_chan_create", err);
}

static void free_chans(void)
{
    coro_chan_destroy(ping);
    coro_chan_destroy(pong);
}

/* Both coroutines on this thread, channels made before any pool. */
static double chan_local(void)
{
    make_chans();
    coro_spawn(NULL, ponger, NULL, NULL);
    coro_spawn(NULL, pinger, NULL, NULL);
    coro_run();
    free_chans();
    return (t_end - t_begin) / (double)trips;
}

static coro_pool_t *pool;

/* On pool threads a and b (equal: one thread), shared channels. */
static double chan_pool(int a, int b)
{
    int err;
    make_chans();
    if ((err = coro_pool_spawn(pool, b, NULL, ponger, NULL, NULL)) ||
        (err = coro_pool_spawn(pool, a, NULL, pinger, NULL, NULL)))
        die("coro_pool_spawn", err);
    coro_pool_wait(pool, -1);
    free_chans();
    return (t_end - t_begin) / (double)trips;
}

/* ------------------------------------------------ pthread mutex + cond */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn; /* 0: the pinger's, 1: the ponger's */

static void *pt_ponger(void *arg)
{
    (void)arg;
    for (long i = 0; i < trips; i++) {
        pthread_mutex_lock(&mu);
        while (turn != 1)
            pthread_cond_wait(&cv, &mu);
        turn = 0;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static double pthread_pingpong(void)
{
    pthread_t t;
    turn = 0;
    pthread_create(&t, NULL, pt_ponger, NULL);
    double t0 = wall_ns();
    for (long i = 0; i < trips; i++) {
        pthread_mutex_lock(&mu);
        turn = 1;
        pthread_cond_signal(&cv);
        while (turn != 0)
            pthread_cond_wait(&cv, &mu);
        pthread_mutex_unlock(&mu);
    }
    double t1 = wall_ns();
    pthread_join(t, NULL);
    return (t1 - t0) / (double)trips;
}

/* ------------------------------------------------- waking a sleeper */

static _Atomic(struct coro__sched *) sched1;
static atomic_int landed;
static double t_landed;

static void *note(void *arg)
{
    (void)arg;
    atomic_store(&sched1, coro__sched_current());
    return NULL;
}

static void *land(void *arg)
{
    (void)arg;
    t_landed = wall_ns();
    atomic_store(&landed, 1);
    return NULL;
}

static void wait_asleep(struct coro__sched *s)
{
    while (atomic_load(&s->sleeping) == CORO__AWAKE)
        sched_yield();
}

/* ns from a spawn posted to sleeping thread 1 until it runs there. */
static double wake_latency(void)
{
    struct coro__sched *s = atomic_load(&sched1);
    wait_asleep(s);
    /* Past the spin that follows a ring: it sleeps for real. */
    struct timespec pause = {0, 200000};
    nanosleep(&pause, NULL);
    wait_asleep(s);
    atomic_store(&landed, 0);
    double t0 = wall_ns();
    coro_pool_spawn(pool, 1, NULL, land, NULL, NULL);
    while (!atomic_load(&landed))
        ;
    return t_landed - t0;
}

/* The same for a plain thread asleep in pthread_cond_wait. */
static atomic_int pt_asleep;
static int pt_go;

static void *pt_sleeper(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    atomic_store(&pt_asleep, 1);
    while (!pt_go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    t_landed = wall_ns();
    atomic_store(&landed, 1);
    return NULL;
}

static double pthread_wake_latency(void)
{
    pthread_t t;
    atomic_store(&pt_asleep, 0);
    atomic_store(&landed, 0);
    pt_go = 0;
    pthread_create(&t, NULL, pt_sleeper, NULL);
    while (!atomic_load(&pt_asleep))
        sched_yield();
    struct timespec pause = {0, 200000};
    nanosleep(&pause, NULL);
    double t0 = wall_ns();
    pthread_mutex_lock(&mu);
    pt_go = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    while (!atomic_load(&landed))
        ;
    pthread_join(t, NULL);
    return t_landed - t0;
}

static void *nothing(void *arg)
{
    (void)arg;
    return NULL;
}

int main(int argc, char **argv)
{
    int runs = 7;
    if (argc > 1)
        trips = atol(argv[1]);
    if (argc > 2)
        runs = atoi(argv[2]);
    if (trips < 1 || runs < 1 || runs > BENCH_MAX_RUNS) {
        fprintf(stderr, "usage: %s [round_trips >= 1] [runs 1..%d]\n", argv[0],
                BENCH_MAX_RUNS);
        return 2;
    }
    double local[BENCH_MAX_RUNS], shared[BENCH_MAX_RUNS], cross[BENCH_MAX_RUNS],
        pth[BENCH_MAX_RUNS], wake[BENCH_MAX_RUNS], ptwake[BENCH_MAX_RUNS];

    /* The thread's own channels can only be had before the first pool. */
    for (int r = 0; r < runs; r++)
        local[r] = chan_local();
    int err = coro_pool_create(&pool, 2);
    if (err)
        die("coro_pool_create", err);
    coro_pool_spawn(pool, 1, NULL, note, NULL, NULL);
    coro_pool_wait(pool, -1);
    for (int r = 0; r < runs; r++) {
        shared[r] = chan_pool(0, 0);
        cross[r] = chan_pool(0, 1);
        pth[r] = pthread_pingpong();
        wake[r] = wake_latency();
        ptwake[r] = pthread_wake_latency();
    }

    /* The burst: 10,000 spawns to thread 1, asleep when it begins. */
    struct coro__sched *s = atomic_load(&sched1);
    unsigned long s0, r0, s1, r1;
    wait_asleep(s);
    coro__sched_bell_stats(s, &s0, &r0);
    double b0 = wall_ns();
    for (int i = 0; i < 10000; i++)
        coro_pool_spawn(pool, 1, NULL, nothing, NULL, NULL);
    coro_pool_wait(pool, -1);
    double b1 = wall_ns();
    wait_asleep(s);
    coro__sched_bell_stats(s, &s1, &r1);
    coro_pool_destroy(pool);

    double m_local = bench_median(local, runs);
    printf("threads: ns per operation, wall clock, median of %d runs "
           "(%ld round trips each)\n\n", runs, trips);
    printf("| what                                          |  median ns | vs local chan |\n");
    printf("|-----------------------------------------------|------------|---------------|\n");
    struct { const char *name; double *v; } rows[] = {
        {"chan round trip, one thread, thread's own chan", local},
        {"chan round trip, one pool thread, shared chan", shared},
        {"chan round trip, two pool threads", cross},
        {"pthread mutex+cond ping-pong, two threads", pth},
        {"wake of a sleeping pool thread (one spawn)", wake},
        {"wake of a thread in pthread_cond_wait", ptwake},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double m = i ? bench_median(rows[i].v, runs) : m_local;
        printf("| %-45s | %10.1f | %12.2fx |\n", rows[i].name, m, m / m_local);
    }
    printf("\nburst of 10000 spawns to a sleeping thread: %.0f ns each, %lu doorbell "
           "ring%s, %lu sleep%s meanwhile\n", (b1 - b0) / 10000, r1 - r0,
           r1 - r0 == 1 ? "" : "s", s1 - s0, s1 - s0 == 1 ? "" : "s");
    return 0;
}

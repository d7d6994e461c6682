/* Threads: what crossing a thread costs.
 *
 *   bench_mt [round_trips [runs]] [--go PROGRAM]
 *
 * Rows, each the median of interleaved runs, wall-clock ns:
 *   - unbuffered channel round trip, both coroutines on one thread, with a
 *     channel made before the process had a pool (a thread's own), one
 *     made by a coroutine of the pool thread (biased to it: no lock while
 *     no other thread uses it), one made by main after (unbound, then
 *     claimed by the pool thread that calls first: biased the same) and
 *     one made by main and first used there (shared: every call takes
 *     its lock);
 *   - the same between coroutines of two pool threads;
 *   - with --go, the same ping-pong in Go with GOMAXPROCS=2 (PROGRAM is
 *     bench/chan_go, run as "PROGRAM round_trips 2": bench/run-mt.sh
 *     builds it);
 *   - a pthread mutex + condition variable ping-pong between two threads;
 *   - the wake of a sleeping pool thread: from a spawn posted to its
 *     inbox until the coroutine runs there, and of a plain thread in
 *     pthread_cond_wait, each asleep for 200 us first;
 * then the two-thread round trip's ratios to Go and to pthreads, and
 * bursts of 10,000 to a sleeping thread: spawns, and channel sends from a
 * coroutine of the other pool thread, with the doorbell rings they cost
 * and the times the thread went to sleep meanwhile; first with the pool
 * threads napping on a futex (a ring is a FUTEX_WAKE), then again once
 * each has a reactor (a ring is an eventfd write).
 *
 * Links the static library: it reads the scheduler's doorbell counters. */
#define _GNU_SOURCE
#include "lib/sched.h"
#include <coro.h>

#include "bench.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
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

/* On pool threads a and b (equal: one thread), channels made by main:
 * claimed by the pool thread that calls first, or (share) shared first,
 * by a call from main. */
static double chan_pool(int a, int b, int share)
{
    int err;
    make_chans();
    if (share) {
        coro_chan_len(ping);
        coro_chan_len(pong);
    }
    if ((err = coro_pool_spawn(pool, b, NULL, ponger, NULL, NULL)) ||
        (err = coro_pool_spawn(pool, a, NULL, pinger, NULL, NULL)))
        die("coro_pool_spawn", err);
    coro_pool_wait(pool, -1);
    free_chans();
    return (t_end - t_begin) / (double)trips;
}

/* On pool thread 0, channels made there: biased to it, no lock. */
static void *biased_pair(void *arg)
{
    (void)arg;
    make_chans();
    coro_pool_spawn(pool, 0, NULL, ponger, NULL, NULL);
    pinger(NULL);
    coro_yield(NULL, NULL); /* the ponger returns */
    free_chans();
    return NULL;
}

static double chan_biased(void)
{
    coro_pool_spawn(pool, 0, NULL, biased_pair, NULL, NULL);
    coro_pool_wait(pool, -1);
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

static _Atomic(struct coro__sched *) sched0, sched1; /* the pool threads' */
static atomic_int landed;
static double t_landed;

/* Stores the scheduler of the thread it runs on where arg points. */
static void *note(void *arg)
{
    atomic_store((_Atomic(struct coro__sched *) *)arg, coro__sched_current());
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

/* ------------------------------------------------ bursts to a sleeper */

#define BURST 10000

/* What a burst cost, wall clock, and the doorbell counters of the thread
 * it went to (1) and of thread 0, from asleep before it to asleep after:
 * so the first ring wakes a sleep begun before the count, the last sleep
 * is counted and never rung, and rings <= sleeps however the burst went. */
struct burst {
    double ns;                  /* per message */
    unsigned long rings, sleeps;   /* thread 1 */
    unsigned long rings0, sleeps0; /* thread 0 (the sender's spawn rings it) */
};

struct bell_count {
    unsigned long s1, r1, s0, r0;
};

/* Both pool threads asleep for real (past the spin that follows a ring,
 * as wake_latency waits), then their counters. */
static struct bell_count bells_asleep(void)
{
    struct coro__sched *t0 = atomic_load(&sched0), *t1 = atomic_load(&sched1);
    struct timespec pause = {0, 200000};
    struct bell_count c;

    wait_asleep(t1);
    wait_asleep(t0);
    nanosleep(&pause, NULL);
    wait_asleep(t1);
    wait_asleep(t0);
    coro__sched_bell_stats(t1, &c.s1, &c.r1);
    coro__sched_bell_stats(t0, &c.s0, &c.r0);
    return c;
}

static void bells_since(struct burst *b, struct bell_count c)
{
    struct bell_count e = bells_asleep();

    b->rings = e.r1 - c.r1;
    b->sleeps = e.s1 - c.s1;
    b->rings0 = e.r0 - c.r0;
    b->sleeps0 = e.s0 - c.s0;
}

static void *nothing(void *arg)
{
    (void)arg;
    return NULL;
}

/* BURST spawns from this thread to thread 1. */
static struct burst spawn_burst(void)
{
    struct burst b;
    struct bell_count c = bells_asleep();
    double t0 = wall_ns();
    int err;

    for (int i = 0; i < BURST; i++)
        if ((err = coro_pool_spawn(pool, 1, NULL, nothing, NULL, NULL)))
            die("coro_pool_spawn", err);
    coro_pool_wait(pool, -1);
    b.ns = (wall_ns() - t0) / BURST;
    bells_since(&b, c);
    return b;
}

/* The channel of a send burst, and when it began and ended. */
struct sends {
    coro_chan_t *ch;
    atomic_int receiving;       /* the receiver is about to park */
    double t0, t1;              /* the first send begun, the last received */
};

static void *burst_receiver(void *arg)
{
    struct sends *b = arg;
    int v;

    atomic_store(&b->receiving, 1);
    for (int i = 0; i < BURST; i++) {
        int err = coro_chan_recv(b->ch, &v, -1);
        if (err)
            die("coro_chan_recv", err);
        if (v != i)
            die("burst: a send lost or out of order", v);
    }
    b->t1 = wall_ns();
    return NULL;
}

static void *burst_sender(void *arg)
{
    struct sends *b = arg;
    int err;

    b->t0 = wall_ns();
    for (int i = 0; i < BURST; i++)
        if ((err = coro_chan_send(b->ch, &i, -1)))
            die("coro_chan_send", err);
    return NULL;
}

/* BURST sends over a channel of capacity cap, from a coroutine of thread 0
 * to one of thread 1 that was parked receiving, thread 1 asleep.  Each
 * send that finds the receiver parked posts its wake to thread 1: what is
 * measured is whether those posts ring a thread that is awake anyway.
 * Buffered, not unbuffered: an unbuffered send waits for its receiver, so
 * every message would be a round trip with a wake each way, the ping-pong
 * above.  Capacity BURST: the sender never waits, so the receiver's thread
 * is woken, then kept awake by the stream or put back to sleep by its
 * gaps, which is the doorbell's own behaviour.  Capacity 64: the sender
 * also waits whenever the receiver falls 64 behind, so both threads wake
 * each other, the pattern of a bounded queue between two threads. */
static struct burst send_burst(size_t cap)
{
    struct sends b = {0};
    struct burst r;
    int err;

    if ((err = coro_chan_create(&b.ch, sizeof(int), cap)))
        die("coro_chan_create", err);
    if ((err = coro_pool_spawn(pool, 1, NULL, burst_receiver, &b, NULL)))
        die("coro_pool_spawn", err);
    while (!atomic_load(&b.receiving))
        sched_yield();
    /* The receiver ran up to its first receive, so thread 1's next sleep
     * is with it parked there. */
    struct bell_count c = bells_asleep();
    if ((err = coro_pool_spawn(pool, 0, NULL, burst_sender, &b, NULL)))
        die("coro_pool_spawn", err);
    coro_pool_wait(pool, -1);
    r.ns = (b.t1 - b.t0) / BURST;
    bells_since(&r, c);
    coro_chan_destroy(b.ch);
    return r;
}

/* Gives the calling pool thread a reactor, so that from now on it sleeps
 * in epoll and is rung by an eventfd write: a wait on an fd makes one. */
static void *make_reactor(void *arg)
{
    (void)arg;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        die("eventfd", errno);
    int err = coro_wait_fd(fd, CORO_IN, NULL, 0);
    if (err != ETIMEDOUT)
        die("coro_wait_fd", err);
    coro_fd_close(fd);
    return NULL;
}

static const char *plural(unsigned long n)
{
    return n == 1 ? "" : "s";
}

static void print_burst(const char *what, const struct burst *b, int sender)
{
    printf("burst of %d %s to a sleeping thread: %.0f ns each, %lu doorbell ring%s, "
           "%lu sleep%s meanwhile", BURST, what, b->ns, b->rings, plural(b->rings),
           b->sleeps, plural(b->sleeps));
    if (sender)
        printf(" (sender's thread, its spawn included: %lu ring%s, %lu sleep%s)",
               b->rings0, plural(b->rings0), b->sleeps0, plural(b->sleeps0));
    printf("\n");
}

int main(int argc, char **argv)
{
    int runs = 7;
    const char *go = NULL;

    if (argc > 2 && strcmp(argv[argc - 2], "--go") == 0) {
        go = argv[argc - 1];
        argc -= 2;
    }
    if (argc > 1)
        trips = atol(argv[1]);
    if (argc > 2)
        runs = atoi(argv[2]);
    if (argc > 3 || trips < 1 || runs < 1 || runs > BENCH_MAX_RUNS) {
        fprintf(stderr, "usage: %s [round_trips >= 1] [runs 1..%d] [--go PROGRAM]\n",
                argv[0], BENCH_MAX_RUNS);
        return 2;
    }
    double local[BENCH_MAX_RUNS], biased[BENCH_MAX_RUNS], claimed[BENCH_MAX_RUNS],
        shared[BENCH_MAX_RUNS],
        cross[BENCH_MAX_RUNS],
        gorun[BENCH_MAX_RUNS], pth[BENCH_MAX_RUNS], wake[BENCH_MAX_RUNS],
        ptwake[BENCH_MAX_RUNS];

    /* The thread's own channels can only be had before the first pool. */
    for (int r = 0; r < runs; r++)
        local[r] = chan_local();
    int err = coro_pool_create(&pool, 2);
    if (err)
        die("coro_pool_create", err);
    coro_pool_spawn(pool, 0, NULL, note, &sched0, NULL);
    coro_pool_spawn(pool, 1, NULL, note, &sched1, NULL);
    coro_pool_wait(pool, -1);
    for (int r = 0; r < runs; r++) {
        biased[r] = chan_biased();
        claimed[r] = chan_pool(0, 0, 0);
        shared[r] = chan_pool(0, 0, 1);
        cross[r] = chan_pool(0, 1, 0);
        if (go)
            gorun[r] = bench_run_go(go, trips, 2);
        pth[r] = pthread_pingpong();
        wake[r] = wake_latency();
        ptwake[r] = pthread_wake_latency();
    }

    /* The bursts, with futex naps, then with a reactor on each thread. */
    struct burst nap[3], react[3];
    nap[0] = spawn_burst();
    nap[1] = send_burst(BURST);
    nap[2] = send_burst(64);
    coro_pool_spawn(pool, 0, NULL, make_reactor, NULL, NULL);
    coro_pool_spawn(pool, 1, NULL, make_reactor, NULL, NULL);
    coro_pool_wait(pool, -1);
    react[0] = spawn_burst();
    react[1] = send_burst(BURST);
    react[2] = send_burst(64);
    coro_pool_destroy(pool);

    printf("threads: ns per operation, wall clock, median of %d runs "
           "(%ld round trips each)\n\n", runs, trips);
    printf("| what                                           |  median ns | vs local chan |\n");
    printf("|------------------------------------------------|------------|---------------|\n");
    struct { const char *name; double *v; double m; } rows[] = {
        {"chan round trip, one thread, thread's own chan", local, 0},
        {"chan round trip, one pool thread, its own chan", biased, 0},
        {"chan round trip, one pool thread, main's chan", claimed, 0},
        {"chan round trip, one pool thread, shared chan", shared, 0},
        {"chan round trip, two pool threads", cross, 0},
        {"Go chan round trip, GOMAXPROCS=2", go ? gorun : NULL, 0},
        {"pthread mutex+cond ping-pong, two threads", pth, 0},
        {"wake of a sleeping pool thread (one spawn)", wake, 0},
        {"wake of a thread in pthread_cond_wait", ptwake, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        if (!rows[i].v)
            continue;
        rows[i].m = bench_median(rows[i].v, runs);
        printf("| %-46s | %10.1f | %12.2fx |\n", rows[i].name, rows[i].m,
               rows[i].m / rows[0].m);
    }
    /* By name, not place: rows come and go. */
    double two = bench_median(cross, runs), pthm = bench_median(pth, runs);
    double gom = go ? bench_median(gorun, runs) : 0;
    printf("\ntwo pool threads");
    if (go)
        printf(" vs Go GOMAXPROCS=2: %.2fx;", two / gom);
    printf(" vs pthread mutex+cond: %.2fx\n\n", two / pthm);

    printf("pool threads napping on a futex (a ring is a FUTEX_WAKE):\n");
    print_burst("spawns", &nap[0], 0);
    print_burst("sends, chan capacity 10000,", &nap[1], 1);
    print_burst("sends, chan capacity 64,", &nap[2], 1);
    printf("\nwith a reactor on each pool thread (a ring is an eventfd write):\n");
    print_burst("spawns", &react[0], 0);
    print_burst("sends, chan capacity 10000,", &react[1], 1);
    print_burst("sends, chan capacity 64,", &react[2], 1);
    return 0;
}

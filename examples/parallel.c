/* parallel: the pipeline example spread over every core.  A pool runs a
 * scheduler per thread; a generator hands out ranges of numbers over one
 * shared channel, workers on every thread take them, count the Collatz
 * steps of each number (work for the CPU) and send their sums over a
 * second channel to a collector.  The workers are a group, made by a
 * foreman on a pool thread, whose wait ends after the last worker: then
 * the foreman closes the sums, and the collector's loop ends.
 *
 *   generator --ranges--> workers on thread 0..n-1 --sums--> collector
 *
 * Channels made after coro_pool_create are shared: any thread's
 * coroutines may use them; so is a group made by a coroutine of a pool
 * thread, whose members may be on every thread (coro_group_spawn_on).
 * Coroutines never move: each worker
 * runs on the thread it was spawned on, and a wake from another thread
 * goes through that thread's inbox.
 *
 *   parallel [threads]   default 2
 *
 * Build: cc parallel.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS_PER_THREAD 4
#define LIMIT 1000000L           /* numbers 1..LIMIT */
#define RANGE 10000L             /* numbers per job */

struct sum {
    long steps;                  /* Collatz steps of the numbers of a range */
    int thread;                  /* the pool thread that counted them */
};

static coro_pool_t *pool;
static coro_chan_t *ranges;      /* long: the first number of a range */
static coro_chan_t *sums;        /* struct sum */
static int threads;

static void die(const char *what, int err)
{
    fprintf(stderr, "parallel: %s: %s\n", what, strerror(err));
    exit(1);
}

static long collatz_steps(long n)
{
    long steps = 0;

    for (; n != 1; steps++)
        n = n % 2 ? 3 * n + 1 : n / 2;
    return steps;
}

static void *generator(void *arg)
{
    (void)arg;
    for (long first = 1; first <= LIMIT; first += RANGE)
        coro_chan_send(ranges, &first, -1);
    coro_chan_close(ranges);     /* the workers' receives end with EPIPE */
    return NULL;
}

static void *worker(void *arg)
{
    long first;

    (void)arg;
    while (coro_chan_recv(ranges, &first, -1) == 0) {
        struct sum s = {0, coro_pool_thread()};
        for (long n = first; n < first + RANGE && n <= LIMIT; n++)
            s.steps += collatz_steps(n);
        coro_chan_send(sums, &s, -1);
        /* The CPU work above does not wait: let this thread's other
         * coroutines (and its inbox) have a turn between jobs. */
        coro_yield(NULL, NULL);
    }
    return NULL;
}

static void *foreman(void *arg)
{
    coro_group_t *workers;
    int err;

    (void)arg;
    if ((err = coro_group_create(&workers)))
        die("coro_group_create", err);
    for (int t = 0; t < threads; t++)
        for (int i = 0; i < WORKERS_PER_THREAD; i++)
            if ((err = coro_group_spawn_on(workers, pool, t, NULL, worker, NULL, NULL)))
                die("coro_group_spawn_on", err);
    coro_group_wait(workers, -1); /* every worker, on every thread */
    coro_chan_close(sums);
    coro_group_destroy(workers);
    return NULL;
}

static long total_steps, jobs_done, *jobs_per_thread;

static void *collector(void *arg)
{
    struct sum s;

    (void)arg;
    while (coro_chan_recv(sums, &s, -1) == 0) {
        total_steps += s.steps;
        jobs_done++;
        jobs_per_thread[s.thread]++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int err;

    threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "usage: parallel [threads 1..64]\n");
        return 2;
    }
    if ((err = coro_pool_create(&pool, (unsigned)threads)))
        die("coro_pool_create", err);
    /* Made after the pool: shared by every thread's coroutines. */
    if ((err = coro_chan_create(&ranges, sizeof(long), 128)) ||
        (err = coro_chan_create(&sums, sizeof(struct sum), 16)))
        die("coro_chan_create", err);
    jobs_per_thread = calloc((size_t)threads, sizeof *jobs_per_thread);
    if (!jobs_per_thread)
        die("calloc", ENOMEM);

    if ((err = coro_pool_spawn(pool, 0, NULL, generator, NULL, NULL)) ||
        (err = coro_pool_spawn(pool, CORO_ANY, NULL, foreman, NULL, NULL)) ||
        (err = coro_pool_spawn(pool, CORO_ANY, NULL, collector, NULL, NULL)))
        die("coro_pool_spawn", err);

    /* From main's own flow: block until every coroutine has finished. */
    if ((err = coro_pool_wait(pool, -1)))
        die("coro_pool_wait", err);
    coro_pool_destroy(pool);

    printf("threads: %d\n", threads);
    printf("jobs done: %ld\n", jobs_done);
    printf("Collatz steps of 1..%ld: %ld\n", LIMIT, total_steps);
    /* Which thread did how many depends on timing: only on stderr. */
    for (int t = 0; t < threads; t++)
        fprintf(stderr, "thread %d: %ld jobs\n", t, jobs_per_thread[t]);

    coro_chan_destroy(ranges);
    coro_chan_destroy(sums);
    free(jobs_per_thread);
    return 0;
}

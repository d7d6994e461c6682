/* pipeline: a generator feeds numbers to N workers over one channel; the
 * workers send their results to a collector over another.  A wait group
 * tells a closer coroutine when every worker is done, so that it can close
 * the results channel and the collector's loop ends.
 *
 *   generator --jobs--> worker x N --results--> collector
 *
 * Build: cc pipeline.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS 4
#define JOBS 100

static coro_chan_t *jobs;     /* long: numbers to square */
static coro_chan_t *results;  /* long: their squares */
static coro_wg_t *running;    /* workers still running */

static void die(const char *what, int err)
{
    fprintf(stderr, "pipeline: %s: %s\n", what, strerror(err));
    exit(1);
}

static void *generator(void *arg)
{
    (void)arg;
    for (long i = 1; i <= JOBS; i++)
        coro_chan_send(jobs, &i, -1);
    coro_chan_close(jobs);          /* the workers' receives end with EPIPE */
    return NULL;
}

static void *worker(void *arg)
{
    long n, *done = arg;

    while (coro_chan_recv(jobs, &n, -1) == 0) {
        n *= n;
        coro_chan_send(results, &n, -1);
        ++*done;
    }
    coro_wg_done(running);
    return NULL;
}

static void *closer(void *arg)
{
    (void)arg;
    coro_wg_wait(running, -1);
    coro_chan_close(results);       /* the collector's loop ends */
    return NULL;
}

static void *collector(void *arg)
{
    long n, *sum = arg;

    while (coro_chan_recv(results, &n, -1) == 0)
        *sum += n;
    return NULL;
}

int main(void)
{
    long sum = 0, done[WORKERS] = { 0 }, total = 0;
    int err;

    if ((err = coro_chan_create(&jobs, sizeof(long), 0)) ||
        (err = coro_chan_create(&results, sizeof(long), WORKERS)) ||
        (err = coro_wg_create(&running)) ||
        (err = coro_wg_add(running, WORKERS)))
        die("setup", err);
    if ((err = coro_spawn(NULL, generator, NULL, NULL)))
        die("coro_spawn", err);
    for (int i = 0; i < WORKERS; i++)
        if ((err = coro_spawn(NULL, worker, &done[i], NULL)))
            die("coro_spawn", err);
    if ((err = coro_spawn(NULL, closer, NULL, NULL)) ||
        (err = coro_spawn(NULL, collector, &sum, NULL)))
        die("coro_spawn", err);
    if ((err = coro_run()))
        die("coro_run", err);

    for (int i = 0; i < WORKERS; i++)
        total += done[i];
    printf("workers: %d\n", WORKERS);
    printf("jobs done: %ld\n", total);
    printf("sum of squares 1..%d: %ld\n", JOBS, sum);
    coro_chan_destroy(jobs);
    coro_chan_destroy(results);
    coro_wg_destroy(running);
    return sum == (long)JOBS * (JOBS + 1) * (2 * JOBS + 1) / 6 ? 0 : 1;
}

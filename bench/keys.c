/* keys: the cost of reading a coroutine-local value (coro_getspecific)
 * inside a coroutine, beside the thread-local reads a C programmer would
 * otherwise use, in the same run:
 *   - pthread_getspecific
 *   - a __thread variable (what the compiler makes of it: the floor)
 * and of coro_getspecific on the thread's own flow (outside coroutines).
 *
 *   bench_keys [reads [runs]]     defaults: 100000000 reads, 7 runs
 *
 * Runs are interleaved; each row gives the median, min and max ns per
 * read (thread CPU time, see bench.h).  Each read's result feeds the next
 * read's key so that the loop cannot be hoisted or vectorised. */
#define _GNU_SOURCE
#include "bench.h"

#include <coro.h>
#include <pthread.h>
#include <stdint.h>

static long n_reads;
static coro_key_t ckey;
static pthread_key_t pkey;
static __thread uintptr_t tvar;
static volatile uintptr_t sink;
static double result;

/* Each value is 0, so `key + value` is the key again: a dependency the
 * compiler cannot see through. */
static double time_coro(void)
{
    uintptr_t acc = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n_reads; i++)
        acc += (uintptr_t)coro_getspecific(ckey + (coro_key_t)(acc & 1));
    double t1 = bench_now_ns();
    sink = acc;
    return (t1 - t0) / (double)n_reads;
}

static double time_pthread(void)
{
    uintptr_t acc = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n_reads; i++)
        acc += (uintptr_t)pthread_getspecific(pkey + (pthread_key_t)(acc & 1));
    double t1 = bench_now_ns();
    sink = acc;
    return (t1 - t0) / (double)n_reads;
}

static double time_tls(void)
{
    uintptr_t acc = 0;
    double t0 = bench_now_ns();
    for (long i = 0; i < n_reads; i++) {
        __asm__ volatile("" ::: "memory"); /* a load each time, as the others */
        acc += tvar + (acc & 1);
    }
    double t1 = bench_now_ns();
    sink = acc;
    return (t1 - t0) / (double)n_reads;
}

enum { ROW_CORO, ROW_PTHREAD, ROW_TLS, ROW_THREAD, NROWS };
static int which;

static void *in_coroutine(void *arg)
{
    (void)arg;
    /* A value set, then NULL again: the reads below go the whole way
     * (the coroutine's array, the key's slot) and return 0. */
    if (coro_setspecific(ckey, (void *)(uintptr_t)0x10) != 0 ||
        coro_setspecific(ckey, NULL) != 0)
        exit(1);
    switch (which) {
    case ROW_CORO: result = time_coro(); break;
    case ROW_PTHREAD: result = time_pthread(); break;
    default: result = time_tls(); break;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int runs = 7;
    struct bench_row rows[NROWS] = {
        {.name = "coro_getspecific (coroutine)"},
        {.name = "pthread_getspecific"},
        {.name = "__thread variable"},
        {.name = "coro_getspecific (thread)"},
    };

    n_reads = 100000000;
    bench_args(argc, argv, &n_reads, &runs);
    if (coro_key_create(&ckey, NULL) != 0 || pthread_key_create(&pkey, NULL) != 0)
        return 1;
    /* The thread's own value, for the last row. */
    if (coro_setspecific(ckey, (void *)(uintptr_t)0x10) != 0 ||
        coro_setspecific(ckey, NULL) != 0)
        return 1;
    for (int r = 0; r < runs; r++) {
        for (which = 0; which < NROWS; which++) {
            if (which == ROW_THREAD) {
                rows[which].ns[r] = time_coro();
                continue;
            }
            coro_t *co;
            if (coro_create(&co, in_coroutine, NULL, NULL) != 0 ||
                coro_resume(co, NULL, NULL) != 0 || coro_destroy(co) != 0)
                return 1;
            rows[which].ns[r] = result;
        }
    }
    printf("keys: ns per read, %ld reads, %d runs (median, min, max)\n\n", n_reads, runs);
    bench_print_head();
    for (int i = 0; i < NROWS; i++) {
        bench_summarise(&rows[i], runs);
        bench_print_row(&rows[i]);
    }
    printf("\ncoro_getspecific / pthread_getspecific = %.2f\n",
           rows[ROW_CORO].median / rows[ROW_PTHREAD].median);
    return 0;
}

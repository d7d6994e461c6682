/* spawn: coroutines spawned on the scheduler, run and joined, against the
 * core's create + resume + destroy of as many (the baseline: no scheduler).
 *
 *   bench_spawn [count [runs]]      (default 1,000,000 coroutines, 3 runs)
 *
 * Rows, each timed over count coroutines, runs interleaved:
 *   baseline            coro_create + coro_resume (returns at once) + coro_destroy
 *   batches of 100      a coroutine spawns 100, joins them, and again: stacks
 *                       come back through the stack cache's hot part
 *   batches of 1000     the same with 1000: more than the hot part of the
 *                       cache keeps, so stacks go back to the kernel and
 *                       are touched anew (page faults)
 *   all, then join      spawn count, then join count: all alive at once,
 *                       the cost of first touching that many stacks
 *   detached            count detached spawns from the main flow, coro_run
 * The table gives the median total seconds for count coroutines and the
 * median, min and max nanoseconds per coroutine (thread CPU time, see
 * bench.h). */
#include "bench.h"

#include <coro.h>

enum { BASELINE, BATCH100, BATCH1000, ALL, DETACHED, NROWS };

static long count = 1000000;
static long batch;
static coro_t **handles;

static void *body(void *arg)
{
    return arg;
}

static void *batched(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i += batch) {
        long n = count - i < batch ? count - i : batch;
        for (long k = 0; k < n; k++)
            if (coro_spawn(&handles[k], body, (void *)(i + k), NULL))
                abort();
        for (long k = 0; k < n; k++) {
            void *r;
            if (BENCH_JOIN(handles[k], &r) || r != (void *)(i + k))
                abort();
        }
    }
    return NULL;
}

static void *all_at_once(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i++)
        if (coro_spawn(&handles[i], body, (void *)i, NULL))
            abort();
    for (long i = 0; i < count; i++) {
        void *r;
        if (BENCH_JOIN(handles[i], &r) || r != (void *)i)
            abort();
    }
    return NULL;
}

static void run_root(coro_fn fn)
{
    if (coro_spawn(NULL, fn, NULL, NULL) || coro_run())
        abort();
}

static void once(int row)
{
    switch (row) {
    case BASELINE:
        for (long i = 0; i < count; i++) {
            coro_t *co;
            void *r;
            if (coro_create(&co, body, (void *)i, NULL) || coro_resume(co, NULL, &r) ||
                r != (void *)i || coro_destroy(co))
                abort();
        }
        break;
    case BATCH100:
    case BATCH1000:
        batch = row == BATCH100 ? 100 : 1000;
        run_root(batched);
        break;
    case ALL:
        run_root(all_at_once);
        break;
    case DETACHED:
        for (long i = 0; i < count; i++)
            if (coro_spawn(NULL, body, NULL, NULL))
                abort();
        if (coro_run())
            abort();
        break;
    }
}

int main(int argc, char **argv)
{
    static struct bench_row rows[NROWS] = {
        {.name = "baseline: create+resume+destroy"},
        {.name = "spawn+join, batches of 100"},
        {.name = "spawn+join, batches of 1000"},
        {.name = "spawn all, then join all"},
        {.name = "spawn detached, coro_run"},
    };
    int runs = 3;

    bench_args(argc, argv, &count, &runs);
    handles = malloc((size_t)count * sizeof *handles);
    if (!handles)
        return 1;
    printf("spawn + run + join of %ld coroutines (default stack size), "
           "%d runs, thread CPU time\n\n", count, runs);
    for (int r = 0; r < runs; r++)
        for (int row = 0; row < NROWS; row++) {
            double t0 = bench_now_ns();
            once(row);
            rows[row].ns[r] = (bench_now_ns() - t0) / (double)count;
        }
    printf("| %-32s | %9s | %9s | %9s | %9s |\n", "implementation", "total s",
           "median ns", "min ns", "max ns");
    printf("|----------------------------------|-----------|-----------|-----------|-----------|\n");
    for (int row = 0; row < NROWS; row++) {
        struct bench_row *b = &rows[row];
        bench_summarise(b, runs);
        printf("| %-32s | %9.3f | %9.1f | %9.1f | %9.1f |\n", b->name,
               b->median * (double)count / 1e9, b->median, b->min, b->max);
    }
    printf("\nbatches of 100 / baseline: %5.2f\n",
           rows[BATCH100].median / rows[BASELINE].median);
    free(handles);
    return 0;
}

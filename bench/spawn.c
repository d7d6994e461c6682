/* spawn: 1,000,000 coroutines spawned, run and joined, against the core's
 * create + resume + destroy of as many (the baseline, no scheduler).
 *
 *   bench/spawn [count]            (default 1000000)
 *
 * Rows: the baseline; spawn and join in batches of 100 and of 1000 (stacks
 * come back through the stack cache: 100 fit in its hot part, 1000 do not);
 * spawn every one, then join every one (all alive at once: the cost of
 * first touching a million stacks); detached spawns run by coro_run.  Times are whole seconds for the
 * count and nanoseconds per coroutine. */
#include <coro.h>

#include <stdio.h>
#include <stdlib.h>

static long count = 1000000;
static coro_t **handles;

static void *body(void *arg)
{
    return arg;
}

static long batch;

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
            if (coro_join(handles[k], &r) || r != (void *)(i + k))
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
        if (coro_join(handles[i], &r) || r != (void *)i)
            abort();
    }
    return NULL;
}

static void report(const char *what, int64_t t0)
{
    double s = (double)(coro_now() - t0) / 1e9;

    printf("%-40s %8.3f s %8.1f ns/coroutine\n", what, s, s * 1e9 / (double)count);
    fflush(stdout);
}

static void run_root(coro_fn fn)
{
    if (coro_spawn(NULL, fn, NULL, NULL) || coro_run())
        abort();
}

int main(int argc, char **argv)
{
    if (argc > 1)
        count = atol(argv[1]);
    if (count < 1)
        return 2;
    handles = malloc((size_t)count * sizeof *handles);
    if (!handles)
        return 1;
    printf("%ld coroutines, default stack size\n", count);

    int64_t t0 = coro_now();
    for (long i = 0; i < count; i++) {
        coro_t *co;
        void *r;
        if (coro_create(&co, body, (void *)i, NULL) || coro_resume(co, NULL, &r) ||
            r != (void *)i || coro_destroy(co))
            abort();
    }
    report("baseline: create+resume+destroy", t0);

    batch = 100;
    t0 = coro_now();
    run_root(batched);
    report("spawn+run+join, batches of 100", t0);

    batch = 1000;
    t0 = coro_now();
    run_root(batched);
    report("spawn+run+join, batches of 1000", t0);

    t0 = coro_now();
    run_root(all_at_once);
    report("spawn all, then join all", t0);

    t0 = coro_now();
    for (long i = 0; i < count; i++)
        if (coro_spawn(NULL, body, NULL, NULL))
            abort();
    if (coro_run())
        abort();
    report("spawn detached from main, coro_run", t0);

    free(handles);
    return 0;
}

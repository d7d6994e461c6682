/* timeout: wait for a value from either of two channels, but not forever.
 * A producer answers after 50 ms; the first select gives up after 10 ms,
 * the second waits up to one second and gets the value.  (Deadlines fire
 * in deadline order, so the output does not depend on the machine's load.)
 *
 * Build: cc timeout.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MS 1000000LL

static coro_chan_t *answers, *errors;

static void *producer(void *arg)
{
    int v = 42;

    (void)arg;
    coro_sleep(50 * MS);
    coro_chan_send(answers, &v, -1);
    return NULL;
}

/* Waits up to ms milliseconds for an answer or an error; says which came. */
static void wait_answer(int64_t ms)
{
    int answer = 0, error = 0;
    size_t which = 0;
    coro_select_clause_t clauses[] = {
        { answers, CORO_SELECT_RECV, &answer },
        { errors, CORO_SELECT_RECV, &error },
    };
    int r = coro_select(clauses, 2, coro_now() + ms * MS, &which);

    if (r == ETIMEDOUT)
        printf("within %lld ms: nothing (ETIMEDOUT)\n", (long long)ms);
    else if (r == 0 && which == 0)
        printf("within %lld ms: answer %d\n", (long long)ms, answer);
    else if (r == 0)
        printf("within %lld ms: error %d\n", (long long)ms, error);
    else
        printf("within %lld ms: %s\n", (long long)ms, strerror(r));
}

static void *consumer(void *arg)
{
    (void)arg;
    wait_answer(10);
    wait_answer(1000);
    return NULL;
}

int main(void)
{
    if (coro_chan_create(&answers, sizeof(int), 0) ||
        coro_chan_create(&errors, sizeof(int), 0) ||
        coro_spawn(NULL, producer, NULL, NULL) ||
        coro_spawn(NULL, consumer, NULL, NULL) ||
        coro_run())
        return 1;
    coro_chan_destroy(answers);
    coro_chan_destroy(errors);
    return 0;
}

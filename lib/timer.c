/* timer: the deadline heap, the clock and sleep (see timer.h and
 * include/coro.h, "timers"). */
#define _GNU_SOURCE
#include "timer.h"
#include "sys.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#define ARITY 4

static inline int before(const struct coro__timer_entry *a,
                         const struct coro__timer_entry *b)
{
    return a->deadline < b->deadline ||
           (a->deadline == b->deadline && a->seq < b->seq);
}

static inline void put(struct coro__timers *h, size_t i, struct coro__timer_entry e)
{
    h->v[i] = e;
    e.tm->slot = i + 1;
}

/* Places e at hole i or above it. */
static void sift_up(struct coro__timers *h, size_t i, struct coro__timer_entry e)
{
    while (i > 0) {
        size_t p = (i - 1) / ARITY;
        if (!before(&e, &h->v[p]))
            break;
        put(h, i, h->v[p]);
        i = p;
    }
    put(h, i, e);
}

/* Places e at hole i or below it. */
static void sift_down(struct coro__timers *h, size_t i, struct coro__timer_entry e)
{
    for (;;) {
        size_t c = i * ARITY + 1;
        if (c >= h->n)
            break;
        size_t end = c + ARITY < h->n ? c + ARITY : h->n, m = c;
        for (size_t k = c + 1; k < end; k++)
            if (before(&h->v[k], &h->v[m]))
                m = k;
        if (!before(&h->v[m], &e))
            break;
        put(h, i, h->v[m]);
        i = m;
    }
    put(h, i, e);
}

int coro__timers_reserve(struct coro__timers *h, size_t n)
{
    if (n <= h->cap)
        return 0;
    size_t cap = h->cap ? h->cap : 64;
    while (cap < n)
        cap *= 2;
    struct coro__timer_entry *v = coro__realloc(h->v, cap * sizeof *v);
    if (!v)
        return ENOMEM;
    h->v = v;
    h->cap = cap;
    return 0;
}

void coro__timers_add(struct coro__timers *h, struct coro__timer *tm, int64_t deadline)
{
    struct coro__timer_entry e = {deadline, h->seq++, tm};

    sift_up(h, h->n++, e);
}

void coro__timers_remove(struct coro__timers *h, struct coro__timer *tm)
{
    if (!tm->slot)
        return;
    size_t i = tm->slot - 1;
    tm->slot = 0;
    struct coro__timer_entry last = h->v[--h->n];
    if (i == h->n)
        return;
    if (i > 0 && before(&last, &h->v[(i - 1) / ARITY]))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}

struct coro__timer *coro__timers_pop_due(struct coro__timers *h, int64_t now)
{
    if (!h->n || h->v[0].deadline > now)
        return NULL;
    struct coro__timer *tm = h->v[0].tm;
    coro__timers_remove(h, tm);
    return tm;
}

void coro__timers_free(struct coro__timers *h)
{
    free(h->v);
    *h = (struct coro__timers){0};
}

int64_t coro_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int coro_sleep_until(int64_t deadline)
{
    struct coro__wait wait;
    int err = coro__sched_check();

    if (err)
        return err;
    if (deadline < -1)
        return EINVAL;
    coro__wait_init(&wait, coro__self());
    err = coro__wait_park(&wait, deadline, CORO__WAIT_PLAIN, "coro_sleep_until");
    return err == ETIMEDOUT ? 0 : err;
}

int coro_sleep(int64_t ns)
{
    int64_t now = coro_now();

    if (ns < 0)
        ns = 0;
    return coro_sleep_until(ns > INT64_MAX - now ? INT64_MAX : now + ns);
}

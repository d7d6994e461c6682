/* timer: the deadlines of parked coroutines, in a 4-ary min-heap.
 *
 * Each scheduler owns one heap.  A coroutine has at most one deadline at a
 * time (the one of its current park), held in a struct coro__timer that
 * lives in the coroutine's scheduler data; the heap stores the deadline next
 * to a pointer to it, so comparisons never leave the heap's array, and keeps
 * the timer's slot up to date, so removing a timer that did not fire (the
 * waiter was unparked first) is O(log n).  Equal deadlines fire in the
 * order they were added. */
#ifndef CORO_TIMER_H
#define CORO_TIMER_H

#include <stddef.h>
#include <stdint.h>

/* A deadline's handle.  Owned by its coroutine's scheduler data. */
struct coro__timer {
    size_t slot;                /* 1 + its index in the heap; 0 when not in it */
};

struct coro__timer_entry {
    int64_t deadline;           /* absolute CLOCK_MONOTONIC ns */
    uint64_t seq;               /* order of adding, for equal deadlines */
    struct coro__timer *tm;
};

/* A heap of timers.  Zero-initialised is empty. */
struct coro__timers {
    struct coro__timer_entry *v;
    size_t n, cap;
    uint64_t seq;
};

/* Makes room for n timers, so that that many adds cannot fail.
 * 0, or ENOMEM. */
int coro__timers_reserve(struct coro__timers *h, size_t n);

/* Adds tm (not in any heap) with deadline.  Room must have been reserved. */
void coro__timers_add(struct coro__timers *h, struct coro__timer *tm, int64_t deadline);

/* Takes tm out of h; nothing when it is not in it. */
void coro__timers_remove(struct coro__timers *h, struct coro__timer *tm);

/* The earliest deadline, or -1 when h is empty. */
static inline int64_t coro__timers_first(const struct coro__timers *h)
{
    return h->n ? h->v[0].deadline : -1;
}

/* Takes the earliest timer out of h and returns it if its deadline is at or
 * before now; NULL otherwise. */
struct coro__timer *coro__timers_pop_due(struct coro__timers *h, int64_t now);

/* Frees h's memory; h is empty afterwards. */
void coro__timers_free(struct coro__timers *h);

#endif

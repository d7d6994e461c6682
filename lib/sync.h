/* sync: the wait lists under channels, select and the locks.
 *
 * A coroutine that must wait builds a wait record on its own stack: one
 * waiter per object it waits on (one, or one per select clause), each
 * queued on that object's FIFO list, then parks.  Whoever satisfies the
 * wait takes every waiter of the record off its list, stores the result
 * and unparks the coroutine, so a list only ever holds live waiters.
 * Single-threaded: a scheduler's objects are used by its own thread. */
#ifndef CORO_SYNC_H
#define CORO_SYNC_H

#include "sched.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

struct coro__wait;

/* One place a coroutine waits.  Owned by the waiting coroutine (on its
 * stack); linked into an object's list while queued. */
struct coro__waiter {
    struct coro__waiter *prev, *next;
    struct coro__waitq *q;     /* the list it is on; NULL when off */
    struct coro__wait *wait;   /* the record it belongs to */
    void *elem;                /* channels: element to send or room to receive */
    size_t index;              /* its clause number in a select */
};

/* A FIFO list of waiters. */
struct coro__waitq {
    struct coro__waiter *head, *tail;
};

/* One wait of one coroutine, over n waiters. */
struct coro__wait {
    coro_t *co;                /* the waiting coroutine */
    struct coro__waiter *w;    /* its waiters */
    size_t n;
    int fired;                 /* set by the waker: the wait is satisfied */
    int result;                /* the waker's result (0, EPIPE) */
    size_t index;              /* clause of the waiter that was fired */
};

static inline void coro__waitq_push(struct coro__waitq *q, struct coro__waiter *w)
{
    w->q = q;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
}

static inline void coro__waitq_unlink(struct coro__waiter *w)
{
    struct coro__waitq *q = w->q;

    if (!q)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->q = NULL;
}

/* Satisfies the wait that w belongs to: takes all its waiters off their
 * lists and unparks its coroutine with result. */
static inline void coro__wake(struct coro__waiter *w, int result)
{
    struct coro__wait *wait = w->wait;

    for (size_t i = 0; i < wait->n; i++)
        coro__waitq_unlink(&wait->w[i]);
    wait->fired = 1;
    wait->result = result;
    wait->index = w->index;
    coro__unpark(wait->co, result);
}

/* Wakes every waiter of q with result. */
static inline void coro__wake_all(struct coro__waitq *q, int result)
{
    while (q->head)
        coro__wake(q->head, result);
}

/* Parks the caller, whose waiters are queued, until woken or until the
 * deadline or a cancel; then takes its waiters off their lists.  Returns
 * the waker's result, or ETIMEDOUT / ECANCELED. */
static inline int coro__wait_park(struct coro__wait *wait, int64_t deadline)
{
    int r;

    do /* an unpark is always a wake, but do not trust it blindly */
        r = coro__park(deadline);
    while (r == 0 && !wait->fired);
    if (wait->fired)
        return wait->result;
    for (size_t i = 0; i < wait->n; i++)
        coro__waitq_unlink(&wait->w[i]);
    return r;
}

/* Queues the caller on q with elem and waits (see coro__wait_park). */
static inline int coro__wait_on(struct coro__waitq *q, void *elem, int64_t deadline)
{
    struct coro__waiter w = { .elem = elem };
    struct coro__wait wait = { .co = coro__self(), .w = &w, .n = 1 };

    w.wait = &wait;
    coro__waitq_push(q, &w);
    return coro__wait_park(&wait, deadline);
}

/* The checks every waiting call makes first: EINVAL for a deadline below
 * -1, EPERM outside a scheduled coroutine. */
static inline int coro__wait_check(int64_t deadline)
{
    if (deadline < -1)
        return EINVAL;
    return coro__sched_check();
}

#endif

/* sync: the wait lists under channels, select and the locks, on the wake
 * protocol of sched.h.
 *
 * A coroutine that must wait builds, on its own stack, a wait record and
 * one waiter per object it waits on (one, or one per select clause), each
 * queued on that object's FIFO list, then parks.  A waker takes the first
 * waiter whose record it can claim off the list, does the transfer (an
 * element, the mutex, a unit) and ends the wait; a waiter whose record
 * someone else claimed (its deadline, a cancel, another clause) is dropped
 * from the list by whoever meets it, and its coroutine takes the rest of
 * its waiters off their lists when it runs.
 *
 * An object made before the process had a pool belongs to the scheduler
 * of the thread that made it: used from another thread it refuses with
 * EPERM.  One made after is shared: every call takes its lock (struct
 * coro__sync), and its waiters' records are remote, so that a waker on any
 * thread claims them with a compare-and-swap and posts the wake to the
 * waiter's own scheduler. */
#ifndef CORO_SYNC_H
#define CORO_SYNC_H

#include "sched.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* One place a coroutine waits.  Owned by the waiting coroutine (on its
 * stack); linked into an object's list while queued. */
struct coro__waiter {
    struct coro__waiter *prev, *next;
    struct coro__waitq *q;     /* the list it is on; NULL when off */
    struct coro__wait *wait;   /* the record it belongs to */
    void *elem;                /* channels: element to send or room to receive;
                                * future: where the value goes */
    size_t index;              /* its clause number in a select */
};

/* A FIFO list of waiters. */
struct coro__waitq {
    struct coro__waiter *head, *tail;
};

/* A waiter lives on its coroutine's stack and is always off every list
 * before its wait returns (the waker or the woken coroutine unlinks it),
 * which gcc 12's -Wdangling-pointer cannot see through the park. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
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
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic pop
#endif

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

/* The first waiter of q whose wait nobody has claimed yet, or NULL;
 * claimed ones met on the way are dropped from q. */
static inline struct coro__waiter *coro__waitq_first(struct coro__waitq *q)
{
    struct coro__waiter *w;

    while ((w = q->head) && coro__wait_claimed(w->wait))
        coro__waitq_unlink(w);
    return w;
}

/* Takes off q and claims the first waiter whose wait the caller wins, or
 * returns NULL.  The caller then does the transfer and calls coro__wake. */
static inline struct coro__waiter *coro__waitq_claim(struct coro__waitq *q)
{
    struct coro__waiter *w;

    while ((w = q->head)) {
        coro__waitq_unlink(w);
        if (coro__wait_claim(w->wait))
            return w;
    }
    return NULL;
}

/* Ends the wait of claimed waiter w with result. */
static inline __attribute__((always_inline)) void coro__wake(struct coro__waiter *w,
                                                             int result)
{
    coro__wait_done(w->wait, result, w->index);
}

/* Wakes every waiter of q with result. */
static inline void coro__wake_all(struct coro__waitq *q, int result)
{
    struct coro__waiter *w;

    while ((w = coro__waitq_claim(q)))
        coro__wake(w, result);
}

/* Parks the caller (task k), whose waiters are queued, until a waker, the
 * deadline or a cancel ends the wait (see coro__wait_park); then takes its
 * waiters off their lists. */
static inline int coro__wait_block(struct coro__task *k, struct coro__wait *wait,
                                   int64_t deadline, enum coro__wait_kind kind,
                                   const char *what)
{
    int r = coro__task_park(k, wait, deadline, kind, what);

    for (size_t i = 0; i < wait->n; i++)
        coro__waitq_unlink(&wait->w[i]);
    return r;
}

/* Queues the caller (task k) on q with elem and waits a wait of the given
 * kind (see coro__wait_block). */
static inline __attribute__((always_inline)) int
coro__wait_on_as(struct coro__task *k, struct coro__waitq *q, void *elem, int64_t deadline,
                 enum coro__wait_kind kind, const char *what)
{
    struct coro__waiter w = { .elem = elem };
    struct coro__wait wait;

    coro__wait_init(&wait, k->co);
    wait.w = &w;
    wait.n = 1;
    w.wait = &wait;
    coro__waitq_push(q, &w);
    int r = coro__task_park(k, &wait, deadline, kind, what);
    coro__waitq_unlink(&w);
    return r;
}

/* The same for a plain (cancellable) wait. */
static inline __attribute__((always_inline)) int
coro__wait_on(struct coro__task *k, struct coro__waitq *q, void *elem, int64_t deadline,
              const char *what)
{
    return coro__wait_on_as(k, q, elem, deadline, CORO__WAIT_PLAIN, what);
}

/* The lock of a shared object: held for a few list operations and copies
 * at a time, never across a park. */
static inline void coro__lock(atomic_int *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire))
        while (atomic_load_explicit(l, memory_order_relaxed))
            sched_yield(); /* its holder may have been preempted */
}

static inline void coro__unlock(atomic_int *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

/* What every sync object starts with. */
struct coro__sync {
    struct coro__sched *home; /* the scheduler of the thread that made it */
    int shared;               /* made once a pool existed: any thread, under lock */
    atomic_int lock;
};

/* A zeroed object of size bytes that starts with a struct coro__sync,
 * homed on this thread's scheduler and shared if a pool exists; NULL when
 * memory cannot be had. */
static inline void *coro__sync_new(size_t size)
{
    struct coro__sched *home = coro__sched_here();
    struct coro__sync *o;

    if (!home || !(o = calloc(1, size)))
        return NULL;
    o->home = home;
    o->shared = atomic_load_explicit(&coro__mt, memory_order_relaxed);
    atomic_init(&o->lock, 0);
    return o;
}

/* The checks every call on an object makes first: EPERM from a thread
 * other than the object's own. */
static inline int coro__sync_home(const struct coro__sched *home)
{
    return home == coro__sched_current() ? 0 : EPERM;
}

/* The checks every waiting call on an object makes first, in one look at
 * the thread's state: EPERM from a thread other than the object's own,
 * EINVAL for a deadline below -1, EPERM outside a scheduled coroutine;
 * else 0 and the caller's task in *k. */
static inline int coro__sync_wait_check(const struct coro__sched *home, int64_t deadline,
                                        struct coro__task **k)
{
    struct coro__task *self = coro__self_task();

    if (__builtin_expect(!self || self->s != home, 0)) {
        if (coro__sync_home(home))
            return EPERM;
        return deadline < -1 ? EINVAL : EPERM;
    }
    if (deadline < -1)
        return EINVAL;
    *k = self;
    return 0;
}

/* A call that does not wait begins: EPERM for a thread object used
 * elsewhere, else 0 with a shared object's lock held. */
static inline int coro__sync_enter(struct coro__sync *o)
{
    if (__builtin_expect(o->shared, 0)) {
        coro__lock(&o->lock);
        return 0;
    }
    return coro__sync_home(o->home);
}

static inline void coro__sync_leave(struct coro__sync *o)
{
    if (__builtin_expect(o->shared, 0))
        coro__unlock(&o->lock);
}

/* A call that may wait begins: the checks of coro__sync_wait_check (a
 * shared object takes a coroutine of any thread's scheduler), then 0 with
 * the caller's task in *k and a shared object's lock held. */
static inline int coro__sync_begin(struct coro__sync *o, int64_t deadline,
                                   struct coro__task **k)
{
    if (__builtin_expect(o->shared, 0)) {
        struct coro__task *self = coro__self_task();
        if (deadline < -1)
            return EINVAL;
        if (!self)
            return EPERM;
        *k = self;
        coro__lock(&o->lock);
        return 0;
    }
    return coro__sync_wait_check(o->home, deadline, k);
}

/* Queues the caller (task k) on q of o, begun with coro__sync_begin, and
 * waits as coro__wait_on_as; a shared object's lock is let go for the
 * park and is not held on return.  A shared object's record is remote,
 * so a waker on any thread can claim it: a deadline that has passed is
 * then a try, ending at once unless a waker claimed it between the unlock
 * and the park. */
static inline int coro__sync_wait(struct coro__sync *o, struct coro__task *k,
                                  struct coro__waitq *q, void *elem, int64_t deadline,
                                  enum coro__wait_kind kind, const char *what)
{
    if (!o->shared)
        return coro__wait_on_as(k, q, elem, deadline, kind, what);
    struct coro__waiter w = { .elem = elem };
    struct coro__wait wait;

    coro__wait_init(&wait, k->co);
    wait.remote = 1;
    wait.w = &w;
    wait.n = 1;
    w.wait = &wait;
    coro__waitq_push(q, &w);
    coro__unlock(&o->lock);
    int r = coro__task_park(k, &wait, deadline, kind, what);
    coro__lock(&o->lock);
    coro__waitq_unlink(&w);
    coro__unlock(&o->lock);
    return r;
}

#endif

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
 * EPERM.  One made after is shared once two threads use it: every call
 * takes its lock (struct coro__sync), and its waiters' records are remote,
 * so that a waker on any thread claims them with a compare-and-swap and
 * posts the wake to the waiter's own scheduler.  Until then it is biased
 * to the pool thread that made it, or (made elsewhere, say by main before
 * it hands it to the pool) to the pool thread whose coroutine calls on it
 * first: its calls there take no lock until another thread's first call
 * has it made shared (lib/share.c), so an object that one thread uses
 * costs what a local one does. */
#ifndef CORO_SYNC_H
#define CORO_SYNC_H

#include "sched.h"
#include "sys.h"

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
    int counted;               /* in its shared object's refs (sync.h) */
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

/* How calls on an object synchronise (struct coro__sync mode). */
enum {
    /* Made before the process had a pool: its thread's alone (EPERM
     * elsewhere), no lock. */
    CORO__SYNC_LOCAL = 0,
    /* Made by a coroutine of a pool thread: its thread's calls take no
     * lock, until another thread's first call asks the home thread to
     * make it shared (coro__sync_share), for good. */
    CORO__SYNC_BIASED = 1,
    /* Any thread, every call under the lock; waiters' records remote. */
    CORO__SYNC_SHARED = 2,
    /* Made after there was a pool, but not by a pool thread's coroutine:
     * nobody's yet, and nobody waits on it.  Its first call claims it
     * (coro__sync_claim): biased to the caller's thread if that is a pool
     * thread's coroutine, else shared. */
    CORO__SYNC_UNBOUND = 3
};

/* What every sync object starts with. */
struct coro__sync {
    /* The scheduler of its thread (made it, or claimed it); while it is
     * unbound, &coro__sync_nohome, which no thread's is.  Set once under
     * the lock by the claim, read with coro__sync_home_of. */
    struct coro__sched *home;
    atomic_int mode;            /* CORO__SYNC_*; only its home changes it,
                                 * or the claim of an unbound one */
    atomic_int lock;
    struct coro__waitq *q[2];   /* its wait lists (NULL: none), for a share */
    struct coro__sync *prev, *next; /* its home's biased objects */
    /* Shared: waiters queued and not yet taken off by their coroutines.
     * Anyone may take a claimed waiter off its list, and then destroy the
     * object, while the waiter's coroutine has still to look at it; so a
     * destroy with refs left marks it dead, and the last of them frees
     * it.  Under the lock. */
    unsigned refs;
    int dead;
};

/* lib/share.c: o's mode for a new object made on this thread, and its
 * place among the home's biased objects. */
void coro__sync_init(struct coro__sync *o, struct coro__sched *home,
                     struct coro__waitq *q0, struct coro__waitq *q1);
/* lib/share.c: the home of the objects nobody has claimed yet. */
extern struct coro__sched coro__sync_nohome;
/* lib/share.c: the first call on unbound o (any thread) makes it biased
 * to the caller's thread, if that is a pool thread's coroutine, or else
 * shared; one that finds another thread claimed it first has it shared
 * (coro__sync_share).  Then o is shared, or this thread's. */
void coro__sync_claim(struct coro__sync *o);
/* lib/share.c: a biased object leaves its home's list (its home only). */
void coro__sync_forget(struct coro__sync *o);
/* lib/share.c: a call from another thread meets biased o: asks o's home to
 * make it shared and waits until it has (a coroutine parks, a thread
 * blocks).  Then o's mode is CORO__SYNC_SHARED. */
void coro__sync_share(struct coro__sync *o);
/* lib/share.c: the share of biased o by its home itself, at once. */
void coro__sync_share_here(struct coro__sync *o);
/* lib/share.c: s's thread is going: its biased objects become shared
 * (others may still hold them), and the requests on their way are
 * answered. */
void coro__sync_share_all(struct coro__sched *s);

/* A zeroed object of size bytes that starts with a struct coro__sync,
 * homed on this thread's scheduler, with wait list q0 (at that offset in
 * it, or 0 for none); NULL when memory cannot be had. */
static inline void *coro__sync_new(size_t size, size_t q0)
{
    struct coro__sched *home = coro__sched_here();
    struct coro__sync *o;

    if (!home || !(o = coro__calloc(1, size)))
        return NULL;
    coro__sync_init(o, home, q0 ? (struct coro__waitq *)((char *)o + q0) : NULL, NULL);
    return o;
}

/* Frees o, which nobody waits on. */
static inline void coro__sync_free(struct coro__sync *o)
{
    if (atomic_load_explicit(&o->mode, memory_order_relaxed) == CORO__SYNC_BIASED)
        coro__sync_forget(o); /* by its home: any other thread's call shares it */
    free(o);
}

static inline int coro__sync_mode(const struct coro__sync *o)
{
    return atomic_load_explicit(&o->mode, memory_order_relaxed);
}

/* o's home, as this thread may look at it without o's lock: a claim on
 * another thread may be setting it, but only this thread ever sets it to
 * this thread's scheduler, so a comparison with that is sound. */
static inline struct coro__sched *coro__sync_home_of(const struct coro__sync *o)
{
    return __atomic_load_n(&o->home, __ATOMIC_RELAXED);
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

/* A call from another thread than o's home: EPERM for a local o; else 0
 * once o is shared (a biased o is made so) or, unbound, claimed (shared,
 * or this thread's now). */
static inline int coro__sync_away(struct coro__sync *o)
{
    int m = coro__sync_mode(o);

    if (m == CORO__SYNC_LOCAL)
        return EPERM;
    if (m == CORO__SYNC_UNBOUND)
        coro__sync_claim(o);
    else if (m == CORO__SYNC_BIASED)
        coro__sync_share(o);
    return 0;
}

/* A call that does not wait begins: EPERM for a local object of another
 * thread, else 0, with the lock held if o is (or has just been made)
 * shared.  Its home's calls on a biased o take no lock: nothing else
 * touches it. */
static inline int coro__sync_enter(struct coro__sync *o)
{
    if (coro__sync_mode(o) != CORO__SYNC_SHARED) {
        if (__builtin_expect(coro__sync_home_of(o) == coro__sched_current(), 1))
            return 0;
        if (coro__sync_away(o))
            return EPERM;
        if (coro__sync_mode(o) != CORO__SYNC_SHARED)
            return 0; /* claimed: this thread's now */
    }
    coro__lock(&o->lock);
    return 0;
}

/* The end of a call begun with coro__sync_enter or coro__sync_begin that
 * did not wait (no switch since: a biased object is still biased). */
static inline void coro__sync_leave(struct coro__sync *o)
{
    if (__builtin_expect(coro__sync_mode(o) == CORO__SYNC_SHARED, 0))
        coro__unlock(&o->lock);
}

/* A call that may wait begins: the checks of coro__sync_wait_check (a
 * shared object takes a coroutine of any thread's scheduler), then 0 with
 * the caller's task in *k and the lock held if o is shared. */
static inline int coro__sync_begin(struct coro__sync *o, int64_t deadline,
                                   struct coro__task **k)
{
    if (coro__sync_mode(o) != CORO__SYNC_SHARED) {
        struct coro__sched *home = coro__sync_home_of(o);
        int r = coro__sync_wait_check(home, deadline, k);
        if (__builtin_expect(r == 0, 1))
            return 0; /* its home: no lock */
        if (home == coro__sched_current() || coro__sync_mode(o) == CORO__SYNC_LOCAL)
            return r; /* its home's error, or a local object elsewhere */
    }
    struct coro__task *self = coro__self_task();
    if (deadline < -1)
        return EINVAL;
    if (!self)
        return EPERM;
    coro__sync_away(o); /* biased to another thread: shared; unbound: claimed */
    *k = self;
    if (coro__sync_mode(o) != CORO__SYNC_SHARED)
        return 0; /* claimed: this thread's now, no lock */
    coro__lock(&o->lock);
    return 0;
}

/* Queues w on q of o, entered: a shared object counts it (see refs). */
static inline void coro__sync_push(struct coro__sync *o, struct coro__waitq *q,
                                   struct coro__waiter *w)
{
    if (__builtin_expect(coro__sync_mode(o) == CORO__SYNC_SHARED, 0)) {
        w->counted = 1;
        o->refs++;
    }
    coro__waitq_push(q, w);
}

/* lib/share.c: coro__sync_unlink of a counted waiter. */
void coro__sync_unlink_counted(struct coro__sync *o, struct coro__waiter *w);

/* Takes waiter w off its list after its wait.  Counted (queued while o was
 * shared, or when it was made so), under o's lock, and o may be freed
 * then; else o was its thread's all along, or w was taken off before o
 * was shared. */
static inline __attribute__((always_inline)) void coro__sync_unlink(struct coro__sync *o,
                                                                    struct coro__waiter *w)
{
    if (__builtin_expect(w->counted, 0))
        coro__sync_unlink_counted(o, w);
    else
        coro__waitq_unlink(w);
}

/* Frees o, which nobody waits on any more, now or (shared, with claimed
 * waiters still to take themselves off, see refs) when the last one goes. */
static inline void coro__sync_release(struct coro__sync *o)
{
    if (coro__sync_mode(o) == CORO__SYNC_SHARED) {
        coro__lock(&o->lock);
        int later = o->refs != 0;
        o->dead = later;
        coro__unlock(&o->lock);
        if (later)
            return;
    }
    coro__sync_free(o);
}

/* A destroy of o, which is busy while one of its lists has a waiter nobody
 * has claimed, or while one of the nheld words at held is not 0 (a mutex's
 * owner and its cond waiters): EPERM from a thread it does not belong to,
 * EBUSY (and o stays), or 0 and o is freed, now or by the last of its
 * claimed waiters to go. */
static inline int coro__sync_destroy(struct coro__sync *o, const uint64_t *held, int nheld)
{
    if (coro__sync_enter(o))
        return EPERM;
    int busy = 0;
    for (int i = 0; i < nheld; i++)
        busy |= held[i] != 0;
    for (int i = 0; i < 2; i++)
        busy |= o->q[i] && coro__waitq_first(o->q[i]);
    coro__sync_leave(o);
    if (busy)
        return EBUSY;
    coro__sync_release(o);
    return 0;
}

/* The wait of coro__wait_local (shared 0) and coro__sync_wait (shared 1):
 * a constant, so that the local record's fast park is known at compile
 * time. */
static inline __attribute__((always_inline)) int
coro__wait_in(struct coro__sync *o, struct coro__task *k, struct coro__waitq *q, void *elem,
              int64_t deadline, enum coro__wait_kind kind, const char *what, const int shared)
{
    struct coro__waiter w = { .elem = elem };
    struct coro__wait wait;

    coro__wait_init(&wait, k->co);
    wait.remote = shared;
    wait.w = &w;
    wait.n = 1;
    w.wait = &wait;
    if (shared) {
        coro__sync_push(o, q, &w);
        coro__unlock(&o->lock);
    } else {
        coro__waitq_push(q, &w);
    }
    int r = coro__task_park(k, &wait, deadline, kind, what);
    coro__sync_unlink(o, &w);
    return r;
}

/* Queues the caller (task k) on q of o, which its thread has to itself
 * now (local, or biased to it), and waits a wait of the given kind (see
 * coro__wait_park).  The record is local, known so here (the fast park);
 * o may be shared while it waits, which makes the record remote and the
 * waiter counted (lib/share.c). */
static inline __attribute__((always_inline)) int
coro__wait_local(struct coro__sync *o, struct coro__task *k, struct coro__waitq *q,
                 void *elem, int64_t deadline, enum coro__wait_kind kind, const char *what)
{
    return coro__wait_in(o, k, q, elem, deadline, kind, what, 0);
}

/* Queues the caller (task k) on q, a list of its thread's alone that no
 * sync object owns (the reactor's), and waits a plain (cancellable) wait
 * (see coro__wait_park). */
static inline __attribute__((always_inline)) int
coro__wait_on(struct coro__task *k, struct coro__waitq *q, void *elem, int64_t deadline,
              const char *what)
{
    return coro__wait_local(NULL, k, q, elem, deadline, CORO__WAIT_PLAIN, what); /* never counted */
}

/* Queues the caller (task k) on q of o, begun with coro__sync_begin, and
 * waits a wait of the given kind; the lock, if held, is let go for the
 * park and is not held on return.  A shared object's record is remote, so
 * a waker on any thread can claim it: a deadline that has passed is then
 * a try, ending at once unless a waker claimed it between the unlock and
 * the park. */
static inline __attribute__((always_inline)) int
coro__sync_wait(struct coro__sync *o, struct coro__task *k, struct coro__waitq *q,
                void *elem, int64_t deadline, enum coro__wait_kind kind, const char *what)
{
    if (coro__sync_mode(o) != CORO__SYNC_SHARED)
        return coro__wait_in(o, k, q, elem, deadline, kind, what, 0);
    return coro__wait_in(o, k, q, elem, deadline, kind, what, 1);
}

/* lib/group.c, for coro_group_spawn_on: g counts a member that is on its
 * way to another thread, and *cancels gets g's count of cancels; 0, or
 * EPERM for a group that is not a pool thread's.  g is shared from then
 * on. */
int coro__group_reserve(coro_group_t *g, unsigned *cancels);
/* lib/group.c: the calling coroutine, about to finish, leaves its group
 * now (if it has one) rather than in its finish hook: the pool counts it
 * finished next, and a group must not outlast its pool's count. */
void coro__group_finish(void);
/* lib/group.c: the member reserved (with that count of cancels) has come
 * to its thread: co, made there (detached if nobody has its handle), or
 * NULL for one that will never run. */
void coro__group_arrive(coro_group_t *g, unsigned cancels, coro_t *co, int detached);

#endif

/* sched: one scheduler per thread (see include/coro.h, "scheduler"), and
 * the one wake protocol every wait in libcoro is built on.
 *
 * A coroutine that waits fills in a wait record of its own (struct
 * coro__wait, on its stack), makes it reachable to whoever may end the
 * wait (an object's wait list, the timer heap through its deadline, its
 * task for coro_cancel), and parks.  Each of those wakers first claims the
 * record, WAITING -> CLAIMED by compare-and-swap: exactly one wins, and
 * only the winner touches the waiter's data (copies a channel element into
 * it, hands it a mutex) and then makes it ready with coro__wait_done.  A
 * waker that loses does nothing.  The woken coroutine takes its record off
 * every list it is still on.  A cancel whose claim loses stays pending and
 * ends the coroutine's next wait at once.
 *
 * The claim of a record that a waker on another thread can reach (remote)
 * is a compare-and-swap and the record says which coroutine to wake, so
 * such a waker can use the same protocol: what it cannot do is touch the
 * waiter's scheduler, which is why making ready goes through one function
 * (coro__wait_done), which for a remote record posts the coroutine to
 * its scheduler's inbox (coro__sched_post) when the waker is elsewhere.
 * Records that only this thread's wakers reach are claimed with a plain
 * test and store. */
#ifndef CORO_SCHED_H
#define CORO_SCHED_H

#include "coroutine.h"
#include "timer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum {
    CORO__WAITING = 0,      /* nobody has claimed the record yet */
    CORO__CLAIMED = 1       /* a waker won it; the wait is over */
};

/* What a wait is, for coro_cancel and for coro_run's deadlock breaking. */
enum coro__wait_kind {
    CORO__WAIT_PLAIN = 0,   /* cancellable; failed by a deadlock */
    CORO__WAIT_JOIN = 1,    /* cancellable; failed only when joins are all
                             * that is left */
    CORO__WAIT_RELOCK = 2,  /* a condition wait taking its mutex back: not
                             * cancellable, failed only as a last resort */
    CORO__WAIT_REPLY = 3    /* a pool thread's answer (coro__reply), which
                             * always comes: neither cancelled nor failed
                             * (its request is on the waiter's stack) */
};

/* One wait of one coroutine.  Owned by the waiting coroutine (on its
 * stack), from coro__wait_init until coro__wait_park returns. */
struct coro__wait {
    atomic_int state;       /* CORO__WAITING / CORO__CLAIMED */
    int remote;             /* a waker on another thread can reach it */
    int result;             /* set by the winner before it makes co ready */
    size_t index;           /* the winner's clause (select), else 0 */
    coro_t *co;             /* the waiting coroutine */
    struct coro__waiter *w; /* the places it is queued on (sync), or NULL */
    size_t n;
};

static inline void coro__wait_init(struct coro__wait *wait, coro_t *co)
{
    atomic_init(&wait->state, CORO__WAITING);
    wait->remote = 0;
    wait->result = 0;
    wait->index = 0;
    wait->co = co;
    wait->w = NULL;
    wait->n = 0;
}

/* 1 if the caller won wait (and must end it with coro__wait_done), 0 if
 * another waker did first.
 *
 * Only a record that a waker on another thread can reach (remote) needs
 * the compare-and-swap: when every waker runs on the waiter's thread they
 * run one at a time, and a plain test and store decide the same race
 * without the locked instruction (two claims per channel round trip: 69
 * ns, 80 with the CAS).  The offload pool's threads do not claim: their
 * results are claimed on the waiter's thread (lib/offload.c). */
static inline int coro__wait_claim(struct coro__wait *wait)
{
    int expected = CORO__WAITING;

    if (__builtin_expect(wait->remote, 0))
        return atomic_compare_exchange_strong_explicit(&wait->state, &expected,
                                                       CORO__CLAIMED, memory_order_acq_rel,
                                                       memory_order_acquire);
    if (atomic_load_explicit(&wait->state, memory_order_relaxed) != CORO__WAITING)
        return 0;
    atomic_store_explicit(&wait->state, CORO__CLAIMED, memory_order_relaxed);
    return 1;
}

static inline int coro__wait_claimed(struct coro__wait *wait)
{
    return atomic_load_explicit(&wait->state, memory_order_acquire) != CORO__WAITING;
}

/* Parks the running scheduled coroutine in wait (initialised, already
 * reachable by its wakers) until a waker claims it, the deadline passes
 * (ETIMEDOUT) or coro_cancel (ECANCELED; not for CORO__WAIT_RELOCK).  A
 * deadline already passed (<= now, 0 included) returns ETIMEDOUT at once,
 * without parking and without letting another coroutine run; so does a
 * pending cancel (ECANCELED).  what names the wait in coro_run's deadlock
 * report: a string that outlives it, such as "coro_chan_recv".  The caller
 * takes its record off its lists afterwards (lazy unlink): when this
 * returns nobody else touches wait any more.
 * Returns the winner's result, ETIMEDOUT, ECANCELED, or EPERM when the
 * caller is not a coroutine run by this thread's scheduler. */
static inline int coro__wait_park(struct coro__wait *wait, int64_t deadline,
                                  enum coro__wait_kind kind, const char *what);

/* What coro__wait_park would return at once for a plain wait, without
 * parking: ECANCELED (consuming a pending cancel), ETIMEDOUT for a passed
 * deadline, EPERM; 0 when the wait would park.  For calls that must decide
 * before they do anything that cannot be undone. */
int coro__wait_early(int64_t deadline);

/* This thread's scheduler, made if needed (it lives until the thread
 * exits); NULL only when memory or the thread's state cannot be had.
 * Sync objects keep the one they were made on. */
struct coro__sched *coro__sched_here(void);

/* This thread's scheduler if it has one, else NULL: cheap. */
static inline struct coro__sched *coro__sched_current(void)
{
    struct coro__thread *t = coro__tl;

    return t ? (struct coro__sched *)t->sched : NULL;
}

/* Runs this thread's scheduler from the thread's own flow until done(arg)
 * says so (or nothing is left to run).  0, EDEADLK after a deadlock was
 * broken, EPERM inside a coroutine, ENOMEM. */
int coro__sched_run_until(int (*done)(void *arg), void *arg);

/* A wait with no object: parks until coro__unpark, the deadline or a
 * cancel, for tests and for layers whose wakers only know the coroutine.
 * Returns as coro__wait_park. */
int coro__park(int64_t deadline);
int coro__park_for(int64_t deadline, const char *what);

/* Ends co's current wait with result if it is parked in coro__park and
 * nobody claimed it first; otherwise nothing. */
void coro__unpark(coro_t *co, int result);

/* A message for a scheduler from another thread: run(s, n) runs on s's
 * thread, in its loop, in the order the messages were posted.  Owned by
 * the poster until run is called; run owns it then. */
struct coro__node {
    struct coro__node *next;
    void (*run)(struct coro__sched *s, struct coro__node *n);
};

/* Any thread: pushes n into s's inbox, and rings s's doorbell if s has
 * said it is going to sleep (so posts to an awake scheduler cost no system
 * call, and a burst to a sleeping one costs one).  s must stay alive: it
 * does while one of its coroutines waits in a remote record, or while a
 * hold (coro__sched_hold) is on it. */
void coro__sched_post(struct coro__sched *s, struct coro__node *n);

/* Runs what is in s's inbox now (s's thread). */
void coro__sched_drain(struct coro__sched *s);

/* A thread waiting for another thread's answer, on its stack: a coroutine
 * parks in a remote record (not cancellable: the answer writes here; what
 * names the wait, as for coro__wait_park), a thread's own flow blocks on a
 * futex.  init on the waiting thread, send from any thread, once. */
struct coro__reply {
    struct coro__wait wait;
    atomic_int done;
    int parked;
};
void coro__reply_init(struct coro__reply *r);
void coro__reply_wait(struct coro__reply *r, const char *what);
void coro__reply_send(struct coro__reply *r);

/* Set once the process has made a pool, never cleared: sync objects made
 * from then on are shared (any thread may use them, under a lock of
 * their own); those made before belong to their thread. */
extern atomic_int coro__mt;

/* Keeps s's loop running with nothing live (d = +1), for a pool's thread
 * that waits for spawns; d = -1 lets it end again.  s's thread only. */
void coro__sched_hold(struct coro__sched *s, int d);

/* What the doorbell of s did, for tests and benchmarks: times s went to
 * sleep where a post could reach it, and times a poster woke it. */
void coro__sched_bell_stats(const struct coro__sched *s, unsigned long *sleeps,
                            unsigned long *rings);

/* ------------------------------------------------------------------
 * The scheduler's own data, here so that a wait's fast path inlines into
 * the sync layer's calls (a park is on every channel operation).  Only
 * lib/sched.c and the inline functions below touch these fields. */

/* The scheduler's data about one spawned coroutine (its coro->sched).
 * Owned by the scheduler; freed by coro_join, or when a detached coroutine
 * finishes. */
struct coro__task {
    coro_t *co;
    struct coro__sched *s;            /* the scheduler that runs it */
    struct coro__task *next;                /* ready queue link while queued */
    struct coro__task *prev_all, *next_all; /* list of every task not yet freed */
    struct coro__wait *wait;          /* its wait record while parked, else NULL */
    struct coro__wait *joiner;        /* the record of the task joining it */
    struct coro__task *joining;             /* the task it is parked joining */
    void *result;                     /* fn's return value, once finished */
    const char *what;                 /* the call its park waits in, or NULL */
    struct coro__timer timer;         /* its deadline while parked with one */
    unsigned char kind;               /* enum coro__wait_kind of its park */
    unsigned char cancelled;          /* a cancel waits for its next wait */
    unsigned char detached;           /* no handle: freed when it finishes */
    unsigned char finished;
    int err;                          /* ENOMEM: it never ran, no stack */
    void (*on_finish)(struct coro__task *k); /* a group's hook, or NULL */
    void *group;                      /* the group it belongs to, or NULL */
    struct coro__task *gprev, *gnext; /* its group's member list */
    struct coro__node post;           /* its wake from another thread, or
                                       * its free after a join from one */
    /* A join or cancel from another thread (pool threads only): the
     * joiner's record and these are under lock once the process has a
     * pool, since finish may run meanwhile. */
    atomic_int lock;
    unsigned pins;                    /* cancels posted, not yet run here */
    unsigned char zombie;             /* freed while pinned: the last
                                       * cancel's message frees it */
};

/* Parks in a row that may switch straight to the next ready task. */
#define HANDOFF_MAX 64

/* One per thread (coro__thread.sched), from its first use to its exit. */
struct coro__sched {
    struct coro__task *head, *tail;   /* ready queue, FIFO */
    struct coro__task *fired;   /* in it, the last task a timer woke, while
                                 * it is queued: the next timer wakes go
                                 * after it, ahead of the rest */
    size_t nready;
    size_t round;               /* dispatches left before timers are checked */
    unsigned peek;              /* dispatches since a look at the first
                                 * deadline within the round */
    unsigned handoffs;          /* parks that switched straight to the next
                                 * ready task since the loop last ran */
    struct coro__task *running;       /* the task the run loop resumed, or NULL */
    struct coro__task *all;           /* every task not yet freed, newest first */
    struct coro__task *spare;         /* freed tasks kept for reuse (next links) */
    size_t nspare;
    size_t live;                /* tasks not finished */
    struct coro__timers timers;
    int drain;                  /* after a deadlock: parks of a kind below it
                                 * fail at once (see deadlock) */
    int deadlocked;             /* a deadlock was reported in this run */
    int stopping;               /* coro_shutdown: waits fail, no deadlock report */
    void *io;                   /* the io layer's reactor, made on its first
                                 * use (lib/io.c), or NULL */
    size_t holds;               /* coro__sched_hold: run on with nothing live */
    size_t remote_waits;        /* parked in records another thread can end */
    unsigned long sleeps;       /* went to sleep where a post could reach it */
    int bell;                   /* eventfd in the reactor for posts, or -1 */
    int rung;                   /* its last sleep was ended by a post */
    int pooled;                 /* a pool's thread: its coroutines can be
                                 * joined and cancelled from any thread */
    void *biased;               /* sync objects biased to it (lib/share.c) */
    /* Unique in the process: what outlives the scheduler (a shared
     * group's idea of its home thread) compares this, since a later
     * thread's scheduler may have its address. */
    uint64_t serial;
    /* Called with nothing ready, before it sleeps: 1 if it made something
     * ready (a pool's thread takes spawns another thread has not got to),
     * else 0, and *again is when to call it again (-1: no need). */
    int (*idle)(struct coro__sched *s, void *arg, int64_t *again);
    void *idle_arg;

    /* What other threads write, on lines of their own. */
    _Alignas(64) _Atomic(struct coro__node *) inbox; /* posted, newest first */
    atomic_int sleeping;        /* CORO__AWAKE, or how a post wakes it */
    atomic_int posters;         /* posts between their push and their ring */
    atomic_ulong rings;         /* times a poster rang the doorbell */
};

/* s->sleeping: how the scheduler sleeps, so how a poster wakes it. */
enum {
    CORO__AWAKE = 0,
    CORO__NAP = 1,              /* futex wait on s->sleeping */
    CORO__POLL = 2              /* in the reactor: write s->bell */
};

/* The io layer's side of the scheduler (lib/io.c).  Weak: called only when
 * s->io is set, which only lib/io.c does, so a program that does no I/O
 * links none of it. */
/* Waits for fd events and wakeups until deadline (-1: none, 0: just
 * looks), ending the waits they satisfy. */
void coro__io_poll(struct coro__sched *s, int64_t deadline) __attribute__((weak));
/* Nonzero while a coroutine waits on something only the reactor can end
 * (an fd, a signal, an offload): then nothing is deadlocked. */
int coro__io_alive(const struct coro__sched *s) __attribute__((weak));
/* Thread exit: closes the reactor. */
void coro__io_free(struct coro__sched *s) __attribute__((weak));
/* An eventfd watched by s's reactor that wakes it and is read empty when
 * it fires, made on first use; -1 when it cannot be had. */
int coro__io_bell(struct coro__sched *s) __attribute__((weak));

static inline void coro__push_ready(struct coro__sched *s, struct coro__task *k)
{
    k->next = NULL;
    if (s->tail)
        s->tail->next = k;
    else
        s->head = k;
    s->tail = k;
    s->nready++;
}

static inline struct coro__task *coro__pop_ready(struct coro__sched *s)
{
    struct coro__task *k = s->head;

    s->head = k->next;
    if (!s->head)
        s->tail = NULL;
    if (k == s->fired)
        s->fired = NULL;
    s->nready--;
    return k;
}

/* The task of the running coroutine if this thread's scheduler runs it. */
static inline struct coro__task *coro__self_task(void)
{
    coro_t *co = coro__self();
    struct coro__task *k = co ? co->sched : NULL;

    return k && k->s->running == k ? k : NULL;
}

/* 0 when the caller is a coroutine run by this thread's scheduler (made by
 * coro_spawn), EPERM otherwise: blocking calls check this first. */
static inline int coro__sched_check(void)
{
    return coro__self_task() ? 0 : EPERM;
}

/* Ends a wait the caller claimed: its coro__wait_park returns result (and
 * index says which clause).  co must be parked in it, on this thread. */
/* lib/sched.c: makes k ready from whichever thread the caller is on. */
void coro__wake_remote(struct coro__task *k);

static inline __attribute__((always_inline)) void
coro__wait_done(struct coro__wait *wait, int result, size_t index)
{
    struct coro__task *k = wait->co->sched;

    wait->result = result;
    wait->index = index;
    if (__builtin_expect(wait->remote, 0))
        coro__wake_remote(k);
    else
        coro__push_ready(k->s, k);
}

/* lib/sched.c: k, never run, cannot have a stack: it finishes with ENOMEM
 * (its coro_join says so). */
void coro__task_no_stack(struct coro__task *k);

/* A coroutine that got no stack and so never ran fn(arg): if it is a
 * pool's, the pool frees its spawn record and stops counting it (its
 * trampoline, which would have done so, never ran). */
void coro__pool_never_ran(coro_fn fn, void *arg);

/* lib/sched.c: coro__wait_park with a deadline, a pending cancel or a
 * deadlock being broken. */
int coro__park_slow(struct coro__task *k, struct coro__wait *wait, int64_t deadline,
                    enum coro__wait_kind kind, const char *what);

/* Whether a park or a yield may switch straight to the next ready task
 * instead of going back to the run loop (see coro__park_in). */
static inline int coro__may_hand_off(const struct coro__sched *s)
{
    return s->head && !s->timers.n && s->handoffs < HANDOFF_MAX;
}

/* Parks k in wait; the scheduler runs others until a waker makes it
 * ready.  Returns the winner's result. */
static inline __attribute__((always_inline)) int coro__park_in(struct coro__task *k,
                                                               struct coro__wait *wait,
                                enum coro__wait_kind kind, const char *what)
{
    struct coro__sched *s = k->s;

    k->wait = wait;
    k->kind = (unsigned char)kind;
    k->what = what;
    if (coro__may_hand_off(s)) {
        /* Hand the thread straight to the next ready task: one switch
         * instead of two through the run loop.  Only while no timer is
         * pending, so timers are still checked once a round (the loop's
         * fairness), and bounded, so the loop runs now and then. */
        struct coro__task *next = coro__pop_ready(s);
        s->handoffs++;
        s->running = next;
        if (__builtin_expect(coro__transfer(k->co, next->co) != 0, 0)) {
            /* next never ran and no stack can be had for it: it ends with
             * ENOMEM, and this one goes back to the loop. */
            s->running = k;
            coro__task_no_stack(next);
            coro__yield_to_caller(k->co, NULL, NULL);
        }
    } else {
        coro__yield_to_caller(k->co, NULL, NULL);
    }
    k->wait = NULL;
    return wait->result;
}

/* coro__wait_park for k, the caller's task (coro__self_task()). */
static inline __attribute__((always_inline)) int
coro__task_park(struct coro__task *k, struct coro__wait *wait, int64_t deadline,
                enum coro__wait_kind kind, const char *what)
{
    if (__builtin_expect(deadline >= 0 || k->cancelled || k->s->drain || wait->remote, 0))
        return coro__park_slow(k, wait, deadline, kind, what);
    int r = coro__park_in(k, wait, kind, what);
    /* Made remote while parked: its object was shared meanwhile, which
     * counted it in remote_waits (lib/share.c). */
    if (__builtin_expect(wait->remote, 0))
        k->s->remote_waits--;
    return r;
}

static inline __attribute__((always_inline)) int
coro__wait_park(struct coro__wait *wait, int64_t deadline, enum coro__wait_kind kind,
                const char *what)
{
    struct coro__task *k = coro__self_task();

    return k ? coro__task_park(k, wait, deadline, kind, what) : EPERM;
}

#endif

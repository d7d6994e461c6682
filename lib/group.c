/* sync: groups, structured concurrency (see include/coro.h, "groups").
 *
 * A group is a list of the spawned coroutines made into it, kept by the
 * scheduler's finish hook: a member leaves the list when it finishes, and
 * the last one out wakes the coroutines waiting for the group.  The
 * thread's own flow may wait too: it then runs the scheduler until the
 * group is empty.
 *
 * A group made by a coroutine of a pool thread is a sync object like a
 * channel (sync.h): biased to its thread until another thread uses it,
 * then shared, every call under its lock.  Its members may then be on any
 * pool thread, whose finish hook takes the lock; a pool thread is the
 * kind whose coroutines any thread may cancel (coro_cancel), and which
 * ends them all before it goes, so a member never outlives its thread
 * on the list.  A group made elsewhere is its thread's alone (local).
 *
 * coro_group_spawn_on sends a spawn to another thread: the group counts
 * it from the call (reserved), so that no wait ends before it has run,
 * and a cancel meanwhile reaches it as it arrives (the cancel count it
 * was sent with is behind). */
#include "sync.h"

#include <errno.h>
#include <stdlib.h>

struct coro_group {
    struct coro__sync o;
    uint64_t home;              /* serial of its thread's scheduler: its
                                 * own may be gone, and its address reused */
    struct coro__task *members; /* not finished yet (task gprev/gnext) */
    size_t live;                /* members not finished, and spawns reserved */
    unsigned cancels;           /* coro_group_cancel calls so far */
    int closing;                /* in coro_group_destroy: new members start
                                 * cancelled (a member's unwinding may add) */
    struct coro__waitq q;       /* coroutines in coro_group_wait */
};

int coro_group_create(coro_group_t **g)
{
    if (!g)
        return EINVAL;
    if (!(*g = coro__sync_new(sizeof **g, offsetof(coro_group_t, q))))
        return ENOMEM;
    struct coro__sched *here = coro__sched_current(); /* made by coro__sync_new */
    /* Only a pool thread's group is shared (see above): one made on
     * another thread, with or without a pool, stays local, to its own
     * thread rather than unbound. */
    if (coro__sync_mode(&(*g)->o) == CORO__SYNC_UNBOUND) {
        (*g)->o.home = here;
        atomic_store_explicit(&(*g)->o.mode, CORO__SYNC_LOCAL, memory_order_relaxed);
    }
    (*g)->home = here->serial;
    return 0;
}

/* Whether the caller is on g's thread (which may have gone). */
static int at_home(const struct coro_group *g)
{
    const struct coro__sched *s = coro__sched_current();

    return s && s->serial == g->home;
}

/* One member fewer (g entered): the last wakes the waiters. */
static void uncount(struct coro_group *g)
{
    if (--g->live == 0)
        coro__wake_all(&g->q, 0);
}

/* The finish hook of a member, on its thread. */
static void member_finished(struct coro__task *k)
{
    struct coro_group *g = k->group;

    coro__sync_enter(&g->o); /* a member's thread may enter: shared, or home */
    if (k->gprev)
        k->gprev->gnext = k->gnext;
    else
        g->members = k->gnext;
    if (k->gnext)
        k->gnext->gprev = k->gprev;
    k->group = NULL;
    k->on_finish = NULL;
    uncount(g);
    coro__sync_leave(&g->o); /* g may be gone from here on */
}

/* Makes task k of this thread a member of g, entered, counted already. */
static void adopt(struct coro_group *g, struct coro__task *k, int detached)
{
    k->detached = detached;
    k->group = g;
    k->on_finish = member_finished;
    k->gprev = NULL;
    k->gnext = g->members;
    if (g->members)
        g->members->gprev = k;
    g->members = k;
}

int coro_group_spawn(coro_group_t *g, coro_t **co, coro_fn fn, void *arg,
                     const coro_attr_t *attr)
{
    struct coro__sched *here = coro__sched_current();
    coro_t *c;
    int err;

    if (!g)
        return EINVAL;
    /* Another thread's member must be one that others can cancel. */
    if (!at_home(g) && !(here && here->pooled))
        return EPERM;
    /* An enter first, which shares a group biased to another thread (and
     * may wait): after the spawn, nothing may switch before the member is
     * on the list. */
    if (coro__sync_enter(&g->o))
        return EPERM;
    coro__sync_leave(&g->o);
    if ((err = coro_spawn(&c, fn, arg, attr)))
        return err;
    coro__sync_enter(&g->o);
    adopt(g, c->sched, !co);
    g->live++;
    if (g->closing)
        coro_cancel(c); /* of this thread: no memory needed */
    coro__sync_leave(&g->o);
    if (co)
        *co = c;
    return 0;
}

void coro__group_finish(void)
{
    struct coro__task *k = coro__self_task();

    if (k && k->on_finish == member_finished)
        member_finished(k);
}

int coro__group_reserve(coro_group_t *g, unsigned *cancels)
{
    if (coro__sync_mode(&g->o) == CORO__SYNC_LOCAL)
        return EPERM; /* its members stay on its thread */
    if (coro__sync_enter(&g->o))
        return EPERM;
    if (coro__sync_mode(&g->o) == CORO__SYNC_BIASED) {
        /* Its home sends a member away: the member's thread will take
         * the lock, so g is made shared now. */
        coro__sync_leave(&g->o);
        coro__sync_share_here(&g->o);
        coro__lock(&g->o.lock);
    }
    g->live++;
    *cancels = g->cancels;
    coro__unlock(&g->o.lock);
    return 0;
}

void coro__group_arrive(coro_group_t *g, unsigned cancels, coro_t *co, int detached)
{
    coro__lock(&g->o.lock); /* shared since its reserve */
    if (co) {
        adopt(g, co->sched, detached);
        if (cancels != g->cancels || g->closing)
            coro_cancel(co); /* of this thread: no memory needed */
        coro__unlock(&g->o.lock);
        return;
    }
    uncount(g); /* it will never run */
    coro__unlock(&g->o.lock);
}

static int group_empty(void *g)
{
    return ((struct coro_group *)g)->live == 0;
}

/* Waits for g to be empty; kind CORO__WAIT_JOIN for coro_group_wait,
 * CORO__WAIT_RELOCK (not cancellable: a cancel stays pending) for
 * coro_group_destroy. */
static int group_wait(coro_group_t *g, int64_t deadline, enum coro__wait_kind kind)
{
    struct coro__task *self;
    int r;

    if (!coro__self()) {
        /* The thread's own flow: only a local group's, whose members are
         * all here and run while it waits (the deadline does not apply:
         * nothing else runs here); another thread's shared group only
         * when it is empty already (one that outlived its pool). */
        if (coro__sync_enter(&g->o))
            return EPERM;
        size_t live = g->live;
        coro__sync_leave(&g->o);
        if (!live)
            return 0;
        if (!at_home(g))
            return EPERM;
        r = coro__sched_run_until(group_empty, g);
        return r ? r : (g->live ? EDEADLK : 0);
    }
    if ((r = coro__sync_begin(&g->o, deadline, &self)))
        return r;
    if (!g->live) {
        coro__sync_leave(&g->o);
        return 0;
    }
    if (self->group == g) {
        coro__sync_leave(&g->o);
        return EDEADLK; /* it would wait for itself */
    }
    return coro__sync_wait(&g->o, self, &g->q, NULL, deadline, kind, "coro_group_wait");
}

int coro_group_wait(coro_group_t *g, int64_t deadline)
{
    if (!g || deadline < -1)
        return EINVAL;
    return group_wait(g, deadline, CORO__WAIT_JOIN);
}

/* Cancels g's members, entered.  A member is on the list until its finish
 * hook took the lock, and freed only after: none goes while this runs.
 * 0, or ENOMEM when a cancel to another thread could not be sent (the
 * others were). */
static int cancel_all(struct coro_group *g)
{
    int err = 0;

    g->cancels++;
    for (struct coro__task *k = g->members; k; k = k->gnext)
        if (coro_cancel(k->co) == ENOMEM)
            err = ENOMEM;
    return err;
}

int coro_group_cancel(coro_group_t *g)
{
    if (!g)
        return EINVAL;
    if (coro__sync_enter(&g->o))
        return EPERM;
    int err = cancel_all(g);
    coro__sync_leave(&g->o);
    return err;
}

int coro_group_destroy(coro_group_t *g)
{
    if (!g)
        return EINVAL;
    struct coro__task *self = coro__self_task();
    if (coro__self() && !self)
        return EPERM; /* a plain coroutine cannot wait */
    if (coro__sync_enter(&g->o))
        return EPERM;
    int err = 0;
    if (self && self->group == g)
        err = EDEADLK;
    else if (coro__waitq_first(&g->q))
        err = EBUSY;
    else if (!self && !at_home(g) && g->live)
        err = EPERM; /* another thread's own flow cannot wait for it */
    else if (!(err = cancel_all(g)))
        g->closing = 1;
    coro__sync_leave(&g->o);
    if (err)
        return err;
    /* Not cancellable: a cancel of the caller meanwhile stays pending for
     * its next wait.  Only the last stage of breaking a deadlock ends it,
     * when the members can never finish. */
    (void)group_wait(g, -1, CORO__WAIT_RELOCK); /* how it ended: g->live says */
    coro__sync_enter(&g->o);
    size_t live = g->live;
    if (live)
        g->closing = 0; /* a deadlock broken: g stays, as it was */
    coro__sync_leave(&g->o);
    if (live)
        return EDEADLK; /* not the breaking's ECANCELED that ended the wait */
    coro__sync_release(&g->o);
    return 0;
}

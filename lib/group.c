/* sync: groups, structured concurrency (see include/coro.h, "groups").
 *
 * A group is a list of the spawned coroutines made into it, kept by the
 * scheduler's finish hook: a member leaves the list when it finishes, and
 * the last one out wakes the coroutines waiting for the group.  The
 * thread's own flow may wait too: it then runs the scheduler until the
 * group is empty. */
#include "sync.h"

#include <errno.h>
#include <stdlib.h>

struct coro_group {
    struct coro__sync o;        /* never shared: members finish on its thread */
    struct coro__task *members; /* not finished yet (task gprev/gnext) */
    size_t live;
    struct coro__waitq q;       /* coroutines in coro_group_wait */
};

int coro_group_create(coro_group_t **g)
{
    if (!g)
        return EINVAL;
    /* No wait list for a share to look at: a group is never biased or
     * shared (its members finish on its thread), only local. */
    if (!(*g = coro__sync_new(sizeof **g, 0)))
        return ENOMEM;
    atomic_store_explicit(&(*g)->o.mode, CORO__SYNC_LOCAL, memory_order_relaxed);
    return 0;
}

static void member_finished(struct coro__task *k)
{
    struct coro_group *g = k->group;

    if (k->gprev)
        k->gprev->gnext = k->gnext;
    else
        g->members = k->gnext;
    if (k->gnext)
        k->gnext->gprev = k->gprev;
    k->group = NULL;
    k->on_finish = NULL;
    if (--g->live == 0)
        coro__wake_all(&g->q, 0);
}

int coro_group_spawn(coro_group_t *g, coro_t **co, coro_fn fn, void *arg,
                     const coro_attr_t *attr)
{
    coro_t *c;
    int err;

    if (!g)
        return EINVAL;
    if ((err = coro__sync_home(g->o.home)))
        return err;
    if ((err = coro_spawn(&c, fn, arg, attr)))
        return err;
    struct coro__task *k = c->sched;
    k->detached = !co;
    k->group = g;
    k->on_finish = member_finished;
    k->gprev = NULL;
    k->gnext = g->members;
    if (g->members)
        g->members->gprev = k;
    g->members = k;
    g->live++;
    if (co)
        *co = c;
    return 0;
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
    if (!g->live)
        return 0;
    if (!coro__self()) {
        /* The thread's own flow: run the scheduler until the group is
         * done (the deadline does not apply: nothing else runs here). */
        int err = coro__sched_run_until(group_empty, g);
        return err ? err : (g->live ? EDEADLK : 0);
    }
    struct coro__task *self = coro__self_task();
    if (!self)
        return EPERM;
    if (self->group == g)
        return EDEADLK; /* it would wait for itself */
    return coro__wait_on_as(self, &g->q, NULL, deadline, kind, "coro_group_wait");
}

int coro_group_wait(coro_group_t *g, int64_t deadline)
{
    int err;

    if (!g || deadline < -1)
        return EINVAL;
    if ((err = coro__sync_home(g->o.home)))
        return err;
    return group_wait(g, deadline, CORO__WAIT_JOIN);
}

int coro_group_cancel(coro_group_t *g)
{
    int err;

    if (!g)
        return EINVAL;
    if ((err = coro__sync_home(g->o.home)))
        return err;
    for (struct coro__task *k = g->members; k; k = k->gnext)
        coro_cancel(k->co);
    return 0;
}

int coro_group_destroy(coro_group_t *g)
{
    int err;

    if (!g)
        return EINVAL;
    if ((err = coro__sync_home(g->o.home)))
        return err;
    struct coro__task *self = coro__self_task();
    if (coro__self() && !self)
        return EPERM; /* a plain coroutine cannot wait */
    if (self && self->group == g)
        return EDEADLK;
    if (coro__waitq_first(&g->q))
        return EBUSY;
    coro_group_cancel(g);
    /* Not cancellable: a cancel of the caller meanwhile stays pending for
     * its next wait.  Only the last stage of breaking a deadlock ends it,
     * when the members can never finish. */
    err = group_wait(g, -1, CORO__WAIT_RELOCK);
    if (g->live)
        return err ? err : EDEADLK;
    free(g);
    return 0;
}

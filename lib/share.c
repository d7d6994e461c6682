/* share: sync objects biased to the pool thread that made them (see
 * sync.h, CORO__SYNC_BIASED).
 *
 * A coroutine of a pool thread that makes a channel, a lock or an event
 * usually keeps it to its thread, and then every call costs what it does
 * on a local object: no lock, plain claims.  The first call from another
 * thread posts a request to the home thread and waits; the home thread
 * runs it between two coroutines, so that none of its calls on the object
 * is half done, and makes the object shared for good: the records of the
 * waiters already queued become remote (claimed with a compare-and-swap,
 * woken through the inbox), counted in remote_waits until their park
 * returns (sched.h, coro__task_park), and from then on every call takes
 * the lock.
 *
 * The request is posted under the object's lock after the mode was seen
 * biased under it, and a pool thread makes its biased objects shared
 * under their locks before it goes, then answers what its inbox holds:
 * so no request is posted to a thread that has gone. */
#include "sync.h"

struct share_req {
    struct coro__node node;
    struct coro__sync *o;
    struct coro__reply reply;
};

void coro__sync_init(struct coro__sync *o, struct coro__sched *home,
                     struct coro__waitq *q0, struct coro__waitq *q1)
{
    int mode = CORO__SYNC_LOCAL;

    o->home = home;
    atomic_init(&o->lock, 0);
    o->q[0] = q0;
    o->q[1] = q1;
    o->prev = o->next = NULL;
    o->refs = 0;
    o->dead = 0;
    if (atomic_load_explicit(&coro__mt, memory_order_relaxed)) {
        struct coro__task *self = coro__self_task();
        mode = q0 && self && self->s == home && home->pooled ? CORO__SYNC_BIASED
                                                             : CORO__SYNC_SHARED;
    }
    atomic_init(&o->mode, mode);
    if (mode == CORO__SYNC_BIASED) {
        struct coro__sync *first = home->biased;
        o->next = first;
        if (first)
            first->prev = o;
        home->biased = o;
    }
}

void coro__sync_unlink_counted(struct coro__sync *o, struct coro__waiter *w)
{
    coro__lock(&o->lock);
    coro__waitq_unlink(w);
    /* The destroy that found it dead left it to the last waiter. */
    int last = --o->refs == 0 && o->dead;
    coro__unlock(&o->lock);
    if (last)
        free(o);
}

void coro__sync_forget(struct coro__sync *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        o->home->biased = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->prev = o->next = NULL;
}

/* Makes biased o, whose lock its home s holds, shared. */
static void flip(struct coro__sched *s, struct coro__sync *o)
{
    for (int i = 0; i < 2; i++)
        for (struct coro__waiter *w = o->q[i] ? o->q[i]->head : NULL; w; w = w->next) {
            w->counted = 1;
            o->refs++;
            if (!w->wait->remote) {
                w->wait->remote = 1;
                s->remote_waits++;
            }
        }
    coro__sync_forget(o);
    atomic_store_explicit(&o->mode, CORO__SYNC_SHARED, memory_order_release);
}

static void run_share(struct coro__sched *s, struct coro__node *n)
{
    struct share_req *rq = (struct share_req *)n;
    struct coro__sync *o = rq->o;

    coro__lock(&o->lock);
    if (coro__sync_mode(o) == CORO__SYNC_BIASED)
        flip(s, o);
    coro__unlock(&o->lock);
    coro__reply_send(&rq->reply);
}

void coro__sync_share(struct coro__sync *o)
{
    struct share_req rq = {.node = {.next = NULL, .run = run_share}, .o = o};

    coro__lock(&o->lock);
    if (atomic_load_explicit(&o->mode, memory_order_acquire) == CORO__SYNC_SHARED) {
        coro__unlock(&o->lock);
        return;
    }
    coro__reply_init(&rq.reply);
    coro__sched_post(o->home, &rq.node);
    coro__unlock(&o->lock);
    coro__reply_wait(&rq.reply, "a share of a sync object");
}

void coro__sync_share_here(struct coro__sync *o)
{
    coro__lock(&o->lock);
    if (coro__sync_mode(o) == CORO__SYNC_BIASED)
        flip(o->home, o);
    coro__unlock(&o->lock);
}

void coro__sync_share_all(struct coro__sched *s)
{
    while (s->biased) {
        struct coro__sync *o = s->biased;
        coro__lock(&o->lock);
        flip(s, o);
        coro__unlock(&o->lock);
    }
    coro__sched_drain(s);
}

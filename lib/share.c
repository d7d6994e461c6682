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
 * An object made after there was a pool but not by a pool thread's
 * coroutine (main makes the channels, then spawns the workers that use
 * them) starts unbound, with no thread's home, so every thread's first
 * call takes the slow path and claims it: the first pool thread's
 * coroutine to call gets it biased, as though it had made it, and any
 * other first caller gets it shared.  Nobody can have queued on it
 * before the claim, so nothing but its mode and home changes.
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

struct coro__sched coro__sync_nohome;

/* Puts biased o on its home's list. */
static void bias(struct coro__sched *home, struct coro__sync *o)
{
    struct coro__sync *first = home->biased;

    o->prev = NULL;
    o->next = first;
    if (first)
        first->prev = o;
    home->biased = o;
}

/* Whether this thread is a pool thread's, in one of its coroutines (the
 * home of a biased object must answer the requests to share it). */
static int pooled_here(struct coro__sched *s)
{
    struct coro__task *self = coro__self_task();

    return self && self->s == s && s->pooled;
}

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
    if (atomic_load_explicit(&coro__mt, memory_order_relaxed))
        mode = pooled_here(home) ? CORO__SYNC_BIASED : CORO__SYNC_UNBOUND;
    atomic_init(&o->mode, mode);
    if (mode == CORO__SYNC_BIASED)
        bias(home, o);
    else if (mode == CORO__SYNC_UNBOUND)
        o->home = &coro__sync_nohome;
}

void coro__sync_claim(struct coro__sync *o)
{
    struct coro__sched *s = coro__sched_current();

    coro__lock(&o->lock);
    if (coro__sync_mode(o) == CORO__SYNC_UNBOUND) {
        if (pooled_here(s)) { /* false without a scheduler: no task */
            __atomic_store_n(&o->home, s, __ATOMIC_RELAXED);
            bias(s, o);
            atomic_store_explicit(&o->mode, CORO__SYNC_BIASED, memory_order_release);
        } else {
            atomic_store_explicit(&o->mode, CORO__SYNC_SHARED, memory_order_release);
        }
    }
    int elsewhere = coro__sync_mode(o) == CORO__SYNC_BIASED && o->home != s;
    coro__unlock(&o->lock);
    if (elsewhere)
        coro__sync_share(o); /* another thread's claim came first */
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

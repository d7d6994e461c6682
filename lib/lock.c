/* sync: mutex, condition variable and semaphore (see include/coro.h,
 * "synchronisation").
 *
 * Unlock and release hand the mutex or the unit straight to the first
 * waiter instead of letting it race for it, so waiters are served in the
 * order they came and a coroutine that unlocks and locks again in a loop
 * cannot starve the others. */
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

struct coro_mutex {
    struct coro__sched *home; /* the scheduler of the thread that made it */
    uint64_t owner;           /* coro_id of the holder (ids are never reused,
                               * addresses are), 0 when free */
    struct coro__waitq q;     /* coroutines waiting to lock it */
};

struct coro_cond {
    struct coro__sched *home;
    struct coro__waitq q;     /* coroutines waiting for a signal */
};

struct coro_sem {
    struct coro__sched *home;
    unsigned value;           /* units available; 0 whenever q has a waiter */
    struct coro__waitq q;     /* coroutines waiting for a unit */
};


/* ---------------------------------------------------------------- mutex */

int coro_mutex_create(coro_mutex_t **m)
{
    if (!m)
        return EINVAL;
    return (*m = coro__sync_new(sizeof **m)) ? 0 : ENOMEM;
}

int coro_mutex_destroy(coro_mutex_t *m)
{
    if (!m)
        return EINVAL;
    if (coro__sync_home(m->home))
        return EPERM;
    if (m->owner || coro__waitq_first(&m->q))
        return EBUSY;
    free(m);
    return 0;
}

int coro_mutex_lock(coro_mutex_t *m, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!m)
        return EINVAL;
    if ((r = coro__sync_wait_check(m->home, deadline, &k)))
        return r;
    uint64_t self = coro_id(k->co);
    if (!m->owner) {
        m->owner = self;
        return 0;
    }
    if (m->owner == self)
        return EDEADLK;
    return coro__wait_on(k, &m->q, NULL, deadline, "coro_mutex_lock"); /* 0: we own it */
}

/* Passes m to its first waiter, or frees it. */
static void mutex_release(coro_mutex_t *m)
{
    struct coro__waiter *w = coro__waitq_claim(&m->q);

    if (w) {
        m->owner = coro_id(w->wait->co);
        coro__wake(w, 0);
    } else {
        m->owner = 0;
    }
}

int coro_mutex_unlock(coro_mutex_t *m)
{
    if (!m)
        return EINVAL;
    if (coro__sync_home(m->home))
        return EPERM;
    coro_t *self = coro__self();
    if (!m->owner || !self || m->owner != coro_id(self))
        return EPERM;
    mutex_release(m);
    return 0;
}

/* Locks m for a coroutine coming back from a condition wait: it must hold
 * m again whatever ended the wait, so neither a deadline nor a cancel stops
 * it (a cancel stays pending for the next wait).  Only the last stage of
 * breaking a deadlock ends it, when m's owner can never unlock (it
 * finished holding m, or is stuck itself): EDEADLK, m not held. */
static int mutex_relock(struct coro__task *k, coro_mutex_t *m)
{
    if (!m->owner) {
        m->owner = coro_id(k->co);
        return 0;
    }
    int r = coro__wait_on_as(k, &m->q, NULL, -1, CORO__WAIT_RELOCK, "coro_cond_wait");
    return r ? EDEADLK : 0;
}

/* ----------------------------------------------------------------- cond */

int coro_cond_create(coro_cond_t **c)
{
    if (!c)
        return EINVAL;
    return (*c = coro__sync_new(sizeof **c)) ? 0 : ENOMEM;
}

int coro_cond_destroy(coro_cond_t *c)
{
    if (!c)
        return EINVAL;
    if (coro__sync_home(c->home))
        return EPERM;
    if (coro__waitq_first(&c->q))
        return EBUSY;
    free(c);
    return 0;
}

int coro_cond_wait(coro_cond_t *c, coro_mutex_t *m, int64_t deadline)
{
    struct coro__waiter w = { .elem = NULL };
    struct coro__wait wait;
    struct coro__task *k;
    int r, r2;

    if (!c || !m)
        return EINVAL;
    if ((r = coro__sync_home(c->home)) || (r = coro__sync_wait_check(m->home, deadline, &k)))
        return r;
    coro__wait_init(&wait, k->co);
    if (m->owner != coro_id(wait.co))
        return EPERM;
    /* A passed deadline or a pending cancel ends the wait before m is
     * released: after, taking m back could wait for another coroutine. */
    if ((r = coro__wait_early(deadline)))
        return r;
    wait.w = &w;
    wait.n = 1;
    w.wait = &wait;
    coro__waitq_push(&c->q, &w);
    mutex_release(m);
    r = coro__wait_block(k, &wait, deadline, CORO__WAIT_PLAIN, "coro_cond_wait");
    r2 = mutex_relock(k, m);
    return r2 ? r2 : r;
}

int coro_cond_signal(coro_cond_t *c)
{
    struct coro__waiter *w;

    if (!c)
        return EINVAL;
    if (coro__sync_home(c->home))
        return EPERM;
    if ((w = coro__waitq_claim(&c->q)))
        coro__wake(w, 0);
    return 0;
}

int coro_cond_broadcast(coro_cond_t *c)
{
    if (!c)
        return EINVAL;
    if (coro__sync_home(c->home))
        return EPERM;
    coro__wake_all(&c->q, 0);
    return 0;
}

/* ------------------------------------------------------------ semaphore */

int coro_sem_create(coro_sem_t **s, unsigned value)
{
    if (!s)
        return EINVAL;
    if (!(*s = coro__sync_new(sizeof **s)))
        return ENOMEM;
    (*s)->value = value;
    return 0;
}

int coro_sem_destroy(coro_sem_t *s)
{
    if (!s)
        return EINVAL;
    if (coro__sync_home(s->home))
        return EPERM;
    if (coro__waitq_first(&s->q))
        return EBUSY;
    free(s);
    return 0;
}

int coro_sem_acquire(coro_sem_t *s, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!s)
        return EINVAL;
    if ((r = coro__sync_wait_check(s->home, deadline, &k)))
        return r;
    if (s->value) {
        s->value--;
        return 0;
    }
    return coro__wait_on(k, &s->q, NULL, deadline, "coro_sem_acquire"); /* 0: we got one */
}

int coro_sem_release(coro_sem_t *s)
{
    struct coro__waiter *w;

    if (!s)
        return EINVAL;
    if (coro__sync_home(s->home))
        return EPERM;
    if ((w = coro__waitq_claim(&s->q))) {
        coro__wake(w, 0);
        return 0;
    }
    if (s->value == UINT_MAX)
        return EOVERFLOW;
    s->value++;
    return 0;
}

unsigned coro_sem_value(const coro_sem_t *s)
{
    return s ? s->value : 0;
}

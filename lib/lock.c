/* sync: mutex, condition variable and semaphore (see include/coro.h,
 * "synchronisation").
 *
 * Unlock and release hand the mutex or the unit straight to the first
 * waiter instead of letting it race for it, so waiters are served in the
 * order they came and a coroutine that unlocks and locks again in a loop
 * cannot starve the others.
 *
 * A shared object (sync.h) does each call under its lock; a condition
 * wait takes the condition's lock, then the mutex's, never the other way
 * round. */
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

struct coro_mutex {
    struct coro__sync o;
    uint64_t owner;           /* coro_id of the holder (ids are never reused,
                               * addresses are), 0 when free */
    uint64_t relockers;       /* coroutines in coro_cond_wait that will take
                               * it back: a destroy says EBUSY (after owner:
                               * coro__sync_destroy reads both) */
    struct coro__waitq q;     /* coroutines waiting to lock it */
};

_Static_assert(offsetof(struct coro_mutex, relockers) ==
               offsetof(struct coro_mutex, owner) + sizeof(uint64_t),
               "coro_mutex_destroy reads owner and relockers as two words");

struct coro_cond {
    struct coro__sync o;
    struct coro__waitq q;     /* coroutines waiting for a signal */
};

struct coro_sem {
    struct coro__sync o;
    unsigned value;           /* units available; 0 whenever q has a waiter */
    struct coro__waitq q;     /* coroutines waiting for a unit */
};

/* ---------------------------------------------------------------- mutex */

int coro_mutex_create(coro_mutex_t **m)
{
    if (!m)
        return EINVAL;
    return (*m = coro__sync_new(sizeof **m, offsetof(coro_mutex_t, q))) ? 0 : ENOMEM;
}

int coro_mutex_destroy(coro_mutex_t *m)
{
    return m ? coro__sync_destroy(&m->o, &m->owner, 2) : EINVAL;
}

int coro_mutex_lock(coro_mutex_t *m, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!m)
        return EINVAL;
    if ((r = coro__sync_begin(&m->o, deadline, &k)))
        return r;
    uint64_t self = coro_id(k->co);
    if (!m->owner || m->owner == self) {
        r = m->owner ? EDEADLK : 0;
        m->owner = self;
        coro__sync_leave(&m->o);
        return r;
    }
    return coro__sync_wait(&m->o, k, &m->q, NULL, deadline, CORO__WAIT_PLAIN,
                           "coro_mutex_lock"); /* 0: we own it */
}

/* Passes m, whose lock the caller holds, to its first waiter, or frees
 * it. */
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
    int r = coro__sync_enter(&m->o);
    if (r)
        return r;
    coro_t *self = coro__self();
    if (!m->owner || !self || m->owner != coro_id(self))
        r = EPERM;
    else
        mutex_release(m);
    coro__sync_leave(&m->o);
    return r;
}

/* Locks m for a coroutine coming back from a condition wait: it must hold
 * m again whatever ended the wait, so neither a deadline nor a cancel stops
 * it (a cancel stays pending for the next wait).  Only the last stage of
 * breaking a deadlock ends it, when m's owner can never unlock (it
 * finished holding m, or is stuck itself): EDEADLK, m not held. */
static int mutex_relock(struct coro__task *k, coro_mutex_t *m)
{
    coro__sync_enter(&m->o); /* k's own thread, or shared */
    m->relockers--;
    if (!m->owner) {
        m->owner = coro_id(k->co);
        coro__sync_leave(&m->o);
        return 0;
    }
    int r = coro__sync_wait(&m->o, k, &m->q, NULL, -1, CORO__WAIT_RELOCK, "coro_cond_wait");
    return r ? EDEADLK : 0;
}

/* ----------------------------------------------------------------- cond */

int coro_cond_create(coro_cond_t **c)
{
    if (!c)
        return EINVAL;
    return (*c = coro__sync_new(sizeof **c, offsetof(coro_cond_t, q))) ? 0 : ENOMEM;
}

int coro_cond_destroy(coro_cond_t *c)
{
    return c ? coro__sync_destroy(&c->o, NULL, 0) : EINVAL;
}

int coro_cond_wait(coro_cond_t *c, coro_mutex_t *m, int64_t deadline)
{
    struct coro__waiter w = { .elem = NULL };
    struct coro__wait wait;
    struct coro__task *k;
    int r, r2;

    if (!c || !m)
        return EINVAL;
    if ((coro__sync_home(coro__sync_home_of(&c->o)) && (r = coro__sync_away(&c->o))) ||
        (r = coro__sync_begin(&m->o, deadline, &k)))
        return r;
    coro__wait_init(&wait, k->co);
    int owner = m->owner == coro_id(wait.co);
    coro__sync_leave(&m->o);
    if (!owner)
        return EPERM;
    /* A passed deadline or a pending cancel ends the wait before m is
     * released: after, taking m back could wait for another coroutine. */
    if ((r = coro__wait_early(deadline)))
        return r;
    wait.w = &w;
    wait.n = 1;
    w.wait = &wait;
    /* Queued before m goes: a signal sent by whoever takes m next finds
     * this waiter. */
    coro__sync_enter(&c->o);
    wait.remote = coro__sync_mode(&c->o) == CORO__SYNC_SHARED;
    coro__sync_push(&c->o, &c->q, &w);
    coro__sync_enter(&m->o);
    mutex_release(m);
    m->relockers++;
    coro__sync_leave(&m->o);
    coro__sync_leave(&c->o);
    r = coro__task_park(k, &wait, deadline, CORO__WAIT_PLAIN, "coro_cond_wait");
    coro__sync_unlink(&c->o, &w);
    r2 = mutex_relock(k, m);
    return r2 ? r2 : r;
}

int coro_cond_signal(coro_cond_t *c)
{
    struct coro__waiter *w;

    if (!c)
        return EINVAL;
    int r = coro__sync_enter(&c->o);
    if (r)
        return r;
    if ((w = coro__waitq_claim(&c->q)))
        coro__wake(w, 0);
    coro__sync_leave(&c->o);
    return 0;
}

int coro_cond_broadcast(coro_cond_t *c)
{
    if (!c)
        return EINVAL;
    int r = coro__sync_enter(&c->o);
    if (r)
        return r;
    coro__wake_all(&c->q, 0);
    coro__sync_leave(&c->o);
    return 0;
}

/* ------------------------------------------------------------ semaphore */

int coro_sem_create(coro_sem_t **s, unsigned value)
{
    if (!s)
        return EINVAL;
    if (!(*s = coro__sync_new(sizeof **s, offsetof(coro_sem_t, q))))
        return ENOMEM;
    (*s)->value = value;
    return 0;
}

int coro_sem_destroy(coro_sem_t *s)
{
    return s ? coro__sync_destroy(&s->o, NULL, 0) : EINVAL;
}

int coro_sem_acquire(coro_sem_t *s, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!s)
        return EINVAL;
    if ((r = coro__sync_begin(&s->o, deadline, &k)))
        return r;
    if (s->value) {
        s->value--;
        coro__sync_leave(&s->o);
        return 0;
    }
    return coro__sync_wait(&s->o, k, &s->q, NULL, deadline, CORO__WAIT_PLAIN,
                           "coro_sem_acquire"); /* 0: we got one */
}

int coro_sem_release(coro_sem_t *s)
{
    struct coro__waiter *w;

    if (!s)
        return EINVAL;
    int r = coro__sync_enter(&s->o);
    if (r)
        return r;
    if ((w = coro__waitq_claim(&s->q)))
        coro__wake(w, 0);
    else if (s->value == UINT_MAX)
        r = EOVERFLOW;
    else
        s->value++;
    coro__sync_leave(&s->o);
    return r;
}

unsigned coro_sem_value(const coro_sem_t *s)
{
    if (!s)
        return 0;
    struct coro_sem *w = (struct coro_sem *)s; /* its lock only */
    if (coro__sync_enter(&w->o))
        return w->value; /* another thread's own semaphore: a glance */
    unsigned v = w->value;
    coro__sync_leave(&w->o);
    return v;
}

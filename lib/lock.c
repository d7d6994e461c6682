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
    coro_t *owner;            /* the coroutine holding it, NULL when free */
    struct coro__waitq q;     /* coroutines waiting to lock it */
};

struct coro_cond {
    struct coro__waitq q;     /* coroutines waiting for a signal */
};

struct coro_sem {
    unsigned value;           /* units available; 0 whenever q is not empty */
    struct coro__waitq q;     /* coroutines waiting for a unit */
};

/* ---------------------------------------------------------------- mutex */

int coro_mutex_create(coro_mutex_t **m)
{
    if (!m)
        return EINVAL;
    return (*m = calloc(1, sizeof **m)) ? 0 : ENOMEM;
}

int coro_mutex_destroy(coro_mutex_t *m)
{
    if (!m)
        return EINVAL;
    if (m->owner || m->q.head)
        return EBUSY;
    free(m);
    return 0;
}

int coro_mutex_lock(coro_mutex_t *m, int64_t deadline)
{
    coro_t *self;
    int r;

    if (!m)
        return EINVAL;
    if ((r = coro__wait_check(deadline)))
        return r;
    self = coro__self();
    if (!m->owner) {
        m->owner = self;
        return 0;
    }
    if (m->owner == self)
        return EDEADLK;
    return coro__wait_on(&m->q, NULL, deadline); /* 0: unlock made us owner */
}

/* Passes m to its first waiter, or frees it. */
static void mutex_release(coro_mutex_t *m)
{
    struct coro__waiter *w = m->q.head;

    if (w) {
        m->owner = w->wait->co;
        coro__wake(w, 0);
    } else {
        m->owner = NULL;
    }
}

int coro_mutex_unlock(coro_mutex_t *m)
{
    if (!m)
        return EINVAL;
    if (!m->owner || m->owner != coro__self())
        return EPERM;
    mutex_release(m);
    return 0;
}

/* Locks m for a coroutine coming back from a condition wait: it must hold
 * m again, so neither its deadline nor a cancel stops it.  A cancel is
 * one-shot, so a second ECANCELED in a row means the scheduler is unwinding
 * a deadlock (then every park fails at once and waiting would spin) or the
 * caller was cancelled twice: then it gives up without m.
 * Returns 0 with m held; ECANCELED if cancelled (m held after one cancel,
 * not after two). */
static int mutex_relock(coro_mutex_t *m)
{
    struct coro__waiter w = { .elem = NULL };
    struct coro__wait wait = { .co = coro__self(), .w = &w, .n = 1 };
    int cancels = 0;

    if (!m->owner) {
        m->owner = wait.co;
        return 0;
    }
    w.wait = &wait;
    coro__waitq_push(&m->q, &w);
    while (!wait.fired) {
        if (coro__park(-1) == ECANCELED)
            cancels++;
        /* wait.fired is set by the waker while this coroutine is parked,
         * which cppcheck cannot see. */
        // cppcheck-suppress knownConditionTrueFalse
        if (cancels == 2 && !wait.fired) {
            coro__waitq_unlink(&w);
            break;
        }
    }
    return cancels ? ECANCELED : 0;
}

/* ----------------------------------------------------------------- cond */

int coro_cond_create(coro_cond_t **c)
{
    if (!c)
        return EINVAL;
    return (*c = calloc(1, sizeof **c)) ? 0 : ENOMEM;
}

int coro_cond_destroy(coro_cond_t *c)
{
    if (!c)
        return EINVAL;
    if (c->q.head)
        return EBUSY;
    free(c);
    return 0;
}

int coro_cond_wait(coro_cond_t *c, coro_mutex_t *m, int64_t deadline)
{
    struct coro__waiter w = { .elem = NULL };
    struct coro__wait wait = { .w = &w, .n = 1 };
    int r, r2;

    if (!c || !m)
        return EINVAL;
    if ((r = coro__wait_check(deadline)))
        return r;
    wait.co = coro__self();
    if (m->owner != wait.co)
        return EPERM;
    w.wait = &wait;
    coro__waitq_push(&c->q, &w);
    mutex_release(m);
    r = coro__wait_park(&wait, deadline);
    r2 = mutex_relock(m);
    return r2 ? r2 : r;
}

int coro_cond_signal(coro_cond_t *c)
{
    if (!c)
        return EINVAL;
    if (c->q.head)
        coro__wake(c->q.head, 0);
    return 0;
}

int coro_cond_broadcast(coro_cond_t *c)
{
    if (!c)
        return EINVAL;
    coro__wake_all(&c->q, 0);
    return 0;
}

/* ------------------------------------------------------------ semaphore */

int coro_sem_create(coro_sem_t **s, unsigned value)
{
    if (!s)
        return EINVAL;
    if (!(*s = calloc(1, sizeof **s)))
        return ENOMEM;
    (*s)->value = value;
    return 0;
}

int coro_sem_destroy(coro_sem_t *s)
{
    if (!s)
        return EINVAL;
    if (s->q.head)
        return EBUSY;
    free(s);
    return 0;
}

int coro_sem_acquire(coro_sem_t *s, int64_t deadline)
{
    int r;

    if (!s)
        return EINVAL;
    if ((r = coro__wait_check(deadline)))
        return r;
    if (s->value) {
        s->value--;
        return 0;
    }
    return coro__wait_on(&s->q, NULL, deadline); /* 0: release gave us one */
}

int coro_sem_release(coro_sem_t *s)
{
    if (!s)
        return EINVAL;
    if (s->q.head) {
        coro__wake(s->q.head, 0);
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

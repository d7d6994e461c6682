/* sync: wait group and one-shot future (see include/coro.h,
 * "synchronisation"): events that wake every waiter at once.  A shared
 * one (sync.h) does each call under its lock. */
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

struct coro_wg {
    struct coro__sync o;
    long count;               /* outstanding tasks, never below 0 */
    struct coro__waitq q;     /* coroutines waiting for count to reach 0 */
};

struct coro_future {
    struct coro__sync o;
    int set;                  /* 1 once coro_future_set succeeded */
    void *value;
    struct coro__waitq q;     /* coroutines waiting for the value: each gets
                               * it in its own waiter, so the future may be
                               * destroyed as soon as it is set */
};


/* ----------------------------------------------------------- wait group */

int coro_wg_create(coro_wg_t **wg)
{
    if (!wg)
        return EINVAL;
    return (*wg = coro__sync_new(sizeof **wg, offsetof(coro_wg_t, q))) ? 0 : ENOMEM;
}

int coro_wg_destroy(coro_wg_t *wg)
{
    return wg ? coro__sync_destroy(&wg->o, NULL, 0) : EINVAL;
}

int coro_wg_add(coro_wg_t *wg, long delta)
{
    if (!wg)
        return EINVAL;
    int r = coro__sync_enter(&wg->o);
    if (r)
        return r;
    if (delta < 0 && wg->count + delta < 0) /* count >= 0: cannot overflow */
        r = EINVAL;
    else if (delta > 0 && wg->count > LONG_MAX - delta)
        r = EOVERFLOW;
    else if (!(wg->count += delta))
        coro__wake_all(&wg->q, 0);
    coro__sync_leave(&wg->o);
    return r;
}

int coro_wg_done(coro_wg_t *wg)
{
    return coro_wg_add(wg, -1);
}

int coro_wg_wait(coro_wg_t *wg, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!wg)
        return EINVAL;
    if ((r = coro__sync_begin(&wg->o, deadline, &k)))
        return r;
    if (!wg->count) {
        coro__sync_leave(&wg->o);
        return 0;
    }
    return coro__sync_wait(&wg->o, k, &wg->q, NULL, deadline, CORO__WAIT_PLAIN,
                           "coro_wg_wait");
}

/* --------------------------------------------------------------- future */

int coro_future_create(coro_future_t **f)
{
    if (!f)
        return EINVAL;
    return (*f = coro__sync_new(sizeof **f, offsetof(coro_future_t, q))) ? 0 : ENOMEM;
}

int coro_future_destroy(coro_future_t *f)
{
    return f ? coro__sync_destroy(&f->o, NULL, 0) : EINVAL;
}

int coro_future_set(coro_future_t *f, void *value)
{
    struct coro__waiter *w;

    if (!f)
        return EINVAL;
    int r = coro__sync_enter(&f->o);
    if (r)
        return r;
    if (f->set) {
        coro__sync_leave(&f->o);
        return EBUSY;
    }
    f->set = 1;
    f->value = value;
    while ((w = coro__waitq_claim(&f->q))) {
        *(void **)w->elem = value;
        coro__wake(w, 0);
    }
    coro__sync_leave(&f->o);
    return 0;
}

int coro_future_wait(coro_future_t *f, void **value, int64_t deadline)
{
    struct coro__task *k;
    int r;
    void *v;

    if (!f)
        return EINVAL;
    if ((r = coro__sync_begin(&f->o, deadline, &k)))
        return r;
    if (f->set) {
        v = f->value;
        coro__sync_leave(&f->o);
    } else if ((r = coro__sync_wait(&f->o, k, &f->q, &v, deadline, CORO__WAIT_PLAIN,
                                    "coro_future_wait"))) {
        return r;
    }
    if (value)
        *value = v;
    return 0;
}

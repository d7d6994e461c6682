/* sync: wait group and one-shot future (see include/coro.h,
 * "synchronisation"): events that wake every waiter at once. */
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

struct coro_wg {
    struct coro__sched *home; /* the scheduler of the thread that made it */
    long count;               /* outstanding tasks, never below 0 */
    struct coro__waitq q;     /* coroutines waiting for count to reach 0 */
};

struct coro_future {
    struct coro__sched *home;
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
    return (*wg = coro__sync_new(sizeof **wg)) ? 0 : ENOMEM;
}

int coro_wg_destroy(coro_wg_t *wg)
{
    if (!wg)
        return EINVAL;
    if (coro__sync_home(wg->home))
        return EPERM;
    if (coro__waitq_first(&wg->q))
        return EBUSY;
    free(wg);
    return 0;
}

int coro_wg_add(coro_wg_t *wg, long delta)
{
    if (!wg)
        return EINVAL;
    if (coro__sync_home(wg->home))
        return EPERM;
    if (delta < 0 && wg->count + delta < 0) /* count >= 0: cannot overflow */
        return EINVAL;
    if (delta > 0 && wg->count > LONG_MAX - delta)
        return EOVERFLOW;
    wg->count += delta;
    if (!wg->count)
        coro__wake_all(&wg->q, 0);
    return 0;
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
    if ((r = coro__sync_wait_check(wg->home, deadline, &k)))
        return r;
    if (!wg->count)
        return 0;
    return coro__wait_on(k, &wg->q, NULL, deadline, "coro_wg_wait");
}

/* --------------------------------------------------------------- future */

int coro_future_create(coro_future_t **f)
{
    if (!f)
        return EINVAL;
    return (*f = coro__sync_new(sizeof **f)) ? 0 : ENOMEM;
}

int coro_future_destroy(coro_future_t *f)
{
    if (!f)
        return EINVAL;
    if (coro__sync_home(f->home))
        return EPERM;
    if (coro__waitq_first(&f->q))
        return EBUSY;
    free(f);
    return 0;
}

int coro_future_set(coro_future_t *f, void *value)
{
    struct coro__waiter *w;

    if (!f)
        return EINVAL;
    if (coro__sync_home(f->home))
        return EPERM;
    if (f->set)
        return EBUSY;
    f->set = 1;
    f->value = value;
    while ((w = coro__waitq_claim(&f->q))) {
        *(void **)w->elem = value;
        coro__wake(w, 0);
    }
    return 0;
}

int coro_future_wait(coro_future_t *f, void **value, int64_t deadline)
{
    struct coro__task *k;
    int r;

    void *v;

    if (!f)
        return EINVAL;
    if ((r = coro__sync_wait_check(f->home, deadline, &k)))
        return r;
    if (f->set)
        v = f->value;
    else if ((r = coro__wait_on(k, &f->q, &v, deadline, "coro_future_wait")))
        return r;
    if (value)
        *value = v;
    return 0;
}

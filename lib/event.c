/* sync: wait group and one-shot future (see include/coro.h,
 * "synchronisation"): events that wake every waiter at once. */
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

struct coro_wg {
    long count;               /* outstanding tasks, never below 0 */
    struct coro__waitq q;     /* coroutines waiting for count to reach 0 */
};

struct coro_future {
    int set;                  /* 1 once coro_future_set succeeded */
    void *value;
    struct coro__waitq q;     /* coroutines waiting for the value */
};

/* ----------------------------------------------------------- wait group */

int coro_wg_create(coro_wg_t **wg)
{
    if (!wg)
        return EINVAL;
    return (*wg = calloc(1, sizeof **wg)) ? 0 : ENOMEM;
}

int coro_wg_destroy(coro_wg_t *wg)
{
    if (!wg)
        return EINVAL;
    if (wg->q.head)
        return EBUSY;
    free(wg);
    return 0;
}

int coro_wg_add(coro_wg_t *wg, long delta)
{
    if (!wg)
        return EINVAL;
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
    int r;

    if (!wg)
        return EINVAL;
    if ((r = coro__wait_check(deadline)))
        return r;
    if (!wg->count)
        return 0;
    return coro__wait_on(&wg->q, NULL, deadline);
}

/* --------------------------------------------------------------- future */

int coro_future_create(coro_future_t **f)
{
    if (!f)
        return EINVAL;
    return (*f = calloc(1, sizeof **f)) ? 0 : ENOMEM;
}

int coro_future_destroy(coro_future_t *f)
{
    if (!f)
        return EINVAL;
    if (f->q.head)
        return EBUSY;
    free(f);
    return 0;
}

int coro_future_set(coro_future_t *f, void *value)
{
    if (!f)
        return EINVAL;
    if (f->set)
        return EBUSY;
    f->set = 1;
    f->value = value;
    coro__wake_all(&f->q, 0);
    return 0;
}

int coro_future_wait(coro_future_t *f, void **value, int64_t deadline)
{
    int r;

    if (!f)
        return EINVAL;
    if ((r = coro__wait_check(deadline)))
        return r;
    if (!f->set && (r = coro__wait_on(&f->q, NULL, deadline)))
        return r;
    if (value)
        *value = f->value;
    return 0;
}

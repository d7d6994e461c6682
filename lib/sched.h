/* sched: one scheduler per thread (see include/coro.h, "scheduler").
 *
 * Every wait in libcoro (sync, timer, later io) is built on park/unpark:
 * a primitive puts the running coroutine on its own wait list, calls
 * coro__park, and whoever satisfies the wait calls coro__unpark.  The
 * scheduler state is one struct per thread (coro__thread.sched), so a later
 * layer can run one per thread and wake coroutines across threads. */
#ifndef CORO_SCHED_H
#define CORO_SCHED_H

#include "coroutine.h"

#include <stdint.h>

/* 0 when the caller is a coroutine run by this thread's scheduler (made by
 * coro_spawn), EPERM otherwise: blocking calls check this first. */
int coro__sched_check(void);

/* Parks the running scheduled coroutine until one of:
 *   coro__unpark(co, r)       returns r
 *   the deadline passes       returns ETIMEDOUT (deadline -1: never)
 *   coro_cancel(co)           returns ECANCELED
 * A cancel that arrived while the coroutine was not parked makes the next
 * park return ECANCELED at once.  The caller has put itself on its wait
 * list before, and takes itself off when the result is ETIMEDOUT or
 * ECANCELED (an unpark with a result means the waker took it off). */
int coro__park(int64_t deadline);

/* coro__park, naming the wait for coro_run's deadlock report: what is a
 * string that outlives the wait, such as the public function's name
 * ("coro_chan_recv"); NULL says nothing. */
int coro__park_for(int64_t deadline, const char *what);

/* Makes parked co ready again; its coro__park returns result.  Cancels its
 * deadline.  co must be parked, on this thread. */
void coro__unpark(coro_t *co, int result);

#endif

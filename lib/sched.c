/* sched: one scheduler per thread: ready queue, spawn, the run loop,
 * park/unpark, join and cancel (see sched.h and include/coro.h,
 * "scheduler").
 *
 * The run loop lives on the thread's own stack and resumes one ready
 * coroutine at a time with coro_resume; a coroutine comes back to it by
 * parking (coro__park), yielding (it goes to the back of the ready queue)
 * or finishing.  Timers are checked once per round (each ready coroutine
 * runs at most once between two checks) and whenever nothing is ready;
 * with nothing ready the thread sleeps until the nearest deadline. */
#define _GNU_SOURCE
#include "sched.h"
#include "timer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The scheduler's data about one spawned coroutine (its coro->sched).
 * Owned by the scheduler; freed by coro_join, or when a detached coroutine
 * finishes. */
struct task {
    coro_t *co;
    struct coro__sched *s;            /* the scheduler that runs it */
    struct task *next;                /* ready queue link while queued */
    struct task *prev_all, *next_all; /* list of every task not yet freed */
    struct task *joiner;              /* the task parked in coro_join on it */
    struct task *joining;             /* the task it is parked joining */
    void *result;                     /* fn's return value, once finished */
    const char *what;                 /* what its park waits for, or NULL */
    struct coro__timer timer;         /* its deadline while parked with one */
    int park_result;                  /* what its pending coro__park returns */
    unsigned char parked;             /* in coro__park: on no ready queue */
    unsigned char join_park;          /* the park is coro_join's */
    unsigned char cancelled;          /* a cancel waits for its next park */
    unsigned char detached;           /* no handle: freed when it finishes */
    unsigned char finished;
};

/* Parks in a row that may switch straight to the next ready task. */
#define HANDOFF_MAX 64

/* One per thread (coro__thread.sched), made by the first coro_spawn and
 * freed when coro_run returns. */
struct coro__sched {
    struct task *head, *tail;   /* ready queue, FIFO */
    size_t nready;
    size_t round;               /* dispatches left before timers are checked */
    unsigned handoffs;          /* parks that switched straight to the next
                                 * ready task since the loop last ran */
    struct task *running;       /* the task the run loop resumed, or NULL */
    struct task *all;           /* every task not yet freed, newest first */
    struct task *spare;         /* freed tasks kept for reuse (next links) */
    size_t nspare;
    size_t live;                /* tasks not finished */
    struct coro__timers timers;
    int drain;                  /* after a deadlock: 1 = parks other than
                                 * joins fail at once, 2 = every park does */
    int deadlocked;             /* a deadlock was reported in this run */
};

#define SPARE_MAX 256 /* freed tasks a scheduler keeps for reuse */

#define task_of_timer(tm) \
    ((struct task *)((char *)(tm) - offsetof(struct task, timer)))

static void push_ready(struct coro__sched *s, struct task *k)
{
    k->next = NULL;
    if (s->tail)
        s->tail->next = k;
    else
        s->head = k;
    s->tail = k;
    s->nready++;
}

static struct task *pop_ready(struct coro__sched *s)
{
    struct task *k = s->head;

    s->head = k->next;
    if (!s->head)
        s->tail = NULL;
    s->nready--;
    return k;
}

static void free_task(struct coro__sched *s, struct task *k)
{
    if (k->prev_all)
        k->prev_all->next_all = k->next_all;
    else
        s->all = k->next_all;
    if (k->next_all)
        k->next_all->prev_all = k->prev_all;
    k->co->sched = NULL;
    coro_destroy(k->co);
    if (s->nspare < SPARE_MAX) {
        k->next = s->spare;
        s->spare = k;
        s->nspare++;
    } else {
        free(k);
    }
}

/* Frees the scheduler once no task is left. */
static void sched_free(struct coro__sched *s)
{
    while (s->spare) {
        struct task *k = s->spare;
        s->spare = k->next;
        free(k);
    }
    coro__timers_free(&s->timers);
    free(s);
}

static pthread_key_t sched_key;
static pthread_once_t sched_once = PTHREAD_ONCE_INIT;

/* A thread that exits with coroutines spawned after its last coro_run:
 * they never ran; say so and free them. */
static void thread_exit(void *p)
{
    struct coro__sched *s = p;
    size_t n = 0;

    while (s->all) {
        free_task(s, s->all);
        n++;
    }
    if (n)
        fprintf(stderr, "coro: a thread exits with %zu spawned coroutine%s that "
                "never ran (no coro_run after coro_spawn); freed\n", n, n == 1 ? "" : "s");
    sched_free(s);
}

static void sched_key_init(void)
{
    pthread_key_create(&sched_key, thread_exit);
}

static struct coro__sched *sched_get(struct coro__thread *t)
{
    if (!t->sched) {
        pthread_once(&sched_once, sched_key_init);
        t->sched = calloc(1, sizeof(struct coro__sched));
        if (t->sched)
            pthread_setspecific(sched_key, t->sched);
    }
    return t->sched;
}

/* The task of the running coroutine if this thread's scheduler runs it. */
static struct task *self_task(void)
{
    coro_t *co = coro__self();
    struct task *k = co ? co->sched : NULL;

    return k && k->s->running == k ? k : NULL;
}

int coro__sched_check(void)
{
    return self_task() ? 0 : EPERM;
}

static int park(struct task *k, int64_t deadline, int join, const char *what)
{
    struct coro__sched *s = k->s;

    if (k->cancelled) {
        k->cancelled = 0;
        return ECANCELED;
    }
    if (s->drain > join)
        return ECANCELED;
    /* A deadline already passed still goes through the heap: it fires at
     * the next check, in deadline order with the others. */
    if (deadline >= 0)
        coro__timers_add(&s->timers, &k->timer, deadline); /* room reserved at spawn */
    k->parked = 1;
    k->join_park = (unsigned char)join;
    k->what = what;
    if (s->head && !s->timers.n && s->handoffs < HANDOFF_MAX) {
        /* Hand the thread straight to the next ready task: one switch
         * instead of two through the run loop.  Only while no timer is
         * pending, so timers are still checked once a round (the loop's
         * fairness), and bounded, so the loop runs now and then. */
        struct task *next = pop_ready(s);
        s->handoffs++;
        s->running = next;
        coro__transfer(k->co, next->co);
    } else {
        coro_yield(NULL, NULL);
    }
    return k->park_result;
}

int coro__park_for(int64_t deadline, const char *what)
{
    struct task *k = self_task();

    return k ? park(k, deadline, 0, what) : EPERM;
}

int coro__park(int64_t deadline)
{
    return coro__park_for(deadline, NULL);
}

static void unpark(struct task *k, int result)
{
    if (!k->parked)
        return;
    k->parked = 0;
    k->park_result = result;
    if (k->timer.slot)
        coro__timers_remove(&k->s->timers, &k->timer);
    push_ready(k->s, k);
}

void coro__unpark(coro_t *co, int result)
{
    if (co && co->sched)
        unpark(co->sched, result);
}

int coro_spawn(coro_t **out, coro_fn fn, void *arg, const coro_attr_t *attr)
{
    if (!fn)
        return EINVAL;
    struct coro__thread *t = coro__thread_get();
    struct coro__sched *s = t ? sched_get(t) : NULL;
    if (!s)
        return ENOMEM;
    /* Each live task may hold one deadline: room for it now, so that
     * parking never fails. */
    if (s->live >= s->timers.cap && coro__timers_reserve(&s->timers, s->live + 1))
        return ENOMEM;
    struct task *k = s->spare;
    if (k) {
        s->spare = k->next;
        s->nspare--;
    } else if (!(k = malloc(sizeof *k))) {
        return ENOMEM;
    }
    coro_t *co;
    int err = coro_create(&co, fn, arg, attr);
    if (err) {
        free(k);
        return err;
    }
    *k = (struct task){0};
    k->co = co;
    k->s = s;
    k->detached = !out;
    k->next_all = s->all;
    if (s->all)
        s->all->prev_all = k;
    s->all = k;
    co->sched = k;
    s->live++;
    push_ready(s, k);
    if (out)
        *out = co;
    return 0;
}

static void finish(struct coro__sched *s, struct task *k, void *result)
{
    k->finished = 1;
    k->result = result;
    s->live--;
    if (k->detached) {
        free_task(s, k);
    } else if (k->joiner) {
        struct task *j = k->joiner;
        k->joiner = NULL;
        j->joining = NULL;
        unpark(j, 0);
    }
}

static void fire_timers(struct coro__sched *s)
{
    int64_t now = coro_now();
    struct coro__timer *tm;

    while ((tm = coro__timers_pop_due(&s->timers, now)))
        unpark(task_of_timer(tm), ETIMEDOUT);
}

/* Nothing is ready: sleeps until the nearest deadline. */
static void idle(struct coro__sched *s)
{
    int64_t d = coro__timers_first(&s->timers);
    struct timespec ts = {(time_t)(d / 1000000000), (long)(d % 1000000000)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Every live task is parked and no timer is pending: says which, then
 * cancels their waits so that they can unwind and finish.  From then on,
 * parks fail at once (joins excepted, as the coroutine joined can no longer
 * block; a second deadlock, of joins only, fails those too). */
static void deadlock(struct coro__sched *s)
{
    if (!s->deadlocked) {
        s->deadlocked = 1;
        fprintf(stderr, "coro: deadlock: %zu coroutine%s parked with nothing to wake %s:\n",
                s->live, s->live == 1 ? "" : "s", s->live == 1 ? "it" : "them");
        for (struct task *k = s->all; k; k = k->next_all) {
            if (!k->parked)
                continue;
            fprintf(stderr, "coro:   #%" PRIu64 " \"%s\"", coro_id(k->co), coro_name(k->co));
            if (k->what)
                fprintf(stderr, " in %s", k->what);
            if (k->joining)
                fprintf(stderr, " of #%" PRIu64, coro_id(k->joining->co));
            fputc('\n', stderr);
        }
        fputs("coro: their waits return ECANCELED; coro_run returns EDEADLK\n", stderr);
    }
    s->drain++;
    int woken = 0;
    for (struct task *k = s->all; k; k = k->next_all)
        if (k->parked && (s->drain > 1 || !k->join_park)) {
            unpark(k, ECANCELED);
            woken = 1;
        }
    if (!woken && s->drain == 1)
        deadlock(s);
}

static void dispatch(struct coro__sched *s, struct task *k)
{
    void *ret = NULL;

    s->running = k;
    int err = coro_resume(k->co, NULL, &ret);
    if (!err)
        k = s->running; /* parks may have handed the thread on: who came back */
    s->running = NULL;
    if (err) {
        fprintf(stderr, "coro: spawned coroutine #%" PRIu64 " was resumed or "
                "destroyed outside its scheduler (%d)\n", coro_id(k->co), err);
        abort();
    }
    if (coro_state(k->co) == CORO_FINISHED)
        finish(s, k, ret);
    else if (!k->parked)
        push_ready(s, k); /* it yielded */
}

/* Live tasks, none ready, none parked (every park fails by now): some
 * spawned coroutine was resumed outside the scheduler. */
static void lost(struct coro__sched *s)
{
    fprintf(stderr, "coro: %zu spawned coroutine%s neither ready nor parked "
            "(resumed outside the scheduler?)\n", s->live, s->live == 1 ? "" : "s");
    abort();
}

/* Runs until no task is live; 0 or EDEADLK. */
static int loop(struct coro__sched *s)
{
    for (;;) {
        if (!s->head || !s->round) {
            if (s->timers.n)
                fire_timers(s);
            if (!s->head) {
                if (!s->live)
                    break;
                if (s->timers.n)
                    idle(s);
                else if (s->drain < 2)
                    deadlock(s);
                else
                    lost(s);
                continue;
            }
            s->round = s->nready;
        }
        s->round--;
        s->handoffs = 0;
        dispatch(s, pop_ready(s));
    }
    return s->deadlocked ? EDEADLK : 0;
}

int coro_run(void)
{
    struct coro__thread *t = coro__thread_get();

    if (!t)
        return ENOMEM;
    if (t->current)
        return EPERM;
    struct coro__sched *s = t->sched;
    if (!s)
        return 0;
    int err = loop(s);
    while (s->all) {
        struct task *k = s->all;
        fprintf(stderr, "coro: coroutine #%" PRIu64 " \"%s\" finished but was "
                "never joined; freed by coro_run\n", coro_id(k->co), coro_name(k->co));
        free_task(s, k);
    }
    sched_free(s);
    t->sched = NULL;
    pthread_setspecific(sched_key, NULL);
    return err;
}

int coro_join_until(coro_t *co, void **result, int64_t deadline)
{
    struct task *self = self_task();

    if (!self)
        return EPERM;
    if (!co || !co->sched || deadline < -1)
        return EINVAL;
    struct task *k = co->sched;
    if (k->s != self->s)
        return EPERM;
    for (struct task *x = k; x; x = x->joining)
        if (x == self)
            return EDEADLK;
    if (k->detached || k->joiner)
        return EINVAL;
    if (!k->finished) {
        k->joiner = self;
        self->joining = k;
        int err = park(self, deadline, 1, "coro_join");
        if (err) {
            k->joiner = NULL;
            self->joining = NULL;
            return err;
        }
    }
    if (result)
        *result = k->result;
    free_task(self->s, k);
    return 0;
}

int coro_join(coro_t *co, void **result)
{
    return coro_join_until(co, result, -1);
}

int coro_cancel(coro_t *co)
{
    if (!co || !co->sched)
        return EINVAL;
    struct task *k = co->sched;
    struct coro__thread *t = coro__thread_get();
    if (!t || k->s != t->sched)
        return EPERM;
    if (k->finished)
        return ESRCH;
    if (k->parked)
        unpark(k, ECANCELED);
    else
        k->cancelled = 1;
    return 0;
}

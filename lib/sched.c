/* sched: one scheduler per thread: ready queue, spawn, the run loop, the
 * wake protocol's parking side, join, cancel and liveness (see sched.h and
 * include/coro.h, "scheduler").
 *
 * The run loop lives on the thread's own stack and resumes one ready
 * coroutine at a time; a coroutine comes back to it by parking, yielding
 * (it goes to the back of the ready queue) or finishing.  Timers are
 * checked once per round (each ready coroutine runs at most once between
 * two checks), whenever nothing is ready, and every few dozen dispatches
 * of a long round (those a timer wakes then run next: see peek_timers);
 * with nothing ready the thread sleeps in one place, sched_idle, until the
 * nearest deadline.
 *
 * The scheduler lives as long as its thread: made by the first spawn (or
 * the first sync object), freed at thread exit by the per-thread context's
 * teardown, so what later layers keep in it (a reactor, an inbox) outlives
 * any one coro_run. */
#define _GNU_SOURCE
#include "sched.h"
#include "timer.h"
#include "sys.h"
#include "sync.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>




/* Freed tasks a scheduler keeps for reuse: as many as a thread's stack
 * cache keeps stacks, so that a burst whose stacks are reused hot does not
 * malloc and free its tasks either (160 KiB at most, the tasks being 160
 * bytes). */
#define SPARE_MAX CORO__STACK_CACHE_MAX

#define task_of_timer(tm) \
    ((struct coro__task *)((char *)(tm) - offsetof(struct coro__task, timer)))

/* Notes for the user that nobody asked for go to stderr only with
 * CORO_DEBUG set (non-empty, not "0"). */
static int verbose(void)
{
    return coro__debug_env();
}



/* Whether the process has a pool, so that a task's lock is needed. */
static inline int mt(void)
{
    return atomic_load_explicit(&coro__mt, memory_order_relaxed);
}

static inline void task_lock(struct coro__task *k)
{
    if (mt())
        coro__lock(&k->lock);
}

static inline void task_unlock(struct coro__task *k)
{
    if (mt())
        coro__unlock(&k->lock);
}

/* For free_task: 1 (and k is left for the last cancel's message to free)
 * while cancels from other threads are posted to it. */
static int task_pinned(struct coro__task *k)
{
    task_lock(k);
    int pinned = k->pins != 0;
    k->zombie = (unsigned char)pinned;
    task_unlock(k);
    return pinned;
}

static void free_task(struct coro__sched *s, struct coro__task *k)
{
    if (k->prev_all)
        k->prev_all->next_all = k->next_all;
    else
        s->all = k->next_all;
    if (k->next_all)
        k->next_all->prev_all = k->prev_all;
    k->co->sched = NULL;
    coro_destroy(k->co);
    if (task_pinned(k))
        return; /* a cancel from another thread is on its way to it */
    if (s->nspare < SPARE_MAX) {
        k->next = s->spare;
        s->spare = k;
        s->nspare++;
    } else {
        free(k);
    }
}

static void sched_free(struct coro__sched *s)
{
    /* A poster that pushed a wake for a coroutine that has run and ended
     * since may still be about to look at s->sleeping. */
    while (atomic_load_explicit(&s->posters, memory_order_acquire))
        sched_yield();
    if (s->io)
        coro__io_free(s);
    while (s->spare) {
        struct coro__task *k = s->spare;
        s->spare = k->next;
        free(k);
    }
    coro__timers_free(&s->timers);
    free(s);
}

/* Thread exit, first part of the teardown: coroutines spawned after the
 * thread's last coro_run never ran; they are freed (with their stacks,
 * while the stack layer is still there), then the scheduler. */
static void sched_teardown(struct coro__sched *s)
{
    size_t n = 0;

    while (s->all) {
        n += coro_state(s->all->co) == CORO_READY;
        free_task(s, s->all);
    }
    if (n && verbose())
        fprintf(stderr, "coro: a thread exits with %zu spawned coroutine%s that never "
                "ran (no coro_run after coro_spawn); freed\n", n, n == 1 ? "" : "s");
    sched_free(s);
}

/* The per-thread context's teardown calls this first (coroutine.h): the
 * scheduler goes while the stack and descriptor caches are still there. */
void coro__sched_thread_exit(struct coro__thread *t)
{
    if (t->sched)
        sched_teardown(t->sched);
    t->sched = NULL;
}

static struct coro__sched *sched_get(struct coro__thread *t)
{
    if (!t->sched) {
        /* Aligned: the lines other threads write are lines of their own. */
        struct coro__sched *s = aligned_alloc(_Alignof(struct coro__sched),
                                              sizeof(struct coro__sched));
        if (!s)
            return NULL;
        memset(s, 0, sizeof *s);
        static atomic_uint_least64_t serials;
        s->bell = -1;
        s->serial = atomic_fetch_add_explicit(&serials, 1, memory_order_relaxed) + 1;
        atomic_init(&s->inbox, NULL);
        atomic_init(&s->sleeping, CORO__AWAKE);
        atomic_init(&s->posters, 0);
        atomic_init(&s->rings, 0);
        t->sched = s;
    }
    return t->sched;
}

struct coro__sched *coro__sched_here(void)
{
    struct coro__thread *t = coro__thread_get();

    return t ? sched_get(t) : NULL;
}


/* A wait that ends before it starts: a pending cancel, a deadlock being
 * broken, or a deadline already passed.  0 when the wait may park. */
static inline int wait_early(struct coro__task *k, int64_t deadline, enum coro__wait_kind kind)
{
    if (kind < CORO__WAIT_RELOCK && k->cancelled) {
        k->cancelled = 0;
        return ECANCELED;
    }
    if (k->s->drain > (int)kind)
        return ECANCELED;
    if (deadline >= 0 && (deadline == 0 || deadline <= coro_now()))
        return ETIMEDOUT;
    return 0;
}

int coro__wait_early(int64_t deadline)
{
    struct coro__task *k = coro__self_task();

    return k ? wait_early(k, deadline, CORO__WAIT_PLAIN) : EPERM;
}

/* coro__wait_park with a deadline, a pending cancel or a deadlock being
 * broken. */
int coro__park_slow(struct coro__task *k, struct coro__wait *wait, int64_t deadline,
                    enum coro__wait_kind kind, const char *what)
{
    struct coro__sched *s = k->s;
    int r = wait_early(k, deadline, kind);

    if (r) {
        /* Its wakers can reach the record already: take it from them.
         * Losing is impossible while every waker runs on this thread (none
         * ran since the caller queued it); one that won has ended it.  A
         * waker on another thread may have won a remote record: its wake
         * is on its way here, and the wait takes it. */
        if (coro__wait_claim(wait))
            return r;
        if (!wait->remote)
            return wait->result;
        deadline = -1;
    }
    if (deadline >= 0)
        coro__timers_add(&s->timers, &k->timer, deadline); /* room reserved at spawn */
    s->remote_waits += wait->remote;
    r = coro__park_in(k, wait, kind, what);
    s->remote_waits -= wait->remote;
    /* The deadline, if it did not win, is still in the heap. */
    if (k->timer.slot)
        coro__timers_remove(&k->s->timers, &k->timer);
    return r;
}


int coro__park_for(int64_t deadline, const char *what)
{
    struct coro__wait wait;

    if (deadline < -1)
        return EINVAL;
    coro__wait_init(&wait, coro__self());
    return coro__wait_park(&wait, deadline, CORO__WAIT_PLAIN, what);
}

int coro__park(int64_t deadline)
{
    return coro__park_for(deadline, NULL);
}

/* Ends k's wait with result if nobody has claimed it; 1 if it did. */
static int wake_task(struct coro__task *k, int result)
{
    struct coro__wait *w = k->wait;

    if (!w || !coro__wait_claim(w))
        return 0;
    coro__wait_done(w, result, 0);
    return 1;
}

/* ------------------------------------------------------------ inbox
 *
 * Other threads post messages (struct coro__node) to a scheduler: the
 * wakes of its coroutines' remote records, a pool's spawns.  The inbox is
 * a lock-free stack: a poster pushes with a compare-and-swap, the loop
 * takes all of it with one exchange and runs it oldest first.
 *
 * The doorbell is rung only for a scheduler that said it is going to
 * sleep: it stores how it will sleep in s->sleeping, then looks at the
 * inbox once more; a poster pushes, then looks at s->sleeping, and the one
 * poster whose exchange finds it set rings.  Both sides are sequentially
 * consistent, so either the sleeper sees the post or the poster sees the
 * sleeper (the store-load pattern of Dekker's algorithm). */

/* Leaves errno alone: its callers run in the user's flow (a wait for a
 * reply from main, a post from any thread), and a futex wait says EAGAIN
 * or ETIMEDOUT in the normal course. */
static void futex(atomic_int *word, int op, int val, const struct timespec *ts)
{
    int saved = errno;

    syscall(SYS_futex, word, op, val, ts, NULL, FUTEX_BITSET_MATCH_ANY);
    errno = saved;
}

void coro__sched_post(struct coro__sched *s, struct coro__node *n)
{
    atomic_fetch_add_explicit(&s->posters, 1, memory_order_relaxed);
    struct coro__node *old = atomic_load_explicit(&s->inbox, memory_order_relaxed);
    do
        n->next = old;
    while (!atomic_compare_exchange_weak_explicit(&s->inbox, &old, n, memory_order_seq_cst,
                                                  memory_order_relaxed));
    if (atomic_load_explicit(&s->sleeping, memory_order_seq_cst) != CORO__AWAKE) {
        int how = atomic_exchange_explicit(&s->sleeping, CORO__AWAKE, memory_order_seq_cst);
        if (how == CORO__POLL)
            coro__bell_ring(s->bell);
        else if (how == CORO__NAP)
            futex(&s->sleeping, FUTEX_WAKE_PRIVATE, 1, NULL);
        if (how != CORO__AWAKE)
            atomic_fetch_add_explicit(&s->rings, 1, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&s->posters, 1, memory_order_release);
}

/* Runs what was posted, oldest first. */
static void drain(struct coro__sched *s)
{
    struct coro__node *n = atomic_exchange_explicit(&s->inbox, NULL, memory_order_acquire);
    struct coro__node *fifo = NULL;

    while (n) {
        struct coro__node *next = n->next;
        n->next = fifo;
        fifo = n;
        n = next;
    }
    while (fifo) {
        struct coro__node *next = fifo->next;
        fifo->run(s, fifo);
        fifo = next;
    }
}

void coro__sched_drain(struct coro__sched *s)
{
    drain(s);
}

void coro__reply_init(struct coro__reply *r)
{
    struct coro__task *self = coro__self_task();

    atomic_init(&r->done, 0);
    r->parked = self != NULL;
    if (self) {
        coro__wait_init(&r->wait, self->co);
        r->wait.remote = 1;
    }
}

void coro__reply_wait(struct coro__reply *r, const char *what)
{
    if (r->parked) {
        coro__task_park(coro__self_task(), &r->wait, -1, CORO__WAIT_REPLY, what);
        return;
    }
    while (!atomic_load_explicit(&r->done, memory_order_acquire))
        futex(&r->done, FUTEX_WAIT_PRIVATE, 0, NULL);
}

void coro__reply_send(struct coro__reply *r)
{
    if (r->parked) {
        if (coro__wait_claim(&r->wait))
            coro__wait_done(&r->wait, 0, 0);
        return;
    }
    atomic_store_explicit(&r->done, 1, memory_order_release);
    /* r may be gone once done is seen: a wake at an address nobody waits
     * on any more wakes nobody (at worst it fails with EFAULT). */
    futex(&r->done, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static inline void inbox_check(struct coro__sched *s)
{
    if (atomic_load_explicit(&s->inbox, memory_order_relaxed))
        drain(s);
}

#define task_of_post(n) \
    ((struct coro__task *)((char *)(n) - offsetof(struct coro__task, post)))

static void post_ready(struct coro__sched *s, struct coro__node *n)
{
    coro__push_ready(s, task_of_post(n));
}

void coro__wake_remote(struct coro__task *k)
{
    struct coro__sched *s = k->s;

    if (s == coro__sched_current()) {
        coro__push_ready(s, k);
        return;
    }
    k->post.run = post_ready;
    coro__sched_post(s, &k->post);
}

atomic_int coro__mt;

void coro__sched_hold(struct coro__sched *s, int d)
{
    s->holds = (size_t)((long)s->holds + d);
}

void coro__sched_bell_stats(const struct coro__sched *s, unsigned long *sleeps,
                            unsigned long *rings)
{
    *sleeps = s->sleeps;
    *rings = atomic_load_explicit(&s->rings, memory_order_relaxed);
}

void coro__unpark(coro_t *co, int result)
{
    if (co && co->sched)
        wake_task(co->sched, result);
}

int coro_spawn(coro_t **out, coro_fn fn, void *arg, const coro_attr_t *attr)
{
    if (!fn)
        return EINVAL;
    struct coro__sched *s = coro__sched_here();
    if (!s)
        return ENOMEM;
    /* Each live task may hold one deadline: room for it now, so that
     * parking never fails. */
    if (s->live >= s->timers.cap && coro__timers_reserve(&s->timers, s->live + 1))
        return ENOMEM;
    struct coro__task *k = s->spare;
    if (k) {
        s->spare = k->next;
        s->nspare--;
    } else if (!(k = coro__malloc(sizeof *k))) {
        return ENOMEM;
    }
    coro_t *co;
    /* Its stack comes at its first run: a million queued coroutines cost
     * their descriptors, not a million touched stack pages. */
    int err = coro__create(&co, fn, arg, attr, CORO__LAZY_STACK);
    if (err) {
        free(k);
        return err;
    }
    *k = (struct coro__task){0};
    atomic_init(&k->lock, 0);
    k->co = co;
    k->s = s;
    k->detached = !out;
    k->next_all = s->all;
    if (s->all)
        s->all->prev_all = k;
    s->all = k;
    co->sched = k;
    s->live++;
    coro__push_ready(s, k);
    if (out)
        *out = co;
    return 0;
}

/* The join of a task of another thread's scheduler (a pool's): the
 * record the finish of the task claims, with room for what it hands
 * over, since the task is freed as it finishes. */
struct far_join {
    struct coro__wait wait;
    void *result;
    int err;
};

/* Only a far join's record is remote (a local joiner's never is). */
#define far_of(j) ((struct far_join *)(j))

static void finish(struct coro__sched *s, struct coro__task *k, void *result)
{
    s->live--;
    /* The stack is done with: back to the cache now, not when (or if) a
     * joiner comes. */
    coro__drop_stack(k->co);
    if (k->on_finish)
        k->on_finish(k);
    task_lock(k);
    k->finished = 1;
    k->result = result;
    struct coro__wait *j = k->joiner;
    k->joiner = NULL;
    int won = j && coro__wait_claim(j);
    struct far_join *far = won && j->remote ? far_of(j) : NULL;
    if (far) {
        /* A joiner on another thread takes the result here, and the task
         * goes as a detached one does. */
        far->result = result;
        far->err = k->err;
    }
    task_unlock(k);
    if (k->detached || far)
        free_task(s, k);
    if (won)
        coro__wait_done(j, 0, 0);
}

/* Ends the waits whose deadlines have passed.  Those coroutines run next,
 * in deadline order, after any a timer woke before that have not run yet
 * and before the rest of the ready queue (Go's runnext does the same for
 * a timer's goroutine): a wake is never later than its deadline by more
 * than the run it waits for, and a sleeper that finishes gives its stack
 * back while it is hot, for the next fresh coroutine to take (a burst of
 * sleepers keeps a few hundred stacks live, not all of them). */
static void fire_timers(struct coro__sched *s, int64_t now)
{
    struct coro__task *first = NULL, *last = NULL;
    struct coro__timer *tm;
    size_t n = 0;

    while ((tm = coro__timers_pop_due(&s->timers, now))) {
        struct coro__task *k = task_of_timer(tm);
        if (!k->wait || !coro__wait_claim(k->wait))
            continue;
        /* coro__wait_done's work, but not to the back: timers are this
         * scheduler's own, and so are their tasks. */
        k->wait->result = ETIMEDOUT;
        k->wait->index = 0;
        if (last)
            last->next = k;
        else
            first = k;
        last = k;
        n++;
    }
    if (!first)
        return;
    struct coro__task **at = s->fired ? &s->fired->next : &s->head;
    last->next = *at;
    *at = first;
    if (!last->next)
        s->tail = last;
    s->fired = last;
    s->nready += n;
    s->round += n;
}

/* Within a long round, every PEEK_EVERY dispatches: deadlines passed
 * meanwhile do not wait for the round's end. */
#define PEEK_EVERY 64

/* Nothing is ready: the thread sleeps until deadline (-1: until woken).
 * The one place a scheduler waits: in the reactor once there is one. */
/* After a post woke the thread, more tend to follow (a burst of spawns or
 * wakes from a busy thread): it looks at its inbox for a few microseconds
 * before it sleeps again, so that such a burst costs a ring or two, not
 * one per post that finds it asleep.  1 when a post came. */
#define SPIN_NS 20000

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

static int spin(struct coro__sched *s, int64_t deadline)
{
    int64_t end = coro_now() + SPIN_NS;

    if (deadline >= 0 && deadline < end)
        end = deadline;
    do {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(&s->inbox, memory_order_relaxed))
                return 1; /* and the next idle spins again */
            relax();
        }
    } while (coro_now() < end);
    s->rung = 0;
    return 0;
}

static void sched_idle(struct coro__sched *s, int64_t deadline)
{
    struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};

    if (!s->holds && !s->remote_waits) {
        /* No other thread can post here: sleep without a doorbell. */
        if (s->io)
            coro__io_poll(s, deadline);
        else
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
            }
        return;
    }
    int how = CORO__NAP;
    if (s->io) {
        if (s->bell < 0)
            s->bell = coro__io_bell(s);
        if (s->bell < 0) {
            /* No doorbell to be had: look at the inbox every millisecond. */
            int64_t soon = coro_now() + 1000000;
            coro__io_poll(s, deadline < 0 || deadline > soon ? soon : deadline);
            return;
        }
        how = CORO__POLL;
    }
    if (s->rung && spin(s, deadline))
        return;
    s->sleeps++;
    atomic_store_explicit(&s->sleeping, how, memory_order_seq_cst);
    if (!atomic_load_explicit(&s->inbox, memory_order_seq_cst)) {
        if (how == CORO__POLL)
            coro__io_poll(s, deadline);
        else
            futex(&s->sleeping, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, how,
                  deadline < 0 ? NULL : &ts);
    }
    /* A poster's exchange took the flag: the ring woke it (or is on its
     * way), and more posts are likely to follow. */
    s->rung = atomic_exchange_explicit(&s->sleeping, CORO__AWAKE, memory_order_relaxed) ==
              CORO__AWAKE;
}

/* Something outside the ready queue and the timers can still end a wait. */
static int io_alive(const struct coro__sched *s)
{
    return s->io && coro__io_alive(s);
}

/* A task waits with nothing left that could wake it. */
static int stuck(const struct coro__task *k)
{
    return k->wait && !coro__wait_claimed(k->wait);
}

static void report(struct coro__sched *s)
{
    if (s->stopping)
        return; /* coro_shutdown: the coroutines are being ended on purpose */
    fprintf(stderr, "coro: deadlock: %zu coroutine%s parked with nothing to wake %s:\n",
            s->live, s->live == 1 ? "" : "s", s->live == 1 ? "it" : "them");
    for (struct coro__task *k = s->all; k; k = k->next_all) {
        if (!stuck(k))
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

/* Liveness: nothing is ready, no deadline is pending, and nothing else
 * (no fd, signal or offload waited for, no remote record another thread
 * could end, no pool that may send spawns) can end a wait, yet tasks are
 * live: every one of them is parked for good.  Says which, then breaks the
 * deadlock in stages, each failing the waits of one more kind and, from
 * then on, every new wait of that kind at once, so the coroutines can only
 * unwind: first plain waits, then (if only joins are left) joins, last
 * condition waits taking their mutex back.  0 once something was woken;
 * -1 when nothing could be (a task is neither ready nor parked). */
static int deadlock(struct coro__sched *s)
{
    if (!s->deadlocked) {
        s->deadlocked = !s->stopping;
        report(s);
    }
    while (s->drain <= CORO__WAIT_RELOCK) {
        int woken = 0;
        s->drain++;
        for (struct coro__task *k = s->all; k; k = k->next_all)
            if (stuck(k) && k->kind < s->drain)
                woken |= wake_task(k, ECANCELED);
        if (woken)
            return 0;
    }
    return -1;
}

void coro__task_no_stack(struct coro__task *k)
{
    struct coro__sched *s = k->s;

    k->err = ENOMEM;
    if (verbose())
        fprintf(stderr, "coro: spawned coroutine #%" PRIu64 " \"%s\" gets no stack "
                "(ENOMEM): it never runs\n", coro_id(k->co), coro_name(k->co));
    /* Its state stays READY; finish treats it as done with no result. */
    coro_fn fn = k->co->fn;
    void *arg = k->co->arg;
    finish(s, k, NULL);
    coro__pool_never_ran(fn, arg); /* a pool's: the pool stops counting it */
}

static void dispatch(struct coro__sched *s, struct coro__task *k)
{
    void *ret = NULL;

    s->running = k;
    int err = coro__resume_spawned(k->co, &ret);
    if (!err)
        k = s->running; /* parks may have handed the thread on: who came back */
    s->running = NULL;
    if (err) {
        coro__task_no_stack(k);
        return;
    }
    if (coro_state(k->co) == CORO_FINISHED)
        finish(s, k, ret);
    else if (!k->wait)
        coro__push_ready(s, k); /* it yielded */
}


/* A yield hands the thread straight to the next ready task when a park
 * would (see coro__park_in): one switch instead of two through the run
 * loop, the yielder at the back of the queue as if the loop had queued it.
 * Only to a task that ran before: a first run may find no stack, and the
 * yielder would then be queued twice.  Not inlined into coro_yield: its
 * registers would cost the plain coroutines' yield a frame. */
__attribute__((noinline)) int coro__sched_yield(coro_t *co, void *out, void **in)
{
    struct coro__task *k = co->sched;
    struct coro__sched *s = k->s;

    if (!coro__may_hand_off(s) || s->head->co->state != CORO_SUSPENDED)
        return coro__yield_to_caller(co, out, in); /* out: dropped by dispatch */
    struct coro__task *next = coro__pop_ready(s);
    coro__push_ready(s, k);
    s->handoffs++;
    s->running = next;
    return coro__transfer_suspended(co, next->co, in);
}

/* Live tasks, none ready, none parked: some spawned coroutine was resumed
 * outside the scheduler. */
static _Noreturn void lost(struct coro__sched *s)
{
    fprintf(stderr, "coro: %zu spawned coroutine%s neither ready nor parked "
            "(resumed outside the scheduler?)\n", s->live, s->live == 1 ? "" : "s");
    abort();
}

/* Runs until no task is live, or done(arg); 0 or EDEADLK. */
static int loop(struct coro__sched *s, int (*done)(void *), void *arg)
{
    for (;;) {
        inbox_check(s);
        if (done && done(arg))
            break;
        if (!s->head || !s->round) {
            if (s->timers.n)
                fire_timers(s, coro_now());
            if (!s->head) {
                if (!s->live && !s->holds)
                    break;
                int64_t d = coro__timers_first(&s->timers), again = -1;
                if (s->idle && s->idle(s, s->idle_arg, &again))
                    continue; /* it found work (a pool's thread took spawns) */
                if (again >= 0 && (d < 0 || again < d))
                    d = again;
                if (s->timers.n || io_alive(s) || s->remote_waits || s->holds)
                    sched_idle(s, d);
                else if (deadlock(s))
                    lost(s);
                continue;
            }
            /* Once a round, even when the ready queue never empties, the
             * reactor is looked at (zero timeout): busy coroutines do not
             * starve I/O. */
            if (io_alive(s))
                coro__io_poll(s, 0);
            s->round = s->nready;
        }
        else if (s->timers.n && ++s->peek >= PEEK_EVERY) {
            int64_t now = coro_now();
            s->peek = 0;
            if (coro__timers_first(&s->timers) <= now)
                fire_timers(s, now);
        }
        s->round--;
        s->handoffs = 0;
        dispatch(s, coro__pop_ready(s));
    }
    return s->deadlocked ? EDEADLK : 0;
}

/* The end of a coro_run: nothing is live; what is left goes. */
static void run_end(struct coro__sched *s)
{
    while (s->all) {
        struct coro__task *k = s->all;
        if (verbose())
            fprintf(stderr, "coro: coroutine #%" PRIu64 " \"%s\" finished but was "
                    "never joined; freed by coro_run\n", coro_id(k->co), coro_name(k->co));
        free_task(s, k);
    }
    s->drain = 0;
    s->deadlocked = 0;
    s->stopping = 0;
}

int coro__sched_run_until(int (*done)(void *), void *arg)
{
    struct coro__thread *t = coro__thread_get();

    if (!t)
        return ENOMEM;
    if (t->current)
        return EPERM;
    struct coro__sched *s = t->sched;
    if (!s)
        return 0;
    int err = loop(s, done, arg);
    if (!done) {
        run_end(s); /* the end of a coro_run: nothing is live */
    } else {
        /* Stopped for done(arg) (a group waited for from the own flow),
         * maybe with others left: a deadlock broken meanwhile is over, but
         * not a coro_shutdown, and the finished tasks' handles stay for
         * their joiners until the coro_run that ends. */
        s->drain = s->stopping;
        s->deadlocked = 0;
    }
    return err;
}

int coro_run(void)
{
    return coro__sched_run_until(NULL, NULL);
}

int coro_shutdown(void)
{
    struct coro__sched *s = coro__sched_current();
    struct coro__task *self = coro__self_task();

    if (coro__self() && !self)
        return EPERM;
    if (!s)
        return 0; /* nothing was ever spawned here: nothing to end */
    s->stopping = 1;
    if (s->drain < 1)
        s->drain = 1;
    for (struct coro__task *k = s->all; k; k = k->next_all)
        if (k != self && !k->finished && !(k->wait && k->kind != CORO__WAIT_PLAIN) &&
            !wake_task(k, ECANCELED))
            k->cancelled = 1;
    return 0;
}

static void post_free(struct coro__sched *s, struct coro__node *n)
{
    free_task(s, task_of_post(n));
}

static int join_far(struct coro__task *self, struct coro__task *target, void **result,
                    int64_t deadline)
{
    struct far_join far = {.err = 0};
    struct coro__task *k = target; /* its joiner is on this stack until the
                                    * wait ends, then off it (under lock) */

    if (!k->s->pooled)
        return EPERM;
    coro__wait_init(&far.wait, self->co);
    far.wait.remote = 1;
    coro__lock(&k->lock);
    if (k->detached || k->joiner) {
        coro__unlock(&k->lock);
        return EINVAL;
    }
    if (k->finished) {
        /* Its thread frees it, after this has read it. */
        far.err = k->err;
        far.result = k->result;
        k->post.run = post_free;
        coro__sched_post(k->s, &k->post);
        coro__unlock(&k->lock);
    } else {
        k->joiner = &far.wait;
        coro__unlock(&k->lock);
        int err = coro__task_park(self, &far.wait, deadline, CORO__WAIT_JOIN, "coro_join");
        if (err) {
            /* Its finish did not win the record, so k is still there,
             * finished or not, and joinable again. */
            coro__lock(&k->lock);
            if (k->joiner == &far.wait)
                k->joiner = NULL;
            coro__unlock(&k->lock);
            return err;
        }
    }
    if (result && !far.err)
        *result = far.result;
    return far.err;
}

int coro_join(coro_t *co, void **result, int64_t deadline)
{
    struct coro__task *self = coro__self_task();

    if (!self)
        return EPERM;
    if (!co || !co->sched || deadline < -1)
        return EINVAL;
    struct coro__task *k = co->sched;
    if (k->s != self->s)
        return join_far(self, k, result, deadline);
    for (struct coro__task *x = k; x; x = x->joining)
        if (x == self)
            return EDEADLK;
    struct coro__wait wait;
    coro__wait_init(&wait, self->co);
    /* Checked and taken under one lock, as join_far does: with two, a
     * join from another thread could come between them. */
    task_lock(k);
    int busy = k->detached || k->joiner;
    int waits = !busy && !k->finished;
    if (waits)
        k->joiner = &wait;
    task_unlock(k);
    if (busy)
        return EINVAL;
    if (waits) {
        self->joining = k;
        int err = coro__wait_park(&wait, deadline, CORO__WAIT_JOIN, "coro_join");
        self->joining = NULL;
        task_lock(k);
        if (k->joiner == &wait)
            k->joiner = NULL;
        task_unlock(k);
        if (err)
            return err;
    }
    int err = k->err;
    if (result && !err)
        *result = k->result;
    free_task(self->s, k);
    return err;
}

/* Cancels k, a task of this thread. */
static void cancel_here(struct coro__task *k)
{
    /* No wait now, one that cannot be cancelled, or one someone else
     * ended first: the cancel ends the next one. */
    if (!(k->wait && k->kind < CORO__WAIT_RELOCK && wake_task(k, ECANCELED)))
        k->cancelled = 1;
}

/* A cancel from another thread, on its way to the task's. */
struct far_cancel {
    struct coro__node node;
    struct coro__task *k;
};

static void run_cancel(struct coro__sched *s, struct coro__node *n)
{
    struct coro__task *k = ((struct far_cancel *)n)->k;

    (void)s;
    free(n);
    coro__lock(&k->lock);
    k->pins--;
    int gone = k->zombie && !k->pins;
    coro__unlock(&k->lock);
    if (gone)
        free(k); /* freed while the cancel came: it is done with */
    else if (!k->zombie && !k->finished)
        cancel_here(k);
}

static int cancel_far(struct coro__task *k)
{
    if (!k->s->pooled)
        return EPERM;
    struct far_cancel *c = coro__malloc(sizeof *c);
    if (!c)
        return ENOMEM;
    c->k = k;
    c->node.run = run_cancel;
    coro__lock(&k->lock);
    int finished = k->finished;
    if (!finished) {
        k->pins++;
        coro__sched_post(k->s, &c->node);
    }
    coro__unlock(&k->lock);
    if (finished)
        free(c);
    return finished ? ESRCH : 0;
}

int coro_cancel(coro_t *co)
{
    if (!co || !co->sched)
        return EINVAL;
    struct coro__task *k = co->sched;
    if (k->s != coro__sched_current())
        return cancel_far(k);
    if (k->finished)
        return ESRCH;
    cancel_here(k);
    return 0;
}

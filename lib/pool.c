/* pool: n threads, each running its own scheduler (see include/coro.h,
 * "threads").  Coroutines are placed on a thread when spawned and never
 * move; what crosses threads is the spawn itself, a message posted to the
 * target scheduler's inbox (sched.h, coro__sched_post), which its loop
 * runs between two coroutines: a spawn to a busy thread costs no system
 * call, and a burst to a sleeping one a single doorbell.
 *
 * A pool thread holds its scheduler's loop open (coro__sched_hold), so it
 * sleeps, rather than returns, with nothing to run, until destroy posts
 * it the message to stop.
 *
 * A CORO_ANY spawn goes round robin to a thread's pending list instead,
 * and a kick (one message, posted only when none is on its way) has the
 * thread take its list.  A thread with nothing to run takes spawns that
 * have waited STEAL_NS on another thread's list: that thread is busy (a
 * coroutine keeps it), and the spawns have not started, so nothing moves
 * but a message.  A spawn that finds its thread's kick still on its way
 * wakes a sleeping thread to come and look.
 *
 * The pool counts its live coroutines (spawned and not finished): each
 * runs inside a trampoline that drops the count as it returns, and
 * coro_pool_wait waits for zero on a condition variable. */
#define _GNU_SOURCE
#include "coro.h"
#include "sched.h"
#include "sync.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL_MAX 1024 /* threads in one pool */
#define STEAL_NS 5000000 /* how long a spawn waits on a busy thread's list
                          * before an idle one takes it */
#define STEAL_MAX 64     /* spawns one steal takes */

/* The answer to a spawn that asked for a handle, on the spawner's stack,
 * which waits for it. */
struct reply {
    struct coro__reply wait;
    coro_t *co;
    int err;
};

/* One spawn on its way to a thread: a message to its scheduler. */
struct spawn {
    struct coro__node node;
    struct member *m;
    coro_fn fn;
    void *arg;
    int has_attr;
    coro_attr_t attr;
    struct reply *reply;        /* a handle is wanted, or NULL */
    coro_group_t *group;        /* coro_group_spawn_on's, which counts it */
    unsigned cancels;           /* the group's cancels when it was sent */
    struct spawn *pnext;        /* on a pending list */
    int64_t at;                 /* when it was put there */
};

/* One pool thread. */
struct member {
    struct coro_pool *pool;
    unsigned index;
    pthread_t thread;
    int started;
    struct coro__sched *s;      /* its scheduler, once it has started */
    atomic_int closed;          /* its spawns are refused: it shut down */
    int stop;                   /* destroy: the loop ends (its thread only) */
    struct coro__node shut, quit; /* the messages of shutdown and destroy */
    pthread_mutex_t plock;      /* guards the pending list */
    struct spawn *phead, *ptail;  /* CORO_ANY spawns not taken yet */
    atomic_uint npending;       /* how many: a look that writes nothing */
    atomic_int kicked;          /* a kick is on its way to the thread */
    struct coro__node kick;
};

struct coro_pool {
    unsigned n;
    atomic_uint next;           /* CORO_ANY: round robin */
    pthread_mutex_t lock;       /* guards live, closed, ready, with done */
    pthread_cond_t done;        /* live reached 0, or a thread started */
    size_t live;                /* spawned, not finished */
    unsigned ready;             /* threads that have started (or failed to) */
    int closed;                 /* shut down: spawns refused */
    struct member m[];
};

/* The pool thread the caller runs on, or NULL. */
static __thread struct member *here;

#define member_of(n, field) \
    ((struct member *)((char *)(n) - offsetof(struct member, field)))

/* One of p's coroutines finished, or will never run. */
static void live_done(struct coro_pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (!--p->live)
        pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->lock);
}

/* A spawn that will never run, and that the pool has not counted: its
 * group stops counting it. */
static void discard(struct spawn *sp)
{
    if (sp->group)
        coro__group_arrive(sp->group, sp->cancels, NULL, 0);
    free(sp);
}

/* A spawn that will never run: its group and the pool stop counting it. */
static void drop(struct spawn *sp)
{
    struct coro_pool *p = sp->m->pool;

    discard(sp);
    live_done(p);
}

/* Every pool coroutine runs in here, so that the pool knows when it ends;
 * its result is fn's, for coro_join on its thread. */
static void *trampoline(void *arg)
{
    struct spawn *sp = arg;
    struct coro_pool *p = sp->m->pool;
    coro_fn fn = sp->fn;
    void *fa = sp->arg;

    free(sp);
    void *r = fn(fa);
    coro__group_finish();
    live_done(p);
    return r;
}

void coro__pool_never_ran(coro_fn fn, void *arg)
{
    if (fn != trampoline)
        return;
    struct spawn *sp = arg;
    struct coro_pool *p = sp->m->pool;

    free(sp);
    live_done(p);
}

/* Makes sp's coroutine on this thread, a member of sp's group if it has
 * one, with its handle in *co unless co is NULL (then it is detached).
 * 0, or coro_spawn's error, and sp is dropped. */
static int make(struct spawn *sp, coro_t **co)
{
    coro_group_t *g = sp->group; /* sp is the coroutine's from the spawn */
    unsigned cancels = sp->cancels;
    coro_t *c = NULL;
    int err = coro_spawn(co || g ? &c : NULL, trampoline, sp, sp->has_attr ? &sp->attr : NULL);

    if (err) {
        drop(sp);
        return err;
    }
    if (g)
        coro__group_arrive(g, cancels, c, !co);
    if (co)
        *co = c;
    return 0;
}

/* A spawn arrives on its thread.  A thread whose coroutines were all
 * ended (coro_pool_shutdown, or a coro_shutdown of one of its own) takes
 * no more: what still comes never runs and stops counting.  A spawner
 * that asked for a handle is told how it went. */
static void run_spawn(struct coro__sched *s, struct coro__node *n)
{
    struct spawn *sp = (struct spawn *)n;
    struct reply *r = sp->reply;
    coro_t *co = NULL;
    int err = ECANCELED;

    if (s->stopping)
        atomic_store_explicit(&sp->m->closed, 1, memory_order_relaxed);
    if (atomic_load_explicit(&sp->m->closed, memory_order_relaxed))
        drop(sp);
    else
        err = make(sp, r ? &co : NULL); /* drops sp when no memory here */
    if (r) {
        r->co = co;
        r->err = err;
        coro__reply_send(&r->wait);
    }
}

/* Posts sp, which wants a handle, to m and waits for the answer. */
static int spawn_far(struct member *m, struct spawn *sp, coro_t **co)
{
    struct reply r = {.err = 0};
    struct spawn *msg = sp; /* r is on this stack until the answer came */

    coro__reply_init(&r.wait);
    msg->reply = &r;
    coro__sched_post(m->s, &msg->node);
    coro__reply_wait(&r.wait, "coro_pool_spawn");
    if (!r.err)
        *co = r.co;
    return r.err;
}

/* ------------------------------------------------ pending, kick, steal */

/* Takes up to max spawns off m's pending list (only those put there before
 * older_than, if >= 0), oldest first; *next is when the first one left
 * will be old enough (-1: none left). */
static struct spawn *unpend(struct member *m, size_t max, int64_t older_than, int64_t *next)
{
    struct spawn *got = NULL, **tail = &got;

    pthread_mutex_lock(&m->plock);
    while (m->phead && max && (older_than < 0 || m->phead->at < older_than)) {
        struct spawn *sp = m->phead;
        m->phead = sp->pnext;
        sp->pnext = NULL;
        *tail = sp;
        tail = &sp->pnext;
        max--;
        atomic_fetch_sub_explicit(&m->npending, 1, memory_order_relaxed);
    }
    if (!m->phead)
        m->ptail = NULL;
    if (next)
        *next = m->phead ? m->phead->at + STEAL_NS : -1;
    pthread_mutex_unlock(&m->plock);
    return got;
}

/* Spawns (or drops, when closed) what was taken, on this thread, as
 * member me's. */
static void take(struct coro__sched *s, struct member *me, struct spawn *list)
{
    while (list) {
        struct spawn *sp = list;
        list = sp->pnext;
        sp->m = me;
        run_spawn(s, &sp->node);
    }
}

static void run_kick(struct coro__sched *s, struct coro__node *n)
{
    struct member *m = member_of(n, kick);

    /* Cleared first: a spawn pended from now on posts a new kick. */
    atomic_store_explicit(&m->kicked, 0, memory_order_seq_cst);
    take(s, m, unpend(m, SIZE_MAX, -1, NULL));
}

/* Posts m its kick unless one is on its way; 1 if this posted it. */
static int kick(struct member *m)
{
    if (atomic_exchange_explicit(&m->kicked, 1, memory_order_seq_cst))
        return 0;
    m->kick.run = run_kick;
    coro__sched_post(m->s, &m->kick);
    return 1;
}

/* A CORO_ANY spawn for m.  If m's last kick has not been taken yet (m is
 * busy, or waking), a sleeping thread is woken to come and look
 * (idle_steal). */
static void pend(struct coro_pool *p, struct member *m, struct spawn *sp)
{
    sp->at = coro_now();
    sp->pnext = NULL;
    pthread_mutex_lock(&m->plock);
    if (m->ptail)
        m->ptail->pnext = sp;
    else
        m->phead = sp;
    m->ptail = sp;
    atomic_fetch_add_explicit(&m->npending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&m->plock);
    if (kick(m))
        return;
    for (unsigned i = 1; i < p->n; i++) {
        struct member *o = &p->m[(m->index + i) % p->n];
        if (atomic_load_explicit(&o->s->sleeping, memory_order_relaxed) != CORO__AWAKE &&
            kick(o))
            break;
    }
}

/* The idle hook of a pool thread (sched.h): takes spawns that have waited
 * STEAL_NS on another thread's list (at most STEAL_MAX at a time). */
static int idle_steal(struct coro__sched *s, void *arg, int64_t *again)
{
    struct member *me = arg;
    struct coro_pool *p = me->pool;
    int64_t now = coro_now();

    *again = -1;
    if (atomic_load_explicit(&me->closed, memory_order_relaxed) || s->stopping)
        return 0;
    for (unsigned i = 1; i < p->n; i++) {
        struct member *v = &p->m[(me->index + i) % p->n];
        int64_t next;
        /* Most lists are empty: a glance, not a lock, whose line would
         * bounce between the threads at every idle moment. */
        if (!atomic_load_explicit(&v->npending, memory_order_relaxed))
            continue;
        struct spawn *got = unpend(v, STEAL_MAX, now - STEAL_NS, &next);
        if (got) {
            take(s, me, got);
            return 1;
        }
        if (next >= 0 && (*again < 0 || next < *again))
            *again = next;
    }
    return 0;
}

static void run_shutdown(struct coro__sched *s, struct coro__node *n)
{
    struct member *m = member_of(n, shut);

    atomic_store_explicit(&m->closed, 1, memory_order_relaxed);
    take(s, m, unpend(m, SIZE_MAX, -1, NULL)); /* dropped: closed */
    coro_shutdown(); /* every coroutine here unwinds */
}

static void run_quit(struct coro__sched *s, struct coro__node *n)
{
    (void)s;
    member_of(n, quit)->stop = 1;
}

static int stopped(void *arg)
{
    return ((struct member *)arg)->stop;
}

static void *thread_main(void *arg)
{
    struct member *m = arg;
    struct coro_pool *p = m->pool;
    struct coro__sched *s = coro__sched_here();

    here = m;
    if (s) {
        s->pooled = 1;
        s->idle = idle_steal;
        s->idle_arg = m;
    }
    pthread_mutex_lock(&p->lock);
    m->s = s;
    p->ready++;
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->lock);
    if (s) {
        coro__sched_hold(s, 1);
        coro__sched_run_until(stopped, m);
        coro__sched_hold(s, -1);
        /* Coroutines made here with coro_spawn are not the pool's to
         * count: the thread ends them before it goes, so that none is
         * freed still queued on a shared object. */
        if (s->live) {
            coro_shutdown();
            coro_run();
        }
        /* Others may still hold objects biased to this thread. */
        coro__sync_share_all(s);
    }
    here = NULL;
    return NULL;
}

/* Posts each started thread the message to stop, and joins them. */
static void stop_threads(struct coro_pool *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct member *m = &p->m[i];
        if (m->s) {
            m->quit.run = run_quit;
            coro__sched_post(m->s, &m->quit);
        }
    }
    for (unsigned i = 0; i < n; i++)
        if (p->m[i].started)
            pthread_join(p->m[i].thread, NULL);
}

static void pool_free(struct coro_pool *p)
{
    for (unsigned i = 0; i < p->n; i++)
        if (p->m[i].pool)
            pthread_mutex_destroy(&p->m[i].plock);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int coro_pool_create(coro_pool_t **pool, unsigned nthreads)
{
    if (!pool || nthreads == 0 || nthreads > POOL_MAX)
        return EINVAL;
    int saved = errno, err = 0;
    struct coro_pool *p = coro__calloc(1, sizeof *p + nthreads * sizeof p->m[0]);
    if (!p)
        return ENOMEM;
    p->n = nthreads;
    atomic_store_explicit(&coro__mt, 1, memory_order_relaxed);
    coro__stack_atfork();
    coro__registry_atfork();
    coro__sys_atfork();
    coro__offload_atfork();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->lock, NULL);
    /* All of them first: a thread's idle hook looks at the others'. */
    for (unsigned i = 0; i < nthreads; i++) {
        struct member *m = &p->m[i];
        m->pool = p;
        m->index = i;
        atomic_init(&m->closed, 0);
        atomic_init(&m->kicked, 0);
        atomic_init(&m->npending, 0);
        pthread_mutex_init(&m->plock, NULL);
    }
    unsigned started = 0;
    for (; started < nthreads; started++) {
        struct member *m = &p->m[started];
        if ((err = pthread_create(&m->thread, NULL, thread_main, m)) != 0)
            break;
        m->started = 1;
    }
    /* Each thread says when its scheduler is there (or could not be). */
    pthread_mutex_lock(&p->lock);
    while (p->ready < started)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < started && !err; i++)
        if (!p->m[i].s)
            err = ENOMEM;
    if (err) {
        stop_threads(p, started);
        pool_free(p);
        errno = saved;
        return err;
    }
    errno = saved;
    *pool = p;
    return 0;
}

unsigned coro_pool_size(const coro_pool_t *pool)
{
    return pool ? pool->n : 0;
}

int coro_pool_thread(void)
{
    return here ? (int)here->index : -1;
}

/* coro_pool_spawn, into group g if not NULL. */
static int spawn_on(coro_pool_t *pool, int thread, coro_group_t *g, coro_t **co, coro_fn fn,
                    void *arg, const coro_attr_t *attr)
{
    if (!pool || !fn || (thread != CORO_ANY && (thread < 0 || (unsigned)thread >= pool->n)))
        return EINVAL;
    int any = thread == CORO_ANY;
    if (any) {
        /* Round robin over the threads still open: a coro_shutdown of one
         * thread's coroutines closes that thread, not the pool. */
        for (unsigned k = 0; k < pool->n; k++) {
            thread = (int)(atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed) %
                           pool->n);
            if (!atomic_load_explicit(&pool->m[thread].closed, memory_order_relaxed))
                break;
        }
    }
    struct member *m = &pool->m[thread];
    struct spawn *sp = coro__malloc(sizeof *sp);
    if (!sp)
        return ENOMEM;
    *sp = (struct spawn){.m = m, .fn = fn, .arg = arg, .has_attr = attr != NULL,
                         .reply = NULL, .group = NULL};
    sp->node.run = run_spawn;
    if (attr)
        sp->attr = *attr;
    if (g) {
        int err = coro__group_reserve(g, &sp->cancels);
        if (err) {
            free(sp);
            return err;
        }
        sp->group = g;
    }
    pthread_mutex_lock(&pool->lock);
    int closed = pool->closed;
    if (!closed)
        pool->live++;
    pthread_mutex_unlock(&pool->lock);
    if (closed || atomic_load_explicit(&m->closed, memory_order_relaxed)) {
        if (closed)
            discard(sp); /* not counted */
        else
            drop(sp);
        return ECANCELED;
    }
    if (co && m == here)
        return make(sp, co);
    if (co)
        return spawn_far(m, sp, co);
    if (any)
        pend(pool, m, sp);
    else
        coro__sched_post(m->s, &sp->node);
    return 0;
}

int coro_pool_spawn(coro_pool_t *pool, int thread, coro_t **co, coro_fn fn, void *arg,
                    const coro_attr_t *attr)
{
    return spawn_on(pool, thread, NULL, co, fn, arg, attr);
}

int coro_group_spawn_on(coro_group_t *g, coro_pool_t *pool, int thread, coro_t **co,
                        coro_fn fn, void *arg, const coro_attr_t *attr)
{
    if (!g)
        return EINVAL;
    return spawn_on(pool, thread, g, co, fn, arg, attr);
}

/* The caller must not be a coroutine of the pool's threads: it would wait
 * for itself (or for a thread it keeps busy). */
static int wait_check(const coro_pool_t *pool, int64_t deadline)
{
    if (!pool || deadline < -1)
        return EINVAL;
    if (here && here->pool == pool)
        return EDEADLK;
    if (coro_self())
        return EPERM; /* it would block its whole thread */
    return 0;
}

int coro_pool_wait(coro_pool_t *pool, int64_t deadline)
{
    int err = wait_check(pool, deadline);

    if (err)
        return err;
    struct timespec ts = {(time_t)(deadline / 1000000000), (long)(deadline % 1000000000)};
    pthread_mutex_lock(&pool->lock);
    while (pool->live && !err) {
        if (deadline < 0)
            pthread_cond_wait(&pool->done, &pool->lock);
        else
            err = pthread_cond_timedwait(&pool->done, &pool->lock, &ts);
    }
    if (!pool->live)
        err = 0;
    pthread_mutex_unlock(&pool->lock);
    return err;
}

int coro_pool_shutdown(coro_pool_t *pool, int64_t deadline)
{
    int err = wait_check(pool, deadline);

    if (err)
        return err;
    pthread_mutex_lock(&pool->lock);
    int first = !pool->closed;
    pool->closed = 1;
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->n && first; i++) {
        struct member *m = &pool->m[i];
        m->shut.run = run_shutdown;
        coro__sched_post(m->s, &m->shut);
    }
    return coro_pool_wait(pool, deadline);
}

int coro_pool_destroy(coro_pool_t *pool)
{
    int err = wait_check(pool, -1);

    if (err)
        return err;
    pthread_mutex_lock(&pool->lock);
    int closed = pool->closed, live = pool->live != 0;
    pthread_mutex_unlock(&pool->lock);
    if (!closed || live)
        coro_pool_shutdown(pool, -1);
    stop_threads(pool, pool->n);
    pool_free(pool);
    return 0;
}

/* pool: n threads, each running its own scheduler (see include/coro.h,
 * "threads").  The first step of the mt layer: coroutines are placed on a
 * thread when spawned and never move; what crosses threads is the spawn
 * itself, through the target thread's inbox.
 *
 * Each pool thread runs one coroutine of its own besides the spawned ones,
 * its inbox server: it waits on the inbox's eventfd with coro_wait_fd
 * (so the thread's scheduler sleeps in its reactor, and nothing there
 * counts as deadlocked) and spawns what it finds.  A producer appends to
 * the inbox under its lock and writes the eventfd only when the inbox was
 * empty: the server takes everything each time it wakes, so a burst of
 * spawns costs one write, however long.
 *
 * The pool counts its live coroutines (spawned and not finished): each
 * runs inside a trampoline that drops the count as it returns, and
 * coro_pool_wait waits for zero on a condition variable. */
#define _GNU_SOURCE
#include "coro.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define POOL_MAX 1024 /* threads in one pool */

/* One spawn on its way to a thread. */
struct spawn {
    struct spawn *next;
    struct coro_pool *pool;
    coro_fn fn;
    void *arg;
    int has_attr;
    coro_attr_t attr;
};

/* One pool thread: its inbox and how to wake it. */
struct member {
    struct coro_pool *pool;
    unsigned index;
    pthread_t thread;
    int started;
    int efd;                    /* the inbox's doorbell (eventfd) */
    pthread_mutex_t lock;       /* guards the inbox */
    struct spawn *head, *tail;  /* the inbox, FIFO */
    int closed;                 /* no more spawns: shutdown or destroy */
    int stop;                   /* destroy: the server leaves */
    int shutdown;               /* shutdown: cancel everything, then leave */
};

struct coro_pool {
    unsigned n;
    atomic_uint next;           /* CORO_ANY: round robin */
    pthread_mutex_t lock;       /* guards live, with done */
    pthread_cond_t done;        /* live reached 0 */
    size_t live;                /* spawned, not finished */
    int closed;                 /* shut down: spawns refused */
    struct member m[];
};

/* The pool thread the caller runs on, or NULL. */
static __thread struct member *here;

/* One of p's coroutines finished, or will never run. */
static void live_done(struct coro_pool *p)
{
    pthread_mutex_lock(&p->lock);
    if (!--p->live)
        pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->lock);
}

/* A spawn that will never run: the pool stops counting it. */
static void drop(struct spawn *sp)
{
    struct coro_pool *p = sp->pool;

    free(sp);
    live_done(p);
}

/* Reads m's doorbell empty (an eventfd read takes the whole count). */
static void quiet(struct member *m)
{
    uint64_t v;

    while (read(m->efd, &v, sizeof v) < 0 && errno == EINTR) {
    }
}

/* Every pool coroutine runs in here, so that the pool knows when it ends;
 * its result is fn's, for coro_join on its thread. */
static void *trampoline(void *arg)
{
    struct spawn *sp = arg;
    struct coro_pool *p = sp->pool;
    coro_fn fn = sp->fn;
    void *fa = sp->arg;

    free(sp);
    void *r = fn(fa);
    live_done(p);
    return r;
}

/* The inbox server's turn: takes the whole inbox and spawns each entry
 * here.  Returns what the member was told (stop, shutdown) meanwhile. */
static void serve(struct member *m, int *stop, int *shutdown)
{
    pthread_mutex_lock(&m->lock);
    struct spawn *sp = m->head;
    m->head = m->tail = NULL;
    *stop = m->stop;
    *shutdown = m->shutdown;
    pthread_mutex_unlock(&m->lock);
    while (sp) {
        struct spawn *next = sp->next;
        if (coro_spawn(NULL, trampoline, sp, sp->has_attr ? &sp->attr : NULL) != 0)
            drop(sp); /* no memory for it here (the spawn had returned 0) */
        sp = next;
    }
}

static void *server(void *arg)
{
    struct member *m = arg;
    int stop = 0, shutdown = 0;

    for (;;) {
        serve(m, &stop, &shutdown);
        if (stop || shutdown)
            break;
        if (coro_wait_fd(m->efd, CORO_IN, NULL, -1) != 0)
            break; /* a coro_shutdown of this thread's own: it is going */
        quiet(m);
    }
    /* Nothing more comes here: later spawns onto this thread fail, and
     * what is still queued (after a coro_shutdown of the thread's own)
     * never runs and stops counting. */
    pthread_mutex_lock(&m->lock);
    m->closed = 1;
    struct spawn *sp = m->head;
    m->head = m->tail = NULL;
    pthread_mutex_unlock(&m->lock);
    while (sp) {
        struct spawn *next = sp->next;
        drop(sp);
        sp = next;
    }
    if (shutdown)
        coro_shutdown(); /* every other coroutine here unwinds */
    return NULL;
}

static void *thread_main(void *arg)
{
    struct member *m = arg;

    here = m;
    if (coro_spawn(NULL, server, m, NULL) == 0)
        coro_run();
    /* After a shutdown the thread idles until destroy: the inbox is
     * closed, nothing more comes. */
    for (;;) {
        pthread_mutex_lock(&m->lock);
        int stop = m->stop;
        pthread_mutex_unlock(&m->lock);
        if (stop)
            break;
        struct pollfd pfd = {.fd = m->efd, .events = POLLIN};
        if (poll(&pfd, 1, -1) > 0)
            quiet(m);
    }
    here = NULL;
    return NULL;
}

/* Rings m's doorbell (an eventfd write cannot fail short of a full
 * counter, and the server reads it empty each time). */
static void ring(struct member *m)
{
    uint64_t one = 1;

    while (write(m->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

static void stop_threads(struct coro_pool *p, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct member *m = &p->m[i];
        pthread_mutex_lock(&m->lock);
        m->stop = 1;
        m->closed = 1;
        pthread_mutex_unlock(&m->lock);
        ring(m);
    }
    for (unsigned i = 0; i < n; i++)
        if (p->m[i].started)
            pthread_join(p->m[i].thread, NULL);
}

static void pool_free(struct coro_pool *p, unsigned nfds)
{
    for (unsigned i = 0; i < nfds; i++) {
        struct member *m = &p->m[i];
        while (m->head) {
            struct spawn *sp = m->head;
            m->head = sp->next;
            free(sp);
        }
        close(m->efd);
        pthread_mutex_destroy(&m->lock);
    }
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int coro_pool_create(coro_pool_t **pool, unsigned nthreads)
{
    if (!pool || nthreads == 0 || nthreads > POOL_MAX)
        return EINVAL;
    int saved = errno, err = 0;
    struct coro_pool *p = calloc(1, sizeof *p + nthreads * sizeof p->m[0]);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    p->n = nthreads;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->lock, NULL);
    unsigned made = 0;
    for (; made < nthreads; made++) {
        struct member *m = &p->m[made];
        m->pool = p;
        m->index = made;
        m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (m->efd < 0) {
            err = errno == EMFILE || errno == ENFILE ? EMFILE : ENOMEM;
            break;
        }
        pthread_mutex_init(&m->lock, NULL);
    }
    unsigned started = 0;
    if (!err) {
        for (; started < nthreads; started++) {
            struct member *m = &p->m[started];
            if ((err = pthread_create(&m->thread, NULL, thread_main, m)) != 0)
                break;
            m->started = 1;
        }
    }
    if (err) {
        stop_threads(p, started);
        pool_free(p, made);
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

int coro_pool_spawn(coro_pool_t *pool, int thread, coro_t **co, coro_fn fn, void *arg,
                    const coro_attr_t *attr)
{
    if (!pool || !fn || (thread != CORO_ANY && (thread < 0 || (unsigned)thread >= pool->n)))
        return EINVAL;
    /* A handle is only of use on the coroutine's own thread (coro_join
     * does not cross threads yet): given only for a spawn onto the
     * caller's own pool thread, named, which then spawns directly. */
    if (co && (thread == CORO_ANY || &pool->m[thread] != here))
        return EINVAL;
    if (thread == CORO_ANY)
        thread = (int)(atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed) %
                       pool->n);
    struct member *m = &pool->m[thread];
    int saved = errno;
    struct spawn *sp = malloc(sizeof *sp);
    errno = saved;
    if (!sp)
        return ENOMEM;
    *sp = (struct spawn){.pool = pool, .fn = fn, .arg = arg, .has_attr = attr != NULL};
    if (attr)
        sp->attr = *attr;
    pthread_mutex_lock(&pool->lock);
    int closed = pool->closed;
    if (!closed)
        pool->live++;
    pthread_mutex_unlock(&pool->lock);
    if (closed) {
        free(sp);
        return ECANCELED;
    }
    if (co) {
        int err = coro_spawn(co, trampoline, sp, attr);
        if (err)
            drop(sp);
        return err;
    }
    pthread_mutex_lock(&m->lock);
    if (m->closed) {
        /* A shutdown came between the check above and here: its server
         * may be gone already, and nothing would run this. */
        pthread_mutex_unlock(&m->lock);
        drop(sp);
        return ECANCELED;
    }
    int was_empty = !m->head;
    if (m->tail)
        m->tail->next = sp;
    else
        m->head = sp;
    m->tail = sp;
    pthread_mutex_unlock(&m->lock);
    if (was_empty)
        ring(m);
    return 0;
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
    pool->closed = 1;
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->n; i++) {
        struct member *m = &pool->m[i];
        pthread_mutex_lock(&m->lock);
        m->shutdown = 1;
        m->closed = 1;
        pthread_mutex_unlock(&m->lock);
        ring(m);
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
    pool_free(pool, pool->n);
    return 0;
}

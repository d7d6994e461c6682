/* io: the offload pool (coro_offload, coro_getaddrinfo; see
 * include/coro.h).
 *
 * One pool per process: a few threads, started when a job finds none idle,
 * take jobs from a FIFO queue.  A finished job goes into its scheduler's
 * completion box and rings the box's eventfd, which that scheduler's
 * reactor watches; the reactor then ends the waiting coroutine's wait on
 * its own thread (the wake protocol's claim, so a deadline or a cancel
 * that came first wins and the result is dropped).  A box outlives its
 * scheduler while jobs for it are still running: the last one frees it. */
#define _GNU_SOURCE
#include "io.h"
#include "sys.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define THREADS_DEFAULT 4
#define THREADS_MAX 256

struct job {
    struct job *next;               /* in the pool's queue, then in a box */
    void *(*fn)(void *);
    void *arg;
    void *result;
    void (*drop)(void *arg, void *result); /* frees what nobody took, or NULL */
    struct coro__offload_box *box;  /* where it goes when done */
    struct coro__wait *wait;        /* the caller's, while it waits; NULL once
                                     * it gave up (owner: the caller's thread) */
    struct job *wprev, *wnext;      /* in its box's waited list while the
                                     * caller waits (the caller's thread) */
};

/* A scheduler's completion box.  Shared by the reactor and the pool. */
struct coro__offload_box {
    pthread_mutex_t lock;
    struct job *done;               /* finished jobs, newest first */
    size_t refs;                    /* the reactor (until detached) + jobs running */
    int bellfd;                     /* eventfd; closed with the box */
    struct job *waited;             /* jobs whose caller waits: touched by
                                     * the reactor's thread only, for a fork */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;        /* queued jobs */
    unsigned threads, idle, max;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL, 0, 0, 0 };

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void box_unref(struct coro__offload_box *b)
{
    pthread_mutex_lock(&b->lock);
    size_t left = --b->refs;
    pthread_mutex_unlock(&b->lock);
    if (left)
        return;
    for (struct job *j = b->done, *next; j; j = next) {
        next = j->next;
        if (j->drop)
            j->drop(j->arg, j->result);
        free(j);
    }
    close(b->bellfd);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static void *worker(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head) {
            pool.idle++;
            pthread_cond_wait(&pool.cond, &pool.lock);
            pool.idle--;
        }
        struct job *j = pool.head;
        pool.head = j->next;
        if (!pool.head)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.lock);

        j->result = j->fn(j->arg);
        struct coro__offload_box *b = j->box;
        pthread_mutex_lock(&b->lock);
        j->next = b->done;
        b->done = j;
        pthread_mutex_unlock(&b->lock);
        coro__bell_ring(b->bellfd);
        box_unref(b);

        pthread_mutex_lock(&pool.lock);
    }
    return NULL;
}

/* The child of a fork has none of the parent's threads: start afresh (the
 * parent's queued jobs are not the child's to run). */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&pool.lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&pool.lock);
}

static void atfork_child(void)
{
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.cond, NULL);
    pool.head = pool.tail = NULL;
    pool.threads = pool.idle = 0;
}

static void atfork_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

void coro__offload_atfork(void)
{
    pthread_once(&atfork_once, atfork_init);
}

static unsigned pool_max(void)
{
    const char *e = getenv("CORO_OFFLOAD_THREADS");
    long n = e ? strtol(e, NULL, 10) : 0;

    return n > 0 ? (unsigned)(n > THREADS_MAX ? THREADS_MAX : n) : THREADS_DEFAULT;
}

/* Queues j, starting a thread if none is idle and the pool may grow.
 * 0, or EAGAIN when no thread exists and none can be started. */
static int pool_submit(struct job *j)
{
    int err = 0;

    coro__offload_atfork();
    pthread_mutex_lock(&pool.lock);
    if (!pool.max)
        pool.max = pool_max();
    if (!pool.idle && pool.threads < pool.max) {
        pthread_t t;
        pthread_attr_t a;
        sigset_t all, old;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        /* Workers take no signals: coro_signal_wait's callers block theirs,
         * and a worker must not be the thread a signal lands on. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        err = pthread_create(&t, &a, worker, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&a);
        if (!err)
            pool.threads++;
        else if (pool.threads)
            err = 0; /* the others will get to it */
    }
    if (!err) {
        j->next = NULL;
        if (pool.tail)
            pool.tail->next = j;
        else
            pool.head = j;
        pool.tail = j;
        pthread_cond_signal(&pool.cond);
    }
    pthread_mutex_unlock(&pool.lock);
    return err;
}

/* This reactor's box, made (with its doorbell) on first use. */
static struct coro__offload_box *box_get(struct coro__io *io, int *err)
{
    if (io->box)
        return io->box;
    struct coro__offload_box *b = coro__calloc(1, sizeof *b);
    if (!b) {
        *err = ENOMEM;
        return NULL;
    }
    b->bellfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->bellfd < 0) {
        *err = errno;
        free(b);
        return NULL;
    }
    if ((*err = coro__io_watch(io, b->bellfd))) {
        close(b->bellfd);
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->refs = 1;
    io->box = b;
    io->bellfd = b->bellfd;
    return b;
}

void coro__offload_drain(struct coro__io *io)
{
    struct coro__offload_box *b = io->box;

    if (!b)
        return;
    coro__bell_drain(b->bellfd);
    pthread_mutex_lock(&b->lock);
    struct job *j = b->done;
    b->done = NULL;
    pthread_mutex_unlock(&b->lock);
    while (j) {
        struct job *next = j->next;
        if (j->wait && coro__wait_claim(j->wait)) {
            coro__wait_done(j->wait, 0, 0); /* the caller frees j */
        } else {
            if (j->drop)
                j->drop(j->arg, j->result);
            free(j);
        }
        j = next;
    }
}

void coro__offload_fork_child(struct coro__io *io)
{
    struct coro__offload_box *b = io->box;

    if (!b)
        return;
    /* The parent's threads run these jobs and ring the parent's doorbell:
     * nothing here would ever end these waits.  The box (its jobs, its
     * references, its lock, which a parent's worker may have held) is the
     * parent's: this copy is left as it is. */
    for (struct job *j = b->waited; j; j = j->wnext)
        if (j->wait && coro__wait_claim(j->wait))
            coro__wait_done(j->wait, ECANCELED, 0);
    close(b->bellfd);
    io->box = NULL;
    io->bellfd = -1;
}

void coro__offload_detach(struct coro__io *io)
{
    if (io->box) {
        coro__offload_drain(io);
        box_unref(io->box);
        io->box = NULL;
    }
}

/* Runs j on the pool and waits for it.  On 0 the caller owns j again; on
 * any error j belongs to the pool (it is freed when it finishes). */
static int offload_run(struct job *j, int64_t deadline, const char *what)
{
    struct coro__wait wait;
    int err = coro__sched_check();

    if (err || (err = deadline < -1 ? EINVAL : 0))
        return err;
    /* Even with a deadline already passed or a cancel pending the job is
     * submitted: ETIMEDOUT and ECANCELED always mean "fn runs and its
     * result is dropped", one contract for the caller. */
    struct coro__io *io = coro__io_here(&err);
    if (!io)
        return err;
    struct coro__offload_box *b = box_get(io, &err);
    if (!b)
        return err;
    coro__wait_init(&wait, coro__self());
    j->box = b;
    j->wait = &wait;
    pthread_mutex_lock(&b->lock);
    b->refs++;
    pthread_mutex_unlock(&b->lock);
    if ((err = pool_submit(j))) {
        box_unref(b);
        j->box = NULL; /* never submitted: the caller frees it */
        j->wait = NULL;
        return err;
    }
    io->offloads++;
    j->wprev = NULL;
    j->wnext = b->waited;
    if (b->waited)
        b->waited->wprev = j;
    b->waited = j;
    err = coro__wait_park(&wait, deadline, CORO__WAIT_PLAIN, what);
    if (j->wprev)
        j->wprev->wnext = j->wnext;
    else
        b->waited = j->wnext;
    if (j->wnext)
        j->wnext->wprev = j->wprev;
    io->offloads--;
    /* Claimed either way: by the drain (0; the caller frees j) or by the
     * deadline or a cancel (the drain frees j when the job is done). */
    j->wait = NULL;
    return err;
}

int coro_offload(void *(*fn)(void *), void *arg, void **result, int64_t deadline)
{
    int saved = errno, err;

    if (!fn)
        return EINVAL;
    struct job *j = coro__calloc(1, sizeof *j);
    if (!j)
        return ENOMEM;
    j->fn = fn;
    j->arg = arg;
    err = offload_run(j, deadline, "coro_offload");
    if (!err) {
        if (result)
            *result = j->result;
        free(j);
    } else if (!j->box) {
        free(j); /* never submitted */
    }
    errno = saved;
    return err;
}

/* coro_getaddrinfo's job: owns copies of its arguments, so that a caller
 * that gave up may be gone when it runs. */
struct gai {
    char *node, *service;
    struct addrinfo hints;
    int has_hints;
    struct addrinfo *res;
    int ret, err;
};

static void *gai_run(void *p)
{
    struct gai *g = p;

    g->ret = getaddrinfo(g->node, g->service, g->has_hints ? &g->hints : NULL, &g->res);
    g->err = errno;
    return g;
}

static void gai_free(void *p, void *unused)
{
    struct gai *g = p;

    (void)unused;
    if (g->res)
        freeaddrinfo(g->res);
    free(g->node);
    free(g->service);
    free(g);
}

int coro_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res, int64_t deadline)
{
    int saved = errno, err;

    if (!res || (!node && !service))
        return EINVAL;
    struct gai *g = coro__calloc(1, sizeof *g);
    struct job *j = coro__calloc(1, sizeof *j);
    if (!g || !j || (node && !(g->node = strdup(node))) ||
        (service && !(g->service = strdup(service)))) {
        if (g)
            gai_free(g, NULL);
        free(j);
        errno = saved;
        return ENOMEM;
    }
    if (hints) {
        g->hints = (struct addrinfo){ .ai_flags = hints->ai_flags,
                                      .ai_family = hints->ai_family,
                                      .ai_socktype = hints->ai_socktype,
                                      .ai_protocol = hints->ai_protocol };
        g->has_hints = 1;
    }
    j->fn = gai_run;
    j->arg = g;
    j->drop = gai_free;
    err = offload_run(j, deadline, "coro_getaddrinfo");
    if (!err) {
        free(j);
        if (g->ret == 0) {
            *res = g->res;
            g->res = NULL;
        } else {
            err = g->ret == EAI_SYSTEM ? g->err : (g->ret > 0 ? -g->ret : g->ret);
        }
        gai_free(g, NULL);
    } else if (!j->box) {
        gai_free(g, NULL);
        free(j);
    }
    errno = saved;
    return err;
}

/* io: a reactor per scheduler and the calls that park on it (see
 * include/coro.h, "io").
 *
 * The reactor is an epoll instance made on the scheduler's first I/O
 * wait.  An fd is added at its first EAGAIN, edge-triggered, and stays
 * until coro_fd_close: steady state makes no epoll_ctl.  It is watched for
 * writing only from its first write that would block (one EPOLL_CTL_MOD
 * then, none for an fd whose writes never block): with EPOLLOUT from the
 * start, every ACK that frees send buffer is an edge, and an idle server
 * woke for each, more than once a response.  Per fd the reactor keeps a
 * FIFO of waiters per direction (and one of coro_poll callers waiting for
 * a hang-up only) and a readiness bit per direction: an event sets it, an
 * EAGAIN or a short transfer clears it.  On a stream socket libcoro made,
 * the call after a short transfer parks at once instead of paying for an
 * EAGAIN.  An event wakes the first waiter of its direction; a waiter that
 * found the fd still ready, or that only waited for readiness (coro_poll,
 * coro_wait_fd), passes the wake on, so several acceptors on one listener
 * are served in turn and every poller sees the event.
 *
 * The epoll data of an fd is its number and a generation, bumped whenever
 * the reactor forgets the fd: an event of a closed (or closed and reused)
 * fd number is dropped.  A plain close(2) is not seen: the next EAGAIN of
 * the number re-arms it (EPOLL_CTL_MOD finds that the file is not the one
 * registered), and waiters that got no event for a second have their fd
 * checked the same way when the reactor idles. */
#define _GNU_SOURCE
#include "io.h"
#include "sync.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_MAX 256          /* events taken per epoll_pwait2 */
#define RECHECK_NS 1000000000LL /* a waiter with no event this long: check its fd */

/* The wait lists of an fd: readers, writers, and coro_poll callers that
 * asked for neither (they wait for a hang-up or an error only, and must
 * not take the wake of a reader). */
enum { DIR_IN = 0, DIR_OUT = 1, DIR_HUP = 2 };

/* What the reactor knows of one fd number.  Owned by the reactor. */
struct fdent {
    uint32_t gen;               /* of its current registration */
    unsigned char registered;   /* in the epoll set (as far as we know) */
    unsigned char out;          /* watched for EPOLLOUT too */
    unsigned char ready[2];     /* an event came since the last EAGAIN */
    unsigned char drained[2];   /* a short transfer since the last event:
                                 * on an owned fd the next call parks
                                 * without trying */
    unsigned char hup;          /* a hang-up or error was seen: reads stay
                                 * ready (EOF or the error is for good) */
    unsigned char owned;        /* a stream socket libcoro made (accept,
                                 * listen, connect): a short transfer means
                                 * drained.  Not for other fds: a message
                                 * socket's short read is one message, and
                                 * a user's fd number may be a reused one */
    unsigned char kind;         /* a listener's socket type, for what it
                                 * accepts: 0 not known yet, 1 stream, 2 other */
    struct coro__waitq q[3];    /* coroutines waiting per DIR_, FIFO */
    int64_t since;              /* when its oldest waiter began, for rechecks */
};

static struct coro__io *io_of(struct coro__sched *s)
{
    return s->io;
}

static void fork_child(void);
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_init(void)
{
    (void)pthread_atfork(NULL, NULL, fork_child); /* only ENOMEM */
}

struct coro__io *coro__io_here(int *err)
{
    struct coro__sched *s = coro__sched_current();

    if (!s) {
        *err = EPERM;
        return NULL;
    }
    if (!s->io) {
        struct coro__io *io = coro__calloc(1, sizeof *io);
        if (!io) {
            *err = ENOMEM;
            return NULL;
        }
        io->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (io->epfd < 0) {
            *err = errno;
            free(io);
            return NULL;
        }
        io->sigfd = -1;
        io->bellfd = -1;
        io->postfd = -1;
        io->now = coro_now();
        s->io = io;
        pthread_once(&fork_once, fork_init);
    }
    return s->io;
}

/* The fd table is chunks of FDS_CHUNK entries that never move: waiters
 * point into their entry's lists. */
#define FDS_CHUNK 256

/* The entry of fd, the table grown to hold it; NULL when memory runs out. */
static struct fdent *fd_entry(struct coro__io *io, int fd)
{
    size_t c = (size_t)fd / FDS_CHUNK;

    if (c >= io->nchunks) {
        size_t n = io->nchunks ? io->nchunks : 4;
        while (n <= c)
            n *= 2;
        struct fdent **t = coro__realloc(io->chunks, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + io->nchunks, 0, (n - io->nchunks) * sizeof *t);
        io->chunks = t;
        io->nchunks = n;
    }
    if (!io->chunks[c] && !(io->chunks[c] = coro__calloc(FDS_CHUNK, sizeof(struct fdent))))
        return NULL;
    return &io->chunks[c][(size_t)fd % FDS_CHUNK];
}

/* fd's entry if the reactor has one, else NULL (no allocation). */
static struct fdent *fd_known(struct coro__io *io, int fd)
{
    size_t c = (size_t)fd / FDS_CHUNK;

    return io && fd >= 0 && c < io->nchunks && io->chunks[c]
               ? &io->chunks[c][(size_t)fd % FDS_CHUNK]
               : NULL;
}

static uint64_t fd_data(int fd, uint32_t gen)
{
    return (uint64_t)(uint32_t)fd | (uint64_t)gen << 32;
}

/* Adds fd to the epoll set, or (already registered) checks that the
 * number still names the registered file and re-adds it if not; out: a
 * writer is about to wait, watch EPOLLOUT from now on.  0, or the error:
 * EPERM for an fd epoll cannot watch (a regular file), EBADF. */
static int fd_arm(struct coro__io *io, int fd, struct fdent *e, int out)
{
    const uint32_t base = EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLET;
    struct epoll_event ev;

    if (e->registered) {
        ev.events = base | (out || e->out ? EPOLLOUT : 0);
        ev.data.u64 = fd_data(fd, e->gen);
        if (epoll_ctl(io->epfd, EPOLL_CTL_MOD, fd, &ev) == 0) {
            e->out |= (unsigned char)(out != 0);
            return 0;
        }
        if (errno != ENOENT)
            return errno;
        e->registered = 0;      /* closed and reused behind our back */
        e->owned = 0;
        e->kind = 0;
    }
    /* A new registration: for writing only if a writer waits now. */
    ev.events = base | (out ? EPOLLOUT : 0);
    if (++e->gen == 0)
        e->gen = 1; /* generation 0 is the reactor's own fds' */
    ev.data.u64 = fd_data(fd, e->gen);
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        if (errno != EEXIST)
            return errno;
        /* The number was forgotten (coro_fd_close of a dup) but the file is
         * still in the set: take it over with the new generation. */
        if (epoll_ctl(io->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
            return errno;
    }
    e->registered = 1;
    e->out = (unsigned char)(out != 0);
    e->hup = 0;
    e->ready[DIR_IN] = e->ready[DIR_OUT] = 1; /* not known yet */
    e->drained[DIR_IN] = e->drained[DIR_OUT] = 0;
    e->since = io->now;
    return 0;
}

/* Whether e is registered and, for a writer (out), watched for EPOLLOUT:
 * else a wait must fd_arm first. */
static int fd_watched(const struct fdent *e, int out)
{
    return e->registered && (!out || e->out);
}

/* Wakes the first waiter of e in direction dir (it retries its call). */
static void wake_first(struct fdent *e, int dir)
{
    struct coro__waiter *w = coro__waitq_claim(&e->q[dir]);

    if (w)
        coro__wake(w, 0);
}

static void wake_all(struct fdent *e, int result)
{
    coro__wake_all(&e->q[DIR_IN], result);
    coro__wake_all(&e->q[DIR_OUT], result);
    coro__wake_all(&e->q[DIR_HUP], result);
}

/* Parks the caller on fd until it may be ready in one of the directions
 * in mask (1 << DIR_IN, 1 << DIR_OUT).  0 when woken by an event (retry
 * the call), EBADF when coro_fd_close closed it, ETIMEDOUT, ECANCELED,
 * EPERM for an fd epoll cannot watch, ENOMEM. */
static int fd_park(struct coro__io *io, int fd, unsigned mask, int64_t deadline,
                   const char *what)
{
    struct coro__waiter w[2];
    struct coro__wait wait;
    struct fdent *e = fd_entry(io, fd);
    size_t n = 0;
    int r;

    if (!e)
        return ENOMEM;
    int out = (mask & (1u << DIR_OUT)) != 0;
    if (!fd_watched(e, out)) {
        if ((r = fd_arm(io, fd, e, out)))
            return r;
        /* The caller just found these directions not ready; an event that
         * came since is queued by the ADD (or the MOD) and wakes the wait. */
        for (int d = 0; d < 2; d++)
            if (mask & (1u << d))
                e->ready[d] = 0;
    }
    coro__wait_init(&wait, coro__self());
    for (int d = 0; d < 2; d++) {
        if (!(mask & (1u << d)))
            continue;
        w[n] = (struct coro__waiter){ .wait = &wait, .index = (size_t)d };
        if (!coro__waitq_first(&e->q[d]) && !coro__waitq_first(&e->q[!d]))
            e->since = io->now;
        coro__waitq_push(&e->q[d], &w[n]);
        n++;
    }
    wait.w = w;
    wait.n = n;
    io->waiting++;
    r = coro__wait_block(coro__self_task(), &wait, deadline, CORO__WAIT_PLAIN, what);
    io->waiting--;
    return r;
}

/* After a call that moved data: if fd may still be ready in dir and
 * others wait for it, the next one gets its turn. */
static void pass_on(struct coro__io *io, int fd, int dir)
{
    struct fdent *e = fd_known(io, fd);

    if (e && e->ready[dir] && coro__waitq_first(&e->q[dir]))
        wake_first(e, dir);
}

/* fd said EAGAIN, or a poll said not ready, in dir: no event since. */
static void clear_ready(struct coro__io *io, int fd, int dir)
{
    struct fdent *e = fd_known(io, fd);

    if (e && !(dir == DIR_IN && e->hup)) {
        e->ready[dir] = 0;
        e->drained[dir] = 0;
    }
}

/* A transfer on fd moved less than asked in dir. */
static void mark_drained(struct coro__io *io, int fd, int dir)
{
    struct fdent *e = fd_known(io, fd);

    if (e && !(dir == DIR_IN && e->hup)) {
        e->ready[dir] = 0;
        e->drained[dir] = 1;
    }
}

/* Whether the call on fd would only say EAGAIN: an owned stream socket,
 * registered, with a short transfer and no event since.  Only a short
 * transfer counts, not an EAGAIN: after an EAGAIN (a timeout, say) the
 * user may have closed the number with close(2) and reused it, and the
 * next call must try the new file. */
static int known_empty(struct coro__io *io, int fd, int dir)
{
    struct fdent *e = fd_known(io, fd);

    return e && e->registered && e->owned && e->drained[dir] && !e->ready[dir];
}

/* ------------------------------------------------------------- reactor */

static void handle(struct coro__io *io, const struct epoll_event *ev)
{
    int fd = (int)(uint32_t)ev->data.u64;
    uint32_t gen = (uint32_t)(ev->data.u64 >> 32);

    if (gen == 0) {
        if (fd == io->postfd)
            coro__bell_drain(fd); /* the scheduler's loop takes the posts */
        else if (fd == io->bellfd)
            coro__offload_drain(io);
        else if (fd == io->sigfd)
            coro__signal_drain(io);
        return;
    }
    struct fdent *e = fd_known(io, fd);
    if (!e || !e->registered || e->gen != gen)
        return; /* an fd forgotten since: stale */
    uint32_t x = ev->events;
    e->since = io->now;
    if (x & (EPOLLERR | EPOLLHUP)) {
        e->ready[DIR_IN] = e->ready[DIR_OUT] = 1;
        e->hup = 1;
        wake_all(e, 0); /* each finds the error or EOF itself */
        return;
    }
    if (x & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) {
        e->ready[DIR_IN] = 1;
        e->drained[DIR_IN] = 0;
        if (x & EPOLLRDHUP)
            e->hup = 1; /* the peer's end of file: every read sees it */
        wake_first(e, DIR_IN);
    }
    if (x & EPOLLOUT) {
        e->ready[DIR_OUT] = 1;
        e->drained[DIR_OUT] = 0;
        wake_first(e, DIR_OUT);
    }
}

/* Waiters that have had no event for a while: their fd number may have
 * been closed with close(2) and reused, so that epoll watches nothing for
 * it; check each such number once (EPOLL_CTL_MOD) and wake its waiters if
 * it changed.  Runs when the reactor would sleep, at most once a second. */
static void recheck(struct coro__io *io, int64_t now)
{
    if (now - io->rechecked < RECHECK_NS)
        return;
    io->rechecked = now;
    for (size_t fd = 0; fd < io->nchunks * FDS_CHUNK; fd++) {
        struct fdent *e = io->chunks[fd / FDS_CHUNK];
        if (!e) {
            fd += FDS_CHUNK - 1;
            continue;
        }
        e += fd % FDS_CHUNK;
        if (!e->registered || now - e->since < RECHECK_NS ||
            (!coro__waitq_first(&e->q[DIR_IN]) && !coro__waitq_first(&e->q[DIR_OUT]) &&
             !coro__waitq_first(&e->q[DIR_HUP])))
            continue;
        e->since = now;
        uint32_t gen = e->gen;
        int r = fd_arm(io, (int)fd, e, 0);
        if (r)
            wake_all(e, r);          /* EBADF: closed for good */
        else if (e->gen != gen)
            wake_all(e, 0);          /* a new file: retry the calls */
    }
}

/* epoll_pwait2 (Linux 5.11: a nanosecond timeout), or epoll_wait with
 * the timeout rounded up to milliseconds where it is missing (older
 * kernels, valgrind 3.19). */
static int reactor_wait(int epfd, struct epoll_event *evs, const struct timespec *ts)
{
    static int no_pwait2;

    if (!__atomic_load_n(&no_pwait2, __ATOMIC_RELAXED)) {
        int n = epoll_pwait2(epfd, evs, EVENTS_MAX, ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        __atomic_store_n(&no_pwait2, 1, __ATOMIC_RELAXED);
    }
    int ms = -1;
    if (ts) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
        ms = ns > (int64_t)INT_MAX * 1000000 ? INT_MAX : (int)((ns + 999999) / 1000000);
    }
    return epoll_wait(epfd, evs, EVENTS_MAX, ms);
}

void coro__io_poll(struct coro__sched *s, int64_t deadline)
{
    struct coro__io *io = io_of(s);
    struct epoll_event evs[EVENTS_MAX];
    struct timespec ts, *tsp = NULL;
    int64_t now = coro_now();

    io->now = now;

    if (deadline >= 0) {
        int64_t d = deadline > now ? deadline - now : 0;
        if (d && io->waiting) {
            recheck(io, now);
            if (s->head)
                d = 0; /* the recheck woke someone */
            else if (d > RECHECK_NS)
                d = RECHECK_NS; /* back for the next recheck */
        }
        ts.tv_sec = (time_t)(d / 1000000000);
        ts.tv_nsec = (long)(d % 1000000000);
        tsp = &ts;
    } else if (io->waiting) {
        recheck(io, now);
        if (s->head) {
            ts = (struct timespec){0, 0};
            tsp = &ts;
        } else if (io->waiting) {
            /* Come back for the next recheck. */
            ts = (struct timespec){RECHECK_NS / 1000000000, 0};
            tsp = &ts;
        }
    }
    int n = reactor_wait(io->epfd, evs, tsp);
    if (!tsp || tsp->tv_sec || tsp->tv_nsec)
        io->now = coro_now(); /* it may have slept */
    for (int i = 0; i < n; i++)
        handle(io, &evs[i]);
}

/* In the child of a fork, on the thread that forked (the child's only
 * one): its reactor's epoll instance and doorbells are the parent's too,
 * so a parent idling in epoll_wait would take the child's events (and
 * the child's epoll_ctl change the parent's set).  The child gets its own;
 * every fd is forgotten (a new generation) and its waiters retry their
 * calls, which register the fd again in the new set. */
static void fork_child(void)
{
    struct coro__sched *s = coro__sched_current();
    struct coro__io *io = s ? s->io : NULL;

    if (!io)
        return;
    int saved = errno;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        errno = saved;
        return; /* no fd left: the shared set stays, as before */
    }
    close(io->epfd);
    io->epfd = ep;
    sigemptyset(&io->sigpending); /* the parent's to take */
    if (io->postfd >= 0) {
        close(io->postfd);
        io->postfd = -1;
        s->bell = -1; /* made again when another thread may post */
    }
    coro__offload_fork_child(io);
    if (io->sigfd >= 0 && coro__io_watch(io, io->sigfd) != 0) {
        close(io->sigfd); /* made again by the next coro_signal_wait */
        io->sigfd = -1;
        sigemptyset(&io->sigmask);
    }
    for (size_t c = 0; c < io->nchunks; c++)
        for (size_t i = 0; io->chunks[c] && i < FDS_CHUNK; i++) {
            struct fdent *e = &io->chunks[c][i];
            if (!e->registered)
                continue;
            e->registered = 0;
            e->out = 0;
            e->drained[DIR_IN] = e->drained[DIR_OUT] = 0;
            e->ready[DIR_IN] = e->ready[DIR_OUT] = 1;
            if (++e->gen == 0)
                e->gen = 1;
            wake_all(e, 0); /* each retries its call */
        }
    errno = saved;
}

int coro__io_alive(const struct coro__sched *s)
{
    const struct coro__io *io = s->io;

    return io->waiting || io->offloads;
}

void coro__io_free(struct coro__sched *s)
{
    struct coro__io *io = io_of(s);

    coro__offload_detach(io);
    close(io->epfd);
    if (io->postfd >= 0)
        close(io->postfd);
    if (io->sigfd >= 0)
        close(io->sigfd);
    for (size_t c = 0; c < io->nchunks; c++)
        free(io->chunks[c]);
    free(io->chunks);
    free(io);
    s->io = NULL;
}

int coro__io_bell(struct coro__sched *s)
{
    struct coro__io *io = io_of(s);

    if (io->postfd < 0) {
        int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0)
            return -1;
        if (coro__io_watch(io, fd)) {
            close(fd);
            return -1;
        }
        io->postfd = fd;
    }
    return io->postfd;
}

/* Registers an fd the reactor did not make (the doorbell, the signalfd)
 * level-triggered with data (fd, generation 0). */
int coro__io_watch(struct coro__io *io, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = fd_data(fd, 0) };

    return epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) ? errno : 0;
}

/* --------------------------------------------------------------- calls */

/* The common start of every call: the caller's reactor, or an error. */
static struct coro__io *io_begin(int fd, int64_t deadline, int *err)
{
    if (fd < 0 || deadline < -1) {
        *err = fd < 0 ? EBADF : EINVAL;
        return NULL;
    }
    if ((*err = coro__sched_check()))
        return NULL;
    return coro__io_here(err);
}

enum op_kind { OP_READ, OP_WRITE, OP_READV, OP_WRITEV, OP_RECV, OP_SEND, OP_RECVMSG, OP_SENDMSG };

struct op {
    enum op_kind kind;
    int fd;
    int flags;
    void *buf;                  /* read, write, recv, send */
    size_t len;
    const struct iovec *iov;    /* readv, writev */
    int iovcnt;
    struct msghdr *msg;         /* recvmsg, sendmsg */
};

static ssize_t op_do(const struct op *o)
{
    switch (o->kind) {
    case OP_READ: return read(o->fd, o->buf, o->len);
    case OP_WRITE: return write(o->fd, o->buf, o->len);
    case OP_READV: return readv(o->fd, o->iov, o->iovcnt);
    case OP_WRITEV: return writev(o->fd, o->iov, o->iovcnt);
    case OP_RECV: return recv(o->fd, o->buf, o->len, o->flags);
    case OP_SEND: return send(o->fd, o->buf, o->len, o->flags);
    case OP_RECVMSG: return recvmsg(o->fd, o->msg, o->flags);
    case OP_SENDMSG: return sendmsg(o->fd, o->msg, o->flags);
    }
    return -1;
}

/* One system call that moves at least one byte (or reports EOF), parking
 * while it would say EAGAIN.  *got: what it returned.  A transfer shorter
 * than asked (want, 0 when unknown) means the fd is drained: the next call
 * parks without trying. */
static int op_once(struct coro__io *io, const struct op *o, int dir, size_t want,
                   size_t *got, int64_t deadline, const char *what)
{
    /* A passed deadline is a try: it makes the call even when no event
     * said the fd is ready. */
    int trying = deadline == 0 || (deadline > 0 && deadline <= coro_now());

    *got = 0;
    for (;;) {
        if (trying || !known_empty(io, o->fd, dir)) {
            ssize_t r = op_do(o);
            if (r >= 0) {
                *got = (size_t)r;
                if (want && (size_t)r < want && r > 0)
                    mark_drained(io, o->fd, dir);
                pass_on(io, o->fd, dir);
                return 0;
            }
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return errno;
            struct fdent *e = fd_known(io, o->fd);
            /* Registered, and an event said ready or none came for a
             * while: make sure the number still names the registered file
             * (it may have been closed with close(2) and reused, the events
             * being the old file's).  Rare in steady state: after a short
             * transfer the next call parks without trying. */
            if (e && e->registered &&
                (!e->owned || e->ready[dir] || io->now - e->since >= RECHECK_NS)) {
                int err = fd_arm(io, o->fd, e, dir == DIR_OUT);
                if (err)
                    return err;
            }
            clear_ready(io, o->fd, dir);
        }
        int err = fd_park(io, o->fd, 1u << dir, deadline, what);
        if (err)
            return err;
    }
}

static size_t iov_len(const struct iovec *iov, int n)
{
    size_t t = 0;

    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

/* EINVAL for a call's bad arguments, with *n = 0 as for every failure. */
static int bad_args(size_t *n)
{
    if (n)
        *n = 0;
    return EINVAL;
}

/* Runs o once (reads) and stores the count; the errno-keeping wrapper of
 * every public call. */
static int run_once(struct op *o, int dir, size_t want, size_t *n, int64_t deadline,
                    const char *what)
{
    int saved = errno, err;
    size_t got = 0;
    struct coro__io *io = io_begin(o->fd, deadline, &err);

    if (io)
        err = op_once(io, o, dir, want, &got, deadline, what);
    *n = got;
    errno = saved;
    return err;
}

int coro_read(int fd, void *buf, size_t len, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_READ, .fd = fd, .buf = buf, .len = len };

    if (!n || (!buf && len))
        return bad_args(n);
    return run_once(&o, DIR_IN, len, n, deadline, "coro_read");
}

int coro_recv(int fd, void *buf, size_t len, int flags, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_RECV, .fd = fd, .buf = buf, .len = len, .flags = flags };

    if (!n || (!buf && len))
        return bad_args(n);
    return run_once(&o, DIR_IN, (flags & MSG_PEEK) ? 0 : len, n, deadline, "coro_recv");
}

int coro_readv(int fd, const struct iovec *iov, int iovcnt, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_READV, .fd = fd, .iov = iov, .iovcnt = iovcnt };

    if (!n || iovcnt < 0 || (!iov && iovcnt))
        return bad_args(n);
    return run_once(&o, DIR_IN, iov_len(iov, iovcnt), n, deadline, "coro_readv");
}

int coro_recvmsg(int fd, struct msghdr *msg, int flags, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_RECVMSG, .fd = fd, .msg = msg, .flags = flags };

    if (!n || !msg)
        return bad_args(n);
    return run_once(&o, DIR_IN, 0, n, deadline, "coro_recvmsg");
}

int coro_sendmsg(int fd, const struct msghdr *msg, int flags, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_SENDMSG, .fd = fd, .msg = (struct msghdr *)msg,
                    .flags = flags };

    if (!n || !msg)
        return bad_args(n);
    return run_once(&o, DIR_OUT, 0, n, deadline, "coro_sendmsg");
}

/* Writes every byte of buf (write or send), parking while the fd is full. */
static int write_all(struct op *o, size_t *n, int64_t deadline, const char *what)
{
    int saved = errno, err;
    size_t done = 0;
    struct coro__io *io = io_begin(o->fd, deadline, &err);
    const char *p = o->buf;
    size_t len = o->len;

    if (io) {
        do {
            size_t got;
            o->buf = (void *)(p + done);
            o->len = len - done;
            err = op_once(io, o, DIR_OUT, len - done, &got, deadline, what);
            done += got;
        } while (!err && done < len);
    }
    *n = done;
    errno = saved;
    return err;
}

int coro_write(int fd, const void *buf, size_t len, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_WRITE, .fd = fd, .buf = (void *)buf, .len = len };

    if (!n || (!buf && len))
        return bad_args(n);
    return write_all(&o, n, deadline, "coro_write");
}

int coro_send(int fd, const void *buf, size_t len, int flags, size_t *n, int64_t deadline)
{
    struct op o = { .kind = OP_SEND, .fd = fd, .buf = (void *)buf, .len = len,
                    .flags = flags };

    if (!n || (!buf && len))
        return bad_args(n);
    return write_all(&o, n, deadline, "coro_send");
}

int coro_writev(int fd, const struct iovec *iov, int iovcnt, size_t *n, int64_t deadline)
{
    int saved = errno, err;
    size_t done = 0;

    if (!n || iovcnt < 0 || (!iov && iovcnt) || iovcnt > IOV_MAX)
        return bad_args(n);
    struct coro__io *io = io_begin(fd, deadline, &err);
    size_t total = iov_len(iov, iovcnt);
    if (io) {
        struct iovec v[64];
        int i = 0;
        size_t off = 0; /* into iov[i] */
        while (!err && done < total) {
            int k = 0;
            for (int j = i; j < iovcnt && k < (int)(sizeof v / sizeof v[0]); j++, k++) {
                size_t skip = j == i ? off : 0;
                v[k] = (struct iovec){ (char *)iov[j].iov_base + skip, iov[j].iov_len - skip };
            }
            struct op o = { .kind = OP_WRITEV, .fd = fd, .iov = v, .iovcnt = k };
            size_t got;
            err = op_once(io, &o, DIR_OUT, iov_len(v, k), &got, deadline, "coro_writev");
            done += got;
            off += got;
            while (i < iovcnt && off >= iov[i].iov_len && (iov[i].iov_len || off)) {
                off -= iov[i].iov_len;
                i++;
            }
            while (i < iovcnt && !iov[i].iov_len)
                i++;
        }
    }
    *n = done;
    errno = saved;
    return err;
}

/* A new fd the reactor may have a stale entry for (its number was closed
 * with close(2)): forget it.  stream: a stream socket, whose short reads
 * and writes mean drained. */
static void fd_fresh(struct coro__io *io, int fd, int stream)
{
    struct fdent *e = fd_entry(io, fd);

    if (!e)
        return; /* no room: it is treated as a user's fd */
    e->registered = 0;
    e->out = 0;
    e->hup = 0;
    e->ready[DIR_IN] = e->ready[DIR_OUT] = 0;
    e->drained[DIR_IN] = e->drained[DIR_OUT] = 0;
    e->owned = (unsigned char)(stream != 0);
    e->kind = stream ? 1 : 2;
}

/* Whether fd is a stream socket (an AF_UNIX SOCK_SEQPACKET one is not). */
static int is_stream(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;

    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* The same for what listener lfd accepts, asked once per listener: not
 * a system call per connection.  The answer is forgotten with the
 * listener (coro_fd_close, or a re-arm that finds its number reused). */
static int accepts_streams(struct coro__io *io, int lfd)
{
    struct fdent *e = fd_entry(io, lfd);

    if (e && e->kind)
        return e->kind == 1;
    int stream = is_stream(lfd);
    if (e)
        e->kind = stream ? 1 : 2;
    return stream;
}

int coro_accept(int lfd, int *fd, struct sockaddr *addr, socklen_t *addrlen,
                int64_t deadline)
{
    int saved = errno, err;

    if (!fd)
        return EINVAL;
    struct coro__io *io = io_begin(lfd, deadline, &err);
    int trying = deadline == 0 || (deadline > 0 && deadline <= coro_now());
    while (io) {
        if (trying || !known_empty(io, lfd, DIR_IN)) {
            int c = accept4(lfd, addr, addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c >= 0) {
                fd_fresh(io, c, accepts_streams(io, lfd));
                pass_on(io, lfd, DIR_IN);
                *fd = c;
                err = 0;
                break;
            }
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                err = errno;
                break;
            }
            clear_ready(io, lfd, DIR_IN);
        }
        if ((err = fd_park(io, lfd, 1u << DIR_IN, deadline, "coro_accept")))
            break;
    }
    errno = saved;
    return err;
}

int coro_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t deadline)
{
    int saved = errno, err;
    struct coro__io *io = io_begin(fd, deadline, &err);

    if (io) {
        if (connect(fd, addr, addrlen) == 0) {
            err = 0;
        } else if (errno != EINPROGRESS && errno != EINTR) {
            err = errno;
        } else {
            fd_fresh(io, fd, is_stream(fd));
            for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                if (poll(&p, 1, 0) == 1)
                    break;
                clear_ready(io, fd, DIR_OUT);
                if ((err = fd_park(io, fd, 1u << DIR_OUT, deadline, "coro_connect")))
                    goto out;
            }
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
out:
    errno = saved;
    return err;
}

/* The CORO_IN / CORO_OUT bits poll(2) reports for fd now; -1 when fd is
 * not open. */
static int fd_state(int fd, unsigned events)
{
    struct pollfd p = { .fd = fd };

    if (events & CORO_IN)
        p.events |= POLLIN;
    if (events & CORO_OUT)
        p.events |= POLLOUT;
    while (poll(&p, 1, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (p.revents & POLLNVAL)
        return -1;
    if (p.revents & (POLLERR | POLLHUP))
        return CORO_IN | CORO_OUT; /* both, whatever was asked */
    unsigned r = 0;
    if (p.revents & POLLIN)
        r |= CORO_IN;
    if (p.revents & POLLOUT)
        r |= CORO_OUT;
    return (int)(r & events);
}

int coro_wait_fd(int fd, unsigned events, unsigned *revents, int64_t deadline)
{
    int saved = errno, err;

    if (!events || (events & ~(unsigned)(CORO_IN | CORO_OUT)))
        return EINVAL;
    struct coro__io *io = io_begin(fd, deadline, &err);
    while (io) {
        int r = fd_state(fd, events);
        if (r < 0) {
            err = EBADF;
            break;
        }
        if (r) {
            if (revents)
                *revents = (unsigned)r;
            /* It moved nothing: as with poll(2), every waiter sees the
             * readiness, and a reader behind this one gets its wake. */
            if (r & CORO_IN)
                pass_on(io, fd, DIR_IN);
            if (r & CORO_OUT)
                pass_on(io, fd, DIR_OUT);
            err = 0;
            break;
        }
        unsigned mask = 0;
        if (events & CORO_IN) {
            clear_ready(io, fd, DIR_IN);
            mask |= 1u << DIR_IN;
        }
        if (events & CORO_OUT) {
            clear_ready(io, fd, DIR_OUT);
            mask |= 1u << DIR_OUT;
        }
        err = fd_park(io, fd, mask, deadline, "coro_wait_fd");
        if (err == EPERM) { /* a regular file: always ready */
            if (revents)
                *revents = events;
            err = 0;
            break;
        }
        if (err)
            break;
    }
    errno = saved;
    return err;
}

int coro_poll(struct pollfd *fds, nfds_t nfds, int *nready, int64_t deadline)
{
    int saved = errno, err = 0;

    if (!fds && nfds)
        return EINVAL;
    if (deadline < -1)
        return EINVAL;
    if ((err = coro__sched_check()))
        return err;
    struct coro__io *io = coro__io_here(&err);
    struct coro__waiter *w = NULL;
    if (io && nfds && !(w = coro__malloc(2 * nfds * sizeof *w))) /* at most 2 lists an fd */
        err = ENOMEM;
    while (io && !err) {
        int r = poll(fds, nfds, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (r > 0) {
            if (nready)
                *nready = r;
            for (nfds_t i = 0; i < nfds; i++) {
                if (fds[i].revents & (POLLIN | POLLPRI | POLLRDHUP))
                    pass_on(io, fds[i].fd, DIR_IN);
                if (fds[i].revents & POLLOUT)
                    pass_on(io, fds[i].fd, DIR_OUT);
            }
            break;
        }
        /* Nothing ready: wait on every fd at once. */
        struct coro__wait wait;
        size_t n = 0;
        coro__wait_init(&wait, coro__self());
        for (nfds_t i = 0; i < nfds && !err; i++) {
            if (fds[i].fd < 0)
                continue;
            struct fdent *e = fd_entry(io, fds[i].fd);
            if (!e) {
                err = ENOMEM;
                break;
            }
            int out = (fds[i].events & POLLOUT) != 0;
            if (!fd_watched(e, out) && (err = fd_arm(io, fds[i].fd, e, out)))
                break;
            unsigned lists = ((fds[i].events & (POLLIN | POLLPRI | POLLRDHUP)) ? 1u << DIR_IN : 0) |
                             ((fds[i].events & POLLOUT) ? 1u << DIR_OUT : 0);
            if (!lists)
                lists = 1u << DIR_HUP; /* poll(2) reports a hang-up or error anyway */
            for (int d = 0; d < 3; d++) {
                if (!(lists & (1u << d)))
                    continue;
                if (d != DIR_HUP)
                    e->ready[d] = 0;
                w[n] = (struct coro__waiter){ .wait = &wait };
                if (!coro__waitq_first(&e->q[d]))
                    e->since = io->now;
                coro__waitq_push(&e->q[d], &w[n]);
                n++;
            }
        }
        wait.w = w;
        wait.n = n;
        if (err) {
            for (size_t i = 0; i < n; i++)
                coro__waitq_unlink(&w[i]);
            break;
        }
        io->waiting++;
        err = coro__wait_block(coro__self_task(), &wait, deadline, CORO__WAIT_PLAIN, "coro_poll");
        io->waiting--;
    }
    if (!err && !nfds && nready)
        *nready = 0;
    if (!io && !err)
        err = EPERM;
    free(w);
    errno = saved;
    return err;
}

int coro_fd_close(int fd)
{
    int saved = errno, err = 0;
    struct coro__sched *s = coro__sched_current();
    struct coro__io *io = s ? s->io : NULL;
    struct fdent *e = fd_known(io, fd);

    if (fd < 0)
        return EBADF;
    if (e) {
        wake_all(e, EBADF);
        /* No EPOLL_CTL_DEL: close(2) takes the file out of the epoll set
         * (one epoll_ctl per connection, not two).  If the file lives on
         * through a dup, its later events carry this generation, which
         * the bump below makes stale. */
        e->registered = 0;
        e->out = 0;
        e->owned = 0;
        e->kind = 0;
        e->hup = 0;
        e->ready[DIR_IN] = e->ready[DIR_OUT] = 0;
        e->drained[DIR_IN] = e->drained[DIR_OUT] = 0;
        e->gen++;
    }
    /* Linux frees the fd even when close says EINTR: never retry. */
    if (close(fd) != 0 && errno != EINTR)
        err = errno;
    errno = saved;
    return err;
}

/* ------------------------------------------------------------------ tcp */

/* A listening socket for a; 0 with *fd, or the error.  v6only 0 makes an
 * IPv6 wildcard listener take IPv4 too. */
static int listen_on(const struct addrinfo *a, int backlog, int v6only, int *fd)
{
    int one = 1;
    int s = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                   a->ai_protocol);

    if (s < 0)
        return errno;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        (a->ai_family != AF_INET6 ||
         setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) == 0) &&
        bind(s, a->ai_addr, a->ai_addrlen) == 0 &&
        listen(s, backlog < 0 ? SOMAXCONN : backlog) == 0) {
        *fd = s;
        return 0;
    }
    int err = errno;
    close(s);
    return err;
}

int coro_tcp_listen(const char *host, const char *port, int backlog, int *fd)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE }, *res, *a;
    int saved = errno, err = EADDRNOTAVAIL, s = -1;

    if (!port || !fd)
        return EINVAL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g) {
        err = g == EAI_SYSTEM ? errno : (g > 0 ? -g : g);
        errno = saved;
        return err;
    }
    /* Every address (host NULL): one IPv6 wildcard socket that takes IPv4
     * too, where the machine has IPv6; else the first that works. */
    if (!host)
        for (a = res; a && s < 0; a = a->ai_next)
            if (a->ai_family == AF_INET6 && listen_on(a, backlog, 0, &s) != 0)
                s = -1;
    for (a = res; a && s < 0; a = a->ai_next)
        if ((err = listen_on(a, backlog, 1, &s)) != 0)
            s = -1;
    freeaddrinfo(res);
    if (s >= 0) {
        struct coro__sched *sc = coro__sched_current();
        if (sc && sc->io)
            fd_fresh(sc->io, s, 1);
        *fd = s;
        err = 0;
    }
    errno = saved;
    return err;
}

int coro_tcp_dial(const char *host, const char *port, int *fd, int64_t deadline)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int saved = errno, err;

    if (!host || !port || !fd)
        return EINVAL;
    if ((err = coro_getaddrinfo(host, port, &hints, &res, deadline)))
        return err;
    err = EADDRNOTAVAIL;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       a->ai_protocol);
        if (s < 0) {
            err = errno;
            continue;
        }
        err = coro_connect(s, a->ai_addr, a->ai_addrlen, deadline);
        if (!err) {
            *fd = s;
            break;
        }
        coro_fd_close(s);
        if (err == ETIMEDOUT || err == ECANCELED || err == EPERM)
            break;
    }
    freeaddrinfo(res);
    errno = saved;
    return err;
}

/* -------------------------------------------------------------- signals */

/* What a coroutine in coro_signal_wait waits for; its waiter's elem. */
struct sigwant {
    const sigset_t *set;
    int signo;
};

/* Gives signo to the first waiter that wants it; 0 if nobody does. */
static int give_signal(struct coro__io *io, int signo)
{
    for (struct coro__waiter *w = io->sigq.head; w; w = w->next) {
        struct sigwant *want = w->elem;
        if (!sigismember(want->set, signo) || !coro__wait_claim(w->wait))
            continue;
        want->signo = signo;
        coro__waitq_unlink(w);
        coro__wake(w, 0);
        return 1;
    }
    return 0;
}

void coro__signal_drain(struct coro__io *io)
{
    struct signalfd_siginfo si[16];
    ssize_t r;

    while ((r = read(io->sigfd, si, sizeof si)) > 0)
        for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++)
            if (!give_signal(io, (int)si[i].ssi_signo))
                sigaddset(&io->sigpending, (int)si[i].ssi_signo);
}

/* A signal of set already read from the signalfd, or 0. */
static int take_pending(struct coro__io *io, const sigset_t *set)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(set, sig) == 1 && sigismember(&io->sigpending, sig) == 1) {
            sigdelset(&io->sigpending, sig);
            return sig;
        }
    return 0;
}

/* Makes the signalfd watch set too (one signalfd per scheduler, for the
 * union of what its coroutines wait for). */
static int sig_watch(struct coro__io *io, const sigset_t *set)
{
    sigset_t all = io->sigmask;
    int added = io->sigfd < 0;

    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(set, sig) == 1 && sigismember(&all, sig) != 1) {
            sigaddset(&all, sig);
            added = 1;
        }
    if (!added)
        return 0;
    int fd = signalfd(io->sigfd, &all, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return errno;
    if (io->sigfd < 0) {
        int err = coro__io_watch(io, fd);
        if (err) {
            close(fd);
            return err;
        }
        io->sigfd = fd;
        sigemptyset(&io->sigpending);
    }
    io->sigmask = all;
    return 0;
}

/* After a waiter left: the signalfd watches only what the waiters left
 * want, so that a process-directed signal is not read here for nobody
 * while another thread's coroutine waits for it; a signal already read
 * that nobody left here wants goes back to the process (kill, not raise:
 * any thread may take it), as if it had never been read. */
static void sig_unwatch(struct coro__io *io)
{
    sigset_t want;

    sigemptyset(&want);
    for (struct coro__waiter *w = io->sigq.head; w; w = w->next)
        sigorset(&want, &want, ((const struct sigwant *)w->elem)->set);
    int shrunk = 0;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&io->sigmask, sig) == 1 && sigismember(&want, sig) != 1)
            shrunk = 1;
    if (!shrunk || signalfd(io->sigfd, &want, SFD_NONBLOCK | SFD_CLOEXEC) < 0)
        return;
    io->sigmask = want;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&io->sigpending, sig) == 1 && sigismember(&want, sig) != 1) {
            sigdelset(&io->sigpending, sig);
            kill(getpid(), sig);
        }
}

int coro_signal_wait(const sigset_t *set, int *signo, int64_t deadline)
{
    int saved = errno, err, sig = 0;

    if (!set || deadline < -1)
        return EINVAL;
    for (int k = 1; k < NSIG && !sig; k++)
        if (k != SIGKILL && k != SIGSTOP && sigismember(set, k) == 1)
            sig = k;
    if (!sig)
        return EINVAL;
    if ((err = coro__sched_check()))
        return err;
    struct coro__io *io = coro__io_here(&err);
    if (io && !(err = sig_watch(io, set))) {
        coro__signal_drain(io); /* anything that came already */
        sig = take_pending(io, set);
        if (!sig) {
            struct sigwant want = { .set = set };
            io->waiting++;
            err = coro__wait_on(coro__self_task(), &io->sigq, &want, deadline,
                                "coro_signal_wait");
            io->waiting--;
            sig = want.signo;
        }
        sig_unwatch(io);
        if (!err && signo)
            *signo = sig;
    }
    errno = saved;
    return err;
}

/* io: the reactor of one scheduler (sched.h's s->io), shared by the fd
 * calls (lib/io.c), the offload pool (lib/offload.c) and signal waits.
 * Private: not installed. */
#ifndef CORO_IO_H
#define CORO_IO_H

#include "sync.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

struct fdent;
struct coro__offload_box;

struct coro__io {
    int epfd;
    struct fdent **chunks;      /* the fd table, by fd number (see io.c) */
    size_t nchunks;
    size_t waiting;             /* coroutines parked on fds or signals */
    size_t offloads;            /* offload jobs whose caller still waits */
    int64_t rechecked;          /* last sweep for silently reused fds */
    int64_t now;                /* coro_now() at the last poll: the clock of
                                 * the coarse (second) rechecks, read once a
                                 * poll instead of once an event or park */
    int bellfd;                 /* eventfd: offload completions ring it */
    int postfd;                 /* eventfd: other threads' posts ring it
                                 * (the scheduler's s->bell), or -1 */
    struct coro__offload_box *box; /* completions; shared with the pool */
    int sigfd;                  /* signalfd, or -1 */
    sigset_t sigmask;           /* signals sigfd watches */
    sigset_t sigpending;        /* read from sigfd, nobody waited for yet */
    struct coro__waitq sigq;    /* coroutines in coro_signal_wait */
};

/* This thread's reactor, made if needed; NULL with *err (EPERM without a
 * scheduler, ENOMEM, epoll_create1's error) when it cannot be. */
struct coro__io *coro__io_here(int *err);

/* Registers a reactor-owned fd (doorbell, signalfd), level-triggered,
 * generation 0.  0 or an errno value. */
int coro__io_watch(struct coro__io *io, int fd);

/* lib/offload.c: the doorbell rang: end the waits of finished jobs. */
void coro__offload_drain(struct coro__io *io);
/* lib/offload.c: in the child of a fork: the waits for jobs the parent's
 * threads run end with ECANCELED, and the reactor forgets the parent's
 * completion box (a new one is made on the next offload). */
void coro__offload_fork_child(struct coro__io *io);
/* lib/offload.c: thread exit: jobs still running finish into nothing. */
void coro__offload_detach(struct coro__io *io);
/* lib/io.c: the signalfd is readable. */
void coro__signal_drain(struct coro__io *io);

#endif

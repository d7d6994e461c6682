/* sync: channels and select (see include/coro.h, "synchronisation").
 *
 * A channel is a ring buffer of cap elements and two FIFO lists of parked
 * coroutines.  A receiver is only ever queued while the buffer is empty and
 * a sender only while it is full, so a send first looks for a waiting
 * receiver and a receive refills the buffer from the first waiting sender:
 * every transfer is one copy straight into the place it goes.
 *
 * A shared channel (made once the process has a pool: sync.h) runs the
 * same code under its lock, from any thread; its waiters' records are
 * remote.  A select over shared channels locks them all, in address
 * order, so two selects cannot each hold one and wait for the other. */
#include "sync.h"
#include "sys.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SELECT_LOCAL 8 /* clauses whose wait records fit on the stack */

struct coro_chan {
    struct coro__sync o;
    size_t elem_size;
    size_t cap;                 /* buffer size in elements; 0: unbuffered */
    size_t head;                /* index of the oldest buffered element */
    size_t len;                 /* elements buffered */
    int closed;
    struct coro__waitq sendq;   /* senders waiting for room or a receiver */
    struct coro__waitq recvq;   /* receivers waiting for an element */
    unsigned char buf[];        /* cap * elem_size bytes */
};

int coro_chan_create(coro_chan_t **ch, size_t elem_size, size_t cap)
{
    struct coro_chan *c;

    if (!ch || (elem_size && cap > (SIZE_MAX - sizeof *c) / elem_size))
        return EINVAL;
    struct coro__sched *home = coro__sched_here();
    if (!home)
        return ENOMEM;
    c = coro__calloc(1, sizeof *c + elem_size * cap);
    if (!c)
        return ENOMEM;
    coro__sync_init(&c->o, home, &c->sendq, &c->recvq);
    c->elem_size = elem_size;
    c->cap = cap;
    *ch = c;
    return 0;
}

int coro_chan_destroy(coro_chan_t *ch)
{
    if (!ch)
        return EINVAL;
    return coro__sync_destroy(&ch->o, NULL, 0);
}

/* memcpy for elements: a receiver may pass NULL to drop one, and a channel
 * of zero-size elements may be given NULL everywhere. */
static inline void copy(void *dst, const void *src, size_t n)
{
    if (!dst)
        return;
    /* Word-sized elements (the common case: pointers, integers) are a
     * single move, not a call into memcpy. */
    switch (n) {
    case 0:
        return;
    case 4:
        memcpy(dst, src, 4);
        return;
    case 8:
        memcpy(dst, src, 8);
        return;
    case 16:
        memcpy(dst, src, 16);
        return;
    default:
        memcpy(dst, src, n);
    }
}

static void buf_put(struct coro_chan *c, const void *elem)
{
    size_t tail = c->head + c->len;

    if (tail >= c->cap)
        tail -= c->cap;
    copy(c->buf + tail * c->elem_size, elem, c->elem_size);
    c->len++;
}

static void buf_take(struct coro_chan *c, void *elem)
{
    copy(elem, c->buf + c->head * c->elem_size, c->elem_size);
    if (++c->head == c->cap)
        c->head = 0;
    c->len--;
}


/* A send that does not wait: 0 done, EPIPE closed, EAGAIN it would wait.
 * Always inline, with the receive's and the wait's helpers: out of line
 * (gcc's choice) they cost 70 instructions of calls per round trip. */
static inline __attribute__((always_inline)) int try_send(struct coro_chan *c,
                                                          const void *elem)
{
    struct coro__waiter *w;

    if (c->closed)
        return EPIPE;
    if ((w = coro__waitq_claim(&c->recvq))) {
        copy(w->elem, elem, c->elem_size);
        coro__wake(w, 0);
        return 0;
    }
    if (c->len < c->cap) {
        buf_put(c, elem);
        return 0;
    }
    return EAGAIN;
}

/* A receive that does not wait: 0 done, EPIPE closed and drained, EAGAIN
 * it would wait. */
static inline __attribute__((always_inline)) int try_recv(struct coro_chan *c, void *elem)
{
    struct coro__waiter *w;

    if (c->len) {
        buf_take(c, elem);
        if ((w = coro__waitq_claim(&c->sendq))) {
            buf_put(c, w->elem);
            coro__wake(w, 0);
        }
        return 0;
    }
    if ((w = coro__waitq_claim(&c->sendq))) {
        copy(elem, w->elem, c->elem_size);
        coro__wake(w, 0);
        return 0;
    }
    return c->closed ? EPIPE : EAGAIN;
}

static int send_shared(struct coro_chan *c, const void *elem, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if ((r = coro__sync_begin(&c->o, deadline, &k)))
        return r;
    if ((r = try_send(c, elem)) != EAGAIN) {
        coro__sync_leave(&c->o);
        return r;
    }
    return coro__sync_wait(&c->o, k, &c->sendq, (void *)elem, deadline, CORO__WAIT_PLAIN,
                           "coro_chan_send");
}

static int recv_shared(struct coro_chan *c, void *elem, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if ((r = coro__sync_begin(&c->o, deadline, &k)))
        return r;
    if ((r = try_recv(c, elem)) != EAGAIN) {
        coro__sync_leave(&c->o);
        return r;
    }
    return coro__sync_wait(&c->o, k, &c->recvq, elem, deadline, CORO__WAIT_PLAIN,
                           "coro_chan_recv");
}

int coro_chan_send(coro_chan_t *ch, const void *elem, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!ch || (!elem && ch->elem_size))
        return EINVAL;
    if (__builtin_expect(coro__sync_mode(&ch->o) == CORO__SYNC_SHARED, 0))
        return send_shared(ch, elem, deadline);
    if ((r = coro__sync_wait_check(coro__sync_home_of(&ch->o), deadline, &k)))
        return r == EPERM ? send_shared(ch, elem, deadline) : r; /* elsewhere? */
    if ((r = try_send(ch, elem)) != EAGAIN)
        return r;
    return coro__wait_local(&ch->o, k, &ch->sendq, (void *)elem, deadline, CORO__WAIT_PLAIN,
                            "coro_chan_send");
}

int coro_chan_recv(coro_chan_t *ch, void *elem, int64_t deadline)
{
    struct coro__task *k;
    int r;

    if (!ch)
        return EINVAL;
    if (__builtin_expect(coro__sync_mode(&ch->o) == CORO__SYNC_SHARED, 0))
        return recv_shared(ch, elem, deadline);
    if ((r = coro__sync_wait_check(coro__sync_home_of(&ch->o), deadline, &k)))
        return r == EPERM ? recv_shared(ch, elem, deadline) : r; /* elsewhere? */
    if ((r = try_recv(ch, elem)) != EAGAIN)
        return r;
    return coro__wait_local(&ch->o, k, &ch->recvq, elem, deadline, CORO__WAIT_PLAIN,
                            "coro_chan_recv");
}

int coro_chan_close(coro_chan_t *ch)
{
    if (!ch)
        return EINVAL;
    if (coro__sync_enter(&ch->o))
        return EPERM;
    int r = 0;
    if (ch->closed) {
        r = EPIPE;
    } else {
        ch->closed = 1;
        coro__wake_all(&ch->recvq, EPIPE);
        coro__wake_all(&ch->sendq, EPIPE);
    }
    coro__sync_leave(&ch->o);
    return r;
}

size_t coro_chan_len(const coro_chan_t *ch)
{
    if (!ch)
        return 0;
    struct coro_chan *c = (struct coro_chan *)ch; /* its lock only */
    if (coro__sync_enter(&c->o))
        return c->len; /* another thread's own channel: a glance, as documented */
    size_t n = c->len;
    coro__sync_leave(&c->o);
    return n;
}

size_t coro_chan_cap(const coro_chan_t *ch)
{
    return ch ? ch->cap : 0;
}

/* A uniform choice in [0, n): a cheap per-thread generator is enough to
 * keep any ready clause from starving. */
static size_t pick(size_t n)
{
    static __thread uint32_t x = 2463534242u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return (size_t)(((uint64_t)x * n) >> 32);
}

/* Whether a clause would complete now (try_send / try_recv would not say
 * EAGAIN).  A NULL channel is never ready, as a nil channel in Go. */
static int ready(const coro_select_clause_t *cl)
{
    struct coro_chan *c = cl->chan;

    if (!c)
        return 0;
    if (cl->op == CORO_SELECT_SEND)
        return c->closed || coro__waitq_first(&c->recvq) || c->len < c->cap;
    return c->len || coro__waitq_first(&c->sendq) || c->closed;
}

static void lock_each(struct coro_chan **locked, size_t m)
{
    for (size_t i = 0; i < m; i++)
        coro__lock(&locked[i]->o.lock);
}

static void unlock_each(struct coro_chan **locked, size_t m)
{
    for (size_t i = m; i--;)
        coro__unlock(&locked[i]->o.lock);
}

/* Lists the distinct shared channels of the clauses in locked (room for
 * each) in address order and locks them; returns how many. */
static size_t lock_all(const coro_select_clause_t *clauses, size_t n,
                       struct coro_chan **locked)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        struct coro_chan *c = clauses[i].chan;
        if (!c || coro__sync_mode(&c->o) != CORO__SYNC_SHARED)
            continue;
        size_t j = m;
        while (j && locked[j - 1] > c)
            j--;
        if (j && locked[j - 1] == c)
            continue; /* the same channel in two clauses */
        memmove(&locked[j + 1], &locked[j], (m - j) * sizeof *locked);
        locked[j] = c;
        m++;
    }
    lock_each(locked, m);
    return m;
}

/* The end of a select: unlocks its shared channels, and frees their list
 * if it did not fit on the stack. */
static void release(struct coro_chan **locked, size_t m, struct coro_chan **on_stack)
{
    unlock_each(locked, m);
    if (locked != on_stack)
        free(locked);
}

int coro_select(const coro_select_clause_t *clauses, size_t n,
                int64_t deadline, size_t *index)
{
    struct coro__waiter local[SELECT_LOCAL], *w = local;
    struct coro__wait wait;
    size_t i, shared = 0;
    int r;

    if (!clauses && n)
        return EINVAL;
    for (i = 0; i < n; i++) {
        const coro_select_clause_t *cl = &clauses[i];

        if (cl->op != CORO_SELECT_SEND && cl->op != CORO_SELECT_RECV)
            return EINVAL;
        if (cl->chan && cl->op == CORO_SELECT_SEND && !cl->elem &&
            cl->chan->elem_size)
            return EINVAL;
    }
    /* Another thread's biased channel is shared, and an unbound one
     * claimed, first (that may wait, and meanwhile this thread's own
     * biased channels may be shared too), and only then are the shared
     * ones counted. */
    for (i = 0; i < n; i++)
        if (clauses[i].chan && coro__sync_home(coro__sync_home_of(&clauses[i].chan->o)) &&
            coro__sync_away(&clauses[i].chan->o))
            return EPERM;
    for (i = 0; i < n; i++)
        shared += clauses[i].chan &&
                  coro__sync_mode(&clauses[i].chan->o) == CORO__SYNC_SHARED;
    struct coro__task *self;
    if ((r = coro__sync_wait_check(coro__sched_current(), deadline, &self)))
        return r;
    struct coro_chan *locals[SELECT_LOCAL], **locked = locals;
    if (shared > SELECT_LOCAL && !(locked = coro__malloc(shared * sizeof *locked)))
        return ENOMEM;
    size_t nlocked = shared ? lock_all(clauses, n, locked) : 0;

    /* Count the ready clauses, then take the k-th of them for a k drawn
     * uniformly: each ready clause is chosen with probability 1/nready,
     * wherever it stands among the others.  The locks do not stop a
     * waiter's own thread from ending its wait (its deadline, a cancel),
     * so on shared channels a clause can stop being ready between the
     * count, the choice and the transfer: then the choice starts over,
     * with that waiter gone from its list. */
    for (;;) {
        size_t nready = 0;
        for (i = 0; i < n; i++)
            nready += (size_t)ready(&clauses[i]);
        if (!nready)
            break;
        size_t k = pick(nready);
        for (i = 0; i < n; i++)
            if (ready(&clauses[i]) && k-- == 0)
                break;
        if (i == n)
            continue;
        const coro_select_clause_t *cl = &clauses[i];
        r = cl->op == CORO_SELECT_SEND ? try_send(cl->chan, cl->elem)
                                       : try_recv(cl->chan, cl->elem);
        if (r == EAGAIN)
            continue;
        release(locked, nlocked, locals);
        if (index)
            *index = i;
        return r;
    }

    if (n > SELECT_LOCAL && !(w = coro__malloc(n * sizeof *w))) {
        release(locked, nlocked, locals);
        return ENOMEM;
    }
    coro__wait_init(&wait, self->co);
    wait.remote = nlocked != 0;
    wait.w = w;
    wait.n = n;
    for (i = 0; i < n; i++) {
        const coro_select_clause_t *cl = &clauses[i];

        w[i] = (struct coro__waiter){ .wait = &wait, .elem = cl->elem, .index = i };
        if (cl->chan)
            coro__sync_push(&cl->chan->o, cl->op == CORO_SELECT_SEND ? &cl->chan->sendq
                                                                     : &cl->chan->recvq,
                            &w[i]);
    }
    unlock_each(locked, nlocked);
    r = coro__task_park(self, &wait, deadline, CORO__WAIT_PLAIN, "coro_select");
    /* Each under its channel's lock if shared by now (a biased one may
     * have been shared while this waited). */
    for (i = 0; i < n; i++)
        if (clauses[i].chan)
            coro__sync_unlink(&clauses[i].chan->o, &w[i]);
    release(locked, 0, locals);
    if ((r == 0 || r == EPIPE) && index)
        *index = wait.index;
    if (w != local)
        free(w);
    return r;
}

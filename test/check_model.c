/* Check suite 'model': a randomized test of channels, select, cancel and
 * deadlines against a reference model.
 *
 * Each round makes a few buffered and unbuffered channels and a few
 * detached coroutines ("workers") that run random scripts: sends,
 * receives and selects with random deadlines (none, already passed = a
 * "try", or a little ahead), cancels of each other and of themselves,
 * closes, sleeps, yields and spawns of more workers.  A closer coroutine
 * closes every channel after a few milliseconds, so every wait ends
 * (except in "deadlock rounds", where it closes only some: coro_run may
 * then report a deadlock, which the model must agree with).  A second
 * coro_run drains what is left.
 *
 * Everything runs on one thread, so the model sees the program as a
 * sequence of events (a call begins, a call returns), numbered by a
 * logical clock.  A call whose return is the very next event did not let
 * any other coroutine run.  Checked:
 * - every call returns one of its documented codes; ETIMEDOUT never
 *   before the deadline; ECANCELED only after a coro_cancel, once per
 *   cancel (or while coro_run unwinds a deadlock the model agrees with);
 * - no element is lost or duplicated: an element is received (by a worker
 *   or the drain) exactly when its send returned 0, on its own channel;
 * - FIFO: if x's send returned before y's began, y's receive does not end
 *   before x's begins;
 * - close: a send that begins after the close gets EPIPE; EPIPE only once
 *   the channel is closed; a receive that got EPIPE is the last: nothing
 *   is received from that channel after it;
 * - where the model knows the channel's state (no other call on it in
 *   flight), a call that can complete does so without waiting, with the
 *   result the model predicts;
 * - select: *index names a non-NULL clause when 0 or EPIPE, is left alone
 *   otherwise; receive clauses that were not taken leave their element
 *   alone;
 * - close, cancel and spawn never let another coroutine run; every
 *   coroutine finishes; coro_run returns 0, or EDEADLK only when the model
 *   says every unfinished coroutine waits with no deadline.
 *
 * Semantics that issue 8 introduces, checked by their own test cases
 * (they fail against the sync layer of b8e9e00 and earlier, and pass
 * since the wake protocol, 616bf50):
 * - model_try (issue 8, item 4): a passed deadline means "try": the call
 *   completes at once or returns ETIMEDOUT, never letting another
 *   coroutine run;
 * - model_cancel (item 5): a cancel is never lost: a blocking call begun
 *   while a cancel is pending returns ECANCELED at once (the cancel may
 *   have arrived while an earlier wait of the coroutine was completed by
 *   another coroutine: that call returned 0 and its element counts);
 * - try_never_yields, cancel_not_lost_*: the same, directed;
 * - select_uniform (item 5): select picks uniformly among ready clauses.
 * They form the test case "issue8"; CORO_MODEL_SKIP_ISSUE8=1 leaves it out.
 *
 * Seeded: each round prints its seed in any failure message;
 * CORO_MODEL_SEED=N starts from round seed N.  The library's own choices
 * (select) are not seeded by it, so a seed reproduces the scripts, not
 * always the run.  Bounded in time: CORO_MODEL_SECONDS (default 5, or 1.5
 * under valgrind and TSan), shared by the three random test cases. */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define US 1000LL
#define MS 1000000LL

enum {
    NCH_MAX = 4,     /* channels per round */
    NW_MAX = 16,     /* workers per round, spawned ones included */
    NEL_MAX = 4096,  /* elements per round */
};

/* Which of the new semantics the running test checks. */
enum { CHECK_TRY = 1, CHECK_CANCEL = 2 };
static unsigned checks;

/* ------------------------------------------------------------- random */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* ------------------------------------------------------------- model */

static uint64_t round_seed;

#define MODEL_CHECK(cond, ...)                                                  \
    do {                                                                        \
        if (!(cond))                                                            \
            model_fail(__LINE__, #cond, __VA_ARGS__);                           \
    } while (0)

__attribute__((format(printf, 3, 4), noreturn))
static void model_fail(int line, const char *cond, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ck_abort_msg("CORO_MODEL_SEED=%" PRIu64 ": line %d: %s (%s)", round_seed, line,
                 msg, cond);
    abort(); /* not reached */
}

struct mch {                  /* a channel as the model knows it */
    coro_chan_t *h;
    size_t cap;
    uint64_t close_t;         /* event of its close, 0 while open */
    int sent_ok, taken;       /* sends returned 0, receives returned 0 */
    int in_send, in_recv;     /* calls on it in flight */
    uint64_t first_epipe;     /* return event of its first EPIPE receive */
};

struct mel {                  /* an element, known by its id */
    int ch;
    uint64_t s_call, s_ret;   /* events of its send */
    int s_res;                /* the send's result; -2: a select's clause not taken */
    bool recvd;
    uint64_t r_call, r_ret;   /* events of its receive */
};

struct mw {                   /* a coroutine of the round */
    coro_t *self;             /* valid while started && !finished */
    bool started, finished;
    bool closer;              /* the closer: never cancelled */
    bool in_call;             /* in a blocking call now */
    int64_t deadline;         /* of that call */
    bool pending;             /* cancelled; no ECANCELED since */
    int ops;                  /* script steps left */
};

static struct mch chans[NCH_MAX];
static int nch;
static struct mel els[NEL_MAX];
static int nel;
static struct mw ws[NW_MAX + 1];
static int nw;
static uint64_t clk;          /* the logical clock: one tick per event */
static bool deadlock_round;   /* the closer leaves some channels open */
static bool unwinding;        /* coro_run reported a deadlock (the model agreed) */
static long stat_ops, stat_yielded, stat_rounds, stat_deadlocks, stat_cancel_done;

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EPIPE: return "EPIPE";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECANCELED: return "ECANCELED";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOMEM: return "ENOMEM";
    case EDEADLK: return "EDEADLK";
    default: return "other";
    }
}

/* Every coroutine that has not finished waits in a call with no
 * deadline: nothing can wake them. */
static bool all_blocked(void)
{
    for (int i = 0; i < nw; i++) {
        const struct mw *w = &ws[i];
        if (w->finished)
            continue;
        if (!w->started || !w->in_call || w->deadline != -1)
            return false;
    }
    return true;
}

struct call {
    struct mw *w;
    const char *what;
    uint64_t t0;
    bool pend0;               /* a cancel was pending when it began */
    bool is_try;              /* its deadline had passed when it began */
    int64_t deadline;
};

static void call_begin(struct call *c, struct mw *w, const char *what, int64_t deadline)
{
    c->w = w;
    c->what = what;
    c->t0 = ++clk;
    c->pend0 = w->pending;
    c->deadline = deadline;
    c->is_try = deadline != -1 && deadline <= coro_now();
    w->in_call = true;
    w->deadline = deadline;
}

/* Records the return of c with result r; tells whether other coroutines
 * ran during the call. */
static bool call_end(struct call *c, int r)
{
    struct mw *w = c->w;
    uint64_t t1 = ++clk;
    bool yielded = t1 != c->t0 + 1;

    stat_ops++;
    stat_yielded += yielded;
    if (r == ECANCELED) {
        if (w->pending) {
            w->pending = false;
            stat_cancel_done++;
        } else if (!unwinding) {
            MODEL_CHECK(deadlock_round && all_blocked(),
                        "%s returned ECANCELED with no cancel pending", c->what);
            unwinding = true;
        }
    }
    w->in_call = false;
    if (r == ETIMEDOUT) {
        MODEL_CHECK(c->deadline != -1, "%s: ETIMEDOUT without a deadline", c->what);
        MODEL_CHECK(coro_now() >= c->deadline, "%s: ETIMEDOUT before its deadline", c->what);
    }
    if (unwinding)
        return yielded;
    if (checks & CHECK_TRY)
        MODEL_CHECK(!c->is_try || !yielded,
                    "%s with a passed deadline let another coroutine run (result %s)",
                    c->what, err_name(r));
    if (checks & CHECK_CANCEL)
        MODEL_CHECK(!c->pend0 || !yielded || r == ECANCELED,
                    "%s begun with a cancel pending waited and returned %s: the cancel "
                    "was lost", c->what, err_name(r));
    return yielded;
}

/* A result allowed where the model predicts want: want itself, or
 * ECANCELED while a cancel is pending (the call may take it). */
static bool as_predicted(const struct call *c, int r, int want)
{
    return r == want || (r == ECANCELED && c->pend0);
}

static int64_t pick_deadline(void)
{
    unsigned k = below(10);

    if (k < 3)
        return -1;
    if (k < 6) {            /* already passed: a try */
        switch (below(3)) {
        case 0: return 0;
        case 1: return coro_now() - (int64_t)below(1000) * US;
        default: return coro_now();
        }
    }
    return coro_now() + (int64_t)below(300) * US;
}

static int new_elem(int ci)
{
    MODEL_CHECK(nel < NEL_MAX, "too many elements");
    els[nel] = (struct mel){.ch = ci, .s_res = -1};
    return nel++;
}

/* A received id: valid, on its channel, received once. */
static void took(struct call *c, int ci, long id)
{
    MODEL_CHECK(id >= 0 && id < nel, "%s got an element never sent (%ld)", c->what, id);
    struct mel *e = &els[id];
    MODEL_CHECK(e->ch == ci, "%s on channel %d got element %ld sent on channel %d",
                c->what, ci, id, e->ch);
    MODEL_CHECK(!e->recvd, "%s: element %ld received twice", c->what, id);
    MODEL_CHECK(e->s_call != 0 && e->s_call < clk,
                "%s: element %ld received before its send began", c->what, id);
    e->recvd = true;
    e->r_call = c->t0;
    e->r_ret = clk;
    chans[ci].taken++;
}

static void op_send(struct mw *w)
{
    int ci = (int)below((unsigned)nch);
    struct mch *m = &chans[ci];
    long id = new_elem(ci);
    int64_t dl = pick_deadline();
    struct call c;

    bool quiet = m->in_send == 0 && m->in_recv == 0;
    int remaining = m->sent_ok - m->taken;
    bool closed = m->close_t != 0;
    call_begin(&c, w, "coro_chan_send", dl);
    els[id].s_call = c.t0;
    m->in_send++;
    int r = coro_chan_send(m->h, &id, dl);
    m->in_send--;
    bool y = call_end(&c, r);
    els[id].s_ret = clk;
    els[id].s_res = r;
    MODEL_CHECK(r == 0 || r == EPIPE || r == ETIMEDOUT || r == ECANCELED,
                "coro_chan_send returned %d", r);
    if (r == 0)
        m->sent_ok++;
    if (r == EPIPE)
        MODEL_CHECK(m->close_t != 0, "coro_chan_send: EPIPE on an open channel");
    if (unwinding)
        return;
    if (closed)
        MODEL_CHECK(as_predicted(&c, r, EPIPE), "coro_chan_send on a closed channel: %s",
                    err_name(r));
    else if (quiet && (size_t)remaining < m->cap) {
        MODEL_CHECK(as_predicted(&c, r, 0), "coro_chan_send with room (%d of %zu): %s",
                    remaining, m->cap, err_name(r));
        MODEL_CHECK(!y, "coro_chan_send with room in the buffer waited");
    } else if (quiet && c.is_try && !y)
        MODEL_CHECK(as_predicted(&c, r, ETIMEDOUT),
                    "try coro_chan_send, no room and no receiver: %s", err_name(r));
}

static void op_recv(struct mw *w)
{
    int ci = (int)below((unsigned)nch);
    struct mch *m = &chans[ci];
    int64_t dl = pick_deadline();
    long got = -1;
    struct call c;

    bool quiet = m->in_send == 0 && m->in_recv == 0;
    int remaining = m->sent_ok - m->taken;
    bool closed = m->close_t != 0;
    call_begin(&c, w, "coro_chan_recv", dl);
    m->in_recv++;
    int r = coro_chan_recv(m->h, &got, dl);
    m->in_recv--;
    bool y = call_end(&c, r);
    MODEL_CHECK(r == 0 || r == EPIPE || r == ETIMEDOUT || r == ECANCELED,
                "coro_chan_recv returned %d", r);
    if (r == 0)
        took(&c, ci, got);
    if (r == EPIPE) {
        MODEL_CHECK(m->close_t != 0, "coro_chan_recv: EPIPE on an open channel");
        if (!m->first_epipe)
            m->first_epipe = clk;
    }
    if (unwinding || !quiet)
        return;
    if (remaining > 0) {
        MODEL_CHECK(as_predicted(&c, r, 0), "coro_chan_recv with %d buffered: %s",
                    remaining, err_name(r));
        MODEL_CHECK(!y, "coro_chan_recv with elements buffered waited");
    } else if (closed) {
        MODEL_CHECK(as_predicted(&c, r, EPIPE), "coro_chan_recv, closed and drained: %s",
                    err_name(r));
        MODEL_CHECK(!y, "coro_chan_recv on a closed drained channel waited");
    } else if (c.is_try && !y)
        MODEL_CHECK(as_predicted(&c, r, ETIMEDOUT), "try coro_chan_recv, nothing to take: %s",
                    err_name(r));
}

static void op_select(struct mw *w)
{
    coro_select_clause_t cl[4];
    long buf[4];
    int cis[4];
    size_t n = below(5);
    bool used[NCH_MAX] = {false};
    bool live = false;         /* some clause has a channel */
    bool quiet = true;
    int ready = 0;             /* ready clauses, as the model sees it */
    int64_t dl = pick_deadline();

    for (size_t i = 0; i < n; i++) {
        int ci = (int)below((unsigned)nch);
        if (used[ci] || below(10) == 0) {
            cl[i] = (coro_select_clause_t){NULL, CORO_SELECT_RECV, &buf[i]};
            cis[i] = -1;
        } else {
            used[ci] = true;
            cis[i] = ci;
            live = true;
            struct mch *m = &chans[ci];
            quiet = quiet && m->in_send == 0 && m->in_recv == 0;
            int remaining = m->sent_ok - m->taken;
            if (below(2)) {
                buf[i] = new_elem(ci);
                cl[i] = (coro_select_clause_t){m->h, CORO_SELECT_SEND, &buf[i]};
                ready += m->close_t != 0 || (size_t)remaining < m->cap;
            } else {
                buf[i] = -1;
                cl[i] = (coro_select_clause_t){m->h, CORO_SELECT_RECV, &buf[i]};
                ready += m->close_t != 0 || remaining > 0;
            }
        }
    }
    if (!live && dl == -1)     /* nothing could end it */
        dl = coro_now() + (int64_t)below(200) * US;

    struct call c;
    size_t idx = SIZE_MAX;
    call_begin(&c, w, "coro_select", dl);
    for (size_t i = 0; i < n; i++) {
        if (cis[i] < 0)
            continue;
        if (cl[i].op == CORO_SELECT_SEND) {
            els[buf[i]].s_call = c.t0;
            chans[cis[i]].in_send++;
        } else
            chans[cis[i]].in_recv++;
    }
    int r = coro_select(cl, n, dl, &idx);
    for (size_t i = 0; i < n; i++) {
        if (cis[i] < 0)
            continue;
        if (cl[i].op == CORO_SELECT_SEND)
            chans[cis[i]].in_send--;
        else
            chans[cis[i]].in_recv--;
    }
    bool y = call_end(&c, r);
    MODEL_CHECK(r == 0 || r == EPIPE || r == ETIMEDOUT || r == ECANCELED,
                "coro_select returned %d", r);
    if (r == 0 || r == EPIPE) {
        MODEL_CHECK(idx < n, "coro_select: %s with index %zu of %zu", err_name(r), idx, n);
        MODEL_CHECK(cis[idx] >= 0, "coro_select completed clause %zu, whose channel is NULL",
                    idx);
    } else
        MODEL_CHECK(idx == SIZE_MAX, "coro_select: %s set the index", err_name(r));
    for (size_t i = 0; i < n; i++) {
        if (cis[i] < 0)
            continue;
        struct mch *m = &chans[cis[i]];
        bool chosen = (r == 0 || r == EPIPE) && idx == i;
        if (cl[i].op == CORO_SELECT_SEND) {
            struct mel *e = &els[buf[i]];
            e->s_ret = clk;
            e->s_res = chosen ? r : -2;
            if (chosen && r == 0)
                m->sent_ok++;
        } else if (chosen && r == 0) {
            took(&c, cis[i], buf[i]);
        } else {
            MODEL_CHECK(buf[i] == -1, "coro_select wrote the element of clause %zu, "
                        "which it did not take", i);
        }
        if (chosen && r == EPIPE) {
            MODEL_CHECK(m->close_t != 0, "coro_select: EPIPE from an open channel");
            if (cl[i].op == CORO_SELECT_RECV && !m->first_epipe)
                m->first_epipe = clk;
        }
    }
    if (unwinding || !quiet)
        return;
    if (ready > 0) {
        MODEL_CHECK(r == 0 || r == EPIPE || (r == ECANCELED && c.pend0),
                    "coro_select with %d ready clauses: %s", ready, err_name(r));
        MODEL_CHECK(!y, "coro_select with a ready clause waited");
        if (r == 0 || r == EPIPE) {
            struct mch *m = &chans[cis[idx]];
            int remaining = m->sent_ok - m->taken;  /* after the select */
            if (cl[idx].op == CORO_SELECT_SEND)
                MODEL_CHECK(r == (m->close_t ? EPIPE : 0) &&
                            (m->close_t || (size_t)remaining <= m->cap),
                            "coro_select took send clause %zu, which was not ready (%s)",
                            idx, err_name(r));
            else
                MODEL_CHECK(r == 0 ? remaining >= 0 : (m->close_t && remaining == 0),
                            "coro_select took receive clause %zu, which was not ready (%s)",
                            idx, err_name(r));
        }
    } else if (c.is_try && !y)
        MODEL_CHECK(as_predicted(&c, r, ETIMEDOUT), "try coro_select, no clause ready: %s",
                    err_name(r));
}

/* Calls that never wait: close, cancel, spawn. */
static void no_switch(uint64_t t0, const char *what)
{
    MODEL_CHECK(clk == t0, "%s let another coroutine run", what);
}

static void op_close(int ci)
{
    struct mch *m = &chans[ci];
    uint64_t t0 = ++clk;
    int r = coro_chan_close(m->h);

    no_switch(t0, "coro_chan_close");
    MODEL_CHECK(r == (m->close_t ? EPIPE : 0), "coro_chan_close of a%s channel: %s",
                m->close_t ? " closed" : "n open", err_name(r));
    if (!m->close_t)
        m->close_t = t0;
}

static void op_cancel(struct mw *w)
{
    struct mw *t = &ws[below((unsigned)nw)];

    /* None in a deadlock round: there, an ECANCELED the model cannot
     * explain by a cancel is the deadlock's unwinding. */
    if (deadlock_round)
        return;
    if (!t->started || t->finished || t->closer || t->pending)
        t = w;                     /* cancel oneself */
    if (t->pending)
        return;                    /* one cancel at a time: the model stays exact */
    uint64_t t0 = ++clk;
    int r = coro_cancel(t->self);
    no_switch(t0, "coro_cancel");
    MODEL_CHECK(r == 0, "coro_cancel of a live coroutine: %s", err_name(r));
    t->pending = true;
}

static void *worker(void *arg);

static void op_spawn(void)
{
    if (nw >= NW_MAX)
        return;
    struct mw *n = &ws[nw++];
    *n = (struct mw){.ops = 5 + (int)below(30)};
    uint64_t t0 = ++clk;
    int r = coro_spawn(NULL, worker, n, NULL);
    no_switch(t0, "coro_spawn");
    MODEL_CHECK(r == 0, "coro_spawn: %s", err_name(r));
}

static void op_sleep(struct mw *w)
{
    int64_t ns = (1 + (int64_t)below(200)) * US;
    int64_t t = coro_now();
    struct call c;

    call_begin(&c, w, "coro_sleep", t + ns);
    c.is_try = false; /* relative: its deadline is from the call's own now */
    int r = coro_sleep(ns);
    call_end(&c, r);
    MODEL_CHECK(r == 0 || r == ECANCELED, "coro_sleep returned %s", err_name(r));
    if (r == 0)
        MODEL_CHECK(coro_now() >= t + ns, "coro_sleep returned early");
}

static void op_yield(void)
{
    ++clk;
    MODEL_CHECK(coro_yield(NULL, NULL) == 0, "coro_yield failed");
    ++clk;
}

static void begin(struct mw *w)
{
    w->self = coro_self();
    w->started = true;
    ++clk;
}

static void end(struct mw *w)
{
    MODEL_CHECK(!w->in_call, "finished in a call");
    ++clk;
    w->finished = true;
}

static void *worker(void *arg)
{
    struct mw *w = arg;

    begin(w);
    while (w->ops-- > 0) {
        unsigned k = below(100);
        if (k < 25)
            op_send(w);
        else if (k < 50)
            op_recv(w);
        else if (k < 65)
            op_select(w);
        else if (k < 72)
            op_cancel(w);
        else if (k < 74)
            op_close((int)below((unsigned)nch));
        else if (k < 78)
            op_spawn();
        else if (k < 88)
            op_sleep(w);
        else
            op_yield();
    }
    end(w);
    return NULL;
}

/* Closes every channel (some, in a deadlock round) after a while. */
static void *closer(void *arg)
{
    struct mw *w = arg;
    struct call c;

    begin(w);
    for (int i = 0, first = 1; i < nch; i++, first = 0) {
        int64_t ns = (first ? (int64_t)below(3000) : (int64_t)below(500)) * US + 1;
        call_begin(&c, w, "coro_sleep (closer)", coro_now() + ns);
        c.is_try = false; /* ns > 0 from the call's own now: never a try */
        int r = coro_sleep(ns);
        call_end(&c, r);
        MODEL_CHECK(r == 0 || (r == ECANCELED && unwinding), "closer's coro_sleep: %s",
                    err_name(r));
        if (!deadlock_round || below(2))
            op_close(i);
    }
    end(w);
    return NULL;
}

/* After the round: closes and empties every channel, recording what it
 * takes. */
static void *drain(void *arg)
{
    (void)arg;
    for (int i = 0; i < nch; i++) {
        struct mch *m = &chans[i];
        int r = coro_chan_close(m->h);
        MODEL_CHECK(r == (m->close_t ? EPIPE : 0), "drain: coro_chan_close: %s", err_name(r));
        if (!m->close_t)
            m->close_t = ++clk;
        for (;;) {
            long got = -1;
            struct call c = {.what = "drain's coro_chan_recv", .t0 = ++clk};
            r = coro_chan_recv(m->h, &got, 0);
            ++clk;
            if (r == EPIPE)
                break;
            MODEL_CHECK(r == 0, "drain: coro_chan_recv on a closed channel: %s", err_name(r));
            took(&c, i, got);
        }
    }
    return NULL;
}

/* The checks made once the round has ended. */
static void check_round(void)
{
    for (int i = 0; i < nel; i++) {
        const struct mel *e = &els[i];
        MODEL_CHECK(e->s_res != -1, "element %d: its send never returned", i);
        if (e->s_res == 0)
            MODEL_CHECK(e->recvd, "element %d (channel %d, cap %zu) lost: sent, never "
                        "received", i, e->ch, chans[e->ch].cap);
        else
            MODEL_CHECK(!e->recvd, "element %d received, but its send returned %s", i,
                        e->s_res == -2 ? "another clause" : err_name(e->s_res));
        if (e->recvd && chans[e->ch].first_epipe)
            MODEL_CHECK(e->r_call < chans[e->ch].first_epipe,
                        "element %d received after a receive on its channel got EPIPE", i);
    }
    for (int i = 0; i < nel; i++) {
        const struct mel *x = &els[i];
        if (!x->recvd)
            continue;
        for (int j = 0; j < nel; j++) {
            const struct mel *y = &els[j];
            if (j == i || !y->recvd || y->ch != x->ch || x->s_ret >= y->s_call)
                continue;
            MODEL_CHECK(!(y->r_ret < x->r_call),
                        "FIFO: on channel %d (cap %zu) element %d was sent after %d "
                        "and received before it", x->ch, chans[x->ch].cap, j, i);
        }
    }
    for (int i = 0; i < nw; i++)
        MODEL_CHECK(ws[i].finished, "coroutine %d of the round never finished", i);
}

static void one_round(void)
{
    rng_state = (round_seed * 0x9E3779B97F4A7C15ULL) | 1;
    clk = 0;
    nel = 0;
    unwinding = false;
    deadlock_round = below(16) == 0;
    nch = 1 + (int)below(NCH_MAX);
    for (int i = 0; i < nch; i++) {
        static const size_t caps[] = {0, 0, 1, 2, 4};
        struct mch *m = &chans[i];
        *m = (struct mch){.cap = caps[below(5)]};
        ck_assert_int_eq(coro_chan_create(&m->h, sizeof(long), m->cap), 0);
    }
    nw = 0;
    ws[nw] = (struct mw){.closer = true};
    ck_assert_int_eq(coro_spawn(NULL, closer, &ws[nw++], NULL), 0);
    for (int i = 2 + (int)below(7); i > 0; i--) {
        ws[nw] = (struct mw){.ops = 5 + (int)below(36)};
        ck_assert_int_eq(coro_spawn(NULL, worker, &ws[nw++], NULL), 0);
    }
    int r = coro_run();
    if (deadlock_round && unwinding) {
        MODEL_CHECK(r == EDEADLK, "coro_run after a deadlock: %s", err_name(r));
        stat_deadlocks++;
    } else
        MODEL_CHECK(r == 0, "coro_run: %s (the model saw no deadlock)", err_name(r));
    unwinding = false;
    ck_assert_int_eq(coro_spawn(NULL, drain, NULL, NULL), 0);
    MODEL_CHECK(coro_run() == 0, "drain's coro_run failed");
    check_round();
    for (int i = 0; i < nch; i++)
        ck_assert_int_eq(coro_chan_destroy(chans[i].h), 0);
    stat_rounds++;
}

/* --------------------------------------------------------- time, seed */

static double model_seconds(void)
{
    const char *s = getenv("CORO_MODEL_SECONDS");
    double t = RUNNING_ON_VALGRIND || UNDER_TSAN ? 1.5 : 5.0;

    if (s && *s)
        t = strtod(s, NULL);
    return t;
}

static uint64_t base_seed(void)
{
    static uint64_t seed;
    const char *s = getenv("CORO_MODEL_SEED");

    if (!seed)
        seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)coro_now() | 1;
    return seed;
}

/* Rounds for a third of the time (at least one). */
static void run_model(unsigned which)
{
    int64_t stop = coro_now() + (int64_t)(model_seconds() / 3 * 1e9);
    uint64_t seed = base_seed();

    checks = which;
    stat_ops = stat_yielded = stat_rounds = stat_deadlocks = stat_cancel_done = 0;
    do {
        round_seed = seed++;
        one_round();
    } while (coro_now() < stop);
    /* The rounds did something: most calls completed, some waited. */
    ck_assert_int_gt(stat_ops, 0);
    ck_assert_int_gt(stat_yielded, 0);
    if (getenv("CORO_MODEL_VERBOSE"))
        printf("model %u: %ld rounds from seed %" PRIu64 ", %ld calls (%ld waited), "
               "%ld cancels taken, %ld deadlocks\n", which, stat_rounds, base_seed(),
               stat_ops, stat_yielded, stat_cancel_done, stat_deadlocks);
}

START_TEST(model_chan)
{
    run_model(0);
}
END_TEST

/* New semantics (issue 8, item 4): fails on b8e9e00. */
START_TEST(model_try)
{
    run_model(CHECK_TRY);
}
END_TEST

/* New semantics (issue 8, item 5): fails on b8e9e00. */
START_TEST(model_cancel)
{
    run_model(CHECK_CANCEL);
}
END_TEST

/* ------------------------------------------------------------ directed */

static coro_chan_t *dch, *dch2;
static coro_mutex_t *dmx;
static coro_t *dvictim;
static int dstep;             /* advanced by the coroutines as they run */
static int dres[4];
static long dval;

/* A passed deadline is a try: it does not let the ready coroutine run. */
static void *bystander(void *arg)
{
    (void)arg;
    dstep++;
    return NULL;
}

static void *trier(void *arg)
{
    long v = 7;
    coro_select_clause_t cl[2] = {{dch, CORO_SELECT_RECV, &v}, {dch2, CORO_SELECT_RECV, &v}};
    size_t idx;

    (void)arg;
    ck_assert_int_eq(coro_spawn(NULL, bystander, NULL, NULL), 0);
    ck_assert_int_eq(coro_chan_recv(dch, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_recv(dch, &v, coro_now()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_send(dch, &v, coro_now() - MS), ETIMEDOUT);
    ck_assert_int_eq(coro_select(cl, 2, 0, &idx), ETIMEDOUT);
    ck_assert_int_eq(coro_select(NULL, 0, 0, &idx), ETIMEDOUT);
    ck_assert_int_eq(dstep, 0);           /* the bystander has not run */
    ck_assert_int_eq(coro_chan_send(dch2, &v, 0), 0);   /* room: completes */
    ck_assert_int_eq(coro_chan_recv(dch2, &v, 0), 0);
    ck_assert_int_eq(dstep, 0);
    return NULL;
}

START_TEST(try_never_yields)
{
    dstep = 0;
    ck_assert_int_eq(coro_chan_create(&dch, sizeof(long), 0), 0);
    ck_assert_int_eq(coro_chan_create(&dch2, sizeof(long), 1), 0);
    ck_assert_int_eq(coro_spawn(NULL, trier, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(dstep, 1);
    ck_assert_int_eq(coro_chan_destroy(dch), 0);
    ck_assert_int_eq(coro_chan_destroy(dch2), 0);
}
END_TEST

/* The victim waits (0: recv, 1: select, 2: lock), is cancelled, and the
 * wait is completed by the canceller before the victim runs.  Either the
 * cancel ended the wait (ECANCELED, the canceller's send/unlock then did
 * not reach it), or the wait completed (0) and the cancel is still
 * pending: the victim's next blocking call fails at once. */
static void *cancel_victim(void *arg)
{
    int kind = (int)(intptr_t)arg;
    long v = -1;
    size_t idx;
    coro_select_clause_t cl[2] = {{dch2, CORO_SELECT_RECV, NULL}, {dch, CORO_SELECT_RECV, &v}};

    dvictim = coro_self();
    dstep = 1;
    if (kind == 0)
        dres[0] = coro_chan_recv(dch, &v, -1);
    else if (kind == 1)
        dres[0] = coro_select(cl, 2, -1, &idx);
    else
        dres[0] = coro_mutex_lock(dmx, -1);
    dval = v;
    /* The next blocking call: a wait that nothing would end for 50 ms. */
    dres[1] = coro_chan_recv(dch2, NULL, coro_now() + 50 * MS);
    if (kind == 2 && dres[0] == 0)
        ck_assert_int_eq(coro_mutex_unlock(dmx), 0);
    return NULL;
}

static void *canceller(void *arg)
{
    int kind = (int)(intptr_t)arg;
    long v = 42;

    if (kind == 2)
        ck_assert_int_eq(coro_mutex_lock(dmx, -1), 0);
    ck_assert_int_eq(coro_spawn(NULL, cancel_victim, arg, NULL), 0);
    while (dstep == 0)
        ck_assert_int_eq(coro_yield(NULL, NULL), 0);
    ck_assert_int_eq(coro_yield(NULL, NULL), 0);   /* the victim parks */
    ck_assert_int_eq(coro_cancel(dvictim), 0);
    if (kind == 2) {
        ck_assert_int_eq(coro_mutex_unlock(dmx), 0);
        dres[2] = 0;
    } else
        dres[2] = coro_chan_send(dch, &v, coro_now() + 20 * MS);
    return NULL;
}

START_TEST(cancel_not_lost)
{
    int kind = _i;

    dstep = 0;
    dval = -1;
    memset(dres, -1, sizeof dres);
    ck_assert_int_eq(coro_chan_create(&dch, sizeof(long), 0), 0);
    ck_assert_int_eq(coro_chan_create(&dch2, 0, 0), 0);
    ck_assert_int_eq(coro_mutex_create(&dmx), 0);
    ck_assert_int_eq(coro_spawn(NULL, canceller, (void *)(intptr_t)kind, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    if (dres[0] == ECANCELED) {
        /* The cancel ended the wait: the element was not delivered. */
        if (kind != 2)
            ck_assert_int_eq(dres[2], ETIMEDOUT);
        ck_assert_int_eq(dres[1], ETIMEDOUT);
    } else {
        ck_assert_int_eq(dres[0], 0);
        if (kind != 2) {
            ck_assert_int_eq(dres[2], 0);
            ck_assert_int_eq(dval, 42);
        }
        ck_assert_msg(dres[1] == ECANCELED, "the cancel was lost: the next wait returned %s",
                      err_name(dres[1]));
    }
    ck_assert_int_eq(coro_mutex_destroy(dmx), 0);
    ck_assert_int_eq(coro_chan_destroy(dch), 0);
    ck_assert_int_eq(coro_chan_destroy(dch2), 0);
}
END_TEST

/* Select among ready clauses: each of the ready ones about equally often,
 * wherever the unready ones stand.  The bound is 6 standard deviations of
 * the binomial count. */
static const char *const uniform_cases[] = {
    "..RR", "R..R", ".RRR", "...R.R", "RR....", ".R.R.R.R",
};

static void *uniform_body(void *arg)
{
    const char *pat = arg;
    size_t n = strlen(pat);
    coro_chan_t *c[8];
    coro_select_clause_t cl[8];
    long counts[8] = {0}, v = 1;
    int ready = 0, trials = RUNNING_ON_VALGRIND ? 1000 : 6000;

    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(coro_chan_create(&c[i], sizeof(long), 1), 0);
        if (pat[i] == 'R') {
            ck_assert_int_eq(coro_chan_send(c[i], &v, -1), 0);
            ready++;
        }
        cl[i] = (coro_select_clause_t){c[i], CORO_SELECT_RECV, NULL};
    }
    for (int t = 0; t < trials; t++) {
        size_t idx = SIZE_MAX;
        ck_assert_int_eq(coro_select(cl, n, -1, &idx), 0);
        ck_assert_uint_lt(idx, n);
        ck_assert_int_eq(pat[idx], 'R');
        counts[idx]++;
        ck_assert_int_eq(coro_chan_send(c[idx], &v, -1), 0);
    }
    double p = 1.0 / ready, mean = trials * p, sd = sqrt(trials * p * (1 - p));
    for (size_t i = 0; i < n; i++) {
        if (pat[i] == 'R')
            ck_assert_msg(fabs((double)counts[i] - mean) <= 6 * sd,
                          "select over \"%s\": clause %zu taken %ld times of %d, "
                          "expected %.0f +- %.0f", pat, i, counts[i], trials, mean, 6 * sd);
        ck_assert_int_eq(coro_chan_destroy(c[i]), 0);
    }
    return NULL;
}

/* New semantics (issue 8, item 5): fails on b8e9e00. */
START_TEST(select_uniform)
{
    ck_assert_int_eq(coro_spawn(NULL, uniform_body, (void *)uniform_cases[_i], NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

/* ------------------------------------------------------------------ suite */

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc;

    /* Each random test runs for a third of CORO_MODEL_SECONDS; a round
     * that hangs fails it. */
    tc = tcase_create("base");
    tcase_set_timeout(tc, model_seconds() / 3 + 30);
    tcase_add_test(tc, model_chan);
    suite_add_tcase(s, tc);

    /* The semantics of issue 8 (see the top of the file): they fail
     * against the sync layer of b8e9e00 and before.
     * CORO_MODEL_SKIP_ISSUE8=1 leaves them out. */
    const char *skip = getenv("CORO_MODEL_SKIP_ISSUE8");
    if (skip && *skip && strcmp(skip, "0") != 0)
        return s;
    tc = tcase_create("issue8");
    tcase_set_timeout(tc, model_seconds() / 3 + 30);
    tcase_add_test(tc, model_try);
    tcase_add_test(tc, model_cancel);
    tcase_add_test(tc, try_never_yields);
    tcase_add_loop_test(tc, cancel_not_lost, 0, 3);
    tcase_add_loop_test(tc, select_uniform, 0,
                        (int)(sizeof uniform_cases / sizeof uniform_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(model_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

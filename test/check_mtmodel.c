/* Check suite 'mtmodel': a randomized test of shared channels, select,
 * a shared mutex, cancels and deadlines with coroutines on several pool
 * threads.
 *
 * Each round makes a pool of 3 threads, a few shared channels (buffered
 * and not) and a mutex, and spawns workers with handles on every thread;
 * in every other round the objects are made on a pool thread, so biased
 * to it until another thread's first call shares them.
 * Each worker runs a random script: sends, receives and selects with
 * random deadlines (none, passed = a try, a little ahead), sections under
 * the mutex, yields, sleeps, cancels of other workers (any thread), and
 * groups with members on random threads, waited for, cancelled, destroyed.
 * A closer closes every channel after a few milliseconds, so every wait
 * ends; a drain takes what is left in the buffers; the main coroutine
 * joins every worker across threads.
 *
 * Across threads there is no single order of events to model, so what is
 * checked is what must hold in any order:
 * - every call returns one of its documented codes; ETIMEDOUT never
 *   before the deadline; ECANCELED no more often than the worker was
 *   cancelled;
 * - nothing is lost or duplicated: an element is received (by a worker or
 *   the drain) exactly once if its send returned 0, never otherwise, and
 *   only from the channel it was sent on;
 * - FIFO: each receiver gets one sender's elements of one channel in the
 *   order they were sent;
 * - close: a send begun after the close returned gets EPIPE; after a
 *   receive got EPIPE, that receiver gets nothing more from the channel;
 * - the mutex: never two holders at once;
 * - a group: its wait returns 0 only after every member has finished,
 *   its destroy only after every member has started and finished;
 * - select: the index names a clause of the channel it used;
 * - every worker finishes, and its join returns its result.
 *
 * Seeded: a failure names the round's seed; CORO_MTMODEL_SEED=N runs from
 * round seed N (the threads' interleaving is not reproduced, the scripts
 * are).  Bounded in time: CORO_MODEL_SECONDS (default 3, 1 under
 * valgrind and the sanitizers). */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define US 1000LL
#define MS 1000000LL

enum {
    THREADS = 3,
    NCH = 3,          /* channels per round */
    NW = 12,          /* workers per round */
    OPS = 60,         /* script length per worker */
    NEL = NW * OPS * 3, /* elements: each send clause has its own */
};

/* An element: who sent it, on which channel, its place in the sender's
 * sends on that channel. */
struct elem {
    int id;           /* index in els */
    int sender;
    int chan;
    int seq;
};

struct el_state {
    atomic_int sent;  /* its send returned 0 */
    atomic_int got;   /* times received */
    atomic_int chan;  /* the channel it came out of + 1 */
};

static coro_pool_t *pool;
static coro_chan_t *chans[NCH];
static atomic_int closed[NCH];        /* coro_chan_close has returned */
static coro_mutex_t *mx;
static coro_wg_t *scripts;            /* workers whose script runs */
static coro_future_t *start;          /* set once every handle is known */
static atomic_int in_mx;
static coro_t *handles[NW];
static atomic_int cancels_issued[NW], cancels_seen[NW];
static struct el_state els[NEL];
static atomic_int nel;
static atomic_int failures;
static char failure[512];
static uint64_t round_seed;
static atomic_long stat_ops, stat_timeouts, stat_cancels, stat_pipes;

/* The first failure is kept for the report; workers go on, so that the
 * round still ends. */
__attribute__((format(printf, 2, 3)))
static void fail_at(int line, const char *fmt, ...)
{
    if (atomic_fetch_add(&failures, 1) == 0) {
        va_list ap;
        int n = snprintf(failure, sizeof failure, "CORO_MTMODEL_SEED=%" PRIu64 ": line %d: ",
                         round_seed, line);
        va_start(ap, fmt);
        vsnprintf(failure + n, sizeof failure - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

#define CHECK(cond, ...)                       \
    do {                                       \
        if (!(cond))                           \
            fail_at(__LINE__, __VA_ARGS__);    \
    } while (0)

/* xorshift64*, one state per worker (its script) */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static unsigned below(uint64_t *s, unsigned n)
{
    return (unsigned)(rnd(s) % n);
}

static int64_t pick_deadline(uint64_t *s)
{
    switch (below(s, 4)) {
    case 0:
        return 0;                               /* a try */
    case 1:
        return coro_now() + (int64_t)below(s, 300) * US;
    default:
        return -1;                              /* the closer ends it */
    }
}

/* What a worker keeps of its receives: the last seq it got from each
 * (sender, channel), for FIFO. */
struct seen {
    int last[NW][NCH];
    int piped[NCH];   /* a receive on it returned EPIPE */
};

static void received(struct seen *me, const struct elem *e, int ci)
{
    CHECK(e->id >= 0 && e->id < atomic_load(&nel), "element id %d out of range", e->id);
    if (e->id < 0 || e->id >= NEL)
        return;
    CHECK(e->chan == ci, "element %d sent on %d came out of %d", e->id, e->chan, ci);
    CHECK(atomic_fetch_add(&els[e->id].got, 1) == 0, "element %d received twice", e->id);
    atomic_store(&els[e->id].chan, ci + 1);
    if (me) {
        CHECK(!me->piped[ci], "element %d received after EPIPE on %d", e->id, ci);
        CHECK(e->seq > me->last[e->sender][ci], "FIFO: seq %d after %d (sender %d, chan %d)",
              e->seq, me->last[e->sender][ci], e->sender, ci);
        me->last[e->sender][ci] = e->seq;
    }
}

/* A deadline's result: ETIMEDOUT never before it. */
static void timed(int r, int64_t deadline)
{
    if (r == ETIMEDOUT) {
        CHECK(deadline >= 0 && coro_now() >= deadline, "ETIMEDOUT before the deadline");
        atomic_fetch_add(&stat_timeouts, 1);
    }
}

static void cancelled(int self, int r)
{
    if (r == ECANCELED) {
        int seen = atomic_fetch_add(&cancels_seen[self], 1) + 1;
        CHECK(seen <= atomic_load(&cancels_issued[self]),
              "worker %d: ECANCELED %d times, cancelled %d", self, seen,
              atomic_load(&cancels_issued[self]));
        atomic_fetch_add(&stat_cancels, 1);
    }
}

struct worker_arg {
    int self;
    uint64_t seed;
};

static struct worker_arg wargs[NW];

static void op_send(int self, uint64_t *s, int seq[NCH])
{
    int ci = (int)below(s, NCH);
    int id = atomic_fetch_add(&nel, 1);
    struct elem e = {id, self, ci, ++seq[ci]};
    int was_closed = atomic_load(&closed[ci]);
    int64_t deadline = pick_deadline(s);
    int r = coro_chan_send(chans[ci], &e, deadline);

    CHECK(r == 0 || r == EPIPE || r == ETIMEDOUT || r == ECANCELED, "send: %d", r);
    CHECK(!was_closed || r == EPIPE, "send after close returned %d", r);
    if (r == 0)
        atomic_store(&els[id].sent, 1);
    if (r == EPIPE)
        atomic_fetch_add(&stat_pipes, 1);
    timed(r, deadline);
    cancelled(self, r);
}

static void op_recv(int self, uint64_t *s, struct seen *me)
{
    int ci = (int)below(s, NCH);
    struct elem e;
    int64_t deadline = pick_deadline(s);
    int r = coro_chan_recv(chans[ci], &e, deadline);

    CHECK(r == 0 || r == EPIPE || r == ETIMEDOUT || r == ECANCELED, "recv: %d", r);
    if (r == 0)
        received(me, &e, ci);
    if (r == EPIPE)
        me->piped[ci] = 1;
    timed(r, deadline);
    cancelled(self, r);
}

static void op_select(int self, uint64_t *s, struct seen *me, int seq[NCH])
{
    coro_select_clause_t cl[3];
    struct elem in[3], out[3];
    int ids[3];
    size_t n = 2 + below(s, 2), index = 99;

    for (size_t i = 0; i < n; i++) {
        int ci = (int)below(s, NCH);
        cl[i].chan = chans[ci];
        ids[i] = -1;
        if (below(s, 2)) {
            ids[i] = atomic_fetch_add(&nel, 1);
            out[i] = (struct elem){ids[i], self, ci, 0};
            cl[i].op = CORO_SELECT_SEND;
            cl[i].elem = &out[i];
        } else {
            in[i].chan = ci;
            cl[i].op = CORO_SELECT_RECV;
            cl[i].elem = &in[i];
        }
    }
    /* A select's sends are numbered in clause order only once one is
     * chosen: give every send clause the next seq of its channel now, and
     * take the ones not chosen back out of the FIFO check by numbering
     * them anyway (gaps are allowed, order is what counts). */
    for (size_t i = 0; i < n; i++)
        if (cl[i].op == CORO_SELECT_SEND)
            out[i].seq = ++seq[out[i].chan];
    int64_t deadline = pick_deadline(s);
    int r = coro_select(cl, n, deadline, &index);

    CHECK(r == 0 || r == EPIPE || r == ETIMEDOUT || r == ECANCELED, "select: %d", r);
    if (r == 0 || r == EPIPE) {
        CHECK(index < n, "select index %zu of %zu", index, n);
        if (index >= n)
            return;
        int ci = cl[index].op == CORO_SELECT_SEND ? out[index].chan : in[index].chan;
        if (r == 0 && cl[index].op == CORO_SELECT_SEND)
            atomic_store(&els[ids[index]].sent, 1);
        else if (r == 0)
            received(me, &in[index], ci);
        else if (cl[index].op == CORO_SELECT_RECV)
            me->piped[ci] = 1;
    } else {
        CHECK(index == 99, "select set its index on %d", r);
    }
    timed(r, deadline);
    cancelled(self, r);
}

static void op_mutex(int self, uint64_t *s)
{
    int64_t deadline = below(s, 3) ? -1 : coro_now() + (int64_t)below(s, 200) * US;
    int r = coro_mutex_lock(mx, deadline);

    CHECK(r == 0 || r == ETIMEDOUT || r == ECANCELED, "lock: %d", r);
    timed(r, deadline);
    cancelled(self, r);
    if (r)
        return;
    CHECK(atomic_fetch_add(&in_mx, 1) == 0, "two holders of the mutex");
    if (below(s, 2))
        coro_yield(NULL, NULL);
    atomic_fetch_sub(&in_mx, 1);
    CHECK(coro_mutex_unlock(mx) == 0, "unlock");
}

static void op_cancel(uint64_t *s)
{
    int j = (int)below(s, NW);

    atomic_fetch_add(&cancels_issued[j], 1);
    int r = coro_cancel(handles[j]);
    CHECK(r == 0 || r == ESRCH, "cancel: %d", r);
    if (r == ESRCH)
        atomic_fetch_sub(&cancels_issued[j], 1);
}

/* A group op's members, on any thread: how many started and finished. */
struct gcount {
    atomic_int started, finished, errors;
};

static void *gmember(void *arg)
{
    struct gcount *c = arg;

    atomic_fetch_add(&c->started, 1);
    int r = coro_sleep(50 * US);
    if (r != 0 && r != ECANCELED)
        atomic_fetch_add(&c->errors, 1);
    atomic_fetch_add(&c->finished, 1);
    return NULL;
}

/* A group made here (biased to this thread), with members sent to random
 * threads or spawned here; then a wait with a random deadline, a cancel,
 * or neither; then the destroy, which returns once every member has
 * finished (c is on this stack: a member left would touch it after). */
static void op_group(int self, uint64_t *s)
{
    struct gcount c = {0, 0, 0};
    coro_group_t *g;
    int n = 1 + (int)below(s, 6), r;

    CHECK(coro_group_create(&g) == 0, "group create");
    for (int i = 0; i < n; i++) {
        unsigned t = below(s, THREADS + 2);
        if (t == THREADS + 1)
            r = coro_group_spawn(g, NULL, gmember, &c, NULL);
        else
            r = coro_group_spawn_on(g, pool, t == THREADS ? CORO_ANY : (int)t, NULL,
                                    gmember, &c, NULL);
        CHECK(r == 0, "group spawn: %d", r);
    }
    switch (below(s, 3)) {
    case 0: {
        int64_t deadline = pick_deadline(s);
        r = coro_group_wait(g, deadline);
        CHECK(r == 0 || r == ETIMEDOUT || r == ECANCELED, "group wait: %d", r);
        timed(r, deadline);
        cancelled(self, r);
        if (r == 0)
            CHECK(atomic_load(&c.finished) == n, "group wait: %d of %d finished",
                  atomic_load(&c.finished), n);
        break;
    }
    case 1:
        CHECK(coro_group_cancel(g) == 0, "group cancel");
        break;
    }
    CHECK(coro_group_destroy(g) == 0, "group destroy");
    CHECK(atomic_load(&c.finished) == n && atomic_load(&c.started) == n,
          "group destroy: %d started, %d finished of %d", atomic_load(&c.started),
          atomic_load(&c.finished), n);
    CHECK(atomic_load(&c.errors) == 0, "group member: bad sleep");
}

static void *worker(void *arg)
{
    struct worker_arg *a = arg;
    uint64_t s = a->seed;
    struct seen me;
    int seq[NCH] = {0};

    memset(&me, 0, sizeof me);
    CHECK(coro_future_wait(start, NULL, -1) == 0, "start");
    for (int i = 0; i < OPS; i++) {
        atomic_fetch_add(&stat_ops, 1);
        switch (below(&s, 13)) {
        case 0: case 1: case 2:
            op_send(a->self, &s, seq);
            break;
        case 3: case 4: case 5:
            op_recv(a->self, &s, &me);
            break;
        case 6: case 7:
            op_select(a->self, &s, &me, seq);
            break;
        case 8:
            op_mutex(a->self, &s);
            break;
        case 9:
            op_cancel(&s);
            break;
        case 10:
            coro_yield(NULL, NULL);
            break;
        case 11:
            op_group(a->self, &s);
            break;
        default: {
            int r = coro_sleep((int64_t)below(&s, 100) * US);
            CHECK(r == 0 || r == ECANCELED, "sleep: %d", r);
            cancelled(a->self, r);
        }
        }
    }
    coro_wg_done(scripts);
    return a;
}

static void *closer(void *arg)
{
    (void)arg;
    coro_sleep((int64_t)(1 + round_seed % 4) * MS);
    for (int i = 0; i < NCH; i++) {
        CHECK(coro_chan_close(chans[i]) == 0, "close");
        atomic_store(&closed[i], 1);
    }
    return NULL;
}

static void *drain(void *arg)
{
    struct elem e;

    (void)arg;
    for (int i = 0; i < NCH; i++)
        while (coro_chan_recv(chans[i], &e, 0) == 0)
            received(NULL, &e, i);
    return NULL;
}

/* The round's main coroutine, on thread 0: spawns the workers with
 * handles on every thread and the closer; once every script has ended
 * (so that no cancel names a handle any more) joins them all across
 * threads, then drains the channels. */
/* The round's objects: made by main after the pool (even rounds), claimed
 * by whichever worker's thread calls first; made by the round's main
 * coroutine on thread 0 (odd rounds), biased to thread 0.  Either way the
 * first call of another thread's worker shares them, waiters queued on
 * them or not. */
static void make_objects(void)
{
    for (int i = 0; i < NCH; i++) {
        ck_assert_int_eq(coro_chan_create(&chans[i], sizeof(struct elem),
                                          (round_seed + (uint64_t)i) % 3), 0);
        atomic_store(&closed[i], 0);
    }
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_wg_create(&scripts), 0);
    ck_assert_int_eq(coro_future_create(&start), 0);
    ck_assert_int_eq(coro_wg_add(scripts, NW), 0);
}

static void *round_main(void *arg)
{
    coro_t *cl;
    uint64_t s = round_seed * 0x9E3779B97F4A7C15ULL + 1;

    if (arg)
        make_objects();
    for (int i = 0; i < NW; i++) {
        wargs[i] = (struct worker_arg){i, rnd(&s) | 1};
        CHECK(coro_pool_spawn(pool, i % THREADS, &handles[i], worker, &wargs[i], NULL) == 0,
              "spawn");
    }
    CHECK(coro_pool_spawn(pool, 1, &cl, closer, NULL, NULL) == 0, "spawn closer");
    CHECK(coro_future_set(start, NULL) == 0, "start");
    CHECK(coro_wg_wait(scripts, -1) == 0, "wait group");
    for (int i = 0; i < NW; i++) {
        void *r = NULL;
        int e = coro_join(handles[i], &r, -1);
        CHECK(e == 0 && r == &wargs[i], "join of worker %d: %d", i, e);
    }
    CHECK(coro_join(cl, NULL, -1) == 0, "join of the closer");
    drain(NULL);
    return NULL;
}

static double model_seconds(void)
{
    const char *e = getenv("CORO_MODEL_SECONDS");
    double t = RUNNING_ON_VALGRIND || UNDER_TSAN || UNDER_ASAN ? 1.0 : 3.0;

    if (e && *e)
        t = strtod(e, NULL);
    return t;
}

static void run_round(uint64_t seed)
{
    round_seed = seed;
    atomic_store(&nel, 0);
    atomic_store(&in_mx, 0);
    for (int i = 0; i < NEL; i++) {
        atomic_store(&els[i].sent, 0);
        atomic_store(&els[i].got, 0);
        atomic_store(&els[i].chan, 0);
    }
    for (int i = 0; i < NW; i++) {
        atomic_store(&cancels_issued[i], 0);
        atomic_store(&cancels_seen[i], 0);
    }
    ck_assert_int_eq(coro_pool_create(&pool, THREADS), 0);
    int biased = seed % 2;
    if (!biased)
        make_objects();
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, round_main, biased ? &pool : NULL, NULL),
                     0);
    int r = coro_pool_wait(pool, coro_now() + 30 * 1000 * MS);
    ck_assert_msg(r == 0, "CORO_MTMODEL_SEED=%" PRIu64 ": the round did not end (%d)%s%s",
                  seed, r, failures ? ": " : "", failures ? failure : "");
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    int n = atomic_load(&nel);
    for (int i = 0; i < n && !failures; i++)
        CHECK(atomic_load(&els[i].got) == atomic_load(&els[i].sent),
              "element %d: sent %d, received %d times", i, atomic_load(&els[i].sent),
              atomic_load(&els[i].got));
    ck_assert_msg(!failures, "%s", failure);
    for (int i = 0; i < NCH; i++)
        ck_assert_int_eq(coro_chan_destroy(chans[i]), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
    ck_assert_int_eq(coro_wg_destroy(scripts), 0);
    ck_assert_int_eq(coro_future_destroy(start), 0);
}

START_TEST(model_threads)
{
    const char *e = getenv("CORO_MTMODEL_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 10) : (uint64_t)coro_now();
    int64_t end = coro_now() + (int64_t)(model_seconds() * 1e9);
    long rounds = 0;

    do
        run_round(seed + (uint64_t)rounds++);
    while (coro_now() < end);
    /* A model that never reached the paths it checks checks nothing. */
    ck_assert_int_gt(atomic_load(&stat_timeouts), 0);
    ck_assert_int_gt(atomic_load(&stat_pipes), 0);
    ck_assert_int_gt(atomic_load(&stat_cancels), 0);
    fprintf(stderr, "mtmodel: %ld rounds, %ld ops, %ld timeouts, %ld cancels, %ld EPIPE\n",
            rounds, atomic_load(&stat_ops), atomic_load(&stat_timeouts),
            atomic_load(&stat_cancels), atomic_load(&stat_pipes));
}
END_TEST

int main(void)
{
    Suite *su = suite_create("mtmodel");
    TCase *tc = tcase_create("threads");

    tcase_set_timeout(tc, model_seconds() + 60);
    tcase_add_test(tc, model_threads);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

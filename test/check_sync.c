/* Check suite for the sync layer: channels, select, mutex, cond,
 * semaphore, wait group, future.  Every test builds its coroutines with
 * coro_spawn and drives them with coro_run; the order of events is fixed
 * by the scheduler's FIFO ready queue, and the short sleeps only let the
 * others reach their waits first (no assertion depends on timing). */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS 1000000LL

/* Under ASan, a failed huge malloc must return NULL, not abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

/* ------------------------------------------------------------- helpers */

/* Spawns detached: a coroutine that another one cancels publishes its
 * own handle (victim). */
static void spawn(coro_fn fn, void *arg)
{
    ck_assert_int_eq(coro_spawn(NULL, fn, arg, NULL), 0);
}

static void run(void)
{
    ck_assert_int_eq(coro_run(), 0);
}

/* coro_run with what it writes on stderr (a deadlock report) going to a
 * temporary file instead, *f, left at its end: its result. */
static int run_into(FILE **f)
{
    ck_assert_ptr_nonnull(*f = tmpfile());
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(*f), 2);
    int r = coro_run();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return r;
}

/* Lets every ready coroutine run up to its next wait.  The yield first:
 * on a slow machine (valgrind translating code it meets the first time)
 * the deadline can pass before the sleep parks, and a passed deadline
 * returns at once without letting anyone run. */
static void pause_ms(int64_t ms)
{
    ck_assert_int_eq(coro_yield(NULL, NULL), 0);
    ck_assert_int_eq(coro_sleep(ms * MS), 0);
}

static int64_t soon(void)
{
    return coro_now() + 2 * MS;
}

static int64_t past(void)
{
    return coro_now() - 1;
}

/* The order in which coroutines reached some point. */
static int order[128];
static int norder;

static void mark(int who)
{
    ck_assert_int_lt(norder, 128);
    order[norder++] = who;
}

static void reset(void)
{
    norder = 0;
    memset(order, 0, sizeof order);
}

/* Shared objects of the running test. */
static coro_chan_t *ch, *ch2;
static coro_mutex_t *mx, *mx2;
static coro_cond_t *cv;
static coro_sem_t *sem;
static coro_wg_t *wg;
static coro_future_t *fut;
static int result[16];
static coro_t *victim;

/* ------------------------------------------------------------ channels */

static void *sender_n(void *arg)
{
    for (int i = 1; i <= (int)(intptr_t)arg; i++)
        ck_assert_int_eq(coro_chan_send(ch, &i, -1), 0);
    return NULL;
}

static void *receiver_n(void *arg)
{
    for (int i = 1, v; i <= (int)(intptr_t)arg; i++) {
        ck_assert_int_eq(coro_chan_recv(ch, &v, -1), 0);
        ck_assert_int_eq(v, i);
        mark(v);
    }
    return NULL;
}

START_TEST(chan_unbuffered_transfers_in_order)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    spawn(receiver_n, (void *)100);
    spawn(sender_n, (void *)100);
    run();
    ck_assert_int_eq(norder, 100);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
}
END_TEST

/* Receiver i blocks, in spawn order; the values sent later go to them in
 * that order. */
static void *recv_mark(void *arg)
{
    int v;

    ck_assert_int_eq(coro_chan_recv(ch, &v, -1), 0);
    result[(intptr_t)arg] = v;
    mark((int)(intptr_t)arg);
    return NULL;
}

static void *send_three(void *arg)
{
    (void)arg;
    pause_ms(1);
    for (int i = 10; i < 13; i++)
        ck_assert_int_eq(coro_chan_send(ch, &i, -1), 0);
    return NULL;
}

START_TEST(chan_receivers_fifo)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), _i), 0);
    for (intptr_t i = 0; i < 3; i++)
        spawn(recv_mark, (void *)i);
    spawn(send_three, NULL);
    run();
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(result[i], 10 + i);
        ck_assert_int_eq(order[i], i);
    }
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
}
END_TEST

/* Senders block in spawn order (on a full or unbuffered channel); the
 * receiver gets their values in that order, after what was buffered. */
static void *send_one(void *arg)
{
    int v = (int)(intptr_t)arg;

    ck_assert_int_eq(coro_chan_send(ch, &v, -1), 0);
    mark(v);
    return NULL;
}

static void *recv_all(void *arg)
{
    int n = (int)(intptr_t)arg, v;

    pause_ms(1);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(coro_chan_recv(ch, &v, -1), 0);
        result[i] = v;
    }
    ck_assert_int_eq(coro_chan_recv(ch, &v, past()), ETIMEDOUT);
    return NULL;
}

START_TEST(chan_senders_fifo)
{
    int cap = _i;

    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), cap), 0);
    for (intptr_t i = 1; i <= 5; i++)
        spawn(send_one, (void *)i);
    spawn(recv_all, (void *)5);
    run();
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(result[i], i + 1);
    /* the buffered ones return at once, the others in FIFO order */
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(order[i], i + 1);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
}
END_TEST

static void *buffered_capacity(void *arg)
{
    int v;

    (void)arg;
    for (int i = 0; i < 3; i++)   /* fits without a receiver: no waiting */
        ck_assert_int_eq(coro_chan_send(ch, &i, past()), 0);
    v = 3;
    ck_assert_int_eq(coro_chan_send(ch, &v, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_send(ch, &v, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_recv(ch, &v, -1), 0);
    ck_assert_int_eq(v, 0);
    v = 3;
    ck_assert_int_eq(coro_chan_send(ch, &v, past()), 0); /* room again */
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(coro_chan_recv(ch, &v, past()), 0);
        ck_assert_int_eq(v, i);
    }
    ck_assert_int_eq(coro_chan_recv(ch, &v, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_recv(ch, NULL, soon()), ETIMEDOUT);
    return NULL;
}

START_TEST(chan_buffered_capacity)
{
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 3), 0);
    spawn(buffered_capacity, NULL);
    run();
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
}
END_TEST

/* Elements bigger than a word, and zero-size signal elements. */
struct big { char s[100]; long n; };

static void *send_big(void *arg)
{
    struct big b;

    (void)arg;
    memset(&b, 'x', sizeof b);
    b.n = 42;
    ck_assert_int_eq(coro_chan_send(ch, &b, -1), 0);
    ck_assert_int_eq(coro_chan_send(ch2, NULL, -1), 0);
    return NULL;
}

static void *recv_big(void *arg)
{
    struct big b;

    (void)arg;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(coro_chan_recv(ch, &b, -1), 0);
    ck_assert_int_eq(b.n, 42);
    ck_assert_int_eq(b.s[99], 'x');
    ck_assert_int_eq(coro_chan_recv(ch2, NULL, -1), 0);
    result[0] = 1;
    return NULL;
}

START_TEST(chan_element_sizes)
{
    result[0] = 0;
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(struct big), _i), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, 0, _i), 0);
    spawn(recv_big, NULL);
    spawn(send_big, NULL);
    run();
    ck_assert_int_eq(result[0], 1);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* Timeouts leave no waiter behind: destroy succeeds afterwards. */
static void *chan_timeouts(void *arg)
{
    int v = 1;

    (void)arg;
    ck_assert_int_eq(coro_chan_recv(ch, &v, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_send(ch, &v, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_recv(ch, &v, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_send(ch, &v, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    return NULL;
}

START_TEST(chan_timeout)
{
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    spawn(chan_timeouts, NULL);
    run();
}
END_TEST

/* A waiter cancelled by another coroutine gets ECANCELED and is off the
 * channel's list. */
static void *wait_send(void *arg)
{
    int v = 7;

    victim = coro_self();
    ck_assert_int_eq(coro_chan_send(ch, &v, -1), (int)(intptr_t)arg);
    mark(1);
    return NULL;
}

static void *wait_recv(void *arg)
{
    int v;

    victim = coro_self();
    ck_assert_int_eq(coro_chan_recv(ch, &v, -1), (int)(intptr_t)arg);
    mark(2);
    return NULL;
}

static void *canceller(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_chan_destroy(ch), EBUSY);
    ck_assert_int_eq(coro_cancel(victim), 0);
    pause_ms(1);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    mark(3);
    return NULL;
}

START_TEST(chan_cancel)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    spawn(_i ? wait_send : wait_recv, (void *)ECANCELED);
    spawn(canceller, NULL);
    run();
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], _i ? 1 : 2);
    ck_assert_int_eq(order[1], 3);
}
END_TEST

/* Close wakes blocked senders with EPIPE. */
static void *closer(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_chan_close(ch), 0);
    ck_assert_int_eq(coro_chan_close(ch), EPIPE);
    mark(9);
    return NULL;
}

START_TEST(chan_close_wakes_senders)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 1), 0);
    /* fill the buffer from a coroutine, then two senders block */
    spawn(wait_send, (void *)0);
    spawn(wait_send, (void *)EPIPE);
    spawn(wait_send, (void *)EPIPE);
    spawn(closer, NULL);
    run();
    ck_assert_int_eq(norder, 4);
    ck_assert_int_eq(order[3], 1); /* woken by close, after it returned */
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
}
END_TEST

/* Receivers blocked on an empty channel get EPIPE at close; on a buffered
 * channel, receivers after the close drain it first. */
static void *drain(void *arg)
{
    int v;

    (void)arg;
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(coro_chan_recv(ch, &v, -1), 0);
        ck_assert_int_eq(v, 20 + i);
    }
    ck_assert_int_eq(coro_chan_recv(ch, &v, -1), EPIPE);
    ck_assert_int_eq(coro_chan_recv(ch, &v, past()), EPIPE);
    v = 1;
    ck_assert_int_eq(coro_chan_send(ch, &v, -1), EPIPE);
    mark(4);
    return NULL;
}

static void *fill_close(void *arg)
{
    (void)arg;
    for (int i = 20; i < 22; i++)
        ck_assert_int_eq(coro_chan_send(ch, &i, -1), 0);
    ck_assert_int_eq(coro_chan_close(ch), 0);
    return NULL;
}

START_TEST(chan_close_wakes_receivers)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    spawn(wait_recv, (void *)EPIPE);
    spawn(wait_recv, (void *)EPIPE);
    spawn(closer, NULL);
    run();
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(order[0], 9);
    ck_assert_int_eq(order[1], 2);
    ck_assert_int_eq(order[2], 2);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);

    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 4), 0);
    spawn(fill_close, NULL);
    spawn(drain, NULL);
    run();
    ck_assert_int_eq(norder, 1);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
}
END_TEST

/* -------------------------------------------------------------- select */

static void *select_ready(void *arg)
{
    int a = 0, b = 0, c = 5;
    size_t idx = 99;
    coro_select_clause_t cl[3] = {
        { ch, CORO_SELECT_RECV, &a },
        { ch2, CORO_SELECT_RECV, &b },
        { NULL, CORO_SELECT_RECV, &c },
    };

    (void)arg;
    b = 77;
    ck_assert_int_eq(coro_chan_send(ch2, &b, -1), 0);
    b = 0;
    /* only ch2 has an element: with any deadline, it is taken at once */
    ck_assert_int_eq(coro_select(cl, 3, past(), &idx), 0);
    ck_assert_uint_eq(idx, 1);
    ck_assert_int_eq(b, 77);
    ck_assert_int_eq(a, 0);
    /* a ready send clause */
    cl[0] = (coro_select_clause_t){ ch2, CORO_SELECT_SEND, &c };
    cl[1].chan = NULL;
    ck_assert_int_eq(coro_select(cl, 3, -1, &idx), 0);
    ck_assert_uint_eq(idx, 0);
    ck_assert_int_eq(coro_chan_recv(ch2, &b, past()), 0);
    ck_assert_int_eq(b, 5);
    return NULL;
}

START_TEST(select_with_ready_clause)
{
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 1), 0);
    spawn(select_ready, NULL);
    run();
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* No clause ready and no deadline: select waits until a sender comes, on
 * the second channel, and leaves no waiter on the first. */
static void *select_blocking(void *arg)
{
    int a = 0, b = 0;
    size_t idx = 99;
    coro_select_clause_t cl[2] = {
        { ch, CORO_SELECT_RECV, &a },
        { ch2, CORO_SELECT_RECV, &b },
    };

    (void)arg;
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    ck_assert_int_eq(b, 31);
    mark(1);
    return NULL;
}

static void *late_sender(void *arg)
{
    int v = 31;

    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_chan_destroy(ch), EBUSY);   /* select waits on it */
    ck_assert_int_eq(coro_chan_send(ch2, &v, -1), 0);
    ck_assert_int_eq(coro_chan_send(ch, &v, past()), ETIMEDOUT); /* no stale waiter */
    mark(2);
    return NULL;
}

START_TEST(select_waits_for_a_clause)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), _i), 0);
    spawn(select_blocking, NULL);
    spawn(late_sender, NULL);
    run();
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* A blocked send clause is taken by a receiver. */
static void *select_send_blocking(void *arg)
{
    int a = 0, b = 8;
    size_t idx = 99;
    coro_select_clause_t cl[2] = {
        { ch, CORO_SELECT_RECV, &a },
        { ch2, CORO_SELECT_SEND, &b },
    };

    (void)arg;
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), 0);
    ck_assert_uint_eq(idx, 1);
    mark(1);
    return NULL;
}

static void *late_receiver(void *arg)
{
    int v = 0;

    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_chan_recv(ch2, &v, -1), 0);
    ck_assert_int_eq(v, 8);
    ck_assert_int_eq(coro_chan_send(ch, &v, past()), ETIMEDOUT);
    mark(2);
    return NULL;
}

START_TEST(select_send_clause_waits)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 0), 0);
    spawn(select_send_blocking, NULL);
    spawn(late_receiver, NULL);
    run();
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* A deadline: ETIMEDOUT, index untouched, no waiter left behind; also with
 * no clause at all, and with more clauses than fit on the stack. */
static void *select_deadline(void *arg)
{
    enum { N = 20 };
    int v[N];
    coro_select_clause_t cl[N];
    size_t idx = 99;

    (void)arg;
    for (int i = 0; i < N; i++)
        cl[i] = (coro_select_clause_t){ i % 2 ? ch : ch2,
                                        i % 3 ? CORO_SELECT_RECV : CORO_SELECT_SEND,
                                        &v[i] };
    ck_assert_int_eq(coro_select(cl, 2, soon(), &idx), ETIMEDOUT);
    ck_assert_int_eq(coro_select(cl, 2, past(), &idx), ETIMEDOUT);
    ck_assert_int_eq(coro_select(cl, N, soon(), &idx), ETIMEDOUT);
    ck_assert_int_eq(coro_select(NULL, 0, soon(), &idx), ETIMEDOUT);
    ck_assert_int_eq(coro_select(cl, 0, soon(), NULL), ETIMEDOUT);
    ck_assert_uint_eq(idx, 99);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
    mark(1);
    return NULL;
}

START_TEST(select_deadline_passes)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 0), 0);
    spawn(select_deadline, NULL);
    run();
    ck_assert_int_eq(norder, 1);
}
END_TEST

/* Many clauses (more than fit on the stack), one of them made ready later. */
static void *select_many(void *arg)
{
    enum { N = 20 };
    int v[N];
    coro_select_clause_t cl[N];
    size_t idx = 99;

    (void)arg;
    for (int i = 0; i < N; i++)
        cl[i] = (coro_select_clause_t){ i == 13 ? ch2 : ch, CORO_SELECT_RECV, &v[i] };
    ck_assert_int_eq(coro_select(cl, N, -1, &idx), 0);
    ck_assert_uint_eq(idx, 13);
    ck_assert_int_eq(v[13], 31);
    mark(1);
    return NULL;
}

START_TEST(select_many_clauses)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 0), 0);
    spawn(select_many, NULL);
    spawn(late_sender, NULL);
    run();
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* Closed channels: ready at once with EPIPE (a receive drains first, a
 * send never succeeds), and a close during the wait wakes it with EPIPE. */
static void *select_closed(void *arg)
{
    int a = 0, b = 1;
    size_t idx = 99;
    coro_select_clause_t cl[2] = {
        { ch, CORO_SELECT_RECV, &a },
        { ch2, CORO_SELECT_RECV, &b },
    };

    (void)arg;
    ck_assert_int_eq(coro_chan_send(ch2, &b, -1), 0);
    ck_assert_int_eq(coro_chan_close(ch2), 0);
    b = 0;
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), 0);   /* drains first */
    ck_assert_uint_eq(idx, 1);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), EPIPE);
    ck_assert_uint_eq(idx, 1);
    cl[1].op = CORO_SELECT_SEND;
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), EPIPE);
    ck_assert_uint_eq(idx, 1);
    /* only ch left open: the closer closes it while we wait */
    cl[1].chan = NULL;
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), EPIPE);
    ck_assert_uint_eq(idx, 0);
    mark(1);
    return NULL;
}

START_TEST(select_closed_channels)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 1), 0);
    spawn(select_closed, NULL);
    spawn(closer, NULL);
    run();
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], 9);
    ck_assert_int_eq(order[1], 1);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

static void *select_cancelled(void *arg)
{
    int a;
    size_t idx = 99;
    coro_select_clause_t cl[2] = {
        { ch, CORO_SELECT_RECV, &a },
        { ch, CORO_SELECT_SEND, &a },
    };

    (void)arg;
    victim = coro_self();
    a = 3;
    ck_assert_int_eq(coro_select(cl, 2, -1, &idx), ECANCELED);
    ck_assert_uint_eq(idx, 99);
    mark(1);
    return NULL;
}

START_TEST(select_cancel)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    spawn(select_cancelled, NULL);
    spawn(canceller, NULL);
    run();
    ck_assert_int_eq(norder, 2);
}
END_TEST

/* When several clauses are always ready, each is picked sometimes. */
static void *select_fair(void *arg)
{
    int v, seen[3] = { 0, 0, 0 };
    size_t idx;
    coro_select_clause_t cl[3] = {
        { ch, CORO_SELECT_SEND, &v },
        { ch, CORO_SELECT_RECV, &v },
        { ch2, CORO_SELECT_SEND, &v },
    };

    (void)arg;
    v = 0;
    ck_assert_int_eq(coro_chan_send(ch, &v, -1), 0);
    for (int i = 0; i < 300; i++) {
        ck_assert_int_eq(coro_select(cl, 3, -1, &idx), 0);
        seen[idx]++;
        if (idx == 2)
            ck_assert_int_eq(coro_chan_recv(ch2, NULL, -1), 0);
        if (idx == 0 && coro_chan_recv(ch, NULL, past()) != 0)
            ck_abort();
        if (idx == 1)
            ck_assert_int_eq(coro_chan_send(ch, &v, -1), 0);
    }
    ck_assert_int_gt(seen[0], 0);
    ck_assert_int_gt(seen[1], 0);
    ck_assert_int_gt(seen[2], 0);
    return NULL;
}

START_TEST(select_picks_among_ready)
{
    int v = 0;

    (void)v;
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 2), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 1), 0);
    /* ch holds one element: both its send and its receive are ready */
    spawn(select_fair, NULL);
    /* from outside a scheduled coroutine even a send with room is refused */
    ck_assert_int_eq(coro_chan_send(ch, &v, -1), EPERM);
    run();
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* --------------------------------------------------------------- mutex */

static void *lock_hold(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_mutex_lock(mx, -1), EDEADLK);
    mark(0);
    pause_ms(1);
    ck_assert_int_eq(coro_mutex_destroy(mx), EBUSY);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    ck_assert_int_eq(coro_mutex_unlock(mx), EPERM); /* held by waiter 1 now */
    return NULL;
}

static void *lock_mark(void *arg)
{
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    mark((int)(intptr_t)arg);
    pause_ms(0);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

START_TEST(mutex_fifo)
{
    reset();
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    spawn(lock_hold, NULL);
    for (intptr_t i = 1; i <= 5; i++)
        spawn(lock_mark, (void *)i);
    run();
    ck_assert_int_eq(norder, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(order[i], i);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

static void *lock_expect(void *arg)
{
    victim = coro_self();
    ck_assert_int_eq(coro_mutex_lock(mx, -1), (int)(intptr_t)arg);
    ck_assert_int_eq(coro_mutex_unlock(mx), EPERM);
    mark(1);
    return NULL;
}

/* Holds the mutex until the semaphore gets a unit. */
static void *lock_until_sem(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_sem_acquire(sem, -1), 0);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    mark(2);
    return NULL;
}

static void *lock_timeout(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_mutex_lock(mx, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_mutex_unlock(mx), EPERM);
    mark(1);
    ck_assert_int_eq(coro_sem_release(sem), 0);
    return NULL;
}

static void *lock_then_cancel(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    pause_ms(1);
    ck_assert_int_eq(coro_cancel(victim), 0);
    pause_ms(1);
    mark(3);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

START_TEST(mutex_timeout_and_cancel)
{
    reset();
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    spawn(lock_until_sem, NULL);
    spawn(lock_timeout, NULL);
    run();
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(order[1], 2);
    spawn(lock_then_cancel, NULL);
    spawn(lock_expect, (void *)ECANCELED);
    run();
    ck_assert_int_eq(norder, 4);
    ck_assert_int_eq(order[2], 1);  /* cancelled while the holder held it */
    ck_assert_int_eq(order[3], 3);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
}
END_TEST

/* ---------------------------------------------------------------- cond */

static int ready_flag;

static void *cond_waiter(void *arg)
{
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    while (!ready_flag)
        ck_assert_int_eq(coro_cond_wait(cv, mx, -1), 0);
    ready_flag--;
    mark((int)(intptr_t)arg);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

static void *cond_signaller(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_cond_destroy(cv), EBUSY);
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ready_flag = 1;
    ck_assert_int_eq(coro_cond_signal(cv), 0);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    pause_ms(1);
    ck_assert_int_eq(norder, 1);     /* one signal wakes one waiter */
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ready_flag = 3;
    ck_assert_int_eq(coro_cond_broadcast(cv), 0);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

START_TEST(cond_signal_broadcast)
{
    reset();
    ready_flag = 0;
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    for (intptr_t i = 1; i <= 4; i++)
        spawn(cond_waiter, (void *)i);
    spawn(cond_signaller, NULL);
    run();
    ck_assert_int_eq(norder, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(order[i], i + 1);
    ck_assert_int_eq(ready_flag, 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* Timeout and cancel: the waiter gets the error back with the mutex held
 * again, even when it was taken by someone else meanwhile. */
static void *cond_timeout(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_cond_wait(cv, mx, -1), EPERM);   /* not held */
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_cond_wait(cv, mx, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_cond_wait(cv, mx, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    mark(1);
    return NULL;
}

static void *cond_cancelled(void *arg)
{
    (void)arg;
    victim = coro_self();
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_cond_wait(cv, mx, -1), ECANCELED);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);  /* held again */
    mark(2);
    return NULL;
}

static void *cond_cancel_holding(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_cancel(victim), 0);
    pause_ms(1);             /* the victim waits for the mutex now */
    mark(3);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

START_TEST(cond_timeout_and_cancel)
{
    reset();
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    spawn(cond_timeout, NULL);
    run();
    ck_assert_int_eq(norder, 1);
    spawn(cond_cancelled, NULL);
    spawn(cond_cancel_holding, NULL);
    run();
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(order[1], 3);
    ck_assert_int_eq(order[2], 2);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* ----------------------------------------------------------- semaphore */

static void *sem_mark(void *arg)
{
    ck_assert_int_eq(coro_sem_acquire(sem, -1), 0);
    mark((int)(intptr_t)arg);
    return NULL;
}

static void *sem_releaser(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(norder, 2);              /* the initial units */
    ck_assert_int_eq(coro_sem_destroy(sem), EBUSY);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(coro_sem_release(sem), 0);
    ck_assert_uint_eq(coro_sem_value(sem), 0); /* handed to the waiters */
    ck_assert_int_eq(coro_sem_release(sem), 0);
    ck_assert_uint_eq(coro_sem_value(sem), 1);
    return NULL;
}

START_TEST(sem_fifo)
{
    reset();
    ck_assert_int_eq(coro_sem_create(&sem, 2), 0);
    ck_assert_uint_eq(coro_sem_value(sem), 2);
    for (intptr_t i = 1; i <= 5; i++)
        spawn(sem_mark, (void *)i);
    spawn(sem_releaser, NULL);
    run();
    ck_assert_int_eq(norder, 5);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(order[i], i + 1);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
}
END_TEST

static void *sem_timeouts(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sem_acquire(sem, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_sem_acquire(sem, past()), ETIMEDOUT);
    ck_assert_int_eq(coro_sem_release(sem), 0);
    ck_assert_int_eq(coro_sem_acquire(sem, past()), 0);
    mark(1);
    return NULL;
}

static void *sem_cancelled(void *arg)
{
    (void)arg;
    victim = coro_self();
    ck_assert_int_eq(coro_sem_acquire(sem, -1), ECANCELED);
    mark(2);
    return NULL;
}

static void *sem_cancel(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_sem_destroy(sem), EBUSY);
    ck_assert_int_eq(coro_cancel(victim), 0);
    pause_ms(1);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    mark(3);
    return NULL;
}

START_TEST(sem_timeout_cancel_overflow)
{
    coro_sem_t *full;

    reset();
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    spawn(sem_timeouts, NULL);
    run();
    ck_assert_int_eq(norder, 1);
    spawn(sem_cancelled, NULL);
    spawn(sem_cancel, NULL);
    run();
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(coro_sem_create(&full, UINT_MAX), 0);
    ck_assert_int_eq(coro_sem_release(full), EOVERFLOW);
    ck_assert_uint_eq(coro_sem_value(full), UINT_MAX);
    ck_assert_int_eq(coro_sem_destroy(full), 0);
}
END_TEST

/* ---------------------------------------------------------- wait group */

static void *wg_worker(void *arg)
{
    pause_ms((intptr_t)arg);
    mark(1);
    ck_assert_int_eq(coro_wg_done(wg), 0);
    return NULL;
}

static void *wg_waiter(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_wg_wait(wg, -1), 0);
    mark(2);
    ck_assert_int_eq(coro_wg_wait(wg, past()), 0);   /* zero: at once */
    return NULL;
}

START_TEST(wg_waits_for_all)
{
    reset();
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 3), 0);
    spawn(wg_waiter, NULL);
    spawn(wg_waiter, NULL);
    for (intptr_t i = 0; i < 3; i++)
        spawn(wg_worker, (void *)i);
    run();
    ck_assert_int_eq(norder, 5);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(order[i], 1);
    ck_assert_int_eq(order[3], 2);
    ck_assert_int_eq(order[4], 2);
    ck_assert_int_eq(coro_wg_done(wg), EINVAL);      /* below zero */
    ck_assert_int_eq(coro_wg_add(wg, 2), 0);
    ck_assert_int_eq(coro_wg_add(wg, -3), EINVAL);   /* left unchanged */
    ck_assert_int_eq(coro_wg_add(wg, LONG_MAX), EOVERFLOW);
    ck_assert_int_eq(coro_wg_add(wg, -2), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
}
END_TEST

static void *wg_timeout(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_wg_wait(wg, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_wg_wait(wg, past()), ETIMEDOUT);
    mark(1);
    return NULL;
}

static void *wg_cancelled(void *arg)
{
    (void)arg;
    victim = coro_self();
    ck_assert_int_eq(coro_wg_wait(wg, -1), ECANCELED);
    mark(2);
    return NULL;
}

static void *wg_cancel(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_wg_destroy(wg), EBUSY);
    ck_assert_int_eq(coro_cancel(victim), 0);
    mark(3);
    return NULL;
}

START_TEST(wg_timeout_and_cancel)
{
    reset();
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
    spawn(wg_timeout, NULL);
    spawn(wg_cancelled, NULL);
    spawn(wg_cancel, NULL);
    run();
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
}
END_TEST

/* -------------------------------------------------------------- future */

static void *future_waiter(void *arg)
{
    void *v = NULL;

    ck_assert_int_eq(coro_future_wait(fut, &v, -1), 0);
    ck_assert_ptr_eq(v, &result[0]);
    mark((int)(intptr_t)arg);
    return NULL;
}

static void *future_setter(void *arg)
{
    void *v = NULL;

    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_future_destroy(fut), EBUSY);
    ck_assert_int_eq(coro_future_set(fut, &result[0]), 0);
    ck_assert_int_eq(coro_future_set(fut, &result[1]), EBUSY);
    ck_assert_int_eq(coro_future_wait(fut, &v, past()), 0);   /* set: at once */
    ck_assert_ptr_eq(v, &result[0]);
    ck_assert_int_eq(coro_future_wait(fut, NULL, -1), 0);
    return NULL;
}

START_TEST(future_many_waiters)
{
    reset();
    ck_assert_int_eq(coro_future_create(&fut), 0);
    for (intptr_t i = 1; i <= 6; i++)
        spawn(future_waiter, (void *)i);
    spawn(future_setter, NULL);
    run();
    ck_assert_int_eq(norder, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(order[i], i + 1);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
}
END_TEST

static void *future_timeout(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_future_wait(fut, NULL, soon()), ETIMEDOUT);
    ck_assert_int_eq(coro_future_wait(fut, NULL, past()), ETIMEDOUT);
    mark(1);
    return NULL;
}

static void *future_cancelled(void *arg)
{
    void *v = &result[5];

    (void)arg;
    victim = coro_self();
    ck_assert_int_eq(coro_future_wait(fut, &v, -1), ECANCELED);
    ck_assert_ptr_eq(v, &result[5]);
    mark(2);
    return NULL;
}

static void *future_cancel(void *arg)
{
    (void)arg;
    pause_ms(1);
    ck_assert_int_eq(coro_future_destroy(fut), EBUSY);
    ck_assert_int_eq(coro_cancel(victim), 0);
    pause_ms(1);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
    mark(3);
    return NULL;
}

START_TEST(future_timeout_and_cancel)
{
    reset();
    ck_assert_int_eq(coro_future_create(&fut), 0);
    spawn(future_timeout, NULL);
    run();
    ck_assert_int_eq(norder, 1);
    spawn(future_cancelled, NULL);
    spawn(future_cancel, NULL);
    run();
    ck_assert_int_eq(norder, 3);
}
END_TEST

/* -------------------------------------------------------------- misuse */

/* Every call that can wait refuses to from outside a scheduled coroutine:
 * from the thread itself (here), and from a coroutine resumed by hand. */
static void *blocking_calls_eperm(void *arg)
{
    int v = 0;
    coro_select_clause_t cl = { ch, CORO_SELECT_RECV, &v };

    (void)arg;
    ck_assert_int_eq(coro_chan_send(ch, &v, -1), EPERM);
    ck_assert_int_eq(coro_chan_recv(ch, &v, -1), EPERM);
    ck_assert_int_eq(coro_select(&cl, 1, -1, NULL), EPERM);
    ck_assert_int_eq(coro_mutex_lock(mx, -1), EPERM);
    ck_assert_int_eq(coro_mutex_unlock(mx), EPERM);
    ck_assert_int_eq(coro_cond_wait(cv, mx, -1), EPERM);
    ck_assert_int_eq(coro_sem_acquire(sem, -1), EPERM);
    ck_assert_int_eq(coro_wg_wait(wg, -1), EPERM);
    ck_assert_int_eq(coro_future_wait(fut, NULL, -1), EPERM);
    return &result[0];
}

START_TEST(misuse_eperm)
{
    coro_t *co;
    void *out = NULL;

    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 4), 0);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    ck_assert_int_eq(coro_sem_create(&sem, 1), 0);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    blocking_calls_eperm(NULL);
    ck_assert_int_eq(coro_create(&co, blocking_calls_eperm, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
    ck_assert_ptr_eq(out, &result[0]);
    ck_assert_int_eq(coro_destroy(co), 0);
    /* the calls that never wait work from anywhere */
    ck_assert_int_eq(coro_chan_close(ch), 0);
    ck_assert_int_eq(coro_cond_signal(cv), 0);
    ck_assert_int_eq(coro_cond_broadcast(cv), 0);
    ck_assert_int_eq(coro_sem_release(sem), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
    ck_assert_int_eq(coro_wg_done(wg), 0);
    ck_assert_int_eq(coro_future_set(fut, NULL), 0);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
}
END_TEST

/* Bad arguments, checked before anything else (so also from a scheduled
 * coroutine). */
static void *bad_arguments(void *arg)
{
    int v = 0;
    coro_select_clause_t cl = { ch, CORO_SELECT_RECV, &v };

    (void)arg;
    ck_assert_int_eq(coro_chan_send(NULL, &v, -1), EINVAL);
    ck_assert_int_eq(coro_chan_send(ch, NULL, -1), EINVAL);
    ck_assert_int_eq(coro_chan_send(ch, &v, -2), EINVAL);
    ck_assert_int_eq(coro_chan_recv(NULL, &v, -1), EINVAL);
    ck_assert_int_eq(coro_chan_recv(ch, &v, INT64_MIN), EINVAL);
    ck_assert_int_eq(coro_select(NULL, 1, -1, NULL), EINVAL);
    ck_assert_int_eq(coro_select(&cl, 1, -5, NULL), EINVAL);
    cl.op = 0;
    ck_assert_int_eq(coro_select(&cl, 1, -1, NULL), EINVAL);
    cl = (coro_select_clause_t){ ch, CORO_SELECT_SEND, NULL };
    ck_assert_int_eq(coro_select(&cl, 1, -1, NULL), EINVAL);
    ck_assert_int_eq(coro_mutex_lock(NULL, -1), EINVAL);
    ck_assert_int_eq(coro_mutex_lock(mx, -2), EINVAL);
    ck_assert_int_eq(coro_mutex_unlock(NULL), EINVAL);
    ck_assert_int_eq(coro_cond_wait(NULL, mx, -1), EINVAL);
    ck_assert_int_eq(coro_cond_wait(cv, NULL, -1), EINVAL);
    ck_assert_int_eq(coro_sem_acquire(NULL, -1), EINVAL);
    ck_assert_int_eq(coro_wg_wait(NULL, -1), EINVAL);
    ck_assert_int_eq(coro_future_wait(NULL, NULL, -1), EINVAL);
    mark(1);
    return NULL;
}

START_TEST(misuse_einval)
{
    coro_chan_t *c;

    reset();
    ck_assert_int_eq(coro_chan_create(NULL, 1, 1), EINVAL);
    ck_assert_int_eq(coro_chan_create(&c, SIZE_MAX / 2, 3), EINVAL);
    ck_assert_int_eq(coro_chan_create(&c, 1, SIZE_MAX - 8), EINVAL);
    errno = 4242;
    ck_assert_int_eq(coro_chan_create(&c, 1, SIZE_MAX / 4), ENOMEM); /* 4 EiB */
    ck_assert_int_eq(errno, 4242);                  /* ENOMEM is the result only */
    ck_assert_int_eq(coro_chan_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_chan_close(NULL), EINVAL);
    ck_assert_int_eq(coro_mutex_create(NULL), EINVAL);
    ck_assert_int_eq(coro_mutex_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_mutex_unlock(NULL), EINVAL);
    ck_assert_int_eq(coro_cond_create(NULL), EINVAL);
    ck_assert_int_eq(coro_cond_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_cond_signal(NULL), EINVAL);
    ck_assert_int_eq(coro_cond_broadcast(NULL), EINVAL);
    ck_assert_int_eq(coro_sem_create(NULL, 0), EINVAL);
    ck_assert_int_eq(coro_sem_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_sem_release(NULL), EINVAL);
    ck_assert_uint_eq(coro_sem_value(NULL), 0);
    ck_assert_int_eq(coro_wg_create(NULL), EINVAL);
    ck_assert_int_eq(coro_wg_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_wg_add(NULL, 1), EINVAL);
    ck_assert_int_eq(coro_wg_done(NULL), EINVAL);
    ck_assert_int_eq(coro_future_create(NULL), EINVAL);
    ck_assert_int_eq(coro_future_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_future_set(NULL, NULL), EINVAL);

    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    spawn(bad_arguments, NULL);
    run();
    ck_assert_int_eq(norder, 1);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
}
END_TEST

/* A deadlock: coro_run cancels every wait (see coro_run), and everything
 * can be freed afterwards.  The condition wait was signalled and waits to
 * take the mutex back from a holder stuck in a receive: it is not
 * cancelled, and returns with the mutex once the holder unwinds. */
static void *stuck_cond(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_cond_wait(cv, mx, -1), 0);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    mark(1);
    return NULL;
}

static void *stuck_holder(void *arg)
{
    (void)arg;
    pause_ms(0);                         /* after stuck_cond waits */
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_cond_signal(cv), 0);
    ck_assert_int_eq(coro_chan_recv(ch, NULL, -1), ECANCELED);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    mark(2);
    return NULL;
}

static void *stuck_select(void *arg)
{
    coro_select_clause_t cl[2] = {
        { ch, CORO_SELECT_RECV, NULL },
        { ch2, CORO_SELECT_RECV, NULL },
    };

    (void)arg;
    ck_assert_int_eq(coro_select(cl, 2, -1, NULL), ECANCELED);
    ck_assert_int_eq(coro_future_wait(fut, NULL, -1), ECANCELED);
    mark(3);
    return NULL;
}

START_TEST(deadlock_unwinds)
{
    reset();
    ck_assert_int_eq(coro_chan_create(&ch, 0, 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, 0, 0), 0);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    spawn(stuck_cond, NULL);
    spawn(stuck_holder, NULL);
    spawn(stuck_select, NULL);
    ck_assert_int_eq(coro_run(), EDEADLK);
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
}
END_TEST

/* ------------------------------------------------------------- memory */

/* A pipeline of every kind of object, run 200 times: the heap in use does
 * not grow (glibc's per-thread cache keeps a few freed blocks counted as
 * in use, hence a margin far below what one object per run would leak).
 * ASan's leak check covers the sanitizer build, where mallinfo2 says
 * nothing.  Check's assertions allocate in the forked child, so this part
 * counts failures instead. */
static int mem_bad;
#define MEM_OK(e) (mem_bad += (e) != 0)
static void *mem_producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++)
        MEM_OK(coro_chan_send(ch, &i, -1));
    MEM_OK(coro_chan_close(ch));
    return NULL;
}

static void *mem_consumer(void *arg)
{
    int v;
    coro_select_clause_t cl[10];

    (void)arg;
    for (int i = 0; i < 10; i++)
        cl[i] = (coro_select_clause_t){ ch, CORO_SELECT_RECV, &v };
    while (coro_select(cl, 10, -1, NULL) == 0) {
        MEM_OK(coro_mutex_lock(mx, -1));
        MEM_OK(coro_sem_acquire(sem, -1));
        MEM_OK(coro_sem_release(sem));
        MEM_OK(coro_mutex_unlock(mx));
    }
    MEM_OK(coro_wg_done(wg));
    return NULL;
}

static void *mem_waiter(void *arg)
{
    (void)arg;
    MEM_OK(coro_wg_wait(wg, -1));
    MEM_OK(coro_future_set(fut, NULL));
    return NULL;
}

static void mem_round(void)
{
    MEM_OK(coro_chan_create(&ch, sizeof(int), 3));
    MEM_OK(coro_mutex_create(&mx));
    MEM_OK(coro_sem_create(&sem, 1));
    MEM_OK(coro_wg_create(&wg));
    MEM_OK(coro_future_create(&fut));
    MEM_OK(coro_wg_add(wg, 3));
    MEM_OK(coro_spawn(NULL, mem_producer, NULL, NULL));
    for (int i = 0; i < 3; i++)
        MEM_OK(coro_spawn(NULL, mem_consumer, NULL, NULL));
    MEM_OK(coro_spawn(NULL, mem_waiter, NULL, NULL));
    MEM_OK(coro_run());
    MEM_OK(coro_chan_destroy(ch));
    MEM_OK(coro_mutex_destroy(mx));
    MEM_OK(coro_sem_destroy(sem));
    MEM_OK(coro_wg_destroy(wg));
    MEM_OK(coro_future_destroy(fut));
}

START_TEST(no_memory_left_behind)
{
    size_t before;

    size_t after;

    mem_bad = 0;
    mem_round();
    before = mallinfo2().uordblks;
    for (int i = 0; i < 200; i++)
        mem_round();
    after = mallinfo2().uordblks;
    ck_assert_int_eq(mem_bad, 0);
    ck_assert_uint_lt(after, before + 2048);
}
END_TEST

/* ------------------------------------------------------------------ suite */

/* ---------------------------------------------------------------- wake */
/* The wake protocol (lib/sched.h): exactly one waker ends a wait, and a
 * cancel that loses the race is kept for the next wait. */

static int got[8];
static coro_t *waiter;

/* Receives from ch (result and value in got[0], got[1]), then waits once
 * more (result in got[2]). */
static void *recv_then_wait(void *arg)
{
    int v = -1;

    (void)arg;
    got[0] = coro_chan_recv(ch, &v, -1);
    got[1] = v;
    got[2] = coro_chan_recv(ch2, NULL, soon());
    return NULL;
}

/* The same through a select over ch and ch2. */
static void *select_then_wait(void *arg)
{
    int v = -1;
    size_t i = 99;
    coro_select_clause_t cl[2] = {
        { ch2, CORO_SELECT_RECV, NULL },
        { ch, CORO_SELECT_RECV, &v },
    };

    (void)arg;
    got[0] = coro_select(cl, 2, -1, &i);
    got[1] = v;
    got[3] = (int)i;
    got[2] = coro_chan_recv(ch2, NULL, soon());
    return NULL;
}

/* Locks mx (result in got[0]; unlocks it if it got it), then waits once
 * more (got[2]). */
static void *lock_then_wait(void *arg)
{
    (void)arg;
    got[0] = coro_mutex_lock(mx, -1);
    if (got[0] == 0)
        ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    got[2] = coro_chan_recv(ch2, NULL, soon());
    return NULL;
}

static void wake_setup(void)
{
    reset();
    memset(got, -1, sizeof got);
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
}

static void wake_teardown(void)
{
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}

/* _i: 0 the waiter receives, 1 it selects.  The cancel comes first, then
 * a sender, both before the waiter runs again: the cancel ends the wait,
 * so the sender finds nobody to take its element (a try gives
 * ETIMEDOUT), and nothing is lost. */
static void *cancel_then_send(void *arg)
{
    int v = 7;

    ck_assert_int_eq(coro_spawn(&waiter, arg ? select_then_wait : recv_then_wait,
                                NULL, NULL), 0);
    coro_yield(NULL, NULL); /* it parks */
    ck_assert_int_eq(coro_cancel(waiter), 0);
    ck_assert_int_eq(coro_chan_send(ch, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_join(waiter, NULL, -1), 0);
    return NULL;
}

START_TEST(wake_cancel_then_send)
{
    wake_setup();
    spawn(cancel_then_send, (void *)(intptr_t)_i);
    run();
    ck_assert_int_eq(got[0], ECANCELED);
    ck_assert_int_eq(got[2], ETIMEDOUT); /* the cancel was used once */
    wake_teardown();
}
END_TEST

/* The send comes first, then the cancel: the wait completed (the element
 * is delivered), and the cancel ends the waiter's next wait at once. */
static void *send_then_cancel(void *arg)
{
    int v = 7;

    ck_assert_int_eq(coro_spawn(&waiter, arg ? select_then_wait : recv_then_wait,
                                NULL, NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_chan_send(ch, &v, 0), 0);
    ck_assert_int_eq(coro_cancel(waiter), 0);
    ck_assert_int_eq(coro_join(waiter, NULL, -1), 0);
    return NULL;
}

START_TEST(wake_send_then_cancel)
{
    wake_setup();
    spawn(send_then_cancel, (void *)(intptr_t)_i);
    run();
    ck_assert_int_eq(got[0], 0);
    ck_assert_int_eq(got[1], 7);
    if (_i)
        ck_assert_int_eq(got[3], 1);
    ck_assert_int_eq(got[2], ECANCELED); /* at once, not after `soon` */
    wake_teardown();
}
END_TEST

/* A mutex: cancel then unlock leaves it free (the cancelled waiter does
 * not get it); unlock then cancel gives it to the waiter, and the cancel
 * ends its next wait. */
static void *lock_races(void *arg)
{
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_spawn(&waiter, lock_then_wait, NULL, NULL), 0);
    coro_yield(NULL, NULL); /* it waits for mx */
    if (arg) {
        ck_assert_int_eq(coro_mutex_unlock(mx), 0);
        ck_assert_int_eq(coro_cancel(waiter), 0);
        ck_assert_int_eq(coro_mutex_lock(mx, 0), ETIMEDOUT); /* the waiter has it */
    } else {
        ck_assert_int_eq(coro_cancel(waiter), 0);
        ck_assert_int_eq(coro_mutex_unlock(mx), 0);
        ck_assert_int_eq(coro_mutex_lock(mx, 0), 0); /* free: nobody took it */
        ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    }
    ck_assert_int_eq(coro_join(waiter, NULL, -1), 0);
    return NULL;
}

START_TEST(wake_mutex_cancel_race)
{
    wake_setup();
    spawn(lock_races, (void *)(intptr_t)_i);
    run();
    ck_assert_int_eq(got[0], _i ? 0 : ECANCELED);
    ck_assert_int_eq(got[2], _i ? ECANCELED : ETIMEDOUT);
    wake_teardown();
}
END_TEST

/* Two ready clauses behind two that are not: each is taken about half
 * the time (a scan from a random start took the first ready one 3 times
 * in 4). */
static void *selects_many(void *arg)
{
    coro_chan_t *c[4];
    int counts[4] = {0}, one = 1;
    size_t i;

    (void)arg;
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(coro_chan_create(&c[k], sizeof(int), 1), 0);
    coro_select_clause_t cl[4];
    for (int k = 0; k < 4; k++)
        cl[k] = (coro_select_clause_t){ c[k], CORO_SELECT_RECV, NULL };
    for (int t = 0; t < 4000; t++) {
        for (int k = 2; k < 4; k++) { /* the one not taken last time is full */
            int r = coro_chan_send(c[k], &one, 0);
            ck_assert(r == 0 || r == ETIMEDOUT);
        }
        ck_assert_int_eq(coro_select(cl, 4, 0, &i), 0);
        counts[i]++;
    }
    ck_assert_int_eq(counts[0] + counts[1], 0);
    ck_assert_int_gt(counts[2], 1700);
    ck_assert_int_gt(counts[3], 1700);
    for (int k = 0; k < 4; k++) {
        coro_chan_recv(c[k], NULL, 0);
        ck_assert_int_eq(coro_chan_destroy(c[k]), 0);
    }
    return NULL;
}

START_TEST(select_is_uniform)
{
    spawn(selects_many, NULL);
    run();
}
END_TEST

/* A future destroyed right after it is set, with waiters woken but not
 * yet run: each gets the value from its own record (MALLOC_PERTURB_ or
 * ASan would show a read of the freed future). */
static void *future_reader(void *arg)
{
    void *v = NULL;

    ck_assert_int_eq(coro_future_wait(fut, &v, -1), 0);
    got[(intptr_t)arg] = (int)(intptr_t)v;
    return NULL;
}

static void *sets_and_destroys(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_future_create(&fut), 0);
    spawn(future_reader, (void *)0);
    spawn(future_reader, (void *)1);
    coro_yield(NULL, NULL); /* both wait */
    ck_assert_int_eq(coro_future_set(fut, (void *)0x1234), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
    return NULL;
}

START_TEST(future_destroy_after_set)
{
    memset(got, 0, sizeof got);
    spawn(sets_and_destroys, NULL);
    run();
    ck_assert_int_eq(got[0], 0x1234);
    ck_assert_int_eq(got[1], 0x1234);
}
END_TEST

/* A mutex remembers its owner by id: a coroutine that finished holding it
 * is gone, and the next one, made at the same address, cannot unlock. */
static coro_t *owner_addr;

static void *locks_and_leaves(void *arg)
{
    (void)arg;
    owner_addr = coro_self();
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    return NULL;
}

static void *tries_unlock(void *arg)
{
    (void)arg;
    got[0] = coro_self() == owner_addr; /* the address was reused */
    got[1] = coro_mutex_unlock(mx);
    return NULL;
}

static void *owner_sequence(void *arg)
{
    coro_t *a;

    (void)arg;
    ck_assert_int_eq(coro_spawn(&a, locks_and_leaves, NULL, NULL), 0);
    ck_assert_int_eq(coro_join(a, NULL, -1), 0);
    ck_assert_int_eq(coro_spawn(&a, tries_unlock, NULL, NULL), 0);
    ck_assert_int_eq(coro_join(a, NULL, -1), 0);
    return NULL;
}

START_TEST(mutex_owner_is_an_id)
{
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    spawn(owner_sequence, NULL);
    run();
    ck_assert_int_eq(got[1], EPERM);
    /* mx stays locked by a coroutine that is gone: not destroyable. */
    ck_assert_int_eq(coro_mutex_destroy(mx), EBUSY);
}
END_TEST

/* coro_cond_wait returns with the mutex held whatever ended the wait. */
static void *relock_waiter(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    got[0] = coro_cond_wait(cv, mx, (intptr_t)arg ? -1 : soon());
    got[1] = coro_mutex_unlock(mx);     /* 0: it held mx */
    got[2] = coro_chan_recv(ch2, NULL, soon());
    return NULL;
}

/* _i 0: the deadline passes while another coroutine holds mx; 1: a
 * cancel ends the wait, and a second one comes while it takes mx back. */
static void *relock_holder(void *arg)
{
    ck_assert_int_eq(coro_spawn(&waiter, relock_waiter, arg, NULL), 0);
    coro_yield(NULL, NULL);             /* it waits on cv, mx is free */
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    if (arg) {
        ck_assert_int_eq(coro_cancel(waiter), 0);
        coro_yield(NULL, NULL);         /* it wakes and waits for mx */
        ck_assert_int_eq(coro_cancel(waiter), 0);
        coro_yield(NULL, NULL);
    } else {
        pause_ms(5);                    /* past its deadline */
    }
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    ck_assert_int_eq(coro_join(waiter, NULL, -1), 0);
    return NULL;
}

START_TEST(cond_wait_returns_holding_the_mutex)
{
    wake_setup();
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    spawn(relock_holder, (void *)(intptr_t)_i);
    run();
    ck_assert_int_eq(got[0], _i ? ECANCELED : ETIMEDOUT);
    ck_assert_int_eq(got[1], 0);
    /* The second cancel came during the relock: kept for the next wait. */
    ck_assert_int_eq(got[2], _i ? ECANCELED : ETIMEDOUT);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    wake_teardown();
}
END_TEST

/* A deadline already passed is a try: every waiting call returns at once
 * and no other coroutine runs meanwhile. */
static void *marks_one(void *arg)
{
    (void)arg;
    mark(1);
    return NULL;
}

static void *holds_mx(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    ck_assert_int_eq(coro_chan_recv(ch2, NULL, -1), EPIPE);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

static void *tries_everything(void *arg)
{
    coro_t *other;
    coro_select_clause_t cl[1] = { { ch, CORO_SELECT_RECV, NULL } };
    int v = 1;

    (void)arg;
    ck_assert_int_eq(coro_spawn(NULL, holds_mx, NULL, NULL), 0);
    coro_yield(NULL, NULL);             /* it holds mx */
    ck_assert_int_eq(coro_spawn(&other, marks_one, NULL, NULL), 0);
    for (int k = 0; k < 2; k++) {
        int64_t d = k ? past() : 0;
        ck_assert_int_eq(coro_chan_recv(ch, NULL, d), ETIMEDOUT);
        ck_assert_int_eq(coro_chan_send(ch, &v, d), ETIMEDOUT);
        ck_assert_int_eq(coro_select(cl, 1, d, NULL), ETIMEDOUT);
        ck_assert_int_eq(coro_select(NULL, 0, d, NULL), ETIMEDOUT);
        ck_assert_int_eq(coro_mutex_lock(mx, d), ETIMEDOUT);
        ck_assert_int_eq(coro_sem_acquire(sem, d), ETIMEDOUT);
        ck_assert_int_eq(coro_wg_wait(wg, d), ETIMEDOUT);
        ck_assert_int_eq(coro_future_wait(fut, NULL, d), ETIMEDOUT);
        ck_assert_int_eq(coro_join(other, NULL, d), ETIMEDOUT);
        ck_assert_int_eq(coro_sleep_until(d), 0);
        ck_assert_int_eq(norder, 0);    /* marks_one never ran */
    }
    ck_assert_int_eq(coro_chan_close(ch2), 0);
    ck_assert_int_eq(coro_join(other, NULL, -1), 0);
    ck_assert_int_eq(norder, 1);
    return NULL;
}

START_TEST(passed_deadline_only_tries)
{
    wake_setup();
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    spawn(tries_everything, NULL);
    run();
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
    wake_teardown();
}
END_TEST

/* An object belongs to the thread that made it: another thread's calls
 * (its own flow, its coroutines) get EPERM, and its timer heap is never
 * touched. */
static void *foreign_coroutine(void *arg)
{
    int v = 1;
    coro_select_clause_t cl[1] = { { ch, CORO_SELECT_RECV, NULL } };

    (void)arg;
    got[0] = coro_chan_send(ch, &v, soon());
    got[1] = coro_chan_recv(ch, NULL, soon());
    got[2] = coro_select(cl, 1, soon(), NULL);
    got[3] = coro_mutex_lock(mx, soon());
    got[4] = coro_sem_acquire(sem, soon());
    got[5] = coro_wg_wait(wg, soon());
    got[6] = coro_future_wait(fut, NULL, soon());
    return NULL;
}

static void *foreign_thread(void *arg)
{
    (void)arg;
    got[7] = coro_chan_close(ch) == EPERM && coro_mutex_unlock(mx) == EPERM &&
             coro_sem_release(sem) == EPERM && coro_wg_add(wg, 1) == EPERM &&
             coro_future_set(fut, NULL) == EPERM && coro_cond_signal(cv) == EPERM &&
             coro_chan_destroy(ch) == EPERM && coro_mutex_destroy(mx) == EPERM;
    ck_assert_int_eq(coro_spawn(NULL, foreign_coroutine, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    return NULL;
}

START_TEST(objects_belong_to_their_thread)
{
    pthread_t th;

    wake_setup();
    memset(got, 0, sizeof got);
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, foreign_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    for (int k = 0; k < 7; k++)
        ck_assert_int_eq(got[k], EPERM);
    ck_assert_int_eq(got[7], 1);
    ck_assert_int_eq(coro_wg_add(wg, -1), 0);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    wake_teardown();
}
END_TEST

/* The deadlock report names the call every coroutine waits in. */
static void *stuck_in(void *arg)
{
    int v = 0;
    coro_select_clause_t cl[1] = { { ch2, CORO_SELECT_RECV, NULL } };

    switch ((intptr_t)arg) {
    case 0: coro_chan_send(ch, &v, -1); break;
    case 1: coro_chan_recv(ch2, NULL, -1); break;
    case 2: coro_select(cl, 1, -1, NULL); break;
    case 3: coro_mutex_lock(mx, -1); break;
    case 4: coro_sem_acquire(sem, -1); break;
    case 5: coro_wg_wait(wg, -1); break;
    case 6: coro_future_wait(fut, NULL, -1); break;
    case 7: coro_sleep_until(-1); break;
    case 8:
        coro_mutex_lock(mx2, -1);
        coro_cond_wait(cv, mx2, -1);
        coro_mutex_unlock(mx2);
        break;
    }
    return NULL;
}

static void *locks_mx_first(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0);
    for (intptr_t k = 0; k < 9; k++)
        spawn(stuck_in, (void *)k);
    coro_chan_recv(ch2, NULL, -1); /* stuck too, holding mx */
    coro_mutex_unlock(mx);
    return NULL;
}

START_TEST(deadlock_names_every_wait)
{
    static const char *const calls[] = {
        "coro_chan_send", "coro_chan_recv", "coro_select", "coro_mutex_lock",
        "coro_sem_acquire", "coro_wg_wait", "coro_future_wait", "coro_sleep_until",
        "coro_cond_wait",
    };
    char err[4096];

    wake_setup();
    ck_assert_int_eq(coro_mutex_create(&mx2), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    spawn(locks_mx_first, NULL);
    FILE *f;
    int r = run_into(&f);
    rewind(f);
    err[fread(err, 1, sizeof err - 1, f)] = '\0';
    fclose(f);
    ck_assert_int_eq(r, EDEADLK);
    for (size_t k = 0; k < sizeof calls / sizeof calls[0]; k++) {
        char want[64];
        snprintf(want, sizeof want, " in %s\n", calls[k]);
        ck_assert_msg(strstr(err, want), "no \"%s\" in:\n%s", calls[k], err);
    }
    ck_assert_int_eq(coro_wg_add(wg, -1), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx2), 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
    wake_teardown();
}
END_TEST

static void *sender_on_ch2(void *arg);

/* Length and capacity: buffered elements only, still counted after a
 * close until received. */
static void *fills_and_counts(void *arg)
{
    int v = 3;

    (void)arg;
    ck_assert_uint_eq(coro_chan_cap(ch), 3);
    ck_assert_uint_eq(coro_chan_len(ch), 0);
    for (size_t k = 1; k <= 3; k++) {
        ck_assert_int_eq(coro_chan_send(ch, &v, 0), 0);
        ck_assert_uint_eq(coro_chan_len(ch), k);
    }
    ck_assert_int_eq(coro_chan_send(ch, &v, 0), ETIMEDOUT);
    ck_assert_uint_eq(coro_chan_len(ch), 3);
    ck_assert_int_eq(coro_chan_close(ch), 0);
    ck_assert_uint_eq(coro_chan_len(ch), 3);
    ck_assert_int_eq(coro_chan_recv(ch, NULL, 0), 0);
    ck_assert_uint_eq(coro_chan_len(ch), 2);
    /* Unbuffered: a waiting sender's element is not counted. */
    ck_assert_uint_eq(coro_chan_cap(ch2), 0);
    spawn(sender_on_ch2, NULL);
    coro_yield(NULL, NULL);
    ck_assert_uint_eq(coro_chan_len(ch2), 0);
    ck_assert_int_eq(coro_chan_recv(ch2, &v, 0), 0);
    ck_assert_int_eq(v, 5);
    return NULL;
}

static void *sender_on_ch2(void *arg)
{
    int v = 5;

    (void)arg;
    ck_assert_int_eq(coro_chan_send(ch2, &v, -1), 0);
    return NULL;
}

START_TEST(chan_len_and_cap)
{
    ck_assert_uint_eq(coro_chan_len(NULL), 0);
    ck_assert_uint_eq(coro_chan_cap(NULL), 0);
    ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 3), 0);
    ck_assert_int_eq(coro_chan_create(&ch2, sizeof(int), 0), 0);
    spawn(fills_and_counts, NULL);
    run();
    ck_assert_int_eq(coro_chan_destroy(ch), 0);
    ck_assert_int_eq(coro_chan_destroy(ch2), 0);
}
END_TEST

/* --------------------------------------------------------------- groups */

static int unwound;

/* A member stuck in wait kind _arg until cancelled; counts its unwinding. */
static void *member_waits(void *arg)
{
    int r = -1;

    switch ((intptr_t)arg) {
    case 0: r = coro_chan_recv(ch, NULL, -1); break;
    case 1: r = coro_mutex_lock(mx, -1); break;
    case 2: r = coro_sleep_until(-1); break;
    case 3: r = coro_sem_acquire(sem, -1); break;
    case 4: r = coro_future_wait(fut, NULL, -1); break;
    case 5:
        ck_assert_int_eq(coro_mutex_lock(mx2, -1), 0);
        r = coro_cond_wait(cv, mx2, -1);
        ck_assert_int_eq(coro_mutex_unlock(mx2), 0);
        break;
    case 6: r = coro_wg_wait(wg, -1); break;
    }
    ck_assert_int_eq(r, ECANCELED);
    unwound++;
    return NULL;
}

static void group_objects(void)
{
    unwound = 0;
    wake_setup();
    ck_assert_int_eq(coro_mutex_create(&mx2), 0);
    ck_assert_int_eq(coro_cond_create(&cv), 0);
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
}

static void group_objects_free(void)
{
    ck_assert_int_eq(coro_wg_add(wg, -1), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    ck_assert_int_eq(coro_cond_destroy(cv), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx2), 0);
    wake_teardown();
}

static coro_group_t *grp;

static void *group_boss(void *arg)
{
    coro_t *handle;

    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(mx, -1), 0); /* member 1 waits for it */
    ck_assert_int_eq(coro_group_create(&grp), 0);
    for (intptr_t k = 0; k < 7; k++)
        ck_assert_int_eq(coro_group_spawn(grp, k == 2 ? &handle : NULL, member_waits,
                                          (void *)k, NULL), 0);
    coro_yield(NULL, NULL);                 /* they all wait */
    ck_assert_int_eq(coro_group_wait(grp, coro_now() + MS), ETIMEDOUT);
    ck_assert_int_eq(coro_group_wait(grp, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_group_cancel(grp), 0);
    ck_assert_int_eq(coro_group_wait(grp, -1), 0);
    ck_assert_int_eq(unwound, 7);
    ck_assert_int_eq(coro_join(handle, NULL, 0), 0); /* a handle is still joined */
    ck_assert_int_eq(coro_group_destroy(grp), 0);
    ck_assert_int_eq(coro_mutex_unlock(mx), 0);
    return NULL;
}

START_TEST(group_cancel_and_wait)
{
    group_objects();
    spawn(group_boss, NULL);
    run();
    group_objects_free();
}
END_TEST

/* Destroy with live members; a member's own coro_spawn is not a member;
 * nested groups pass the cancel on by being destroyed as they unwind. */
static int outsider_done, inner_unwound;
static coro_chan_t *gate; /* an outsider waits until it is closed */

static void *outsider(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_chan_recv(gate, NULL, -1), EPIPE);
    outsider_done = 1;
    return NULL;
}

static void *inner_member(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep_until(-1), ECANCELED);
    inner_unwound++;
    return NULL;
}

static void *nests(void *arg)
{
    coro_group_t *inner;

    (void)arg;
    spawn(outsider, NULL);                  /* not a member */
    ck_assert_int_eq(coro_group_create(&inner), 0);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(coro_group_spawn(inner, NULL, inner_member, NULL, NULL), 0);
    ck_assert_int_eq(coro_group_wait(grp, -1), EDEADLK); /* it is a member */
    ck_assert_int_eq(coro_sleep_until(-1), ECANCELED);  /* the outer cancel */
    ck_assert_int_eq(coro_group_destroy(inner), 0);     /* passes it on */
    ck_assert_int_eq(inner_unwound, 3);
    return NULL;
}

static void *nest_boss(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_group_create(&grp), 0);
    ck_assert_int_eq(coro_group_spawn(grp, NULL, nests, NULL, NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_group_destroy(grp), 0);
    ck_assert_int_eq(outsider_done, 0);     /* destroy did not wait for it */
    ck_assert_int_eq(coro_chan_close(gate), 0);
    return NULL;
}

START_TEST(group_nested_destroy)
{
    outsider_done = inner_unwound = 0;
    ck_assert_int_eq(coro_chan_create(&gate, 0, 0), 0);
    spawn(nest_boss, NULL);
    run();
    ck_assert_int_eq(outsider_done, 1);
    ck_assert_int_eq(coro_chan_destroy(gate), 0);
}
END_TEST

/* The thread's own flow ends a group with one call: it runs the scheduler
 * until the members are gone; others stay for the next coro_run. */
static void *sleeps_long(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep(3600 * 1000 * MS), ECANCELED);
    unwound++;
    return NULL;
}

START_TEST(group_destroy_from_main)
{
    coro_group_t *g;

    unwound = 0;
    outsider_done = 0;
    ck_assert_int_eq(coro_chan_create(&gate, 0, 0), 0);
    ck_assert_int_eq(coro_group_create(&g), 0);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(coro_group_spawn(g, NULL, sleeps_long, NULL, NULL), 0);
    spawn(outsider, NULL);
    ck_assert_int_eq(coro_group_destroy(g), 0);
    ck_assert_int_eq(unwound, 4);
    ck_assert_int_eq(outsider_done, 0);     /* still waiting: left queued */
    ck_assert_int_eq(coro_chan_close(gate), 0);
    run();
    ck_assert_int_eq(outsider_done, 1);
    ck_assert_int_eq(coro_chan_destroy(gate), 0);
    /* coro_group_wait from the own flow: runs until the members are done. */
    ck_assert_int_eq(coro_chan_create(&gate, 0, 0), 0);
    ck_assert_int_eq(coro_chan_close(gate), 0);
    ck_assert_int_eq(coro_group_create(&g), 0);
    ck_assert_int_eq(coro_group_spawn(g, NULL, outsider, NULL, NULL), 0);
    outsider_done = 0;
    ck_assert_int_eq(coro_group_wait(g, -1), 0);
    ck_assert_int_eq(outsider_done, 1);
    ck_assert_int_eq(coro_chan_destroy(gate), 0);
    ck_assert_int_eq(coro_group_destroy(g), 0);
    ck_assert_int_eq(coro_group_wait(NULL, -1), EINVAL);
    ck_assert_int_eq(coro_group_cancel(NULL), EINVAL);
    ck_assert_int_eq(coro_group_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_group_create(NULL), EINVAL);
}
END_TEST

/* coro_shutdown: one coroutine ends the program as Go's main does; every
 * other one, whatever it waits in, unwinds; no report, nothing left. */
static void *ends_everything(void *arg)
{
    (void)arg;
    coro_yield(NULL, NULL);                 /* the others wait */
    ck_assert_int_eq(coro_shutdown(), 0);
    ck_assert_int_eq(coro_chan_recv(ch, NULL, -1), ECANCELED); /* its own too */
    return NULL;
}

START_TEST(shutdown_ends_the_run)
{
    group_objects();
    for (intptr_t k = 0; k < 7; k++) {
        if (k == 1)
            continue; /* nobody holds mx here */
        spawn(member_waits, (void *)k);
    }
    spawn(sleeps_long, NULL);
    spawn(ends_everything, NULL);
    FILE *f;
    int r = run_into(&f);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(ftell(f), 0);          /* no deadlock report */
    fclose(f);
    ck_assert_int_eq(unwound, 7);
    group_objects_free();
}
END_TEST
/* coro_group_wait from the thread's own flow runs the scheduler until the
 * group is empty: a finished member's handle stays for its joiner (it is
 * freed when a coro_run ends, not this wait), and a coro_shutdown made
 * meanwhile still holds in the coro_run that follows. */
static coro_group_t *gw_group;
static coro_t *gw_handle;
static int gw_join = -1;
static void *gw_result;
static int gw_sleeps[3] = { -1, -1, -1 };

static void *returns_marker(void *arg)
{
    (void)arg;
    return (void *)0x1234;
}

static void *joins_the_member(void *arg)
{
    (void)arg;
    gw_join = coro_join(gw_handle, &gw_result, -1);
    return NULL;
}

START_TEST(group_wait_from_main_keeps_handles)
{
    ck_assert_int_eq(coro_group_create(&gw_group), 0);
    ck_assert_int_eq(coro_group_spawn(gw_group, &gw_handle, returns_marker, NULL, NULL), 0);
    ck_assert_int_eq(coro_group_wait(gw_group, -1), 0);
    spawn(joins_the_member, NULL);
    run();
    ck_assert_int_eq(gw_join, 0);
    ck_assert_ptr_eq(gw_result, (void *)0x1234);
    ck_assert_int_eq(coro_group_destroy(gw_group), 0);
}
END_TEST

static void *sleeps_three_times(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        gw_sleeps[i] = coro_sleep(1000 * MS); /* ends at once once shut down */
    return NULL;
}

static void *shuts_down_soon(void *arg)
{
    (void)arg;
    coro_sleep(1000);
    ck_assert_int_eq(coro_shutdown(), 0);
    return NULL;
}

START_TEST(shutdown_during_group_wait_holds)
{
    ck_assert_int_eq(coro_group_create(&gw_group), 0);
    spawn(sleeps_three_times, NULL);
    ck_assert_int_eq(coro_group_spawn(gw_group, NULL, shuts_down_soon, NULL, NULL), 0);
    ck_assert_int_eq(coro_group_wait(gw_group, -1), 0);
    run();
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(gw_sleeps[i], ECANCELED);
    ck_assert_int_eq(coro_group_destroy(gw_group), 0);
}
END_TEST

/* A group destroy whose wait a broken deadlock ended, with a member left
 * that can never finish, says EDEADLK (not the ECANCELED that ended it). */
static coro_mutex_t *gd_mutex;
static coro_cond_t *gd_cond;
static int gd_destroy = -1;

static void *waits_on_the_cond(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(gd_mutex, -1), 0);
    if (coro_cond_wait(gd_cond, gd_mutex, -1) == 0)
        coro_mutex_unlock(gd_mutex);
    return NULL;
}

static void *destroys_holding_the_mutex(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(gd_mutex, -1), 0);
    coro_cond_signal(gd_cond);          /* the member waits for the mutex now */
    gd_destroy = coro_group_destroy(gw_group);
    coro_mutex_unlock(gd_mutex);
    return NULL;
}

START_TEST(group_destroy_in_a_broken_deadlock)
{
    ck_assert_int_eq(coro_mutex_create(&gd_mutex), 0);
    ck_assert_int_eq(coro_cond_create(&gd_cond), 0);
    ck_assert_int_eq(coro_group_create(&gw_group), 0);
    ck_assert_int_eq(coro_group_spawn(gw_group, NULL, waits_on_the_cond, NULL, NULL), 0);
    spawn(destroys_holding_the_mutex, NULL);
    FILE *f;
    int r = run_into(&f);
    ck_assert_int_eq(r, EDEADLK);
    ck_assert_int_gt(ftell(f), 0);          /* the deadlock was reported */
    fclose(f);
    ck_assert_int_eq(gd_destroy, EDEADLK);
}
END_TEST

/* A mutex that a coroutine in coro_cond_wait will take back is in use:
 * its destroy says EBUSY until that coroutine has it back and lets go. */
static coro_mutex_t *rl_mutex;
static coro_cond_t *rl_cond;
static int rl_woke = -1;

static void *cond_waits(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_mutex_lock(rl_mutex, -1), 0);
    rl_woke = coro_cond_wait(rl_cond, rl_mutex, -1);
    ck_assert_int_eq(coro_mutex_unlock(rl_mutex), 0);
    return NULL;
}

static void *destroys_too_early(void *arg)
{
    (void)arg;
    coro_yield(NULL, NULL);                 /* the other waits on the cond */
    ck_assert_int_eq(coro_mutex_destroy(rl_mutex), EBUSY); /* unlocked, no lock waiter */
    ck_assert_int_eq(coro_cond_signal(rl_cond), 0);
    ck_assert_int_eq(coro_mutex_destroy(rl_mutex), EBUSY); /* signalled, not back yet */
    return NULL;
}

START_TEST(mutex_busy_while_a_cond_waiter_holds_it)
{
    ck_assert_int_eq(coro_mutex_create(&rl_mutex), 0);
    ck_assert_int_eq(coro_cond_create(&rl_cond), 0);
    spawn(cond_waits, NULL);
    spawn(destroys_too_early, NULL);
    run();
    ck_assert_int_eq(rl_woke, 0);
    ck_assert_int_eq(coro_mutex_destroy(rl_mutex), 0);
    ck_assert_int_eq(coro_cond_destroy(rl_cond), 0);
}
END_TEST

static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    TCase *tc;

    tc = tcase_create("chan");
    tcase_add_test(tc, chan_unbuffered_transfers_in_order);
    tcase_add_test(tc, chan_len_and_cap);
    tcase_add_loop_test(tc, chan_receivers_fifo, 0, 2);
    tcase_add_loop_test(tc, chan_senders_fifo, 0, 3);
    tcase_add_test(tc, chan_buffered_capacity);
    tcase_add_loop_test(tc, chan_element_sizes, 0, 2);
    tcase_add_test(tc, chan_timeout);
    tcase_add_loop_test(tc, chan_cancel, 0, 2);
    tcase_add_test(tc, chan_close_wakes_senders);
    tcase_add_test(tc, chan_close_wakes_receivers);
    suite_add_tcase(s, tc);

    tc = tcase_create("select");
    tcase_add_test(tc, select_with_ready_clause);
    tcase_add_loop_test(tc, select_waits_for_a_clause, 0, 2);
    tcase_add_test(tc, select_send_clause_waits);
    tcase_add_test(tc, select_deadline_passes);
    tcase_add_test(tc, select_many_clauses);
    tcase_add_test(tc, select_closed_channels);
    tcase_add_test(tc, select_cancel);
    tcase_add_test(tc, select_picks_among_ready);
    suite_add_tcase(s, tc);

    tc = tcase_create("locks");
    tcase_add_test(tc, mutex_busy_while_a_cond_waiter_holds_it);
    tcase_add_test(tc, mutex_fifo);
    tcase_add_test(tc, mutex_timeout_and_cancel);
    tcase_add_test(tc, cond_signal_broadcast);
    tcase_add_test(tc, cond_timeout_and_cancel);
    tcase_add_test(tc, sem_fifo);
    tcase_add_test(tc, sem_timeout_cancel_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_test(tc, wg_waits_for_all);
    tcase_add_test(tc, wg_timeout_and_cancel);
    tcase_add_test(tc, future_many_waiters);
    tcase_add_test(tc, future_timeout_and_cancel);
    suite_add_tcase(s, tc);

    tc = tcase_create("wake");
    tcase_add_loop_test(tc, wake_cancel_then_send, 0, 2);
    tcase_add_loop_test(tc, wake_send_then_cancel, 0, 2);
    tcase_add_loop_test(tc, wake_mutex_cancel_race, 0, 2);
    tcase_add_test(tc, select_is_uniform);
    tcase_add_test(tc, future_destroy_after_set);
    tcase_add_test(tc, mutex_owner_is_an_id);
    tcase_add_loop_test(tc, cond_wait_returns_holding_the_mutex, 0, 2);
    tcase_add_test(tc, passed_deadline_only_tries);
    tcase_add_test(tc, objects_belong_to_their_thread);
    tcase_add_test(tc, deadlock_names_every_wait);
    suite_add_tcase(s, tc);

    tc = tcase_create("groups");
    tcase_add_test(tc, group_cancel_and_wait);
    tcase_add_test(tc, group_nested_destroy);
    tcase_add_test(tc, group_destroy_from_main);
    tcase_add_test(tc, shutdown_ends_the_run);
    tcase_add_test(tc, group_wait_from_main_keeps_handles);
    tcase_add_test(tc, shutdown_during_group_wait_holds);
    tcase_add_test(tc, group_destroy_in_a_broken_deadlock);
    suite_add_tcase(s, tc);

    tc = tcase_create("misuse");
    tcase_add_test(tc, misuse_eperm);
    tcase_add_test(tc, misuse_einval);
    tcase_add_test(tc, no_memory_left_behind);
    tcase_add_test(tc, deadlock_unwinds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sync_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

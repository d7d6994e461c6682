/* Check suite of sync objects shared between threads (mt layer): channels
 * made once the process has a pool, used by coroutines of several pool
 * threads at once, and the mutexes, conditions, semaphores, wait groups
 * and futures made likewise.  Each test runs in a process of its own (Check's fork
 * mode), so the pool it makes first is the process's first. */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include "testutil.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOW (UNDER_TSAN || UNDER_ASAN || RUNNING_ON_VALGRIND)

static coro_pool_t *pool;

static void make_pool(unsigned n)
{
    ck_assert_int_eq(coro_pool_create(&pool, n), 0);
}

static void end_pool(void)
{
    ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 60 * 1000000000LL), 0);
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
}

/* ---------------------------------------------------------------- ping-pong */

#define TRIPS (SLOW ? 2000 : 50000)

static coro_chan_t *ping, *pong;
static atomic_int pong_thread, ping_errors;

static void *ponger(void *arg)
{
    (void)arg;
    atomic_store(&pong_thread, coro_pool_thread());
    for (int i = 0; i < TRIPS; i++) {
        int v;
        if (coro_chan_recv(ping, &v, -1) || v != i)
            atomic_fetch_add(&ping_errors, 1);
        v = -v;
        if (coro_chan_send(pong, &v, -1))
            atomic_fetch_add(&ping_errors, 1);
    }
    return NULL;
}

static void *pinger(void *arg)
{
    (void)arg;
    for (int i = 0; i < TRIPS; i++) {
        int v = i;
        if (coro_chan_send(ping, &v, -1) || coro_chan_recv(pong, &v, -1) || v != -i)
            atomic_fetch_add(&ping_errors, 1);
    }
    return NULL;
}

/* An unbuffered round trip between coroutines of two threads: every value
 * comes back in order. */
START_TEST(ping_pong_between_threads)
{
    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&ping, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_chan_create(&pong, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, ponger, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, pinger, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&ping_errors), 0);
    ck_assert_int_eq(atomic_load(&pong_thread), 1);
    ck_assert_int_eq(coro_chan_destroy(ping), 0);
    ck_assert_int_eq(coro_chan_destroy(pong), 0);
}
END_TEST

/* ------------------------------------------------------- many to many */

/* 8 threads, each with 10,000 coroutines; each coroutine sends its
 * messages to the channel of the next thread and receives as many from
 * its own thread's channel.  Nothing is lost, nothing arrives twice. */
#define NT 8
#define PER_THREAD (SLOW ? 200 : 10000)
#define MSGS 10
#define TOTAL (NT * PER_THREAD * MSGS)

static coro_chan_t *inbox[NT];
static atomic_uchar *got;
static atomic_int mm_errors;

static void *exchanger(void *arg)
{
    int id = (int)(intptr_t)arg, t = coro_pool_thread();

    for (int m = 0; m < MSGS; m++) {
        int v = id * MSGS + m;
        if (coro_chan_send(inbox[(t + 1) % NT], &v, -1))
            atomic_fetch_add(&mm_errors, 1);
        if (coro_chan_recv(inbox[t], &v, -1) || v < 0 || v >= TOTAL)
            atomic_fetch_add(&mm_errors, 1);
        else
            atomic_fetch_add(&got[v], 1);
    }
    return NULL;
}

START_TEST(many_to_many_loses_nothing)
{
    make_pool(NT);
    got = calloc(TOTAL, 1);
    ck_assert_ptr_nonnull(got);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(coro_chan_create(&inbox[i], sizeof(int), i % 2 ? 0 : 16), 0);
    coro_attr_t attr;
    coro_attr_init(&attr);
    coro_attr_set_stack_size(&attr, 16384);
    int refused = 0;
    for (int i = 0; i < NT * PER_THREAD; i++)
        refused += coro_pool_spawn(pool, i % NT, NULL, exchanger, (void *)(intptr_t)i,
                                   &attr) != 0;
    ck_assert_int_eq(refused, 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&mm_errors), 0);
    int wrong = 0; /* one check: each passing ck_assert costs a write */
    for (int i = 0; i < TOTAL; i++)
        wrong += atomic_load(&got[i]) != 1;
    ck_assert_int_eq(wrong, 0);
    for (int i = 0; i < NT; i++) {
        ck_assert_uint_eq(coro_chan_len(inbox[i]), 0);
        ck_assert_int_eq(coro_chan_destroy(inbox[i]), 0);
    }
    free(got);
}
END_TEST

/* ------------------------------------------------------------- close */

static coro_chan_t *closing;
static atomic_int closed_seen, parked_recv;

static void *recv_until_closed(void *arg)
{
    (void)arg;
    int v;
    atomic_fetch_add(&parked_recv, 1);
    if (coro_chan_recv(closing, &v, -1) == EPIPE)
        atomic_fetch_add(&closed_seen, 1);
    return NULL;
}

static void *closer(void *arg)
{
    (void)arg;
    while (atomic_load(&parked_recv) < 6)
        coro_sleep(1000000);
    coro_sleep(20000000); /* they are parked by now, or about to be */
    ck_assert_int_eq(coro_chan_close(closing), 0);
    ck_assert_int_eq(coro_chan_close(closing), EPIPE);
    int v = 1;
    ck_assert_int_eq(coro_chan_send(closing, &v, -1), EPIPE);
    return NULL;
}

/* A close on one thread ends the receives parked on the others. */
START_TEST(close_wakes_every_thread)
{
    make_pool(4);
    ck_assert_int_eq(coro_chan_create(&closing, sizeof(int), 0), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, 1 + i % 3, NULL, recv_until_closed, NULL,
                                         NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, closer, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&closed_seen), 6);
    ck_assert_int_eq(coro_chan_destroy(closing), 0);
}
END_TEST

/* ---------------------------------------------------------- deadlines */

#define RACES (SLOW ? 500 : 5000)

static coro_chan_t *racy;
static atomic_int sent_ok, recvd_ok, race_errors, timed_out;

static void *timed_sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACES; i++) {
        int v = i, r = coro_chan_send(racy, &v, i % 4 ? coro_now() + 5000 : 0);
        if (r == 0)
            atomic_fetch_add(&sent_ok, 1);
        else if (r != ETIMEDOUT)
            atomic_fetch_add(&race_errors, 1);
    }
    return NULL;
}

static void *timed_receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACES; i++) {
        int v, r = coro_chan_recv(racy, &v, i % 3 ? coro_now() + 5000 : 0);
        if (r == 0)
            atomic_fetch_add(&recvd_ok, 1);
        else if (r != ETIMEDOUT)
            atomic_fetch_add(&race_errors, 1);
    }
    return NULL;
}

/* Sends and receives with short deadlines (and tries) on two threads race
 * each other: a send succeeds exactly when its receive does. */
START_TEST(deadlines_race_across_threads)
{
    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&racy, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, timed_sender, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, timed_receiver, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&race_errors), 0);
    ck_assert_int_eq(atomic_load(&sent_ok), atomic_load(&recvd_ok));
    ck_assert_int_eq(coro_chan_destroy(racy), 0);
}
END_TEST

static void *waits_alone(void *arg)
{
    (void)arg;
    int v;
    int64_t t0 = coro_now();
    if (coro_chan_recv(racy, &v, t0 + 20000000) == ETIMEDOUT && coro_now() - t0 >= 20000000)
        atomic_fetch_add(&timed_out, 1);
    return NULL;
}

/* A receive that nobody on any thread answers ends at its deadline. */
START_TEST(deadline_with_nobody_there)
{
    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&racy, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, waits_alone, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, waits_alone, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&timed_out), 2);
    ck_assert_int_eq(coro_chan_destroy(racy), 0);
}
END_TEST

/* -------------------------------------------------------------- select */

#define FED (SLOW ? 500 : 10000)

static coro_chan_t *feed[2];
static atomic_int fed_errors, fed_count[2];

static void *feeder(void *arg)
{
    int which = (int)(intptr_t)arg;

    for (int i = 0; i < FED; i++)
        if (coro_chan_send(feed[which], &i, -1))
            atomic_fetch_add(&fed_errors, 1);
    coro_chan_close(feed[which]);
    return NULL;
}

static void *selector(void *arg)
{
    (void)arg;
    int v[2], next[2] = {0, 0}, open = 2;
    coro_select_clause_t cl[2] = {
        {.op = CORO_SELECT_RECV, .chan = feed[0], .elem = &v[0]},
        {.op = CORO_SELECT_RECV, .chan = feed[1], .elem = &v[1]},
    };
    while (open) {
        size_t i;
        int r = coro_select(cl, 2, -1, &i);
        if (r == EPIPE) {
            cl[i].chan = NULL; /* never ready again */
            open--;
        } else if (r || v[i] != next[i]++) {
            atomic_fetch_add(&fed_errors, 1);
        } else {
            atomic_fetch_add(&fed_count[i], 1);
        }
    }
    return NULL;
}

/* A select on one thread over channels fed from two others: each
 * channel's values arrive once, in order, and both closes are seen. */
START_TEST(select_across_threads)
{
    make_pool(3);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(coro_chan_create(&feed[i], sizeof(int), i), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, selector, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, feeder, (void *)0, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 2, NULL, feeder, (void *)1, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&fed_errors), 0);
    ck_assert_int_eq(atomic_load(&fed_count[0]), FED);
    ck_assert_int_eq(atomic_load(&fed_count[1]), FED);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(coro_chan_destroy(feed[i]), 0);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

static coro_chan_t *never;
static atomic_int unwound;

static void *parks_forever(void *arg)
{
    int v = 0;
    int r = (intptr_t)arg % 2 ? coro_chan_recv(never, &v, -1) : coro_chan_send(never, &v, -1);
    if (r == ECANCELED)
        atomic_fetch_add(&unwound, 1);
    return NULL;
}

/* Coroutines of every thread parked on one shared channel are unwound by
 * the pool's shutdown. */
START_TEST(shutdown_ends_shared_waits)
{
    make_pool(3);
    ck_assert_int_eq(coro_chan_create(&never, sizeof(int), 0), 0);
    /* Receivers only, so that none of them meets another. */
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % 3, NULL, parks_forever, (void *)1, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 30000000), ETIMEDOUT);
    ck_assert_int_eq(coro_pool_shutdown(pool, coro_now() + 10 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&unwound), 9);
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    ck_assert_int_eq(coro_chan_destroy(never), 0);
}
END_TEST

/* ---------------------------------------------------------------- mutex */

#define LOCKERS 40           /* coroutines per thread */
#define ROUNDS (SLOW ? 20 : 200)

static coro_mutex_t *mx, *mx2;
static long counted;          /* only ever touched under mx */
static atomic_int inside, mx_errors;

static void *locker(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        if (coro_mutex_lock(mx, -1)) {
            atomic_fetch_add(&mx_errors, 1);
            continue;
        }
        if (atomic_fetch_add(&inside, 1) != 0)
            atomic_fetch_add(&mx_errors, 1);
        long v = counted;
        if (i % 4 == 0)
            coro_yield(NULL, NULL); /* others queue meanwhile, on every thread */
        counted = v + 1;
        atomic_fetch_sub(&inside, 1);
        if (coro_mutex_unlock(mx))
            atomic_fetch_add(&mx_errors, 1);
    }
    return NULL;
}

/* Coroutines of four threads take turns with one mutex: never two inside,
 * no increment lost. */
START_TEST(mutex_excludes_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    for (int i = 0; i < 4 * LOCKERS; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % 4, NULL, locker, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&mx_errors), 0);
    ck_assert_int_eq(counted, 4L * LOCKERS * ROUNDS);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* Waiters from three threads get the mutex in the order they asked. */
#define QUEUED 6
static atomic_int arrived, order[QUEUED], served;

static void *queue_for_lock(void *arg)
{
    int id = (int)(intptr_t)arg;

    atomic_store(&arrived, id + 1);
    if (coro_mutex_lock(mx, -1) == 0) {
        order[atomic_fetch_add(&served, 1)] = id;
        coro_mutex_unlock(mx);
    }
    return NULL;
}

static void *holds_then_queues(void *arg)
{
    (void)arg;
    if (coro_mutex_lock(mx, -1))
        return NULL;
    for (int i = 0; i < QUEUED; i++) {
        coro_pool_spawn(pool, 1 + i % 3, NULL, queue_for_lock, (void *)(intptr_t)i, NULL);
        while (atomic_load(&arrived) != i + 1)
            coro_sleep(1000000);
        /* It has asked; give it time to queue behind the others. */
        coro_sleep((SLOW ? 100 : 20) * 1000000LL);
    }
    coro_mutex_unlock(mx);
    return NULL;
}

START_TEST(mutex_is_fifo_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, holds_then_queues, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&served), QUEUED);
    for (int i = 0; i < QUEUED; i++)
        ck_assert_int_eq(order[i], i);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* A deadline on a mutex held by a coroutine of another thread. */
static atomic_int held, timed;

static void *holds_a_while(void *arg)
{
    (void)arg;
    coro_mutex_lock(mx, -1);
    atomic_store(&held, 1);
    while (atomic_load(&timed) == 0)
        coro_sleep(1000000);
    coro_mutex_unlock(mx);
    return NULL;
}

static void *locks_with_deadline(void *arg)
{
    (void)arg;
    while (!atomic_load(&held))
        coro_sleep(1000000);
    int r = coro_mutex_lock(mx, coro_now() + 20000000);
    atomic_store(&timed, r == ETIMEDOUT ? 1 : -1);
    /* Once let go, it can be had. */
    if (coro_mutex_lock(mx, coro_now() + 10 * 1000000000LL) == 0 && coro_mutex_unlock(mx) == 0)
        atomic_store(&timed, 2);
    return NULL;
}

START_TEST(mutex_deadline_across_threads)
{
    make_pool(2);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, holds_a_while, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, locks_with_deadline, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&timed), 2);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* ----------------------------------------------------------------- cond */

/* A bounded queue under a mutex and two conditions, with producers on two
 * threads and consumers on two others: every item arrives once. */
#define QCAP 4
#define ITEMS (SLOW ? 300 : 5000)  /* per producer */
#define PRODUCERS 4

static coro_cond_t *not_full, *not_empty;
static int ring[QCAP], qlen, qhead;    /* under mx */
static atomic_int cond_errors, consumed;
static atomic_long sum;

static void *producer(void *arg)
{
    int base = (int)(intptr_t)arg * ITEMS;

    for (int i = 0; i < ITEMS; i++) {
        coro_mutex_lock(mx, -1);
        while (qlen == QCAP)
            if (coro_cond_wait(not_full, mx, -1))
                atomic_fetch_add(&cond_errors, 1);
        ring[(qhead + qlen++) % QCAP] = base + i;
        coro_cond_signal(not_empty);
        coro_mutex_unlock(mx);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    int n = (int)(intptr_t)arg;

    for (int i = 0; i < n; i++) {
        coro_mutex_lock(mx, -1);
        while (qlen == 0)
            if (coro_cond_wait(not_empty, mx, -1))
                atomic_fetch_add(&cond_errors, 1);
        int v = ring[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
        coro_cond_signal(not_full);
        coro_mutex_unlock(mx);
        atomic_fetch_add(&sum, v);
        atomic_fetch_add(&consumed, 1);
    }
    return NULL;
}

START_TEST(cond_queue_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&not_full), 0);
    ck_assert_int_eq(coro_cond_create(&not_empty), 0);
    for (int i = 0; i < PRODUCERS; i++) {
        ck_assert_int_eq(coro_pool_spawn(pool, i % 2, NULL, producer, (void *)(intptr_t)i,
                                         NULL), 0);
        ck_assert_int_eq(coro_pool_spawn(pool, 2 + i % 2, NULL, consumer,
                                         (void *)(intptr_t)ITEMS, NULL), 0);
    }
    end_pool();
    long n = (long)PRODUCERS * ITEMS;
    ck_assert_int_eq(atomic_load(&cond_errors), 0);
    ck_assert_int_eq(atomic_load(&consumed), n);
    ck_assert_int_eq(atomic_load(&sum), n * (n - 1) / 2);
    ck_assert_int_eq(coro_cond_destroy(not_full), 0);
    ck_assert_int_eq(coro_cond_destroy(not_empty), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* Broadcast from one thread wakes waiters of three others, each holding
 * the mutex again when its wait returns. */
static int go_flag;                    /* under mx */
static atomic_int bc_waiting, bc_woken;

static void *waits_for_go(void *arg)
{
    (void)arg;
    coro_mutex_lock(mx, -1);
    atomic_fetch_add(&bc_waiting, 1);
    while (!go_flag)
        if (coro_cond_wait(not_empty, mx, -1))
            atomic_fetch_add(&cond_errors, 1);
    atomic_fetch_add(&bc_woken, 1);
    if (coro_mutex_unlock(mx)) /* it holds mx */
        atomic_fetch_add(&cond_errors, 1);
    return NULL;
}

static void *broadcaster(void *arg)
{
    int n = (int)(intptr_t)arg;

    while (atomic_load(&bc_waiting) < n)
        coro_sleep(1000000);
    coro_mutex_lock(mx, -1);
    go_flag = 1;
    coro_cond_broadcast(not_empty);
    coro_mutex_unlock(mx);
    return NULL;
}

START_TEST(cond_broadcast_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_cond_create(&not_empty), 0);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, 1 + i % 3, NULL, waits_for_go, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, broadcaster, (void *)30, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&cond_errors), 0);
    ck_assert_int_eq(atomic_load(&bc_woken), 30);
    ck_assert_int_eq(coro_cond_destroy(not_empty), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), 0);
}
END_TEST

/* ------------------------------------------------------------ semaphore */

#define UNITS 3
static coro_sem_t *sem;
static atomic_int in_use, most_in_use, sem_errors, sem_done;

static void *uses_a_unit(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        if (coro_sem_acquire(sem, -1)) {
            atomic_fetch_add(&sem_errors, 1);
            continue;
        }
        int n = atomic_fetch_add(&in_use, 1) + 1;
        int m = atomic_load(&most_in_use);
        while (n > m && !atomic_compare_exchange_weak(&most_in_use, &m, n))
            ;
        coro_yield(NULL, NULL);
        atomic_fetch_sub(&in_use, 1);
        if (coro_sem_release(sem))
            atomic_fetch_add(&sem_errors, 1);
    }
    atomic_fetch_add(&sem_done, 1);
    return NULL;
}

/* A semaphore of three units shared by coroutines of four threads: never
 * more than three in, all units back at the end. */
START_TEST(sem_bounds_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_sem_create(&sem, UNITS), 0);
    for (int i = 0; i < 80; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % 4, NULL, uses_a_unit, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&sem_errors), 0);
    ck_assert_int_eq(atomic_load(&sem_done), 80);
    ck_assert_int_le(atomic_load(&most_in_use), UNITS);
    ck_assert_int_ge(atomic_load(&most_in_use), 1);
    ck_assert_uint_eq(coro_sem_value(sem), UNITS);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
}
END_TEST

/* ------------------------------------------------- wait group, future */

static coro_wg_t *wg;
static coro_future_t *fut;
static atomic_int work_done, wg_seen, fut_errors, fut_seen;

static void *worker(void *arg)
{
    (void)arg;
    coro_sleep(1000000);
    atomic_fetch_add(&work_done, 1);
    coro_wg_done(wg);
    return NULL;
}

static void *waits_for_group(void *arg)
{
    int n = (int)(intptr_t)arg;

    if (coro_wg_wait(wg, -1) == 0 && atomic_load(&work_done) == n)
        atomic_fetch_add(&wg_seen, 1);
    return NULL;
}

/* Workers on four threads, waiters on two: each waiter returns after the
 * last worker. */
START_TEST(wait_group_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 100), 0); /* from the main thread */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i, NULL, waits_for_group, (void *)100, NULL),
                         0);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % 4, NULL, worker, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&wg_seen), 4);
    ck_assert_int_eq(coro_wg_add(wg, -1), EINVAL);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
}
END_TEST

static void *waits_for_value(void *arg)
{
    void *v = NULL;

    (void)arg;
    if (coro_future_wait(fut, &v, -1) || v != &fut_seen)
        atomic_fetch_add(&fut_errors, 1);
    else
        atomic_fetch_add(&fut_seen, 1);
    return NULL;
}

static void *sets_value(void *arg)
{
    (void)arg;
    coro_sleep(10000000);
    if (coro_future_set(fut, &fut_seen) || coro_future_set(fut, NULL) != EBUSY)
        atomic_fetch_add(&fut_errors, 1);
    return NULL;
}

/* A future set on one thread wakes waiters on three others with its
 * value; a second set is refused. */
START_TEST(future_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, 1 + i % 3, NULL, waits_for_value, NULL, NULL),
                         0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, sets_value, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&fut_errors), 0);
    ck_assert_int_eq(atomic_load(&fut_seen), 30);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
}
END_TEST

/* ------------------------------------------------ shutdown of every wait */

enum { W_CHAN, W_MUTEX, W_COND, W_SEM, W_WG, W_FUTURE, W_KINDS };
static atomic_int ended[W_KINDS], holding_after_cond;
static atomic_int parked_kinds;

static void *holds_mutex_forever(void *arg)
{
    (void)arg;
    coro_mutex_lock(mx, -1);
    atomic_fetch_add(&parked_kinds, 1);
    coro_sleep_until(-1); /* ended by the shutdown, still holding mx: were it to
                           * unlock, a waiter not cancelled yet would get it */
    return NULL;
}

static void *parks_in(void *arg)
{
    int kind = (int)(intptr_t)arg, r = -1, v;
    void *p;

    atomic_fetch_add(&parked_kinds, 1);
    switch (kind) {
    case W_CHAN:
        r = coro_chan_recv(never, &v, -1);
        break;
    case W_MUTEX:
        r = coro_mutex_lock(mx, -1);
        break;
    case W_COND:
        r = coro_mutex_lock(mx2, -1);
        if (r == 0) {
            r = coro_cond_wait(not_empty, mx2, -1);
            /* A condition wait returns holding its mutex, even cancelled. */
            if (coro_mutex_unlock(mx2) == 0)
                atomic_fetch_add(&holding_after_cond, 1);
        }
        break;
    case W_SEM:
        r = coro_sem_acquire(sem, -1);
        break;
    case W_WG:
        r = coro_wg_wait(wg, -1);
        break;
    case W_FUTURE:
        r = coro_future_wait(fut, &p, -1);
        break;
    }
    if (r == ECANCELED)
        atomic_fetch_add(&ended[kind], 1);
    return NULL;
}

/* The pool's shutdown unwinds coroutines of three threads parked in each
 * kind of shared wait. */
START_TEST(shutdown_ends_every_kind_of_wait)
{
    make_pool(3);
    ck_assert_int_eq(coro_chan_create(&never, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_mutex_create(&mx), 0);
    ck_assert_int_eq(coro_mutex_create(&mx2), 0);
    ck_assert_int_eq(coro_cond_create(&not_empty), 0);
    ck_assert_int_eq(coro_sem_create(&sem, 0), 0);
    ck_assert_int_eq(coro_wg_create(&wg), 0);
    ck_assert_int_eq(coro_wg_add(wg, 1), 0);
    ck_assert_int_eq(coro_future_create(&fut), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, holds_mutex_forever, NULL, NULL), 0);
    while (atomic_load(&parked_kinds) < 1)
        usleep(1000);
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < W_KINDS; k++)
            ck_assert_int_eq(coro_pool_spawn(pool, t, NULL, parks_in, (void *)(intptr_t)k,
                                             NULL), 0);
    /* All have started (a loaded machine under TSan may take more than
     * 50 ms for that), and none ends by itself. */
    while (atomic_load(&parked_kinds) < 1 + 3 * W_KINDS)
        usleep(1000);
    ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 50000000), ETIMEDOUT);
    ck_assert_int_eq(coro_pool_shutdown(pool, coro_now() + 10 * 1000000000LL), 0);
    for (int k = 0; k < W_KINDS; k++)
        ck_assert_msg(atomic_load(&ended[k]) == 3, "kind %d: %d ended", k,
                      atomic_load(&ended[k]));
    ck_assert_int_eq(atomic_load(&holding_after_cond), 3);
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    ck_assert_int_eq(coro_chan_destroy(never), 0);
    ck_assert_int_eq(coro_mutex_destroy(mx), EBUSY); /* its holder ended holding it */
    ck_assert_int_eq(coro_mutex_destroy(mx2), 0);
    ck_assert_int_eq(coro_cond_destroy(not_empty), 0);
    ck_assert_int_eq(coro_sem_destroy(sem), 0);
    ck_assert_int_eq(coro_wg_destroy(wg), 0);
    ck_assert_int_eq(coro_future_destroy(fut), 0);
}
END_TEST

/* ------------------------------------------------- join and cancel */

static atomic_int jc_errors, jc_count;

static void *returns_arg(void *arg)
{
    coro_sleep((intptr_t)arg % 3 * 1000000);
    return arg;
}

/* Coroutines of two threads spawn onto the others with handles and join
 * them: each result comes back, finished first or not. */
static void *spawns_and_joins(void *arg)
{
    int base = (int)(intptr_t)arg;
    coro_t *co[20];

    for (int i = 0; i < 20; i++)
        if (coro_pool_spawn(pool, (coro_pool_thread() + 1 + i % 3) % 4, &co[i], returns_arg,
                            (void *)(intptr_t)(base + i), NULL))
            atomic_fetch_add(&jc_errors, 1);
    coro_sleep(1000000); /* some have finished by now, some not */
    for (int i = 0; i < 20; i++) {
        void *r = NULL;
        if (coro_join(co[i], &r, -1) || r != (void *)(intptr_t)(base + i))
            atomic_fetch_add(&jc_errors, 1);
        else
            atomic_fetch_add(&jc_count, 1);
    }
    return NULL;
}

START_TEST(join_across_threads)
{
    make_pool(4);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % 2, NULL, spawns_and_joins,
                                         (void *)(intptr_t)(i * 100), NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&jc_errors), 0);
    ck_assert_int_eq(atomic_load(&jc_count), 8 * 20);
}
END_TEST

/* A handle sent over a channel: a coroutine spawns on its own thread and
 * another thread's coroutine joins it, first with a deadline that passes
 * (the coroutine stays joinable), then for good. */
static coro_chan_t *handles;
static atomic_int release_it;

static void *waits_for_release(void *arg)
{
    while (!atomic_load(&release_it))
        coro_sleep(1000000);
    return arg;
}

static void *spawns_and_sends(void *arg)
{
    coro_t *co;

    (void)arg;
    if (coro_spawn(&co, waits_for_release, &jc_count, NULL) ||
        coro_chan_send(handles, &co, -1))
        atomic_fetch_add(&jc_errors, 1);
    return NULL;
}

static void *receives_and_joins(void *arg)
{
    coro_t *co;
    void *r = NULL;

    (void)arg;
    if (coro_chan_recv(handles, &co, -1) ||
        coro_join(co, &r, coro_now() + 5000000) != ETIMEDOUT)
        atomic_fetch_add(&jc_errors, 1);
    atomic_store(&release_it, 1);
    if (coro_join(co, &r, -1) || r != &jc_count)
        atomic_fetch_add(&jc_errors, 1);
    else
        atomic_fetch_add(&jc_count, 1);
    return NULL;
}

START_TEST(join_a_handle_sent_across)
{
    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&handles, sizeof(coro_t *), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, spawns_and_sends, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, receives_and_joins, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&jc_errors), 0);
    ck_assert_int_eq(atomic_load(&jc_count), 1);
    ck_assert_int_eq(coro_chan_destroy(handles), 0);
}
END_TEST

/* A cancel from another thread ends a wait there (a sleep, a receive);
 * a cancel of one that is not waiting ends its next wait; a finished one
 * says ESRCH. */
static coro_chan_t *quiet;

static void *sleeps_until_cancelled(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)coro_sleep_until(-1);
}

static void *receives_until_cancelled(void *arg)
{
    int v;

    (void)arg;
    return (void *)(intptr_t)coro_chan_recv(quiet, &v, -1);
}

static void *busy_then_waits(void *arg)
{
    (void)arg;
    int64_t end = coro_now() + 20000000;
    while (coro_now() < end)
        ; /* not waiting: the cancel waits for its next wait */
    return (void *)(intptr_t)coro_sleep(1000000000);
}

static void *cancels_across(void *arg)
{
    coro_t *a, *b, *c;
    void *r;

    (void)arg;
    if (coro_pool_spawn(pool, 1, &a, sleeps_until_cancelled, NULL, NULL) ||
        coro_pool_spawn(pool, 2, &b, receives_until_cancelled, NULL, NULL) ||
        coro_pool_spawn(pool, 1, &c, busy_then_waits, NULL, NULL)) {
        atomic_fetch_add(&jc_errors, 1);
        return NULL;
    }
    coro_sleep(5000000);
    int ok = coro_cancel(a) == 0 && coro_cancel(b) == 0 && coro_cancel(c) == 0;
    ok = ok && coro_join(a, &r, -1) == 0 && (intptr_t)r == ECANCELED;
    ok = ok && coro_join(b, &r, -1) == 0 && (intptr_t)r == ECANCELED;
    ok = ok && coro_join(c, &r, -1) == 0 && (intptr_t)r == ECANCELED;
    /* Finished: ESRCH, with a handle joined later. */
    ok = ok && coro_pool_spawn(pool, 2, &a, returns_arg, NULL, NULL) == 0;
    while (ok && coro_join(a, &r, coro_now()) == ETIMEDOUT) {
        if (coro_cancel(a) == ESRCH) /* it finished meanwhile */
            break;
        coro_sleep(100000);
    }
    if (!ok)
        atomic_fetch_add(&jc_errors, 1);
    else
        atomic_fetch_add(&jc_count, 1);
    return NULL;
}

START_TEST(cancel_across_threads)
{
    make_pool(3);
    ck_assert_int_eq(coro_chan_create(&quiet, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, cancels_across, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&jc_errors), 0);
    ck_assert_int_eq(atomic_load(&jc_count), 1);
    ck_assert_int_eq(coro_chan_destroy(quiet), 0);
}
END_TEST

/* A spawn onto another pool thread with a handle waits for that thread's
 * answer, and the answer writes to the waiter's stack: a cancel that comes
 * meanwhile neither ends the wait nor is lost.  The spawn returns 0 once
 * the busy thread has made the coroutine, and the cancel ends the
 * spawner's next wait. */
static atomic_int hog_running, hog_release, spawner_parked, spawner_done;
static atomic_int reply_spawn, reply_sleep, reply_join;

static void *hogs_its_thread(void *arg)
{
    (void)arg;
    atomic_store(&hog_running, 1);
    while (!atomic_load(&hog_release))
        sched_yield(); /* the thread's own: its inbox waits */
    return NULL;
}

static void *spawns_onto_the_hog(void *arg)
{
    coro_t *co = NULL;

    (void)arg;
    while (!atomic_load(&hog_running))
        coro_sleep(100000);
    atomic_store(&spawner_parked, 1);
    atomic_store(&reply_spawn, coro_pool_spawn(pool, 0, &co, returns_arg, &reply_spawn, NULL));
    atomic_store(&reply_sleep, coro_sleep(1000000000LL));
    void *r = NULL;
    atomic_store(&reply_join, co ? coro_join(co, &r, -1) || r != &reply_spawn : -1);
    atomic_store(&spawner_done, 1);
    return NULL;
}

static coro_t *spawner;
static atomic_int spawner_seen_waiting, spawner_joined;

/* On a third thread: cancels the spawner in its wait, lets the hog go,
 * then joins the spawner. */
static void *cancels_the_spawner(void *arg)
{
    (void)arg;
    while (!atomic_load(&spawner_parked))
        coro_sleep(100000);
    coro_sleep(20000000); /* it is in its wait for thread 0 by now */
    if (coro_cancel(spawner) == 0) {
        coro_sleep(20000000);
        atomic_store(&spawner_seen_waiting, !atomic_load(&spawner_done));
    }
    atomic_store(&hog_release, 1);
    atomic_store(&spawner_joined, coro_join(spawner, NULL, -1) == 0);
    return NULL;
}

START_TEST(cancel_waits_for_a_spawn_reply)
{
    atomic_store(&hog_running, 0);
    atomic_store(&hog_release, 0);
    atomic_store(&spawner_parked, 0);
    atomic_store(&spawner_done, 0);
    make_pool(3);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, hogs_its_thread, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, &spawner, spawns_onto_the_hog, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 2, NULL, cancels_the_spawner, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&spawner_seen_waiting), 1);
    ck_assert_int_eq(atomic_load(&spawner_joined), 1);
    ck_assert_int_eq(atomic_load(&reply_spawn), 0);
    ck_assert_int_eq(atomic_load(&reply_sleep), ECANCELED);
    ck_assert_int_eq(atomic_load(&reply_join), 0);
}
END_TEST

/* Cancels and joins from another thread racing the coroutines' own ends:
 * each is joined once, and a cancel still on its way when the coroutine
 * is freed does not touch it (ASan, TSan). */
#define RACERS (SLOW ? 200 : 2000)

static void *short_life(void *arg)
{
    if ((intptr_t)arg % 2)
        coro_sleep((intptr_t)arg % 5 * 10000);
    return arg;
}

static void *cancels_and_joins_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACERS; i++) {
        coro_t *co;
        void *r;
        if (coro_pool_spawn(pool, 1, &co, short_life, (void *)(intptr_t)i, NULL)) {
            atomic_fetch_add(&jc_errors, 1);
            continue;
        }
        int c = coro_cancel(co);
        if (c != 0 && c != ESRCH)
            atomic_fetch_add(&jc_errors, 1);
        if (coro_join(co, &r, -1) || r != (void *)(intptr_t)i)
            atomic_fetch_add(&jc_errors, 1);
        else
            atomic_fetch_add(&jc_count, 1);
    }
    return NULL;
}

START_TEST(cancel_and_join_race_the_end)
{
    make_pool(2);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, cancels_and_joins_many, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&jc_errors), 0);
    ck_assert_int_eq(atomic_load(&jc_count), RACERS);
}
END_TEST

/* A coroutine of a thread outside the pool cannot be joined or cancelled
 * from a pool thread: that thread's coro_run frees what it ran once it
 * returns, so a far handle could outlive it. */
static coro_t *outsider;
static atomic_int outsider_seen;

static void *tries_outsider(void *arg)
{
    (void)arg;
    if (coro_join(outsider, NULL, -1) == EPERM && coro_cancel(outsider) == EPERM)
        atomic_store(&outsider_seen, 1);
    return NULL;
}

START_TEST(outsiders_are_refused)
{
    make_pool(1);
    ck_assert_int_eq(coro_spawn(&outsider, returns_arg, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, tries_outsider, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&outsider_seen), 1);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

/* Coroutines a pool coroutine made with coro_spawn are not counted by
 * the pool; its destroy still ends them, so that none is freed while
 * queued on a shared channel. */
static coro_chan_t *left;
static atomic_int left_ended;

static void *parks_on_left(void *arg)
{
    int v;

    (void)arg;
    if (coro_chan_recv(left, &v, -1) == ECANCELED)
        atomic_fetch_add(&left_ended, 1);
    return NULL;
}

static void *spawns_locally(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++)
        coro_spawn(NULL, parks_on_left, NULL, NULL);
    return NULL;
}

START_TEST(destroy_ends_local_spawns)
{
    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&left, sizeof(int), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, spawns_locally, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, spawns_locally, NULL, NULL), 0);
    end_pool(); /* the pool's two have finished; their twenty wait */
    ck_assert_int_eq(atomic_load(&left_ended), 20);
    ck_assert_int_eq(coro_chan_destroy(left), 0);
}
END_TEST

/* -------------------------------------------------------------- biased */

/* A channel made by a coroutine of a pool thread is biased to it: its
 * own coroutines use it without a lock.  A coroutine of another thread
 * that sends to it while one of the home's coroutines waits on it has it
 * shared first, and the waiter gets the element. */
static coro_chan_t *carrier;           /* carries the biased channel across */
static atomic_int biased_got, biased_errors;

static void *home_receiver(void *arg)
{
    coro_chan_t *b = arg;
    int v = 0;

    if (coro_chan_recv(b, &v, -1) == 0 && v == 42)
        atomic_fetch_add(&biased_got, 1);
    /* Now shared: a deadline and a try still work here. */
    if (coro_chan_recv(b, &v, coro_now() + 2000000) != ETIMEDOUT ||
        coro_chan_recv(b, &v, 0) != ETIMEDOUT || coro_chan_destroy(b))
        atomic_fetch_add(&biased_errors, 1);
    return NULL;
}

static void *makes_biased(void *arg)
{
    coro_chan_t *b;
    int v = 7;

    (void)arg;
    if (coro_chan_create(&b, sizeof(int), 0)) {
        atomic_fetch_add(&biased_errors, 1);
        return NULL;
    }
    /* Local use first: a ping-pong of its own coroutines. */
    for (int i = 0; i < 100; i++)
        if (coro_chan_send(b, &v, 0) != ETIMEDOUT) /* nobody receives yet */
            atomic_fetch_add(&biased_errors, 1);
    /* Through the pool, on this thread, so that the pool waits for it. */
    coro_pool_spawn(pool, coro_pool_thread(), NULL, home_receiver, b, NULL);
    coro_yield(NULL, NULL); /* it waits on b now */
    coro_chan_send(carrier, &b, -1);
    return NULL;
}

static void *sends_from_afar(void *arg)
{
    coro_chan_t *b;
    int v = 42;

    (void)arg;
    if (coro_chan_recv(carrier, &b, -1) || coro_chan_send(b, &v, -1))
        atomic_fetch_add(&biased_errors, 1);
    return b;
}

START_TEST(biased_channel_shared_with_a_waiter)
{
    coro_t *co;
    void *b = NULL;

    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&carrier, sizeof(coro_chan_t *), 0), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, makes_biased, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, &co, sends_from_afar, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 30 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&biased_got), 1);
    ck_assert_int_eq(atomic_load(&biased_errors), 0);
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    ck_assert_int_eq(coro_chan_destroy(carrier), 0);
    (void)b;
}
END_TEST

/* Objects biased to a pool thread outlive its pool: the thread shares
 * them as it goes, and the main thread then uses and destroys them. */
static coro_chan_t *kept_chan;
static coro_wg_t *kept_wg;
static coro_mutex_t *kept_mx;

static void *makes_and_keeps(void *arg)
{
    int v = 5;

    (void)arg;
    if (coro_chan_create(&kept_chan, sizeof(int), 4) || coro_wg_create(&kept_wg) ||
        coro_mutex_create(&kept_mx))
        return NULL;
    coro_chan_send(kept_chan, &v, -1);
    coro_wg_add(kept_wg, 1);
    return NULL;
}

START_TEST(biased_objects_outlive_their_pool)
{
    make_pool(2);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, makes_and_keeps, NULL, NULL), 0);
    end_pool();
    ck_assert_ptr_nonnull(kept_chan);
    ck_assert_uint_eq(coro_chan_len(kept_chan), 1);
    ck_assert_int_eq(coro_chan_close(kept_chan), 0);
    ck_assert_int_eq(coro_wg_add(kept_wg, -1), 0);
    ck_assert_int_eq(coro_chan_destroy(kept_chan), 0);
    ck_assert_int_eq(coro_wg_destroy(kept_wg), 0);
    ck_assert_int_eq(coro_mutex_destroy(kept_mx), 0);
}
END_TEST

/* Destroy right after the wake: a future set and destroyed, a channel
 * closed and destroyed, while their waiters on other threads have still
 * to take themselves off (ASan: nothing touches the freed object). */
static coro_future_t *brief_f;
static coro_chan_t *brief_c;
static atomic_int brief_waiting, brief_woken;

static void *waits_briefly(void *arg)
{
    int v;
    void *p;

    atomic_fetch_add(&brief_waiting, 1);
    if (arg ? coro_chan_recv(brief_c, &v, -1) == EPIPE : coro_future_wait(brief_f, &p, -1) == 0)
        atomic_fetch_add(&brief_woken, 1);
    return NULL;
}

static void *wakes_and_destroys(void *arg)
{
    int n = (int)(intptr_t)arg;

    while (atomic_load(&brief_waiting) < n)
        coro_sleep(100000);
    coro_sleep(1000000); /* they are parked */
    if (coro_future_set(brief_f, NULL) || coro_future_destroy(brief_f) ||
        coro_chan_close(brief_c) || coro_chan_destroy(brief_c))
        atomic_fetch_add(&brief_woken, 1000);
    return NULL;
}

START_TEST(destroy_right_after_the_wake)
{
    make_pool(3);
    for (int round = 0; round < (SLOW ? 5 : 50); round++) {
        atomic_store(&brief_waiting, 0);
        atomic_store(&brief_woken, 0);
        ck_assert_int_eq(coro_future_create(&brief_f), 0);
        ck_assert_int_eq(coro_chan_create(&brief_c, sizeof(int), 0), 0);
        for (int i = 0; i < 12; i++)
            ck_assert_int_eq(coro_pool_spawn(pool, 1 + i % 2, NULL, waits_briefly,
                                             i % 2 ? &brief_c : NULL, NULL), 0);
        ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, wakes_and_destroys, (void *)12,
                                         NULL), 0);
        ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 30 * 1000000000LL), 0);
        ck_assert_int_eq(atomic_load(&brief_woken), 12);
    }
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
}
END_TEST

/* The main thread's own flow (no coroutine) calls on an object biased to
 * a pool thread while a coroutine there waits on it: it blocks until the
 * home thread has shared it, then the call goes through. */
static _Atomic(coro_wg_t *) published;
static atomic_int wg_woken;

static void *waits_on_own_wg(void *arg)
{
    coro_wg_t *w;

    (void)arg;
    if (coro_wg_create(&w) || coro_wg_add(w, 1))
        return NULL;
    atomic_store(&published, w);
    if (coro_wg_wait(w, -1) == 0)
        atomic_store(&wg_woken, 1);
    coro_wg_destroy(w);
    return NULL;
}

START_TEST(main_flow_shares_a_biased_object)
{
    make_pool(2);
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, waits_on_own_wg, NULL, NULL), 0);
    coro_wg_t *w;
    while (!(w = atomic_load(&published)))
        usleep(1000);
    usleep(5000); /* it waits by now */
    ck_assert_int_eq(coro_wg_done(w), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&wg_woken), 1);
}
END_TEST

/* ----------------------------------------------------------------- fork */

/* A running pool forks: its threads keep spawning coroutines (stacks,
 * descriptors) and passing messages while the main thread forks; each
 * child, with no thread but the one that forked, uses libcoro afresh:
 * coroutines, a channel, a mutex, and a pool of its own. */
static atomic_int churn_stop;
static coro_chan_t *churn_chan;

static void *churn_one(void *arg)
{
    int v = (int)(intptr_t)arg;
    coro_chan_send(churn_chan, &v, coro_now() + 1000000);
    return NULL;
}

static void *churner(void *arg)
{
    (void)arg;
    while (!atomic_load(&churn_stop)) {
        int v;
        coro_attr_t attr;
        coro_attr_init(&attr);
        coro_attr_set_stack_size(&attr, 16384 << (coro_pool_thread() & 1));
        coro_spawn(NULL, churn_one, NULL, &attr);
        coro_chan_recv(churn_chan, &v, coro_now() + 1000000);
    }
    return NULL;
}

static coro_chan_t *child_chan;
static coro_mutex_t *child_mx;
static int child_sum;

static void *child_sender(void *arg)
{
    for (int i = 1; i <= 100; i++)
        coro_chan_send(child_chan, &i, -1);
    (void)arg;
    return NULL;
}

static void *child_receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        int v;
        if (coro_chan_recv(child_chan, &v, -1) == 0 && coro_mutex_lock(child_mx, -1) == 0) {
            child_sum += v;
            coro_mutex_unlock(child_mx);
        }
    }
    return NULL;
}

static atomic_int child_pool_runs;

static void *child_pool_work(void *arg)
{
    (void)arg;
    atomic_fetch_add(&child_pool_runs, 1);
    return NULL;
}

static int child_main(void)
{
    coro_pool_t *p;

    alarm(20); /* a lock inherited held hangs: fail, do not hang the suite */
    if (coro_chan_create(&child_chan, sizeof(int), 0) || coro_mutex_create(&child_mx))
        return 1;
    for (int i = 0; i < 20; i++)
        if (coro_spawn(NULL, i % 2 ? child_sender : child_receiver, NULL, NULL))
            return 2;
    if (coro_run() || child_sum != 10 * 5050)
        return 3;
    if (UNDER_TSAN)
        return 0; /* TSan cannot start threads after a multi-threaded fork */
    if (coro_pool_create(&p, 2))
        return 4;
    for (int i = 0; i < 100; i++)
        if (coro_pool_spawn(p, CORO_ANY, NULL, child_pool_work, NULL, NULL))
            return 5;
    if (coro_pool_wait(p, -1) || coro_pool_destroy(p) || atomic_load(&child_pool_runs) != 100)
        return 6;
    return 0;
}

START_TEST(fork_with_a_running_pool)
{
    make_pool(2);
    ck_assert_int_eq(coro_chan_create(&churn_chan, sizeof(int), 0), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % 2, NULL, churner, NULL, NULL), 0);
    for (int i = 0; i < (SLOW ? 3 : 20); i++) {
        usleep(2000);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            _exit(child_main());
        int status;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child %d: status %#x", i, status);
    }
    atomic_store(&churn_stop, 1);
    end_pool();
    ck_assert_int_eq(coro_chan_destroy(churn_chan), 0);
}
END_TEST

/* -------------------------------------------------------------- groups */

/* A group made by a coroutine of a pool thread takes members on every
 * pool thread: its own, sent there with coro_group_spawn_on (CORO_ANY
 * and explicit, with and without a handle), and spawned by a member on
 * its own thread; its wait, on its thread and on another, ends after the
 * last of them. */
#define GROUP_SENT 40
static coro_group_t *grp;
static atomic_int grp_done, grp_errors, grp_threads, grp_seen, grp_waiting;
static coro_chan_t *grp_back;

static void *member_sleeps(void *arg)
{
    (void)arg;
    coro_sleep(2000000);
    atomic_fetch_or(&grp_threads, 1 << coro_pool_thread());
    atomic_fetch_add(&grp_done, 1);
    return (void *)(intptr_t)coro_pool_thread();
}

static void *member_adds_one(void *arg)
{
    (void)arg;
    if (coro_group_spawn(grp, NULL, member_sleeps, NULL, NULL))
        atomic_fetch_add(&grp_errors, 1);
    atomic_fetch_add(&grp_done, 1);
    return NULL;
}

static void *waits_from_afar(void *arg)
{
    int total = (int)(intptr_t)arg, ok = 1;

    /* Its thread's loop runs a message (a shutdown) only once this parks. */
    atomic_fetch_add(&grp_waiting, 1);
    if (coro_group_wait(grp, -1) || atomic_load(&grp_done) != total)
        atomic_fetch_add(&grp_errors, 1);
    else
        atomic_fetch_add(&grp_seen, 1);
    coro_chan_send(grp_back, &ok, -1);
    return NULL;
}

static void *runs_a_group(void *arg)
{
    const int total = 2 + GROUP_SENT + 1 + 2; /* local, sent, joined, adder + its one */
    coro_t *co;
    void *r = NULL;
    int ok;

    (void)arg;
    if (coro_group_create(&grp) || coro_chan_create(&grp_back, sizeof(int), 0)) {
        atomic_fetch_add(&grp_errors, 1);
        return NULL;
    }
    for (int i = 0; i < 2; i++)
        if (coro_group_spawn(grp, NULL, member_sleeps, NULL, NULL))
            atomic_fetch_add(&grp_errors, 1);
    coro_pool_spawn(pool, 3, NULL, waits_from_afar, (void *)(intptr_t)total, NULL);
    for (int i = 0; i < GROUP_SENT; i++)
        if (coro_group_spawn_on(grp, pool, i < 8 ? i % 4 : CORO_ANY, NULL, member_sleeps, NULL,
                                NULL))
            atomic_fetch_add(&grp_errors, 1);
    if (coro_group_spawn_on(grp, pool, 2, &co, member_sleeps, NULL, NULL) ||
        coro_group_spawn_on(grp, pool, 1, NULL, member_adds_one, NULL, NULL))
        atomic_fetch_add(&grp_errors, 1);
    if (coro_group_wait(grp, -1) || atomic_load(&grp_done) != total)
        atomic_fetch_add(&grp_errors, 1);
    if (coro_join(co, &r, -1) || (intptr_t)r != 2)
        atomic_fetch_add(&grp_errors, 1);
    if (coro_chan_recv(grp_back, &ok, -1) || coro_group_destroy(grp) ||
        coro_chan_destroy(grp_back))
        atomic_fetch_add(&grp_errors, 1);
    return NULL;
}

START_TEST(group_spans_the_pool)
{
    make_pool(4);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, runs_a_group, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&grp_errors), 0);
    ck_assert_int_eq(atomic_load(&grp_done), 2 + GROUP_SENT + 1 + 2);
    ck_assert_int_eq(atomic_load(&grp_seen), 1);
    ck_assert_int_eq(atomic_load(&grp_threads), 0xf);
}
END_TEST

/* A cancel from another thread reaches the members on every thread; a
 * destroy right after the spawns cancels those still on their way too. */
#define GROUP_PARKED 24
static atomic_int grp_cancelled, grp_ready;

static void *member_parks(void *arg)
{
    (void)arg;
    atomic_fetch_add(&grp_ready, 1);
    if (coro_sleep(60 * 1000000000LL) == ECANCELED)
        atomic_fetch_add(&grp_cancelled, 1);
    return NULL;
}

static void *cancels_the_group(void *arg)
{
    (void)arg;
    while (atomic_load(&grp_ready) < GROUP_PARKED)
        coro_sleep(100000);
    if (coro_group_cancel(grp))
        atomic_fetch_add(&grp_errors, 1);
    return NULL;
}

static void *runs_a_cancelled_group(void *arg)
{
    coro_group_t *g2;

    (void)arg;
    if (coro_group_create(&grp)) {
        atomic_fetch_add(&grp_errors, 1);
        return NULL;
    }
    for (int i = 0; i < GROUP_PARKED; i++)
        if (coro_group_spawn_on(grp, pool, i % 4, NULL, member_parks, NULL, NULL))
            atomic_fetch_add(&grp_errors, 1);
    coro_pool_spawn(pool, 2, NULL, cancels_the_group, NULL, NULL);
    if (coro_group_wait(grp, -1) || atomic_load(&grp_cancelled) != GROUP_PARKED ||
        coro_group_destroy(grp))
        atomic_fetch_add(&grp_errors, 1);
    /* Sent and destroyed at once: most have not started. */
    if (coro_group_create(&g2)) {
        atomic_fetch_add(&grp_errors, 1);
        return NULL;
    }
    for (int i = 0; i < GROUP_PARKED; i++)
        if (coro_group_spawn_on(g2, pool, CORO_ANY, NULL, member_parks, NULL, NULL))
            atomic_fetch_add(&grp_errors, 1);
    if (coro_group_destroy(g2) || atomic_load(&grp_cancelled) != 2 * GROUP_PARKED)
        atomic_fetch_add(&grp_errors, 1);
    return NULL;
}

START_TEST(group_cancel_across_threads)
{
    make_pool(4);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, runs_a_cancelled_group, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&grp_errors), 0);
    ck_assert_int_eq(atomic_load(&grp_cancelled), 2 * GROUP_PARKED);
}
END_TEST

/* A pool shutdown ends a group's members on every thread, and so its
 * waiters (on other threads too) return. */
static void *makes_group_and_waits(void *arg)
{
    (void)arg;
    if (coro_group_create(&grp)) {
        atomic_fetch_add(&grp_errors, 1);
        return NULL;
    }
    for (int i = 0; i < GROUP_PARKED; i++)
        coro_group_spawn_on(grp, pool, i % 3, NULL, member_parks, NULL, NULL);
    for (int i = 1; i < 3; i++)
        coro_pool_spawn(pool, i, NULL, waits_from_afar, (void *)(intptr_t)0, NULL);
    if (coro_group_wait(grp, -1) == 0)
        atomic_fetch_add(&grp_seen, 1);
    return NULL;
}

START_TEST(shutdown_ends_a_group_on_every_thread)
{
    make_pool(3);
    ck_assert_int_eq(coro_chan_create(&grp_back, sizeof(int), 8), 0);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, makes_group_and_waits, NULL, NULL), 0);
    /* The members parked, and so the home's waiter (8 of them are on its
     * thread); the far waiters have parked, or will before their threads
     * look at the shutdown. */
    while (atomic_load(&grp_ready) < GROUP_PARKED || atomic_load(&grp_waiting) < 2)
        usleep(1000);
    ck_assert_int_eq(coro_pool_shutdown(pool, coro_now() + 30 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&grp_cancelled), GROUP_PARKED);
    ck_assert_int_eq(atomic_load(&grp_seen), 3); /* its home's waiter, and two afar */
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    /* The group outlived its pool, empty: the main thread frees it. */
    ck_assert_int_eq(coro_group_wait(grp, -1), 0);
    ck_assert_int_eq(coro_group_destroy(grp), 0);
    ck_assert_int_eq(coro_chan_destroy(grp_back), 0);
}
END_TEST

/* What a group refuses: a group made on a thread outside the pool (before
 * or after the pool) stays that thread's; a thread outside the pool
 * cannot add to a pool thread's group, nor its own flow wait for one
 * with members left. */
static coro_group_t *outside_grp;

static void *tries_outside_group(void *arg)
{
    (void)arg;
    if (coro_group_spawn(outside_grp, NULL, member_sleeps, NULL, NULL) != EPERM ||
        coro_group_wait(outside_grp, -1) != EPERM || coro_group_cancel(outside_grp) != EPERM ||
        coro_group_destroy(outside_grp) != EPERM)
        atomic_fetch_add(&grp_errors, 1);
    if (coro_group_create(&grp))
        atomic_fetch_add(&grp_errors, 1);
    else
        coro_group_spawn(grp, NULL, member_parks, NULL, NULL);
    return NULL;
}

START_TEST(group_refusals)
{
    coro_group_t *before, *after;

    ck_assert_int_eq(coro_group_create(&before), 0);
    make_pool(2);
    ck_assert_int_eq(coro_group_create(&after), 0);
    ck_assert_int_eq(coro_group_spawn_on(before, pool, 0, NULL, member_sleeps, NULL, NULL), EPERM);
    ck_assert_int_eq(coro_group_spawn_on(after, pool, 0, NULL, member_sleeps, NULL, NULL), EPERM);
    ck_assert_int_eq(coro_group_spawn_on(NULL, pool, 0, NULL, member_sleeps, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_group_spawn_on(after, NULL, 0, NULL, member_sleeps, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_group_spawn_on(after, pool, 2, NULL, member_sleeps, NULL, NULL), EINVAL);
    outside_grp = after;
    ck_assert_int_eq(coro_pool_spawn(pool, 1, NULL, tries_outside_group, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 30 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&grp_errors), 0);
    while (atomic_load(&grp_ready) < 1)
        usleep(1000);
    ck_assert_int_eq(coro_group_spawn(grp, NULL, member_sleeps, NULL, NULL), EPERM);
    ck_assert_int_eq(coro_group_wait(grp, -1), EPERM); /* a member left */
    ck_assert_int_eq(coro_group_destroy(grp), EPERM);
    ck_assert_int_eq(coro_group_cancel(grp), 0);       /* from anywhere */
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&grp_cancelled), 1);
    ck_assert_int_eq(coro_group_destroy(grp), 0);
    ck_assert_int_eq(coro_group_destroy(before), 0);
    ck_assert_int_eq(coro_group_destroy(after), 0);
}
END_TEST

/* The pool's count of a member drops after the member has left its
 * group: once coro_pool_wait returns, a group whose members were all
 * pool coroutines is empty, and main's own flow can free it. */
#define EMPTY_ROUNDS (SLOW ? 100 : 2000)

static void *returns_at_once(void *arg)
{
    return arg;
}

static void *sends_empty_members(void *arg)
{
    coro_group_t **out = arg;

    if (coro_group_create(out)) {
        atomic_fetch_add(&grp_errors, 1);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        if (coro_group_spawn_on(*out, pool, i % 2, NULL, returns_at_once, NULL, NULL))
            atomic_fetch_add(&grp_errors, 1);
    return NULL;
}

START_TEST(group_empty_once_the_pool_is)
{
    make_pool(2);
    for (int i = 0; i < EMPTY_ROUNDS; i++) {
        coro_group_t *g = NULL;
        ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, sends_empty_members, &g, NULL), 0);
        ck_assert_int_eq(coro_pool_wait(pool, coro_now() + 30 * 1000000000LL), 0);
        int r = coro_group_destroy(g);
        if (r)
            ck_abort_msg("round %d: destroy %d", i, r);
    }
    ck_assert_int_eq(coro_pool_destroy(pool), 0);
    ck_assert_int_eq(atomic_load(&grp_errors), 0);
}
END_TEST

/* A member that, cancelled by the destroy, spawns another member as it
 * unwinds: the new one starts cancelled, so the destroy ends. */
static void *spawns_as_it_unwinds(void *arg)
{
    (void)arg;
    atomic_fetch_add(&grp_ready, 1);
    if (coro_sleep(60 * 1000000000LL) == ECANCELED) {
        atomic_fetch_add(&grp_cancelled, 1);
        if (coro_group_spawn(grp, NULL, member_parks, NULL, NULL))
            atomic_fetch_add(&grp_errors, 1);
    }
    return NULL;
}

static void *destroys_with_late_members(void *arg)
{
    (void)arg;
    if (coro_group_create(&grp)) {
        atomic_fetch_add(&grp_errors, 1);
        return NULL;
    }
    for (int i = 0; i < 4; i++)
        coro_group_spawn_on(grp, pool, i % 2, NULL, spawns_as_it_unwinds, NULL, NULL);
    while (atomic_load(&grp_ready) < 4)
        coro_sleep(100000);
    if (coro_group_destroy(grp))
        atomic_fetch_add(&grp_errors, 1);
    return NULL;
}

START_TEST(group_destroy_cancels_late_members)
{
    make_pool(2);
    ck_assert_int_eq(coro_pool_spawn(pool, 0, NULL, destroys_with_late_members, NULL, NULL), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&grp_errors), 0);
    ck_assert_int_eq(atomic_load(&grp_cancelled), 8); /* 4, then their 4 */
}
END_TEST

int main(void)
{
    Suite *su = suite_create("mtsync");
    TCase *tc = tcase_create("chan");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, ping_pong_between_threads);
    tcase_add_test(tc, many_to_many_loses_nothing);
    tcase_add_test(tc, close_wakes_every_thread);
    tcase_add_test(tc, deadlines_race_across_threads);
    tcase_add_test(tc, deadline_with_nobody_there);
    tcase_add_test(tc, select_across_threads);
    tcase_add_test(tc, shutdown_ends_shared_waits);
    suite_add_tcase(su, tc);
    tc = tcase_create("locks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, mutex_excludes_across_threads);
    tcase_add_test(tc, mutex_is_fifo_across_threads);
    tcase_add_test(tc, mutex_deadline_across_threads);
    tcase_add_test(tc, cond_queue_across_threads);
    tcase_add_test(tc, cond_broadcast_across_threads);
    tcase_add_test(tc, sem_bounds_across_threads);
    tcase_add_test(tc, wait_group_across_threads);
    tcase_add_test(tc, future_across_threads);
    tcase_add_test(tc, shutdown_ends_every_kind_of_wait);
    suite_add_tcase(su, tc);
    tc = tcase_create("join");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, join_across_threads);
    tcase_add_test(tc, join_a_handle_sent_across);
    tcase_add_test(tc, cancel_across_threads);
    tcase_add_test(tc, cancel_and_join_race_the_end);
    tcase_add_test(tc, cancel_waits_for_a_spawn_reply);
    tcase_add_test(tc, outsiders_are_refused);
    suite_add_tcase(su, tc);
    tc = tcase_create("biased");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, biased_channel_shared_with_a_waiter);
    tcase_add_test(tc, biased_objects_outlive_their_pool);
    tcase_add_test(tc, destroy_right_after_the_wake);
    tcase_add_test(tc, main_flow_shares_a_biased_object);
    suite_add_tcase(su, tc);
    tc = tcase_create("group");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, group_spans_the_pool);
    tcase_add_test(tc, group_cancel_across_threads);
    tcase_add_test(tc, shutdown_ends_a_group_on_every_thread);
    tcase_add_test(tc, group_refusals);
    tcase_add_test(tc, group_empty_once_the_pool_is);
    tcase_add_test(tc, group_destroy_cancels_late_members);
    suite_add_tcase(su, tc);
    tc = tcase_create("fork");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, destroy_ends_local_spawns);
    tcase_add_test(tc, fork_with_a_running_pool);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

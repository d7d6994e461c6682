/* Check suite of sync objects shared between threads (mt layer): channels
 * made once the process has a pool, used by coroutines of several pool
 * threads at once.  Each test runs in a process of its own (Check's fork
 * mode), so the pool it makes first is the process's first. */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include "testutil.h"
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* 8 threads, each with many coroutines; each coroutine sends its
 * messages to the channel of the next thread and receives as many from
 * its own thread's channel.  Nothing is lost, nothing arrives twice. */
#define NT 8
#define PER_THREAD (SLOW ? 40 : 1000)
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
    for (int i = 0; i < NT * PER_THREAD; i++)
        ck_assert_int_eq(coro_pool_spawn(pool, i % NT, NULL, exchanger, (void *)(intptr_t)i,
                                         &attr), 0);
    end_pool();
    ck_assert_int_eq(atomic_load(&mm_errors), 0);
    for (int i = 0; i < TOTAL; i++)
        ck_assert_int_eq(atomic_load(&got[i]), 1);
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
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Check suite of the pool (mt layer, first step): threads with their own
 * schedulers, spawns placed on them through their inboxes, wait, shutdown
 * and destroy. */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include "testutil.h"
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NT 4

static atomic_int ran_on[NT];
static atomic_int ran_total;

static void *record_thread(void *arg)
{
    int want = (int)(intptr_t)arg;
    int t = coro_pool_thread();

    ck_assert_int_ge(t, 0);
    ck_assert_int_lt(t, NT);
    if (want >= 0)
        ck_assert_int_eq(t, want);
    atomic_fetch_add(&ran_on[t], 1);
    atomic_fetch_add(&ran_total, 1);
    coro_sleep(100000); /* others run meanwhile on this thread */
    return NULL;
}

static void reset_counts(void)
{
    for (int i = 0; i < NT; i++)
        atomic_store(&ran_on[i], 0);
    atomic_store(&ran_total, 0);
}

START_TEST(spawns_run_on_their_thread)
{
    coro_pool_t *p;

    reset_counts();
    ck_assert_int_eq(coro_pool_thread(), -1);
    ck_assert_int_eq(coro_pool_create(&p, NT), 0);
    ck_assert_uint_eq(coro_pool_size(p), NT);
    for (int i = 0; i < NT * 25; i++)
        ck_assert_int_eq(coro_pool_spawn(p, i % NT, NULL, record_thread,
                                         (void *)(intptr_t)(i % NT), NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&ran_total), NT * 25);
    for (int i = 0; i < NT; i++)
        ck_assert_int_eq(atomic_load(&ran_on[i]), 25);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

START_TEST(any_is_round_robin)
{
    coro_pool_t *p;

    reset_counts();
    ck_assert_int_eq(coro_pool_create(&p, NT), 0);
    for (int i = 0; i < NT * 10; i++)
        ck_assert_int_eq(coro_pool_spawn(p, CORO_ANY, NULL, record_thread,
                                         (void *)(intptr_t)-1, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&ran_total), NT * 10);
    /* Round robin: 10 each, unless a thread kept another waiting for
     * STEAL_NS (5 ms), which under valgrind or TSan can happen by itself:
     * then an idle one took some of its share. */
    for (int i = 0; i < NT; i++)
        if (!RUNNING_ON_VALGRIND && !UNDER_TSAN)
            ck_assert_int_eq(atomic_load(&ran_on[i]), 10);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* An idle thread takes CORO_ANY spawns that have not started from a
 * thread kept busy by one coroutine; started ones never move. */
static atomic_int hog_done, hog_thread, stolen_before_hog_done;

static void *hog(void *arg)
{
    int64_t end = coro_now() + 300 * 1000000LL;

    (void)arg;
    atomic_store(&hog_thread, coro_pool_thread());
    while (coro_now() < end)
        ; /* never waits: its thread runs nothing else meanwhile */
    atomic_store(&hog_done, 1);
    return NULL;
}

static void *quick(void *arg)
{
    (void)arg;
    if (!atomic_load(&hog_done) && coro_pool_thread() != atomic_load(&hog_thread))
        atomic_fetch_add(&stolen_before_hog_done, 1);
    atomic_fetch_add(&ran_total, 1);
    return NULL;
}

START_TEST(idle_thread_takes_unstarted_spawns)
{
    coro_pool_t *p;

    reset_counts();
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    atomic_store(&hog_thread, -1);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, hog, NULL, NULL), 0);
    while (atomic_load(&hog_thread) != 0)
        usleep(1000);
    /* Round robin: half of these go to the busy thread 0. */
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(coro_pool_spawn(p, CORO_ANY, NULL, quick, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, coro_now() + 30 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&ran_total), 20);
    /* All 20 ran on thread 1 before the hog let go of thread 0. */
    ck_assert_int_eq(atomic_load(&stolen_before_hog_done), 20);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

START_TEST(pool_errors)
{
    coro_pool_t *p;
    coro_t *co;

    ck_assert_int_eq(coro_pool_create(NULL, 2), EINVAL);
    ck_assert_int_eq(coro_pool_create(&p, 0), EINVAL);
    ck_assert_int_eq(coro_pool_create(&p, 1025), EINVAL);
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    errno = 31;
    ck_assert_int_eq(coro_pool_spawn(NULL, 0, NULL, record_thread, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_pool_spawn(p, 2, NULL, record_thread, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_pool_spawn(p, -2, NULL, record_thread, NULL, NULL), EINVAL);
    /* A handle from the main thread: it waits for the spawn to be made;
     * it may cancel the coroutine but not join it (not a coroutine). */
    co = NULL;
    ck_assert_int_eq(coro_pool_spawn(p, 0, &co, record_thread, NULL, NULL), 0);
    ck_assert_ptr_nonnull(co);
    ck_assert_int_eq(coro_join(co, NULL, -1), EPERM);
    ck_assert_int_eq(coro_pool_wait(NULL, -1), EINVAL);
    ck_assert_int_eq(coro_pool_wait(p, -2), EINVAL);
    ck_assert_int_eq(errno, 31);
    ck_assert_uint_eq(coro_pool_size(NULL), 0);
    ck_assert_int_eq(coro_pool_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static void *forever(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)coro_sleep_until(-1);
}

START_TEST(wait_times_out)
{
    coro_pool_t *p;

    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 1, NULL, forever, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, coro_now() + 20000000), ETIMEDOUT);
    ck_assert_int_eq(coro_pool_wait(p, 0), ETIMEDOUT);
    ck_assert_int_eq(coro_pool_shutdown(p, -1), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, forever, NULL, NULL), ECANCELED);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* Coroutines parked in every kind of wait, on every thread, unwind at a
 * shutdown; each counts its wait's ECANCELED. */
static atomic_int cancelled;

static void *parks(void *arg)
{
    int kind = (int)(intptr_t)arg % 4, err = 0;

    switch (kind) {
    case 0:
        err = coro_sleep_until(-1);
        break;
    case 1: {
        coro_chan_t *ch;
        ck_assert_int_eq(coro_chan_create(&ch, sizeof(int), 0), 0);
        int v;
        err = coro_chan_recv(ch, &v, -1);
        coro_chan_destroy(ch);
        break;
    }
    case 2: {
        int fds[2];
        ck_assert_int_eq(pipe(fds), 0);
        err = coro_wait_fd(fds[0], CORO_IN, NULL, -1);
        close(fds[0]);
        close(fds[1]);
        break;
    }
    default: {
        coro_sem_t *s;
        ck_assert_int_eq(coro_sem_create(&s, 0), 0);
        err = coro_sem_acquire(s, -1);
        coro_sem_destroy(s);
        break;
    }
    }
    if (err == ECANCELED)
        atomic_fetch_add(&cancelled, 1);
    return NULL;
}

START_TEST(shutdown_unwinds_every_wait)
{
    coro_pool_t *p;

    atomic_store(&cancelled, 0);
    ck_assert_int_eq(coro_pool_create(&p, NT), 0);
    for (int i = 0; i < NT * 8; i++)
        ck_assert_int_eq(coro_pool_spawn(p, i % NT, NULL, parks, (void *)(intptr_t)(i / NT),
                                         NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, coro_now() + 50000000), ETIMEDOUT);
    ck_assert_int_eq(coro_pool_shutdown(p, coro_now() + 10 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&cancelled), NT * 8);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* Destroy without a shutdown first, with coroutines still parked. */
START_TEST(destroy_with_live_coroutines)
{
    coro_pool_t *p;

    atomic_store(&cancelled, 0);
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(coro_pool_spawn(p, CORO_ANY, NULL, parks, (void *)(intptr_t)i, NULL),
                         0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
    ck_assert_int_eq(atomic_load(&cancelled), 8);
}
END_TEST

/* A pool coroutine spawns onto every thread, its own included (with a
 * handle it joins there), and waiting from inside the pool is refused. */
static coro_pool_t *inner_pool;
static atomic_int inner_errs;

static void *child(void *arg)
{
    atomic_fetch_add(&ran_total, 1);
    return arg;
}

static void *spawner(void *arg)
{
    coro_t *co;
    void *r;

    (void)arg;
    if (coro_pool_wait(inner_pool, 0) != EDEADLK ||
        coro_pool_destroy(inner_pool) != EDEADLK)
        atomic_fetch_add(&inner_errs, 1);
    for (unsigned i = 0; i < coro_pool_size(inner_pool); i++)
        if (coro_pool_spawn(inner_pool, (int)i, NULL, child, NULL, NULL))
            atomic_fetch_add(&inner_errs, 1);
    if (coro_pool_spawn(inner_pool, coro_pool_thread(), &co, child, (void *)7, NULL) ||
        coro_join(co, &r, -1) || r != (void *)7)
        atomic_fetch_add(&inner_errs, 1);
    return NULL;
}

START_TEST(spawn_from_inside_the_pool)
{
    atomic_store(&ran_total, 0);
    atomic_store(&inner_errs, 0);
    ck_assert_int_eq(coro_pool_create(&inner_pool, 3), 0);
    ck_assert_int_eq(coro_pool_spawn(inner_pool, 1, NULL, spawner, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(inner_pool, -1), 0);
    ck_assert_int_eq(atomic_load(&inner_errs), 0);
    ck_assert_int_eq(atomic_load(&ran_total), 4);
    ck_assert_int_eq(coro_pool_destroy(inner_pool), 0);
}
END_TEST

/* From a coroutine outside any pool, a wait would block its thread. */
static void *outsider(void *arg)
{
    return (void *)(intptr_t)coro_pool_wait(arg, 0);
}

START_TEST(wait_from_a_coroutine_is_refused)
{
    coro_pool_t *p;
    coro_t *co;
    void *r;

    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    ck_assert_int_eq(coro_create(&co, outsider, p, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, &r), 0);
    ck_assert_int_eq((intptr_t)r, EPERM);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* A pool coroutine's coro_shutdown ends its own thread only. */
static atomic_int local_end;

static void *ends_its_thread(void *arg)
{
    (void)arg;
    coro_shutdown();
    return NULL;
}

static void *counts_cancel(void *arg)
{
    (void)arg;
    if (coro_sleep_until(-1) == ECANCELED)
        atomic_fetch_add(&local_end, 1);
    return NULL;
}

START_TEST(thread_shutdown_from_inside)
{
    coro_pool_t *p;

    atomic_store(&local_end, 0);
    atomic_store(&ran_total, 0);
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, counts_cancel, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, ends_its_thread, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, coro_now() + 10 * 1000000000LL), 0);
    ck_assert_int_eq(atomic_load(&local_end), 4);
    int err;
    while ((err = coro_pool_spawn(p, 0, NULL, child, NULL, NULL)) == 0)
        ck_assert_int_eq(coro_pool_wait(p, -1), 0); /* raced the server's end */
    ck_assert_int_eq(err, ECANCELED);
    ck_assert_int_eq(coro_pool_spawn(p, 1, NULL, child, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_ge(atomic_load(&ran_total), 1);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* Entries of a /proc/self directory: the process's fds or threads. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Created and destroyed many times: no thread or fd is left behind
 * (valgrind and ASan check the memory). */
START_TEST(create_destroy_leaves_nothing)
{
    int rounds = RUNNING_ON_VALGRIND || UNDER_TSAN ? 50 : 1000;
    coro_pool_t *warm;

    /* Once per process, libcoro keeps a few things (the pidfd its batched
     * madvise uses, the stack pools): a first round opens them. */
    ck_assert_int_eq(coro_pool_create(&warm, 2), 0);
    ck_assert_int_eq(coro_pool_spawn(warm, CORO_ANY, NULL, child, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_destroy(warm), 0);
    int fds = count_entries("/proc/self/fd"), threads = count_entries("/proc/self/task");
    atomic_store(&ran_total, 0);
    for (int i = 0; i < rounds; i++) {
        coro_pool_t *p;
        ck_assert_int_eq(coro_pool_create(&p, 2), 0);
        if (i % 2)
            ck_assert_int_eq(coro_pool_spawn(p, CORO_ANY, NULL, child, NULL, NULL), 0);
        ck_assert_int_eq(coro_pool_destroy(p), 0);
    }
    ck_assert_int_eq(atomic_load(&ran_total), rounds / 2);
    ck_assert_int_eq(count_entries("/proc/self/fd"), fds);
    ck_assert_int_eq(count_entries("/proc/self/task"), threads);
}
END_TEST

/* Many producers on many threads spawn onto one pool at once: every
 * spawn runs exactly once (the inbox loses and duplicates nothing). */
#define PRODUCERS 4
#define PER_PRODUCER 2000
static coro_pool_t *stress_pool;
static atomic_int hits[PRODUCERS * PER_PRODUCER];

static void *hit(void *arg)
{
    atomic_fetch_add(&hits[(intptr_t)arg], 1);
    return NULL;
}

static void *producer(void *arg)
{
    intptr_t base = (intptr_t)arg * PER_PRODUCER;

    for (intptr_t i = 0; i < PER_PRODUCER; i++)
        while (coro_pool_spawn(stress_pool, CORO_ANY, NULL, hit, (void *)(base + i), NULL) ==
               ENOMEM)
            sched_yield();
    return NULL;
}

START_TEST(inbox_under_many_producers)
{
    pthread_t th[PRODUCERS];

    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        atomic_store(&hits[i], 0);
    ck_assert_int_eq(coro_pool_create(&stress_pool, 3), 0);
    for (intptr_t i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, producer, (void *)i), 0);
    for (int i = 0; i < PRODUCERS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    ck_assert_int_eq(coro_pool_wait(stress_pool, -1), 0);
    for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
        ck_assert_int_eq(atomic_load(&hits[i]), 1);
    ck_assert_int_eq(coro_pool_destroy(stress_pool), 0);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("placement");

    tcase_add_test(tc, spawns_run_on_their_thread);
    tcase_add_test(tc, any_is_round_robin);
    tcase_add_test(tc, idle_thread_takes_unstarted_spawns);
    tcase_add_test(tc, spawn_from_inside_the_pool);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, pool_errors);
    tcase_add_test(tc, wait_from_a_coroutine_is_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("ending");
    tcase_add_test(tc, wait_times_out);
    tcase_add_test(tc, shutdown_unwinds_every_wait);
    tcase_add_test(tc, destroy_with_live_coroutines);
    tcase_add_test(tc, thread_shutdown_from_inside);
    tcase_add_test(tc, create_destroy_leaves_nothing);
    suite_add_tcase(s, tc);

    tc = tcase_create("inbox");
    tcase_add_test(tc, inbox_under_many_producers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pool_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Check suite of the schedulers' inboxes (mt layer): posts from other
 * threads, the doorbell rung only for a scheduler that sleeps, and wakes of
 * remote wait records racing their own deadlines.  Links the static
 * library: it looks at a pool thread's scheduler. */
#define _GNU_SOURCE
#include "lib/sched.h"
#include <coro.h>

#include <check.h>
#include "testutil.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

static _Atomic(struct coro__sched *) pool_sched;

static void *note_sched(void *arg)
{
    (void)arg;
    atomic_store(&pool_sched, coro__sched_current());
    return NULL;
}

/* The scheduler of thread t of p, once that thread has run a coroutine. */
static struct coro__sched *sched_of(coro_pool_t *p, int t)
{
    atomic_store(&pool_sched, NULL);
    ck_assert_int_eq(coro_pool_spawn(p, t, NULL, note_sched, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    struct coro__sched *s = atomic_load(&pool_sched);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void wait_asleep(struct coro__sched *s)
{
    while (atomic_load(&s->sleeping) == CORO__AWAKE)
        sched_yield();
}

static atomic_int counted;

static void *count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counted, 1);
    return NULL;
}

#define BURST 10000

/* A burst of posts to a sleeping thread rings its doorbell at most once
 * per time it went to sleep, not once per post. */
START_TEST(burst_to_a_sleeper_rings_once_per_sleep)
{
    coro_pool_t *p;
    unsigned long s0, r0, s1, r1;

    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    struct coro__sched *s = sched_of(p, 0);
    wait_asleep(s);
    coro__sched_bell_stats(s, &s0, &r0);
    atomic_store(&counted, 0);
    for (int i = 0; i < BURST; i++)
        ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, count, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&counted), BURST);
    wait_asleep(s);
    coro__sched_bell_stats(s, &s1, &r1);
    /* It was asleep when the burst began: that sleep, and each one since
     * (the last one, now, not rung yet), can take one ring. */
    ck_assert_uint_ge(r1 - r0, 1);
    ck_assert_uint_le(r1 - r0, s1 - s0);
    /* And the few microseconds it looks for more after a ring keep it
     * awake through most of the burst (not under valgrind, which runs one
     * thread at a time). */
    if (!RUNNING_ON_VALGRIND)
        ck_assert_uint_lt(r1 - r0, BURST / 10);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static atomic_int busy_stop;

static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&busy_stop))
        coro_yield(NULL, NULL);
    return NULL;
}

/* Posts to a thread that never sleeps ring nothing: no system call. */
START_TEST(posts_to_an_awake_thread_ring_nothing)
{
    coro_pool_t *p;
    unsigned long s0, r0, s1, r1;

    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    struct coro__sched *s = sched_of(p, 0);
    atomic_store(&busy_stop, 0);
    atomic_store(&counted, 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, busy, NULL, NULL), 0);
    /* The spawn of busy itself may ring; once it runs, the thread never
     * sleeps. */
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, count, NULL, NULL), 0);
    while (atomic_load(&counted) < 1)
        sched_yield();
    coro__sched_bell_stats(s, &s0, &r0);
    for (int i = 0; i < BURST; i++)
        ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, count, NULL, NULL), 0);
    while (atomic_load(&counted) < BURST + 1)
        sched_yield();
    coro__sched_bell_stats(s, &s1, &r1);
    ck_assert_uint_eq(s1 - s0, 0);
    ck_assert_uint_eq(r1 - r0, 0);
    atomic_store(&busy_stop, 1);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* A remote record: a coroutine on a pool thread parks in it, another
 * thread ends it; its own deadline races that waker, and exactly one of
 * the two wins each time. */
#define ROUNDS (UNDER_TSAN || RUNNING_ON_VALGRIND ? 300 : 3000)

static _Atomic(struct coro__wait *) parked;
static atomic_int by_waker, by_deadline, bad;

static void *remote_waiter(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct coro__wait wait;
        coro__wait_init(&wait, coro_self());
        wait.remote = 1;
        atomic_store(&parked, &wait);
        /* Every few rounds a deadline passed already: the wait ends at once
         * unless the waker claimed it first, and then its wake is taken. */
        int64_t deadline = i % 3 == 0 ? -1 : i % 3 == 1 ? 0 : coro_now() + 20000;
        int r = coro__wait_park(&wait, deadline, CORO__WAIT_PLAIN, "test");
        if (r == 42)
            atomic_fetch_add(&by_waker, 1);
        else if (r == ETIMEDOUT)
            atomic_fetch_add(&by_deadline, 1);
        else
            atomic_fetch_add(&bad, 1);
        /* The waker is done with the record before it goes. */
        while (atomic_load(&parked) == &wait)
            sched_yield();
    }
    return NULL;
}

START_TEST(remote_wake_races_the_deadline)
{
    coro_pool_t *p;

    atomic_store(&by_waker, 0);
    atomic_store(&by_deadline, 0);
    atomic_store(&bad, 0);
    atomic_store(&parked, NULL);
    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, remote_waiter, NULL, NULL), 0);
    for (int i = 0; i < ROUNDS; i++) {
        struct coro__wait *w;
        while (!(w = atomic_load(&parked)))
            sched_yield();
        if (coro__wait_claim(w))
            coro__wait_done(w, 42, 0);
        atomic_store(&parked, NULL);
    }
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&bad), 0);
    ck_assert_int_eq(atomic_load(&by_waker) + atomic_load(&by_deadline), ROUNDS);
    /* The rounds without a deadline can only be ended by the waker. */
    ck_assert_int_ge(atomic_load(&by_waker), ROUNDS / 3);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("mt");
    TCase *tc = tcase_create("inbox");
    tcase_add_test(tc, burst_to_a_sleeper_rings_once_per_sleep);
    tcase_add_test(tc, posts_to_an_awake_thread_ring_nothing);
    tcase_add_test(tc, remote_wake_races_the_deadline);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

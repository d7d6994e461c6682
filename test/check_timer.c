/* Check suite of the timer layer: the clock, sleep, deadlines and
 * cancellation, through the public API only.  A million sleepers are in
 * check_timer_million.c (suite stress). */
#define _GNU_SOURCE
#include <check.h>
#include <coro.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "testutil.h"

#define MS 1000000LL
#define HOUR (3600 * 1000000000LL)

static char trail[4096];

static void mark(char c)
{
    size_t n = strlen(trail);

    ck_assert_uint_lt(n, sizeof trail - 1);
    trail[n] = c;
    trail[n + 1] = '\0';
}

static void reset(void)
{
    trail[0] = '\0';
}

/* coro_run with stderr captured into out. */
static int run_capturing(char *out, size_t size)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    fflush(stderr);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fileno(f), 2), 2);
    int r = coro_run();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    return r;
}

/* -------------------------------------------------------------- clock */

START_TEST(now_is_monotonic)
{
    int64_t prev = coro_now();

    ck_assert_int_gt(prev, 0);
    for (int i = 0; i < 100000; i++) {
        int64_t t = coro_now();
        ck_assert_int_ge(t, prev);
        prev = t;
    }
}
END_TEST

/* -------------------------------------------------------------- sleep */

static void *sleeps_ms(void *arg)
{
    int64_t ms = (long)arg % 100, before = coro_now();

    ck_assert_int_eq(coro_sleep(ms * MS), 0);
    ck_assert_int_ge(coro_now() - before, ms * MS); /* never early */
    mark((char)((long)arg / 100));
    return NULL;
}

static int64_t order_base;

static void *sleeps_from_base(void *arg)
{
    /* Deadlines from one base: their order does not depend on how long
     * the sleepers took to start (valgrind, a loaded machine). */
    int64_t deadline = order_base + (long)arg % 100 * MS;

    ck_assert_int_eq(coro_sleep_until(deadline), 0);
    ck_assert_int_ge(coro_now(), deadline); /* never early */
    mark((char)((long)arg / 100));
    return NULL;
}

START_TEST(sleepers_wake_in_deadline_order)
{
    static const long ms[] = {40, 10, 30, 0, 20};

    /* A deadline already passed returns at once (a try): the base is far
     * enough ahead that every sleeper parks first, even under TSan. */
    order_base = coro_now() + 300 * MS;
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(coro_spawn(NULL, sleeps_from_base, (void *)(('a' + i) * 100L + ms[i]), NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "dbeca");
}
END_TEST

static int64_t shared_deadline;

static void *sleeps_until_shared(void *arg)
{
    ck_assert_int_eq(coro_sleep_until(shared_deadline), 0);
    ck_assert_int_ge(coro_now(), shared_deadline);
    mark((char)(long)arg);
    return NULL;
}

START_TEST(equal_deadlines_are_fifo)
{
    shared_deadline = coro_now() + 300 * MS; /* all park first (see above) */
    for (char c = 'a'; c <= 'h'; c++)
        ck_assert_int_eq(coro_spawn(NULL, sleeps_until_shared, (void *)(long)c, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "abcdefgh");
}
END_TEST

static void *zero_sleeper(void *arg)
{
    (void)arg;
    mark('z');
    ck_assert_int_eq(coro_sleep(0), 0);
    mark('Z');
    ck_assert_int_eq(coro_sleep(-5), 0);
    mark('N');
    ck_assert_int_eq(coro_sleep_until(0), 0); /* long passed */
    mark('P');
    return NULL;
}

static void *yields_thrice(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        mark('y');
        coro_yield(NULL, NULL);
    }
    return NULL;
}

START_TEST(sleep_passed_deadline_returns_at_once)
{
    ck_assert_int_eq(coro_spawn(NULL, zero_sleeper, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, yields_thrice, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    /* A deadline already passed is a "try": the sleeper goes on without
     * letting the yielder run. */
    ck_assert_str_eq(trail, "zZNPyyy");
}
END_TEST

static void *long_sleep(void *arg)
{
    /* Far away: coro_run must not wait for it once the sleeper is gone. */
    ck_assert_int_eq(coro_sleep(HOUR), ECANCELED);
    mark((char)(long)arg);
    return NULL;
}

static void *forever(void *arg)
{
    ck_assert_int_eq(coro_sleep_until(-1), ECANCELED);
    mark((char)(long)arg);
    return NULL;
}

static void *canceller(void *arg)
{
    coro_t **targets = arg;

    ck_assert_int_eq(coro_sleep(2 * MS), 0);
    for (int i = 0; targets[i]; i++)
        ck_assert_int_eq(coro_cancel(targets[i]), 0);
    for (int i = 0; targets[i]; i++)
        ck_assert_int_eq(coro_join(targets[i], NULL, -1), 0);
    mark('C');
    return NULL;
}

START_TEST(cancel_while_sleeping)
{
    static coro_t *targets[3];

    ck_assert_int_eq(coro_spawn(&targets[0], long_sleep, (void *)'l', NULL), 0);
    ck_assert_int_eq(coro_spawn(&targets[1], forever, (void *)'f', NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, canceller, targets, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, sleeps_ms, (void *)('s' * 100L + 5), NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    /* 's' wakes after 5 ms, anywhere around the others on a slow machine. */
    char *s = strchr(trail, 's');
    ck_assert_ptr_nonnull(s);
    memmove(s, s + 1, strlen(s));
    ck_assert_str_eq(trail, "lfC");
}
END_TEST

static void *cancelled_sleeper(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep(HOUR), ECANCELED); /* at once */
    ck_assert_int_eq(coro_sleep(1 * MS), 0);         /* once only */
    ck_assert_int_eq(coro_cancel(coro_self()), 0);
    ck_assert_int_eq(coro_sleep_until(-1), ECANCELED);
    mark('c');
    return NULL;
}

START_TEST(cancel_before_sleeping)
{
    coro_t *co;

    ck_assert_int_eq(coro_spawn(&co, cancelled_sleeper, NULL, NULL), 0);
    ck_assert_int_eq(coro_cancel(co), 0);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(trail, "c");
}
END_TEST

static void *sleep_in_plain(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep(1), EPERM);
    ck_assert_int_eq(coro_sleep_until(-1), EPERM);
    return NULL;
}

static void *bad_deadline(void *arg)
{
    coro_t *plain;

    (void)arg;
    ck_assert_int_eq(coro_sleep_until(-2), EINVAL);
    ck_assert_int_eq(coro_create(&plain, sleep_in_plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(plain), 0);
    mark('b');
    return NULL;
}

START_TEST(sleep_errors)
{
    coro_t *plain;

    ck_assert_int_eq(coro_sleep(1), EPERM); /* main flow */
    ck_assert_int_eq(coro_sleep_until(coro_now()), EPERM);
    ck_assert_int_eq(coro_create(&plain, sleep_in_plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(plain), 0);
    ck_assert_int_eq(coro_spawn(NULL, bad_deadline, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "b");
}
END_TEST

/* -------------------------------------------------------- join deadline */

static void *naps(void *arg)
{
    ck_assert_int_eq(coro_sleep((long)arg * MS), 0);
    return arg;
}

static void *join_with_deadlines(void *arg)
{
    coro_t *co;
    void *r;

    (void)arg;
    ck_assert_int_eq(coro_spawn(&co, naps, (void *)20L, NULL), 0);
    ck_assert_int_eq(coro_join(co, &r, coro_now() + 1 * MS), ETIMEDOUT);
    /* Its timer is gone when the join succeeds before the hour is up. */
    ck_assert_int_eq(coro_join(co, &r, coro_now() + HOUR), 0);
    ck_assert_ptr_eq(r, (void *)20L);
    mark('j');
    return NULL;
}

START_TEST(join_deadline)
{
    ck_assert_int_eq(coro_spawn(NULL, join_with_deadlines, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "j");
}
END_TEST

/* ------------------------------------------------------------ deadlock */

static void *sleeps_forever(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep_until(-1), ECANCELED);
    ck_assert_int_eq(coro_sleep(1 * MS), ECANCELED); /* unwinding: fails at once */
    return NULL;
}

static void *sleeps_then_done(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep(3 * MS), 0);
    mark('d');
    return NULL;
}

START_TEST(sleeping_forever_is_a_deadlock)
{
    coro_attr_t attr;

    coro_attr_init(&attr);
    coro_attr_set_name(&attr, "sleepy");
    ck_assert_int_eq(coro_spawn(NULL, sleeps_forever, NULL, &attr), 0);
    /* A pending timer is not a deadlock: reported only once it is gone. */
    ck_assert_int_eq(coro_spawn(NULL, sleeps_then_done, NULL, NULL), 0);
    char err[1024];
    ck_assert_int_eq(run_capturing(err, sizeof err), EDEADLK);
    ck_assert_str_eq(trail, "d");
    ck_assert_ptr_nonnull(strstr(err, "deadlock: 1 coroutine"));
    ck_assert_ptr_nonnull(strstr(err, "\"sleepy\" in coro_sleep_until\n"));
}
END_TEST

/* ------------------------------------------------- fairness, idling */

static int alarm_rang;

static void *hog(void *arg)
{
    long turns = 0;

    (void)arg;
    /* If a busy yielder kept timers from being checked, this would never
     * end (and the test would time out). */
    while (!alarm_rang)
        coro_yield(NULL, NULL), turns++;
    return (void *)turns;
}

static void *alarm_clock(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_sleep(2 * MS), 0);
    alarm_rang = 1;
    return NULL;
}

START_TEST(yielding_hog_does_not_hold_timers)
{
    ck_assert_int_eq(coro_spawn(NULL, hog, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, hog, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, alarm_clock, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(alarm_rang, 1);
}
END_TEST

/* Under the checking tools code runs slower, and much slower the first
 * time: the times of the tests below scaled by this. */
static int64_t tool_scale(void)
{
    return RUNNING_ON_VALGRIND || UNDER_ASAN || UNDER_TSAN ? 20 : 1;
}

/* A long round: SLOW coroutines, each busy for 20 us on its first run. */
#define SLOW 2000
static long slow_ran;
static long ran_before_wake[3];
static int64_t round_start;

static void *slow_starter(void *arg)
{
    int64_t until = coro_now() + 20000 * tool_scale();

    (void)arg;
    while (coro_now() < until) {
    }
    slow_ran++;
    return NULL;
}

static void *early_sleeper(void *arg)
{
    long i = (long)arg;

    /* 10, 11 and 12 ms after the start (room for slow first runs under
     * valgrind): due long before the round of 40 ms ends. */
    ck_assert_int_eq(coro_sleep_until(round_start + (10 + i) * MS * tool_scale()), 0);
    ran_before_wake[i] = slow_ran;
    mark((char)('a' + i));
    return NULL;
}

START_TEST(timer_due_within_long_round_runs_before_it_ends)
{
    /* Spawned in reverse deadline order: the wakes must follow the
     * deadlines, not the spawns. */
    for (long i = 2; i >= 0; i--)
        ck_assert_int_eq(coro_spawn(NULL, early_sleeper, (void *)i, NULL), 0);
    for (long i = 0; i < SLOW; i++)
        ck_assert_int_eq(coro_spawn(NULL, slow_starter, NULL, NULL), 0);
    slow_ran = 0;
    round_start = coro_now();
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "abc");
    ck_assert_int_eq(slow_ran, SLOW);
    /* A check once a round would have woken them after all SLOW ran. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_lt(ran_before_wake[i], SLOW / 2);
}
END_TEST

/* A burst of short sleepers: each gives its stack back as it finishes,
 * while fresh coroutines are still starting, so the burst does not need a
 * stack for each. */
static void *short_sleeper(void *arg)
{
    volatile char frame[2048];

    frame[0] = (char)(long)arg;
    ck_assert_int_eq(coro_sleep(MS / 4), 0);
    return (void *)(long)frame[0];
}

/* Resident KiB of the process, now or at its peak. */
static long rss_kib(int peak)
{
    long kib = -1;
    char line[256];
    FILE *f = fopen("/proc/self/status", "r");

    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, peak ? "VmHWM: %ld" : "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

START_TEST(burst_of_sleepers_reuses_stacks)
{
    /* Footprints mean nothing under the checking tools (shadow memory),
     * and TSan allows a few thousand fibers at once: a small burst there,
     * for the behaviour, and the footprint checked without them. */
    int tools = RUNNING_ON_VALGRIND || UNDER_ASAN || UNDER_TSAN;
    long n = tools ? 2000 : 50000;
    coro_attr_t attr;

    /* Stacks of their own class: none cached from the tests before. */
    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 96 * 1024), 0);
    for (long i = 0; i < n; i++)
        ck_assert_int_eq(coro_spawn(NULL, short_sleeper, (void *)i, &attr), 0);
    long before = rss_kib(0);
    ck_assert_int_eq(coro_run(), 0);
    /* With every one live at once, n touched stack pages would add 4n KiB
     * (200 MB); the sleepers that finish early hand theirs on. */
    long grown = rss_kib(1) - before;
    if (!tools)
        ck_assert_msg(grown < n, "RSS grew by %ld KiB for %ld sleepers", grown, n);
}
END_TEST

static int64_t cpu_ns(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

START_TEST(idle_scheduler_sleeps)
{
    /* Four sleepers, 300 ms in all: a scheduler that polled the clock
     * would burn about that much CPU; one that sleeps burns next to none.
     * The bound is loose so that a loaded machine cannot break it. */
    for (long i = 1; i <= 4; i++)
        ck_assert_int_eq(coro_spawn(NULL, naps, (void *)(i * 75), NULL), 0);
    int64_t wall = coro_now(), cpu = cpu_ns();
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_ge(coro_now() - wall, 300 * MS);
    ck_assert_int_lt(cpu_ns() - cpu, 100 * MS);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc;

    tc = tcase_create("sleep");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, now_is_monotonic);
    tcase_add_test(tc, sleepers_wake_in_deadline_order);
    tcase_add_test(tc, equal_deadlines_are_fifo);
    tcase_add_test(tc, sleep_passed_deadline_returns_at_once);
    tcase_add_test(tc, cancel_while_sleeping);
    tcase_add_test(tc, cancel_before_sleeping);
    tcase_add_test(tc, sleep_errors);
    tcase_add_test(tc, join_deadline);
    tcase_add_test(tc, sleeping_forever_is_a_deadlock);
    suite_add_tcase(s, tc);

    tc = tcase_create("scheduling");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, yielding_hog_does_not_hold_timers);
    tcase_add_test(tc, timer_due_within_long_round_runs_before_it_ends);
    tcase_add_test(tc, burst_of_sleepers_reuses_stacks);
    tcase_add_test(tc, idle_scheduler_sleeps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timer_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

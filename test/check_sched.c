/* Check suite of the sched layer: spawn, run, join, yield, cancel,
 * deadlock reports, and the internal park/unpark that sync builds on
 * (links the static library to reach lib/sched.h). */
#define _GNU_SOURCE
#include "lib/sched.h"
#include "lib/timer.h"
#include "lib/sys.h"

#include <check.h>
#include <coro.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

/* An order log: each step appends one letter. */
static char trail[4096];

static void mark(char c)
{
    size_t n = strlen(trail);

    ck_assert_uint_lt(n, sizeof trail - 1);
    trail[n] = c;
    trail[n + 1] = '\0';
}

static void *mark_arg(void *arg)
{
    mark((char)(long)arg);
    return arg;
}

/* Sends stderr to a file until capture_end, which stores what was
 * printed in out (NUL-terminated). */
static FILE *capture_file;
static int capture_saved;

static void capture_begin(void)
{
    capture_file = tmpfile();
    ck_assert_ptr_nonnull(capture_file);
    fflush(stderr);
    capture_saved = dup(2);
    ck_assert_int_ge(capture_saved, 0);
    ck_assert_int_eq(dup2(fileno(capture_file), 2), 2);
}

static void capture_end(char *out, size_t size)
{
    fflush(stderr);
    dup2(capture_saved, 2);
    close(capture_saved);
    rewind(capture_file);
    size_t n = fread(out, 1, size - 1, capture_file);
    out[n] = '\0';
    fclose(capture_file);
}

/* coro_run with stderr captured. */
static int run_capturing(char *out, size_t size)
{
    capture_begin();
    int r = coro_run();
    capture_end(out, size);
    return r;
}

static coro_t *spawn_named(coro_fn fn, void *arg, const char *name)
{
    coro_attr_t attr;
    coro_t *co;

    coro_attr_init(&attr);
    coro_attr_set_name(&attr, name);
    ck_assert_int_eq(coro_spawn(&co, fn, arg, &attr), 0);
    return co;
}

/* ------------------------------------------------------ spawn and run */

START_TEST(run_with_nothing)
{
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

START_TEST(spawn_order_is_fifo)
{
    for (char c = 'a'; c <= 'e'; c++)
        ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)(long)c, NULL), 0);
    ck_assert_str_eq(trail, ""); /* nothing runs before coro_run */
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "abcde");
}
END_TEST

static void *spawner(void *arg)
{
    (void)arg;
    mark('P');
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'x', NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'y', NULL), 0);
    mark('p'); /* children start only when the spawner gives way */
    ck_assert_int_eq(coro_yield(NULL, NULL), 0);
    mark('q');
    return NULL;
}

START_TEST(spawn_from_a_coroutine)
{
    ck_assert_int_eq(coro_spawn(NULL, spawner, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'b', NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "Ppbxyq");
}
END_TEST

START_TEST(run_again_after_run)
{
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'1', NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'2', NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "12");
}
END_TEST

static void *spawn_from_plain(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'s', NULL), 0);
    ck_assert_int_eq(coro_run(), EPERM); /* inside a coroutine */
    return NULL;
}

START_TEST(spawn_from_plain_coroutine)
{
    coro_t *co;

    ck_assert_int_eq(coro_create(&co, spawn_from_plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "s");
}
END_TEST

static int detached_done;

static void *detached_body(void *arg)
{
    for (long i = 0; i < (long)arg; i++)
        coro_yield(NULL, NULL);
    detached_done++;
    return NULL;
}

START_TEST(detached_are_freed)
{
    /* ASan's leak check (and the stack cache) see that they are freed. */
    for (long i = 0; i < 1000; i++)
        ck_assert_int_eq(coro_spawn(NULL, detached_body, (void *)(i % 7), NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(detached_done, 1000);
}
END_TEST

START_TEST(spawn_errors)
{
    coro_attr_t bad;
    coro_t *co = (coro_t *)&bad;

    memset(&bad, 0, sizeof bad);
    ck_assert_int_eq(coro_spawn(&co, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_spawn(&co, mark_arg, NULL, &bad), EINVAL);
    ck_assert_ptr_eq(co, (coro_t *)&bad); /* unchanged */
    ck_assert_int_eq(coro_run(), 0);      /* nothing was left queued */
    ck_assert_str_eq(trail, "");
}
END_TEST

START_TEST(spawned_cannot_be_destroyed)
{
    coro_t *co;

    ck_assert_int_eq(coro_spawn(&co, mark_arg, (void *)'d', NULL), 0);
    ck_assert_int_eq(coro_destroy(co), EPERM);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(trail, "d");
    ck_assert_ptr_nonnull(strstr(err, "never joined"));
}
END_TEST

/* --------------------------------------------------------------- join */

static void *plus_one(void *arg)
{
    coro_yield(NULL, NULL);
    return (void *)((long)arg + 1);
}

static void *joiner(void *arg)
{
    (void)arg;
    coro_t *a, *b, *c;
    void *r = (void *)-1;

    ck_assert_int_eq(coro_spawn(&a, plus_one, (void *)10, NULL), 0);
    ck_assert_int_eq(coro_spawn(&b, plus_one, (void *)20, NULL), 0);
    ck_assert_int_eq(coro_spawn(&c, mark_arg, (void *)'c', NULL), 0);
    /* a has not started: the join waits for it. */
    ck_assert_int_eq(coro_join(a, &r, -1), 0);
    ck_assert_ptr_eq(r, (void *)11);
    /* c finished meanwhile: the join returns at once. */
    ck_assert_int_eq(coro_state(c), CORO_FINISHED);
    ck_assert_int_eq(coro_join(c, &r, -1), 0);
    ck_assert_ptr_eq(r, (void *)'c');
    ck_assert_int_eq(coro_join(b, NULL, -1), 0); /* result may be NULL */
    return (void *)'J';
}

START_TEST(join_returns_results)
{
    ck_assert_int_eq(coro_spawn(NULL, joiner, NULL, NULL), 0);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(err, ""); /* no unjoined handle */
    ck_assert_str_eq(trail, "c");
}
END_TEST

static coro_t *chain_next[3];

static void *chain(void *arg)
{
    long i = (long)arg;
    void *r = NULL;

    if (i < 2) {
        ck_assert_int_eq(coro_spawn(&chain_next[i + 1], chain, (void *)(i + 1), NULL), 0);
        ck_assert_int_eq(coro_join(chain_next[i + 1], &r, -1), 0);
    }
    return (void *)((long)r * 10 + i + 1);
}

START_TEST(join_nested)
{
    void *r = NULL;

    ck_assert_int_eq(coro_spawn(&chain_next[0], chain, (void *)0, NULL), 0);
    /* The handle kept by the main flow cannot be joined there: EPERM. */
    ck_assert_int_eq(coro_join(chain_next[0], &r, -1), EPERM);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    /* ... so coro_run reports it and frees it. */
    ck_assert_ptr_nonnull(strstr(err, "never joined"));
}
END_TEST

static void *join_self(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_join(coro_self(), NULL, -1), EDEADLK);
    return NULL;
}

static coro_t *cycle[3];

static void *cycle_member(void *arg)
{
    long i = (long)arg;

    if (i < 2)
        return (void *)(long)coro_join(cycle[i + 1], NULL, -1);
    /* 0 joins 1, 1 joins 2; 2 joining 0 would close the loop. */
    ck_assert_int_eq(coro_join(cycle[0], NULL, -1), EDEADLK);
    return NULL;
}

static void *cycle_root(void *arg)
{
    (void)arg;
    void *r;

    for (long i = 0; i < 3; i++)
        ck_assert_int_eq(coro_spawn(&cycle[i], cycle_member, (void *)i, NULL), 0);
    ck_assert_int_eq(coro_join(cycle[0], &r, -1), 0);
    ck_assert_ptr_eq(r, (void *)0);
    return NULL;
}

START_TEST(join_deadlocks_are_refused)
{
    ck_assert_int_eq(coro_spawn(NULL, join_self, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, cycle_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static coro_t *shared_target;

static void *join_target(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        coro_yield(NULL, NULL);
    return (void *)7;
}

static void *second_joiner(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_join(shared_target, NULL, -1), EINVAL); /* one joiner only */
    mark('2');
    return NULL;
}

static void *first_joiner(void *arg)
{
    (void)arg;
    void *r;

    ck_assert_int_eq(coro_spawn(&shared_target, join_target, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, second_joiner, NULL, NULL), 0);
    ck_assert_int_eq(coro_join(shared_target, &r, -1), 0);
    ck_assert_ptr_eq(r, (void *)7);
    mark('1');
    return NULL;
}

static coro_t *detached_self;

static void *detached_reporter(void *arg)
{
    (void)arg;
    detached_self = coro_self();
    coro_yield(NULL, NULL);
    return NULL;
}

static void *join_misuse(void *arg)
{
    (void)arg;
    coro_t *plain;

    ck_assert_int_eq(coro_join(NULL, NULL, -1), EINVAL);
    ck_assert_int_eq(coro_join(coro_self(), NULL, -2), EINVAL);
    ck_assert_int_eq(coro_create(&plain, mark_arg, (void *)'p', NULL), 0);
    ck_assert_int_eq(coro_join(plain, NULL, -1), EINVAL); /* not spawned */
    ck_assert_int_eq(coro_destroy(plain), 0);
    ck_assert_int_eq(coro_spawn(NULL, detached_reporter, NULL, NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_ptr_nonnull(detached_self);
    ck_assert_int_eq(coro_join(detached_self, NULL, -1), EINVAL); /* detached */
    ck_assert_int_eq(coro_run(), EPERM);
    return NULL;
}

START_TEST(join_errors)
{
    ck_assert_int_eq(coro_spawn(NULL, first_joiner, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, join_misuse, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "21");
}
END_TEST

static void *join_from_plain(void *arg)
{
    coro_t *target = arg;

    ck_assert_int_eq(coro_join(target, NULL, -1), EPERM);
    return NULL;
}

static void *resumes_plain(void *arg)
{
    coro_t *plain;
    coro_t *target;

    (void)arg;
    ck_assert_int_eq(coro_spawn(&target, mark_arg, (void *)'t', NULL), 0);
    /* A plain coroutine resumed by a spawned one is not scheduled. */
    ck_assert_int_eq(coro_create(&plain, join_from_plain, target, NULL), 0);
    ck_assert_int_eq(coro_resume(plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(plain), 0);
    ck_assert_int_eq(coro_join(target, NULL, -1), 0);
    return NULL;
}

START_TEST(join_outside_scheduled_coroutine)
{
    coro_t *co;

    ck_assert_int_eq(coro_join(NULL, NULL, -1), EPERM); /* main flow */
    ck_assert_int_eq(coro_spawn(&co, resumes_plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_join(co, NULL, -1), EPERM);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(trail, "t");
}
END_TEST

START_TEST(unjoined_handles_are_reported)
{
    coro_t *co = spawn_named(mark_arg, (void *)'u', "forgotten");
    char err[512];

    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    char want[128];
    snprintf(want, sizeof want, "#%llu \"forgotten\" finished but was never joined",
             (unsigned long long)coro_id(co));
    ck_assert_ptr_nonnull(strstr(err, want));
}
END_TEST

/* -------------------------------------------------------------- yield */

static void *yielder(void *arg)
{
    for (int i = 0; i < 3; i++) {
        void *in = (void *)1;
        mark((char)(long)arg);
        ck_assert_int_eq(coro_yield((void *)99, &in), 0);
        ck_assert_ptr_null(in); /* the scheduler passes NULL */
    }
    return NULL;
}

START_TEST(yield_round_robin)
{
    ck_assert_int_eq(coro_spawn(NULL, yielder, (void *)'a', NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, yielder, (void *)'b', NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, yielder, (void *)'c', NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "abcabcabc");
}
END_TEST

/* A ping-pong pair built on park/unpark, and a hog that only yields: both
 * must progress while the other runs. */
static coro_t *ping_co, *pong_co;
static int exchanges, hog_turns, hog_turns_during_pingpong, pingpong_done;

static void *ping(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        exchanges++;
        coro__unpark(pong_co, 0);
        ck_assert_int_eq(coro__park(-1), 0);
    }
    hog_turns_during_pingpong = hog_turns;
    pingpong_done = 1;
    coro__unpark(pong_co, 1);
    return NULL;
}

static void *pong(void *arg)
{
    (void)arg;
    for (;;) {
        int r = coro__park(-1);
        if (r == 1)
            return NULL;
        ck_assert_int_eq(r, 0);
        exchanges++;
        coro__unpark(ping_co, 0);
    }
}

static void *hog(void *arg)
{
    (void)arg;
    while (!pingpong_done) {
        hog_turns++;
        ck_assert_int_lt(hog_turns, 1000000); /* the pair must finish */
        coro_yield(NULL, NULL);
    }
    return NULL;
}

START_TEST(yield_does_not_starve)
{
    ck_assert_int_eq(coro_spawn(&pong_co, pong, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, hog, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(&ping_co, ping, NULL, NULL), 0);
    /* Handles kept only to unpark; coro_run frees them (and says so). */
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_int_eq(exchanges, 2000);
    /* Round robin: the hog ran once per round, about once per exchange. */
    ck_assert_int_ge(hog_turns_during_pingpong, 1000);
    ck_assert_int_le(hog_turns, 3000);
}
END_TEST

/* --------------------------------------------------------- park/unpark */

static int park_result;
static int other_ran;

static void *parks(void *arg)
{
    park_result = coro__park((int64_t)(long)arg);
    return NULL;
}

static void *unparks(void *arg)
{
    coro_t *target = arg;

    coro__unpark(target, 42);
    coro__unpark(target, 43); /* not parked any more: nothing */
    return NULL;
}

static void *park_root(void *arg)
{
    coro_t *p;

    (void)arg;
    ck_assert_int_eq(coro_spawn(&p, parks, (void *)-1L, NULL), 0);
    coro_yield(NULL, NULL); /* p parks */
    ck_assert_int_eq(coro_state(p), CORO_SUSPENDED);
    ck_assert_int_eq(coro_spawn(NULL, unparks, p, NULL), 0);
    ck_assert_int_eq(coro_join(p, NULL, -1), 0);
    ck_assert_int_eq(park_result, 42);
    return NULL;
}

/* The claim of a wait record: exactly one of its wakers wins.  A local
 * record (every waker on the waiter's thread) is claimed once; a remote
 * one is raced by wakers on several threads, and each record of a batch
 * must have exactly one winner. */
START_TEST(claim_has_one_winner)
{
    struct coro__wait w;

    coro__wait_init(&w, NULL);
    ck_assert_int_eq(w.remote, 0);
    ck_assert_int_eq(coro__wait_claimed(&w), 0);
    ck_assert_int_eq(coro__wait_claim(&w), 1);
    ck_assert_int_eq(coro__wait_claimed(&w), 1);
    ck_assert_int_eq(coro__wait_claim(&w), 0);
}
END_TEST

#define CLAIM_RECORDS 20000
#define CLAIM_THREADS 3

static struct coro__wait claim_records[CLAIM_RECORDS];
static atomic_int claim_wins[CLAIM_RECORDS];
/* Not a spin on a flag: valgrind runs one thread at a time, and its
 * lock is not fair, so spinners can starve the thread that would set it. */
static pthread_barrier_t claim_go;

static void *claim_racer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&claim_go);
    for (int i = 0; i < CLAIM_RECORDS; i++)
        if (coro__wait_claim(&claim_records[i]))
            atomic_fetch_add(&claim_wins[i], 1);
    return NULL;
}

START_TEST(remote_claim_has_one_winner)
{
    pthread_t th[CLAIM_THREADS];

    for (int i = 0; i < CLAIM_RECORDS; i++) {
        coro__wait_init(&claim_records[i], NULL);
        claim_records[i].remote = 1;
        atomic_init(&claim_wins[i], 0);
    }
    ck_assert_int_eq(pthread_barrier_init(&claim_go, NULL, CLAIM_THREADS + 1), 0);
    for (int i = 0; i < CLAIM_THREADS; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, claim_racer, NULL), 0);
    pthread_barrier_wait(&claim_go);
    for (int i = 0; i < CLAIM_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&claim_go);
    for (int i = 0; i < CLAIM_RECORDS; i++)
        ck_assert_int_eq(atomic_load(&claim_wins[i]), 1);
}
END_TEST

START_TEST(unpark_delivers_result)
{
    ck_assert_int_eq(coro_spawn(NULL, park_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static void *park_timeout_root(void *arg)
{
    coro_t *p;

    (void)arg;
    int64_t deadline = coro_now() + 1000000; /* 1 ms */
    ck_assert_int_eq(coro_spawn(&p, parks, (void *)(long)deadline, NULL), 0);
    ck_assert_int_eq(coro_join(p, NULL, -1), 0);
    ck_assert_int_eq(park_result, ETIMEDOUT);
    ck_assert_int_ge(coro_now(), deadline);
    /* A deadline already passed still parks, and times out. */
    ck_assert_int_eq(coro__park(0), ETIMEDOUT);
    return NULL;
}

START_TEST(park_deadline_passes)
{
    ck_assert_int_eq(coro_spawn(NULL, park_timeout_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static void *park_early_root(void *arg)
{
    coro_t *p;

    (void)arg;
    /* An hour away: if unpark left the timer behind, coro_run would sleep
     * until it and the test would time out. */
    int64_t deadline = coro_now() + 3600 * 1000000000LL;
    ck_assert_int_eq(coro_spawn(&p, parks, (void *)(long)deadline, NULL), 0);
    coro_yield(NULL, NULL);
    coro__unpark(p, 5);
    ck_assert_int_eq(coro_join(p, NULL, -1), 0);
    ck_assert_int_eq(park_result, 5);
    return NULL;
}

START_TEST(unpark_removes_deadline)
{
    ck_assert_int_eq(coro_spawn(NULL, park_early_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static void *park_cancel_root(void *arg)
{
    coro_t *p;

    (void)arg;
    int64_t deadline = coro_now() + 3600 * 1000000000LL;
    ck_assert_int_eq(coro_spawn(&p, parks, (void *)(long)deadline, NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_cancel(p), 0);
    ck_assert_int_eq(coro_join(p, NULL, -1), 0);
    ck_assert_int_eq(park_result, ECANCELED);
    ck_assert_int_eq(coro_spawn(&p, parks, (void *)-1L, NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_cancel(p), 0);
    ck_assert_int_eq(coro_join(p, NULL, -1), 0);
    ck_assert_int_eq(park_result, ECANCELED);
    ck_assert_int_eq(coro_cancel(coro_self()), 0); /* itself */
    ck_assert_int_eq(coro__park(-1), ECANCELED);
    return NULL;
}

START_TEST(cancel_while_parked)
{
    ck_assert_int_eq(coro_spawn(NULL, park_cancel_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static void *marks_other(void *arg)
{
    (void)arg;
    other_ran = 1;
    return NULL;
}

static void *cancelled_early(void *arg)
{
    (void)arg;
    /* The cancel came before: the park returns at once, nobody else runs. */
    ck_assert_int_eq(coro_spawn(NULL, marks_other, NULL, NULL), 0);
    ck_assert_int_eq(coro__park(-1), ECANCELED);
    ck_assert_int_eq(other_ran, 0);
    /* Once only: the next park waits as usual (a passed deadline: it
     * times out at once, still without letting the other run). */
    ck_assert_int_eq(coro__park(0), ETIMEDOUT);
    ck_assert_int_eq(other_ran, 0);
    /* Long enough that the timer is not yet due when the loop next looks
     * (a due one would run its task first, as Go's timers do), even under
     * valgrind on a loaded machine. */
    ck_assert_int_eq(coro__park(coro_now() + 20000000), ETIMEDOUT);
    ck_assert_int_eq(other_ran, 1);
    return NULL;
}

START_TEST(cancel_before_park)
{
    coro_t *co;

    ck_assert_int_eq(coro_spawn(&co, cancelled_early, NULL, NULL), 0);
    ck_assert_int_eq(coro_cancel(co), 0); /* from the main flow, before it starts */
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_int_eq(other_ran, 1);
}
END_TEST

static void *cancel_misuse(void *arg)
{
    coro_t *plain, *done;

    (void)arg;
    ck_assert_int_eq(coro_cancel(NULL), EINVAL);
    ck_assert_int_eq(coro_create(&plain, mark_arg, NULL, NULL), 0);
    ck_assert_int_eq(coro_cancel(plain), EINVAL);
    ck_assert_int_eq(coro_destroy(plain), 0);
    ck_assert_int_eq(coro_spawn(&done, mark_arg, (void *)'f', NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_cancel(done), ESRCH);
    ck_assert_int_eq(coro_join(done, NULL, -1), 0);
    return NULL;
}

START_TEST(cancel_errors)
{
    ck_assert_int_eq(coro_spawn(NULL, cancel_misuse, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "f");
}
END_TEST

static void *checks_plain(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro__sched_check(), EPERM);
    ck_assert_int_eq(coro__park(-1), EPERM);
    return NULL;
}

static void *checks_scheduled(void *arg)
{
    coro_t *plain;

    (void)arg;
    ck_assert_int_eq(coro__sched_check(), 0);
    ck_assert_int_eq(coro_create(&plain, checks_plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(plain), 0);
    return NULL;
}

START_TEST(park_outside_scheduled_coroutine)
{
    coro_t *plain;

    ck_assert_int_eq(coro__sched_check(), EPERM);
    ck_assert_int_eq(coro__park(-1), EPERM);
    ck_assert_int_eq(coro_create(&plain, checks_plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(plain, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(plain), 0);
    ck_assert_int_eq(coro_spawn(NULL, checks_scheduled, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static void *join_deadline_root(void *arg)
{
    coro_t *slow;
    void *r;

    (void)arg;
    ck_assert_int_eq(coro_spawn(&slow, parks, (void *)-1L, NULL), 0);
    coro_yield(NULL, NULL); /* slow parks (a slow machine may pass 1 ms first) */
    ck_assert_int_eq(coro_join(slow, &r, coro_now() + 1000000), ETIMEDOUT);
    ck_assert_int_eq(coro_join(slow, &r, 0), ETIMEDOUT); /* still joinable */
    coro__unpark(slow, 3);
    ck_assert_int_eq(coro_join(slow, &r, coro_now() + 3600 * 1000000000LL), 0);
    ck_assert_int_eq(park_result, 3);
    /* A finished coroutine is joined whatever the deadline. */
    ck_assert_int_eq(coro_spawn(&slow, mark_arg, (void *)'z', NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_join(slow, &r, 0), 0);
    ck_assert_ptr_eq(r, (void *)'z');
    return NULL;
}

START_TEST(join_deadline_times_out)
{
    ck_assert_int_eq(coro_spawn(NULL, join_deadline_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
}
END_TEST

static coro_t *cancel_joiner_target;

static void *cancellable_joiner(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_join(cancel_joiner_target, NULL, -1), ECANCELED);
    mark('j');
    return NULL;
}

static void *cancel_joiner_root(void *arg)
{
    coro_t *j;
    void *r;

    (void)arg;
    ck_assert_int_eq(coro_spawn(&cancel_joiner_target, plus_one, (void *)1, NULL), 0);
    ck_assert_int_eq(coro_spawn(&j, cancellable_joiner, NULL, NULL), 0);
    coro_yield(NULL, NULL); /* target yields, j parks in its join */
    ck_assert_int_eq(coro_cancel(j), 0);
    ck_assert_int_eq(coro_join(j, NULL, -1), 0);
    /* The target is still joinable, by someone else. */
    ck_assert_int_eq(coro_join(cancel_joiner_target, &r, -1), 0);
    ck_assert_ptr_eq(r, (void *)2);
    return NULL;
}

START_TEST(cancel_a_joiner)
{
    ck_assert_int_eq(coro_spawn(NULL, cancel_joiner_root, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "j");
}
END_TEST

/* ------------------------------------------------------------ deadlock */

static int stuck_results[2];
static int after_cancel;

static void *stuck(void *arg)
{
    long i = (long)arg;

    stuck_results[i] = coro__park(-1);
    /* From now on every wait fails at once: it can only unwind. */
    after_cancel = coro__park(-1);
    return (void *)i;
}

static void *stuck_joiner(void *arg)
{
    void *r = NULL;

    ck_assert_int_eq(coro_join(arg, &r, -1), 0); /* joins still work */
    ck_assert_ptr_eq(r, (void *)0);
    return NULL;
}

START_TEST(deadlock_is_reported)
{
    coro_t *a = spawn_named(stuck, (void *)0, "alpha");
    ck_assert_int_eq(coro_spawn(NULL, stuck_joiner, a, NULL), 0);
    coro_attr_t attr;
    coro_attr_init(&attr);
    coro_attr_set_name(&attr, "beta");
    ck_assert_int_eq(coro_spawn(NULL, stuck, (void *)1, &attr), 0);

    char err[2048], want[128];
    ck_assert_int_eq(run_capturing(err, sizeof err), EDEADLK);
    ck_assert_ptr_nonnull(strstr(err, "deadlock: 3 coroutines"));
    snprintf(want, sizeof want, "#%llu \"alpha\"", (unsigned long long)coro_id(a));
    ck_assert_ptr_nonnull(strstr(err, want));
    ck_assert_ptr_nonnull(strstr(err, "\"beta\""));
    snprintf(want, sizeof want, "in coro_join of #%llu", (unsigned long long)coro_id(a));
    ck_assert_ptr_nonnull(strstr(err, want));
    ck_assert_int_eq(stuck_results[0], ECANCELED);
    ck_assert_int_eq(stuck_results[1], ECANCELED);
    ck_assert_int_eq(after_cancel, ECANCELED);
    ck_assert_ptr_null(strstr(err, "never joined"));
    /* The scheduler is usable again. */
    ck_assert_int_eq(coro_spawn(NULL, mark_arg, (void *)'!', NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "!");
}
END_TEST

static void *lone_parker(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro__park_for(-1, "the_lonely_wait"), ECANCELED);
    return NULL;
}

START_TEST(deadlock_single)
{
    spawn_named(lone_parker, NULL, "lonely");
    char err[1024];
    ck_assert_int_eq(run_capturing(err, sizeof err), EDEADLK);
    ck_assert_ptr_nonnull(strstr(err, "deadlock: 1 coroutine parked"));
    ck_assert_ptr_nonnull(strstr(err, "\"lonely\" in the_lonely_wait\n"));
    /* Its handle was never joined: reported and freed too. */
    ck_assert_ptr_nonnull(strstr(err, "never joined"));
}
END_TEST

/* ------------------------------------------------------------ threads */

struct worker_result {
    long sum;
    int run;
};

static void *add_after_yields(void *arg)
{
    for (int i = 0; i < 5; i++)
        coro_yield(NULL, NULL);
    return arg;
}

static void *thread_root(void *arg)
{
    struct worker_result *res = arg;
    coro_t *h[100];

    for (long i = 0; i < 100; i++)
        if (coro_spawn(&h[i], add_after_yields, (void *)i, NULL))
            return NULL;
    for (int i = 0; i < 100; i++) {
        void *r;
        if (coro_join(h[i], &r, -1) == 0)
            res->sum += (long)r;
    }
    return NULL;
}

static void *thread_main(void *arg)
{
    struct worker_result *res = arg;

    for (int round = 0; round < 20; round++) {
        if (coro_spawn(NULL, thread_root, res, NULL))
            return NULL;
        res->run |= coro_run();
    }
    return NULL;
}

START_TEST(threads_have_their_own_scheduler)
{
    pthread_t th[2];
    struct worker_result res[3] = {{0, 0}, {0, 0}, {0, 0}};

    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_main, &res[i]), 0);
    thread_main(&res[2]);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(res[i].run, 0);
        ck_assert_int_eq(res[i].sum, 20 * 4950);
    }
}
END_TEST

static coro_t *foreign;
static int foreign_join, foreign_cancel;

static void *joins_foreign(void *arg)
{
    (void)arg;
    foreign_join = coro_join(foreign, NULL, -1);
    return NULL;
}

static void *other_thread(void *arg)
{
    (void)arg;
    foreign_cancel = coro_cancel(foreign);
    if (coro_spawn(NULL, joins_foreign, NULL, NULL) == 0)
        coro_run();
    return NULL;
}

START_TEST(other_threads_coroutines_are_refused)
{
    pthread_t th;

    ck_assert_int_eq(coro_spawn(&foreign, mark_arg, (void *)'f', NULL), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(foreign_cancel, EPERM);
    ck_assert_int_eq(foreign_join, EPERM);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(trail, "f");
}
END_TEST

static void *spawns_and_leaves(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        coro_spawn(NULL, mark_arg, (void *)'n', NULL);
    return NULL;
}

START_TEST(thread_exit_frees_unrun_coroutines)
{
    pthread_t th;
    char err[512];

    capture_begin();
    ck_assert_int_eq(pthread_create(&th, NULL, spawns_and_leaves, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    capture_end(err, sizeof err);
    ck_assert_ptr_nonnull(strstr(err, "3 spawned coroutines that never ran"));
    ck_assert_str_eq(trail, ""); /* they never ran; ASan sees them freed */
}
END_TEST

/* Without CORO_DEBUG nothing is printed: neither the handle never joined
 * nor the coroutines a thread leaves behind (they are freed all the
 * same: ASan and valgrind see no leak). */
START_TEST(notes_need_coro_debug)
{
    pthread_t th;
    char err[512];

    unsetenv("CORO_DEBUG");
    coro__debug_env_reset();
    coro_t *co = spawn_named(mark_arg, (void *)'q', "forgotten");
    (void)co;
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    capture_begin();
    ck_assert_int_eq(pthread_create(&th, NULL, spawns_and_leaves, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    capture_end(err, sizeof err);
    ck_assert_str_eq(err, "");
    setenv("CORO_DEBUG", "0", 1);
    coro__debug_env_reset();
    ck_assert_int_eq(pthread_create(&th, NULL, spawns_and_leaves, NULL), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_str_eq(trail, "q");
}
END_TEST

/* A spawned coroutine belongs to its scheduler: coro_resume refuses it
 * with EPERM, never started or suspended, and the run goes on. */
static coro_t *spawned_victim;

static void *join_victim(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_join(spawned_victim, NULL, -1), 0);
    return NULL;
}

static void *yields_twice(void *arg)
{
    (void)arg;
    coro_yield(NULL, NULL);
    coro_yield(NULL, NULL);
    mark('y');
    return NULL;
}

static void *resumes_a_spawned(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_resume(spawned_victim, NULL, NULL), EPERM); /* suspended */
    mark('r');
    return NULL;
}

START_TEST(spawned_cannot_be_resumed)
{
    ck_assert_int_eq(coro_spawn(&spawned_victim, yields_twice, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(spawned_victim, NULL, NULL), EPERM); /* never run */
    ck_assert_int_eq(coro_spawn(NULL, resumes_a_spawned, NULL, NULL), 0);
    ck_assert_int_eq(coro_spawn(NULL, join_victim, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "ry");
}
END_TEST

/* A spawned coroutine gets its stack at its first run; when none can be
 * had it never runs, and its coro_join says ENOMEM. */
static void *never_runs(void *arg)
{
    (void)arg;
    mark('X');
    return NULL;
}

static void *joins_stackless(void *arg)
{
    coro_t *co;
    coro_attr_t attr;
    void *r = (void *)1;

    (void)arg;
    coro_attr_init(&attr);
    /* A size no cache holds, so the first run must map a new slab. */
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 48u << 20), 0);
    ck_assert_int_eq(coro_spawn(&co, never_runs, NULL, &attr), 0); /* no stack yet */
    coro__sys_fail(CORO__SYS_MMAP, 1, ENOMEM, 1);
    ck_assert_int_eq(coro_join(co, &r, -1), ENOMEM);
    coro__sys_fail(CORO__SYS_MMAP, 0, 0, 0);
    ck_assert_ptr_eq(r, (void *)1);                 /* untouched */
    mark('j');
    return NULL;
}

START_TEST(no_stack_at_first_run)
{
    ck_assert_int_eq(coro_spawn(NULL, joins_stackless, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_str_eq(trail, "j");
}
END_TEST

/* --------------------------------------------------------- timer heap */

/* Random adds and removals against a plain array: the heap must give the
 * same earliest timer (deadline, then order of adding) at every step. */
#define HEAP_N 1024

struct ref_timer {
    struct coro__timer tm;
    int64_t deadline;
    uint64_t seq;
    int in;
};

static struct ref_timer *ref_earliest(struct ref_timer *r, int n)
{
    struct ref_timer *best = NULL;

    for (int i = 0; i < n; i++)
        if (r[i].in && (!best || r[i].deadline < best->deadline ||
                        (r[i].deadline == best->deadline && r[i].seq < best->seq)))
            best = &r[i];
    return best;
}

START_TEST(heap_matches_reference)
{
    static struct ref_timer r[HEAP_N];
    struct coro__timers h = {0};
    uint64_t seq = 0;
    unsigned seed = 12345;
    int bad = 0;

    ck_assert_int_eq(coro__timers_reserve(&h, HEAP_N), 0);
    ck_assert_int_eq(coro__timers_first(&h), -1);
    for (int step = 0; step < 100000 && !bad; step++) {
        int i = (int)(rand_r(&seed) % HEAP_N);
        int op = (int)(rand_r(&seed) % 8);
        if (!r[i].in) {
            /* few distinct deadlines, so that ties are common */
            r[i].deadline = rand_r(&seed) % 64;
            r[i].seq = seq++;
            r[i].in = 1;
            coro__timers_add(&h, &r[i].tm, r[i].deadline);
        } else if (op < 5) {
            coro__timers_remove(&h, &r[i].tm);
            coro__timers_remove(&h, &r[i].tm); /* twice: nothing */
            r[i].in = 0;
        } else {
            struct ref_timer *e = ref_earliest(r, HEAP_N);
            struct coro__timer *got = coro__timers_pop_due(&h, e->deadline);
            bad |= got != &e->tm;
            e->in = 0;
            /* nothing is due before the earliest deadline */
            if (h.n)
                bad |= coro__timers_pop_due(&h, coro__timers_first(&h) - 1) != NULL;
        }
        struct ref_timer *e = ref_earliest(r, HEAP_N);
        bad |= e ? coro__timers_first(&h) != e->deadline : coro__timers_first(&h) != -1;
    }
    /* Drain: everything left comes out in order. */
    for (struct ref_timer *e; !bad && (e = ref_earliest(r, HEAP_N));) {
        bad |= coro__timers_pop_due(&h, INT64_MAX) != &e->tm;
        e->in = 0;
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_uint_eq(h.n, 0);
    coro__timers_free(&h);
}
END_TEST

/* ------------------------------------------------------------- mixed */

/* Many coroutines doing random yields, sleeps, spawns, joins and cancels
 * of each other: every one finishes, every handle is joined, nothing is
 * reported, and ASan sees nothing leak. */
#define MIX_SLOTS 256

static coro_t *mix_slot[MIX_SLOTS]; /* coroutines that may be cancelled */
static long mix_started, mix_finished, mix_cancels_seen, mix_bad;

static void *mixer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    int depth = (int)((uintptr_t)arg >> 24);
    int slot = (int)(rand_r(&seed) % MIX_SLOTS);

    mix_started++;
    if (!mix_slot[slot])
        mix_slot[slot] = coro_self();
    for (int step = 0; step < 20; step++) {
        int r = 0;
        switch (rand_r(&seed) % 6) {
        case 0:
            coro_yield(NULL, NULL);
            break;
        case 1:
            r = coro_sleep((int64_t)(rand_r(&seed) % 50) * 1000);
            break;
        case 2:
        case 3:
            if (depth < 2) {
                coro_t *c;
                uintptr_t a = ((uintptr_t)(depth + 1) << 24) | (rand_r(&seed) & 0xffffff);
                if (rand_r(&seed) % 2) {
                    mix_bad |= coro_spawn(NULL, mixer, (void *)a, NULL) != 0;
                } else {
                    void *res = NULL;
                    mix_bad |= coro_spawn(&c, mixer, (void *)a, NULL) != 0;
                    while ((r = coro_join(c, &res, -1)) == ECANCELED)
                        mix_cancels_seen++;
                    mix_bad |= r != 0 || res != (void *)a;
                    r = 0;
                }
            }
            break;
        case 4: {
            coro_t *victim = mix_slot[rand_r(&seed) % MIX_SLOTS];
            if (victim) {
                int c = coro_cancel(victim);
                mix_bad |= c != 0 && c != ESRCH;
            }
            break;
        }
        case 5:
            r = coro_sleep_until(coro_now() - 1);
            break;
        }
        if (r == ECANCELED)
            mix_cancels_seen++;
        else
            mix_bad |= r != 0;
    }
    if (mix_slot[slot] == coro_self())
        mix_slot[slot] = NULL; /* before returning: then it is freed */
    mix_finished++;
    return arg;
}

START_TEST(mixed_random_load)
{
    for (uintptr_t i = 0; i < 300; i++)
        ck_assert_int_eq(coro_spawn(NULL, mixer, (void *)(i * 2654435761u & 0xffffff), NULL), 0);
    char err[512];
    ck_assert_int_eq(run_capturing(err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(mix_bad, 0);
    ck_assert_int_gt(mix_started, 3000);
    ck_assert_int_eq(mix_finished, mix_started);
    ck_assert_int_gt(mix_cancels_seen, 0);
}
END_TEST

/* ------------------------------------------------------------- suite */

/* The notes nobody asked for (handles never joined, coroutines left at
 * thread exit) are printed with CORO_DEBUG set, as here; see
 * notes_need_coro_debug for the default. */
static void reset(void)
{
    trail[0] = '\0';
    setenv("CORO_DEBUG", "1", 1);
    coro__debug_env_reset();
}

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc;

    tc = tcase_create("spawn");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, run_with_nothing);
    tcase_add_test(tc, spawn_order_is_fifo);
    tcase_add_test(tc, spawn_from_a_coroutine);
    tcase_add_test(tc, run_again_after_run);
    tcase_add_test(tc, spawn_from_plain_coroutine);
    tcase_add_test(tc, detached_are_freed);
    tcase_add_test(tc, spawn_errors);
    tcase_add_test(tc, spawned_cannot_be_destroyed);
    tcase_add_test(tc, spawned_cannot_be_resumed);
    tcase_add_test(tc, no_stack_at_first_run);
    suite_add_tcase(s, tc);

    tc = tcase_create("join");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, join_returns_results);
    tcase_add_test(tc, join_nested);
    tcase_add_test(tc, join_deadlocks_are_refused);
    tcase_add_test(tc, join_errors);
    tcase_add_test(tc, join_outside_scheduled_coroutine);
    tcase_add_test(tc, unjoined_handles_are_reported);
    tcase_add_test(tc, join_deadline_times_out);
    suite_add_tcase(s, tc);

    tc = tcase_create("yield");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, yield_round_robin);
    tcase_add_test(tc, yield_does_not_starve);
    suite_add_tcase(s, tc);

    tc = tcase_create("park");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, claim_has_one_winner);
    tcase_add_test(tc, remote_claim_has_one_winner);
    tcase_add_test(tc, unpark_delivers_result);
    tcase_add_test(tc, park_deadline_passes);
    tcase_add_test(tc, unpark_removes_deadline);
    tcase_add_test(tc, cancel_while_parked);
    tcase_add_test(tc, cancel_before_park);
    tcase_add_test(tc, cancel_errors);
    tcase_add_test(tc, cancel_a_joiner);
    tcase_add_test(tc, park_outside_scheduled_coroutine);
    suite_add_tcase(s, tc);

    tc = tcase_create("deadlock");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, deadlock_is_reported);
    tcase_add_test(tc, deadlock_single);
    suite_add_tcase(s, tc);

    tc = tcase_create("mixed");
    tcase_add_test(tc, mixed_random_load);
    suite_add_tcase(s, tc);

    tc = tcase_create("heap");
    tcase_add_test(tc, heap_matches_reference);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, threads_have_their_own_scheduler);
    tcase_add_test(tc, other_threads_coroutines_are_refused);
    tcase_add_test(tc, thread_exit_frees_unrun_coroutines);
    tcase_add_test(tc, notes_need_coro_debug);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sched_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

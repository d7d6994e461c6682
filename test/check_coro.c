/* Check suite of the core API (include/coro.h, core and attribute
 * sections), through the shared library only: states, values, every error
 * code, identity, nesting, scale, per-coroutine errno and FP state, and
 * threads. */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include "testutil.h"
#include <errno.h>
#include <fenv.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>


#ifndef TEST_DEFAULT_STACK_SIZE
#error "test/meson.build passes the build's default_stack_size"
#endif

/* For loops that run many times: a passing ck_assert sends a message to
 * Check's parent (a system call each), REQUIRE only a failing one. */
#define REQUIRE(c)                                                             \
    do {                                                                       \
        if (!(c))                                                              \
            ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #c);                 \
    } while (0)

#define P(x) ((void *)(intptr_t)(x))
#define I(p) ((intptr_t)(p))

static coro_t *create_ok(coro_fn fn, void *arg)
{
    coro_t *co = NULL;

    ck_assert_int_eq(coro_create(&co, fn, arg, NULL), 0);
    ck_assert_ptr_nonnull(co);
    return co;
}

/* ------------------------------------------------------------------ states */

static coro_t *seen_self;
static coro_state_t seen_state;

static void *observe_self(void *arg)
{
    seen_self = coro_self();
    seen_state = coro_state(seen_self);
    coro_yield(arg, NULL);
    seen_self = coro_self();
    seen_state = coro_state(seen_self);
    return P(I(arg) + 1);
}

START_TEST(state_transitions)
{
    void *out = NULL;

    ck_assert_ptr_null(coro_self());
    coro_t *co = create_ok(observe_self, P(10));
    ck_assert_int_eq(coro_state(co), CORO_READY);
    ck_assert_ptr_null(coro_self());

    ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
    ck_assert_ptr_eq(seen_self, co);
    ck_assert_int_eq(seen_state, CORO_RUNNING);
    ck_assert_int_eq(coro_state(co), CORO_SUSPENDED);
    ck_assert_ptr_eq(out, P(10));
    ck_assert_ptr_null(coro_self());

    seen_self = NULL;
    ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
    ck_assert_ptr_eq(seen_self, co);
    ck_assert_int_eq(seen_state, CORO_RUNNING);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_ptr_eq(out, P(11));
    ck_assert_ptr_null(coro_self());
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

/* NORMAL: a coroutine that resumed another and waits for it. */
static coro_t *outer_co;
static coro_state_t outer_seen_by_inner, inner_seen_by_inner;

static void *inner_fn(void *unused)
{
    (void)unused;
    outer_seen_by_inner = coro_state(outer_co);
    inner_seen_by_inner = coro_state(coro_self());
    return NULL;
}

static void *outer_fn(void *unused)
{
    (void)unused;
    coro_t *in = create_ok(inner_fn, NULL);
    ck_assert_int_eq(coro_resume(in, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(coro_self()), CORO_RUNNING); /* back again */
    ck_assert_int_eq(coro_state(in), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(in), 0);
    return NULL;
}

START_TEST(state_normal)
{
    outer_co = create_ok(outer_fn, NULL);
    ck_assert_int_eq(coro_resume(outer_co, NULL, NULL), 0);
    ck_assert_int_eq(outer_seen_by_inner, CORO_NORMAL);
    ck_assert_int_eq(inner_seen_by_inner, CORO_RUNNING);
    ck_assert_int_eq(coro_state(outer_co), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(outer_co), 0);
}
END_TEST

/* ------------------------------------------------------------------ values */

/* Echoes: yields arg, then yields every received value times 10, until it
 * receives 0, and returns the number of values received. */
static void *echo10(void *arg)
{
    void *in = NULL;
    intptr_t n = 0;

    coro_yield(arg, &in);
    while (I(in) != 0) {
        n++;
        coro_yield(P(I(in) * 10), &in);
    }
    return P(-n);
}

START_TEST(values_both_ways)
{
    void *out = NULL;
    coro_t *co = create_ok(echo10, P(7));

    /* The first resume's value is not seen by anyone: fn got arg. */
    ck_assert_int_eq(coro_resume(co, P(999), &out), 0);
    ck_assert_ptr_eq(out, P(7));
    for (intptr_t i = 1; i <= 100; i++) {
        ck_assert_int_eq(coro_resume(co, P(i), &out), 0);
        ck_assert_ptr_eq(out, P(i * 10));
    }
    ck_assert_int_eq(coro_resume(co, P(0), &out), 0);
    ck_assert_ptr_eq(out, P(-100)); /* the return value */
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

static void *null_in(void *unused)
{
    (void)unused;
    ck_assert_int_eq(coro_yield(P(1), NULL), 0); /* in may be NULL */
    ck_assert_int_eq(coro_yield(NULL, NULL), 0);
    return P(3);
}

START_TEST(values_null_allowed)
{
    void *out = P(55);
    coro_t *co = create_ok(null_in, NULL);

    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0); /* out may be NULL */
    ck_assert_int_eq(coro_resume(co, P(8), &out), 0);
    ck_assert_ptr_null(out); /* yielded NULL */
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

static int ran;

static void *set_ran(void *unused)
{
    (void)unused;
    ran = 1;
    coro_yield(NULL, NULL);
    ran = 2;
    return NULL;
}

START_TEST(destroy_in_every_allowed_state)
{
    coro_t *co;

    ran = 0;
    co = create_ok(set_ran, NULL);          /* READY: fn never runs */
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(ran, 0);

    co = create_ok(set_ran, NULL);          /* SUSPENDED: abandoned */
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(co), CORO_SUSPENDED);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(ran, 1);

    co = create_ok(set_ran, NULL);          /* FINISHED */
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(ran, 2);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

/* A suspended coroutine deep in calls, destroyed: the next ones on the
 * same memory start clean. */
static void *deep_then_yield(void *arg)
{
    volatile char buf[8192];
    intptr_t depth = I(arg);

    memset((char *)buf, 0x7e, sizeof buf);
    if (depth > 0) {
        deep_then_yield(P(depth - 1));
        return NULL;
    }
    coro_yield(P(buf[100]), NULL);
    return NULL;
}

START_TEST(destroy_suspended_reuse)
{
    for (int i = 0; i < 1000; i++) {
        void *out = NULL;
        coro_t *co;
        REQUIRE(coro_create(&co, deep_then_yield, P(i % 8), NULL) == 0);
        REQUIRE(coro_resume(co, NULL, &out) == 0 && out == P(0x7e));
        REQUIRE(coro_state(co) == CORO_SUSPENDED);
        REQUIRE(coro_destroy(co) == 0);
        REQUIRE(coro_create(&co, echo10, P(i), NULL) == 0);
        REQUIRE(coro_resume(co, NULL, &out) == 0 && out == P(i));
        REQUIRE(coro_destroy(co) == 0);
    }
}
END_TEST

/* ------------------------------------------------------------------ errors */

static void *yield_once(void *arg)
{
    coro_yield(arg, NULL);
    return arg;
}

START_TEST(create_einval)
{
    coro_t *co = (coro_t *)&co;
    coro_attr_t attr;

    ck_assert_int_eq(coro_create(NULL, yield_once, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_create(&co, NULL, NULL, NULL), EINVAL);
    ck_assert_ptr_eq(co, (coro_t *)&co);

    /* An attribute object coro_attr_init never saw. */
    memset(&attr, 0xab, sizeof attr);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), EINVAL);
    memset(&attr, 0, sizeof attr);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), EINVAL);
    ck_assert_ptr_eq(co, (coro_t *)&co);

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(attr_einval)
{
    coro_attr_t attr;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(NULL, CORO_STACK_MIN), EINVAL);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 0), EINVAL);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MIN - 1), EINVAL);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MAX + 1), EINVAL);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, SIZE_MAX), EINVAL);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MIN), 0);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MAX), 0);
    ck_assert_int_eq(coro_attr_set_name(NULL, "x"), EINVAL);
    ck_assert_int_eq(coro_attr_set_name(&attr, NULL), 0);

    /* A rejected size leaves the attribute as it was. */
    coro_t *co;
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 64 * 1024), 0);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MAX + 1), EINVAL);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_uint_ge(coro_stack_size(co), 64 * 1024);
    ck_assert_uint_lt(coro_stack_size(co), 1024 * 1024);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(null_handles)
{
    ck_assert_int_eq(coro_resume(NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_destroy(NULL), EINVAL);
    ck_assert_int_eq(coro_state(NULL), CORO_FINISHED);
    ck_assert_uint_eq(coro_id(NULL), 0);
    ck_assert_str_eq(coro_name(NULL), "");
    ck_assert_uint_eq(coro_stack_size(NULL), 0);
}
END_TEST

START_TEST(resume_finished_esrch)
{
    void *out = P(1);
    coro_t *co = create_ok(yield_once, P(5));

    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(coro_resume(co, NULL, &out), ESRCH);
        ck_assert_ptr_eq(out, P(1)); /* out untouched on error */
    }
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(yield_outside_eperm)
{
    void *in = P(3);

    ck_assert_int_eq(coro_yield(NULL, NULL), EPERM);
    ck_assert_int_eq(coro_yield(P(1), &in), EPERM);
    ck_assert_ptr_eq(in, P(3));
    /* Also after coroutines have run on this thread. */
    coro_t *co = create_ok(yield_once, NULL);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_yield(NULL, NULL), EPERM);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(coro_yield(NULL, NULL), EPERM);
}
END_TEST

static void *yield_outside_thread(void *unused)
{
    (void)unused;
    return P(coro_yield(NULL, NULL));
}

START_TEST(yield_outside_eperm_new_thread)
{
    pthread_t t;
    void *r;

    ck_assert_int_eq(pthread_create(&t, NULL, yield_outside_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &r), 0);
    ck_assert_int_eq(I(r), EPERM);
}
END_TEST

/* A -> B -> C, and from inside C every misuse of the chain. */
static coro_t *ca, *cb, *cc;
static int chain_checked;

static void *chain_c(void *unused)
{
    (void)unused;
    ck_assert_int_eq(coro_resume(cc, NULL, NULL), EBUSY); /* itself */
    ck_assert_int_eq(coro_resume(cb, NULL, NULL), EBUSY); /* its resumer */
    ck_assert_int_eq(coro_resume(ca, NULL, NULL), EBUSY); /* an ancestor */
    ck_assert_int_eq(coro_destroy(cc), EBUSY);            /* running */
    ck_assert_int_eq(coro_destroy(cb), EBUSY);            /* normal */
    ck_assert_int_eq(coro_destroy(ca), EBUSY);
    /* The failures changed nothing. */
    ck_assert_int_eq(coro_state(ca), CORO_NORMAL);
    ck_assert_int_eq(coro_state(cb), CORO_NORMAL);
    ck_assert_int_eq(coro_state(cc), CORO_RUNNING);
    ck_assert_ptr_eq(coro_self(), cc);
    chain_checked = 1;
    coro_yield(P('c'), NULL);
    return P('C');
}

static void *chain_b(void *unused)
{
    void *out = NULL;
    (void)unused;
    ck_assert_int_eq(coro_resume(cc, NULL, &out), 0);
    ck_assert_ptr_eq(out, P('c'));
    ck_assert_ptr_eq(coro_self(), cb);
    ck_assert_int_eq(coro_state(cb), CORO_RUNNING);
    ck_assert_int_eq(coro_state(cc), CORO_SUSPENDED);
    coro_yield(P('b'), NULL);
    return P('B');
}

static void *chain_a(void *unused)
{
    void *out = NULL;
    (void)unused;
    ck_assert_int_eq(coro_resume(cb, NULL, &out), 0);
    ck_assert_ptr_eq(out, P('b'));
    ck_assert_int_eq(coro_resume(ca, NULL, NULL), EBUSY);
    ck_assert_int_eq(coro_destroy(ca), EBUSY);
    coro_yield(P('a'), NULL);
    return P('A');
}

START_TEST(ebusy_self_and_ancestors)
{
    void *out = NULL;

    chain_checked = 0;
    ca = create_ok(chain_a, NULL);
    cb = create_ok(chain_b, NULL);
    cc = create_ok(chain_c, NULL);
    ck_assert_int_eq(coro_resume(ca, NULL, &out), 0);
    ck_assert_int_eq(chain_checked, 1);
    ck_assert_ptr_eq(out, P('a'));
    ck_assert_int_eq(coro_state(ca), CORO_SUSPENDED);
    ck_assert_int_eq(coro_state(cb), CORO_SUSPENDED);
    ck_assert_int_eq(coro_state(cc), CORO_SUSPENDED);
    /* Each now answers whoever resumes it: here, main. */
    ck_assert_int_eq(coro_resume(cc, NULL, &out), 0);
    ck_assert_ptr_eq(out, P('C'));
    ck_assert_int_eq(coro_resume(cb, NULL, &out), 0);
    ck_assert_ptr_eq(out, P('B'));
    ck_assert_int_eq(coro_resume(ca, NULL, &out), 0);
    ck_assert_ptr_eq(out, P('A'));
    ck_assert_int_eq(coro_destroy(ca), 0);
    ck_assert_int_eq(coro_destroy(cb), 0);
    ck_assert_int_eq(coro_destroy(cc), 0);
}
END_TEST

/* Suspended on one thread, resumed from another: EPERM.  A coroutine
 * never started belongs to whichever thread starts it. */
struct cross {
    coro_t *co;
    int err;
    void *out;
};

static void *resume_from_thread(void *p)
{
    struct cross *x = p;

    x->err = coro_resume(x->co, P(4), &x->out);
    return NULL;
}

static pthread_barrier_t cross_barrier;

/* Starts x->co, lets main try, then resumes it again. */
static void *start_wait_resume(void *p)
{
    struct cross *x = p;

    x->err = coro_resume(x->co, NULL, &x->out);
    pthread_barrier_wait(&cross_barrier);
    pthread_barrier_wait(&cross_barrier);
    if (x->err == 0)
        x->err = coro_resume(x->co, P(4), &x->out);
    return NULL;
}

static void cross_resume(struct cross *x)
{
    pthread_t t;

    x->out = P(-1);
    ck_assert_int_eq(pthread_create(&t, NULL, resume_from_thread, x), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}

START_TEST(resume_other_thread_eperm)
{
    struct cross x = {0};
    void *out;

    pthread_barrier_init(&cross_barrier, NULL, 2);
    x.co = create_ok(echo10, P(1));
    ck_assert_int_eq(coro_resume(x.co, NULL, NULL), 0);
    cross_resume(&x);
    ck_assert_int_eq(x.err, EPERM);
    ck_assert_ptr_eq(x.out, P(-1));
    ck_assert_int_eq(coro_state(x.co), CORO_SUSPENDED);
    /* Its own thread still can. */
    ck_assert_int_eq(coro_resume(x.co, P(2), &out), 0);
    ck_assert_ptr_eq(out, P(20));
    ck_assert_int_eq(coro_destroy(x.co), 0);

    /* Started by the other thread: then main is the stranger. */
    pthread_t t;
    x.co = create_ok(echo10, P(1));
    ck_assert_int_eq(pthread_create(&t, NULL, start_wait_resume, &x), 0);
    pthread_barrier_wait(&cross_barrier);   /* it has started x.co */
    ck_assert_int_eq(x.err, 0);
    ck_assert_ptr_eq(x.out, P(1));
    ck_assert_int_eq(coro_resume(x.co, P(2), &out), EPERM);
    pthread_barrier_wait(&cross_barrier);   /* its second resume */
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(x.err, 0);
    ck_assert_ptr_eq(x.out, P(40));
    ck_assert_int_eq(coro_destroy(x.co), 0); /* any thread may destroy */
}
END_TEST

START_TEST(errors_leave_errno_alone)
{
    coro_t *co = create_ok(yield_once, NULL);

    errno = 1234;
    ck_assert_int_eq(coro_resume(NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_create(NULL, yield_once, NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_yield(NULL, NULL), EPERM);
    ck_assert_int_eq(coro_destroy(NULL), EINVAL);
    ck_assert_int_eq(errno, 1234);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), ESRCH);
    ck_assert_int_eq(errno, 1234);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

/* No stack to be had: the address space is capped just above what the
 * process uses, so the next slab cannot be mapped. */
START_TEST(create_enomem)
{
    coro_t *co = create_ok(yield_once, NULL), *none = (coro_t *)&none;
    struct rlimit old, cap;
    unsigned long vsize = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    coro_attr_t attr;

    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu", &vsize), 1);
    fclose(f);
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    cap = old;
    cap.rlim_cur = vsize * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)32 << 20);
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &cap), 0);

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 512 * 1024), 0);
    long maps = maps_lines();
    errno = 4321; /* the failed mmap must not show */
    ck_assert_int_eq(coro_create(&none, yield_once, NULL, &attr), ENOMEM);
    ck_assert_int_eq(errno, 4321);
    ck_assert_ptr_eq(none, (coro_t *)&none);
    ck_assert_int_eq(coro_create(&none, yield_once, NULL, &attr), ENOMEM);
    ck_assert_int_eq(maps_lines(), maps);

    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(errno, 4321);
}
END_TEST

/* errno is the caller's across every public call of the core, the first
 * create of a thread (its context is made then) and a destroy that gives
 * memory back (madvise) included. */
static void *errno_calls(void *arg)
{
    coro_t *co, *big;
    coro_attr_t attr;

    (void)arg;
    errno = 777;
    coro_attr_init(&attr);
    REQUIRE(coro_attr_set_stack_size(&attr, 512 << 20) == 0);
    REQUIRE(coro_attr_set_guard_size(&attr, 12345) == 0);
    REQUIRE(coro_attr_set_name(&attr, "e") == 0);
    REQUIRE(coro_create(&co, yield_once, NULL, NULL) == 0);   /* first call */
    REQUIRE(coro_create(&big, yield_once, NULL, &attr) == 0);
    REQUIRE(coro_resume(co, NULL, NULL) == 0);
    REQUIRE(coro_resume(big, NULL, NULL) == 0);
    REQUIRE(coro_destroy(big) == 0); /* a stack no cache keeps: madvise */
    REQUIRE(coro_destroy(co) == 0);
    REQUIRE(errno == 777);
    return NULL;
}

START_TEST(calls_leave_errno_alone)
{
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, errno_calls, NULL), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    errno_calls(NULL);
}
END_TEST

/* ------------------------------------------------------------------ memory */

/* ASan's, TSan's and valgrind's shadow of the stacks stays resident when
 * the stacks are given back: under them, the memory tests check the peak
 * only. */
#if defined(__SANITIZE_ADDRESS__)
#define SHADOWED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHADOWED 1
#endif
#endif
#ifndef SHADOWED
#define SHADOWED UNDER_TSAN
#endif

static void cycle(intptr_t i);

/* Any number of distinct stack sizes: they share a few size classes (the
 * 17th distinct size used to fail for good, the default size too). */
START_TEST(any_number_of_stack_sizes)
{
    enum { N = 200 };
    static coro_t *co[N];
    coro_attr_t attr;

    coro_attr_init(&attr);
    for (int i = 0; i < N; i++) {
        size_t size = CORO_STACK_MIN + (size_t)i * 12288 + (size_t)i;
        ck_assert_int_eq(coro_attr_set_stack_size(&attr, size), 0);
        ck_assert_int_eq(coro_create(&co[i], yield_once, NULL, &attr), 0);
        ck_assert_uint_ge(coro_stack_size(co[i]), size);
        /* At most a quarter more than asked, plus the page rounding. */
        ck_assert_uint_le(coro_stack_size(co[i]), size + size / 4 + 4096);
        ck_assert_int_eq(coro_resume(co[i], NULL, NULL), 0);
    }
    coro_t *dflt = create_ok(yield_once, NULL);
    ck_assert_int_eq(coro_resume(dflt, NULL, NULL), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(coro_destroy(co[i]), 0);
    ck_assert_int_eq(coro_destroy(dflt), 0);
    /* And again, after all of them went back. */
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MIN + (size_t)i * 4099), 0);
        ck_assert_int_eq(coro_create(&co[i], yield_once, NULL, &attr), 0);
        ck_assert_int_eq(coro_destroy(co[i]), 0);
    }
}
END_TEST

/* After a burst, memory goes back: within 10% of the baseline plus what
 * the bounded caches keep (1024 stacks of one page touched, 1024
 * descriptors a thread: about 6 MiB). */
START_TEST(burst_gives_memory_back)
{
    const size_t n = UNDER_TSAN ? 4000 : RUNNING_ON_VALGRIND || SHADOWED ? 20000 : 300000;
    coro_t **co = malloc(n * sizeof *co);

    ck_assert_ptr_nonnull(co);
    for (int i = 0; i < 10; i++)
        cycle(i);
    size_t base = rss_bytes();
    for (size_t i = 0; i < n; i++) {
        REQUIRE(coro_create(&co[i], yield_once, NULL, NULL) == 0);
        REQUIRE(coro_resume(co[i], NULL, NULL) == 0);
    }
    size_t peak = rss_bytes();
    for (size_t i = 0; i < n; i++)
        REQUIRE(coro_destroy(co[i]) == 0);
    free(co);
    size_t after = rss_bytes();
    ck_assert_msg(peak > base + n * 4096 / 2, "the burst took %zu KiB only",
                  (peak - base) >> 10);
    ck_assert_msg(SHADOWED || RUNNING_ON_VALGRIND || after <= base + base / 10 + ((size_t)8 << 20),
                  "RSS %zu KiB before, %zu KiB at the peak, %zu KiB after",
                  base >> 10, peak >> 10, after >> 10);
}
END_TEST

/* Touches [sp - bytes, sp) of the running coroutine's own stack, as a
 * deep recursion would, then yields. */
static void *touch_deep(void *arg)
{
    size_t bytes = (size_t)I(arg);
    char *sp = __builtin_frame_address(0);

    memset(sp - 8192 - bytes, 0x5a, bytes);
    coro_yield(NULL, NULL);
    return NULL;
}

/* A destroyed coroutine with a 512 MiB stack, 256 MiB of it touched,
 * gives that memory back. */
START_TEST(big_stack_gives_memory_back)
{
    coro_attr_t attr;
    coro_t *co;
    const size_t touch = (size_t)256 << 20;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, (size_t)512 << 20), 0);
    size_t base = rss_bytes();
    ck_assert_int_eq(coro_create(&co, touch_deep, P(touch), &attr), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    size_t peak = rss_bytes();
    ck_assert_uint_ge(peak, base + touch);
    ck_assert_int_eq(coro_destroy(co), 0);
    size_t after = rss_bytes();
    ck_assert_msg(SHADOWED || RUNNING_ON_VALGRIND || after <= base + ((size_t)4 << 20),
                  "RSS %zu KiB before, %zu KiB at the peak, %zu KiB after",
                  base >> 10, peak >> 10, after >> 10);
}
END_TEST

/* ------------------------------------------------------------------ guard */

START_TEST(guard_size_attr)
{
    coro_attr_t attr;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_guard_size(NULL, 4096), EINVAL);
    ck_assert_int_eq(coro_attr_set_guard_size(&attr, CORO_GUARD_MAX + 1), EINVAL);
    ck_assert_int_eq(coro_attr_set_guard_size(&attr, CORO_GUARD_MAX), 0);
    ck_assert_int_eq(coro_attr_set_guard_size(&attr, 0), 0);
    ck_assert_int_eq(coro_attr_set_guard_size(&attr, 1), 0);
    coro_t *co;
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

/* Writes at depth bytes below the top of its stack (with nothing between:
 * a large frame that skipped its probes). */
static void *write_at_depth(void *arg)
{
    volatile char *p = (char *)__builtin_frame_address(0) - I(arg);

    *p = 1;
    return NULL;
}

/* A 1 MiB guard catches a write 512 KiB below a 256 KiB stack: the
 * overflow report, then abort. */
START_TEST(wide_guard_catches_far_write)
{
    coro_attr_t attr;
    coro_t *co;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 256 * 1024), 0);
    ck_assert_int_eq(coro_attr_set_guard_size(&attr, 1 << 20), 0);
    ck_assert_int_eq(coro_create(&co, write_at_depth, P(768 * 1024), &attr), 0);
    coro_resume(co, NULL, NULL);
}
END_TEST

/* ---------------------------------------------------------------- identity */

START_TEST(first_id_is_one)
{
    /* A process of its own (fork mode): nothing was created before. */
    coro_t *co = create_ok(yield_once, NULL);
    ck_assert_uint_eq(coro_id(co), 1);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(ids_unique_increasing)
{
    enum { N = 5000 }; /* crosses the blocks a thread reserves */
    static coro_t *co[N];
    uint64_t last = 0;

    for (int i = 0; i < N; i++) {
        REQUIRE(coro_create(&co[i], yield_once, NULL, NULL) == 0);
        REQUIRE(coro_id(co[i]) > last);
        last = coro_id(co[i]);
    }
    /* Never reused: destroyed ids do not come back. */
    for (int i = 0; i < N; i++)
        REQUIRE(coro_destroy(co[i]) == 0);
    for (int i = 0; i < 100; i++) {
        coro_t *c = create_ok(yield_once, NULL);
        ck_assert_uint_gt(coro_id(c), last);
        last = coro_id(c);
        ck_assert_int_eq(coro_destroy(c), 0);
    }
}
END_TEST

START_TEST(names)
{
    coro_attr_t attr;
    coro_t *co, *plain;
    char name[100];

    plain = create_ok(yield_once, NULL);
    ck_assert_str_eq(coro_name(plain), "");

    coro_attr_init(&attr);
    strcpy(name, "reader");
    ck_assert_int_eq(coro_attr_set_name(&attr, name), 0);
    strcpy(name, "XXXXXX"); /* copied into attr, not referenced */
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_int_eq(coro_attr_set_name(&attr, "other"), 0); /* copied at create */
    ck_assert_str_eq(coro_name(co), "reader");
    ck_assert_int_eq(coro_destroy(co), 0);

    /* Cut at CORO_NAME_MAX bytes. */
    memset(name, 0, sizeof name);
    for (int i = 0; i < 99; i++)
        name[i] = (char)('a' + i % 26);
    ck_assert_int_eq(coro_attr_set_name(&attr, name), 0);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_uint_eq(strlen(coro_name(co)), CORO_NAME_MAX);
    ck_assert_int_eq(memcmp(coro_name(co), name, CORO_NAME_MAX), 0);
    ck_assert_int_eq(coro_destroy(co), 0);

    /* Exactly CORO_NAME_MAX bytes fit whole. */
    name[CORO_NAME_MAX] = '\0';
    ck_assert_int_eq(coro_attr_set_name(&attr, name), 0);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_str_eq(coro_name(co), name);
    ck_assert_int_eq(coro_destroy(co), 0);

    /* NULL clears. */
    ck_assert_int_eq(coro_attr_set_name(&attr, NULL), 0);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_str_eq(coro_name(co), "");
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(coro_destroy(plain), 0);
}
END_TEST

/* Uses n bytes of its stack. */
static void *use_stack(void *arg)
{
    size_t n = (size_t)arg;
    volatile char *buf = __builtin_alloca(n);

    for (size_t i = 0; i < n; i += 512)
        buf[i] = (char)i;
    buf[n - 1] = 1;
    coro_yield(P(buf[n - 1]), NULL);
    return NULL;
}

START_TEST(stack_size_at_least_requested)
{
    static const size_t sizes[] = {CORO_STACK_MIN, 20000, 65536, 100001,
                                   1 << 20, 8 << 20};
    coro_attr_t attr;
    coro_t *co;
    void *out;

    co = create_ok(yield_once, NULL);
    ck_assert_uint_ge(coro_stack_size(co), TEST_DEFAULT_STACK_SIZE);
    ck_assert_int_eq(coro_destroy(co), 0);
    coro_attr_init(&attr);
    ck_assert_int_eq(coro_create(&co, yield_once, NULL, &attr), 0);
    ck_assert_uint_ge(coro_stack_size(co), TEST_DEFAULT_STACK_SIZE);
    ck_assert_int_eq(coro_destroy(co), 0);

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ck_assert_int_eq(coro_attr_set_stack_size(&attr, sizes[i]), 0);
        ck_assert_int_eq(coro_create(&co, use_stack, P(sizes[i] - 8192), &attr), 0);
        ck_assert_uint_ge(coro_stack_size(co), sizes[i]);
        /* And it is really there: nearly all of it can be used. */
        out = NULL;
        ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
        ck_assert_ptr_eq(out, P(1));
        ck_assert_int_eq(coro_destroy(co), 0);
    }
}
END_TEST

/* ----------------------------------------------------------------- nesting */

/* The letters each step of nested_three leaves, in order. */
static char trail[64];
static int trail_len;

static void note(char c)
{
    trail[trail_len++] = c;
}

/* Resumes the coroutine in arg (if any) twice, noting what it passes up. */
static void *nest(void *arg)
{
    coro_t *below = arg;
    char me = below ? (coro_name(below)[0] - 1) : 'C';
    void *out = NULL;

    for (int round = 0; round < 2; round++) {
        note(me);
        if (below) {
            ck_assert_int_eq(coro_resume(below, NULL, &out), 0);
            ck_assert_int_eq(coro_name(coro_self())[0], me);
            note((char)I(out));           /* what the one below yielded */
            ck_assert_int_eq(coro_state(below), round ? CORO_FINISHED : CORO_SUSPENDED);
        }
        if (round == 0)
            coro_yield(P(me + 32), NULL); /* lower case: a yield */
    }
    return P(me + 32 + 1);                /* the next letter: a return */
}

START_TEST(nested_three)
{
    coro_attr_t attr;
    coro_t *a, *b, *c;
    void *out;

    coro_attr_init(&attr);
    coro_attr_set_name(&attr, "C");
    ck_assert_int_eq(coro_create(&c, nest, NULL, &attr), 0);
    coro_attr_set_name(&attr, "B");
    ck_assert_int_eq(coro_create(&b, nest, c, &attr), 0);
    coro_attr_set_name(&attr, "A");
    ck_assert_int_eq(coro_create(&a, nest, b, &attr), 0);

    trail_len = 0;
    ck_assert_int_eq(coro_resume(a, NULL, &out), 0);
    note((char)I(out));
    ck_assert_int_eq(coro_resume(a, NULL, &out), 0);
    note((char)I(out));
    trail[trail_len] = '\0';
    /* A resumes B resumes C; C yields c to B, B yields b to A, A yields a
     * to main; then each resumes the one below again, which returns. */
    ck_assert_str_eq(trail, "ABCcbaABCdcb");
    ck_assert_int_eq(coro_state(a), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(a), 0);
    ck_assert_int_eq(coro_destroy(b), 0);
    ck_assert_int_eq(coro_destroy(c), 0);
}
END_TEST

/* A yield goes to whoever resumed this time, not whoever resumed first. */
static void *count_up(void *unused)
{
    (void)unused;
    for (intptr_t i = 1;; i++)
        coro_yield(P(i), NULL);
    return NULL;
}

static void *relay(void *arg)
{
    void *out = NULL;

    ck_assert_int_eq(coro_resume(arg, NULL, &out), 0);
    coro_yield(P(I(out) + 100), NULL);
    return NULL;
}

START_TEST(yield_goes_to_current_resumer)
{
    void *out = NULL;
    coro_t *counter = create_ok(count_up, NULL);

    for (int i = 1; i <= 20; i++) {
        if (i % 2) {
            ck_assert_int_eq(coro_resume(counter, NULL, &out), 0);
            ck_assert_ptr_eq(out, P(i));
        } else {
            coro_t *r = create_ok(relay, counter);
            ck_assert_int_eq(coro_resume(r, NULL, &out), 0);
            ck_assert_ptr_eq(out, P(i + 100));
            ck_assert_int_eq(coro_destroy(r), 0);
        }
    }
    ck_assert_int_eq(coro_destroy(counter), 0);
}
END_TEST

/* A chain 200 deep, each resuming the next. */
static void *chain_down(void *arg)
{
    intptr_t depth = I(arg);
    void *out = P(0);

    if (depth > 0) {
        coro_t *next = create_ok(chain_down, P(depth - 1));
        ck_assert_int_eq(coro_resume(next, NULL, &out), 0);
        ck_assert_int_eq(coro_destroy(next), 0);
    }
    return P(I(out) + 1);
}

START_TEST(nested_deep)
{
    void *out = NULL;
    coro_t *top = create_ok(chain_down, P(199));

    ck_assert_int_eq(coro_resume(top, NULL, &out), 0);
    ck_assert_ptr_eq(out, P(200));
    ck_assert_int_eq(coro_destroy(top), 0);
}
END_TEST

/* ------------------------------------------------------------------- scale */

static void *twice(void *arg)
{
    void *in = NULL;

    coro_yield(arg, &in);
    return P(I(in) + I(arg));
}

START_TEST(hundred_thousand_suspended)
{
    /* valgrind looks a stack pointer up in a list of every registered
     * stack, so each switch costs it time linear in the number alive:
     * there, a tenth. */
    const intptr_t n = RUNNING_ON_VALGRIND ? 10000 : UNDER_TSAN ? 4000 : 100000;
    coro_t **co = malloc((size_t)n * sizeof *co);
    void *out;

    ck_assert_ptr_nonnull(co);
    for (intptr_t i = 0; i < n; i++) {
        REQUIRE(coro_create(&co[i], twice, P(i), NULL) == 0);
        REQUIRE(coro_resume(co[i], NULL, &out) == 0 && out == P(i));
    }
    for (intptr_t i = 0; i < n; i++)
        REQUIRE(coro_state(co[i]) == CORO_SUSPENDED);
    /* Resumed in another order than created. */
    for (intptr_t k = 0; k < n; k++) {
        intptr_t i = (k * 7919) % n;
        REQUIRE(coro_resume(co[i], P(2 * i), &out) == 0 && out == P(3 * i));
        REQUIRE(coro_state(co[i]) == CORO_FINISHED);
        REQUIRE(coro_destroy(co[i]) == 0);
    }
    free(co);
}
END_TEST

static void *finish_or_stay(void *arg)
{
    if (I(arg) & 1)
        coro_yield(arg, NULL);
    return arg;
}

/* One create/resume/destroy cycle; every other one destroyed while
 * suspended. */
static void cycle(intptr_t i)
{
    coro_t *co;
    void *out = NULL;

    if (coro_create(&co, finish_or_stay, P(i), NULL) != 0 ||
        coro_resume(co, NULL, &out) != 0 || out != P(i) ||
        coro_state(co) != ((i & 1) ? CORO_SUSPENDED : CORO_FINISHED) ||
        coro_destroy(co) != 0)
        ck_abort_msg("cycle %ld failed", (long)i);
}

START_TEST(million_cycles_no_growth)
{
    for (intptr_t i = 0; i < 10000; i++)
        cycle(i);
    size_t rss = rss_bytes();
    long maps = maps_lines();

    /* Under TSan each cycle also makes and drops a fiber: fewer cycles. */
    const intptr_t cycles = UNDER_TSAN ? 100000 : 1000000;
    for (intptr_t i = 0; i < cycles; i++)
        cycle(i);
    size_t rss2 = rss_bytes();
    long maps2 = maps_lines();
    /* Leaking even 8 bytes a cycle would show as 8 MB. */
    ck_assert_msg(rss2 <= rss + (2 << 20), "RSS grew from %zu to %zu KiB",
                  rss >> 10, rss2 >> 10);
    ck_assert_int_le(maps2, maps);
}
END_TEST

/* ------------------------------------------------------ per-coroutine state */

static void *errno_keeper(void *arg)
{
    int mine = (int)I(arg);

    errno = mine;
    for (int i = 0; i < 10000; i++) {
        coro_yield(NULL, NULL);
        if (errno != mine)
            return P(-1);
        mine += 3;      /* change it between switches too */
        errno = mine;
    }
    return P(mine);
}

START_TEST(errno_per_coroutine)
{
    coro_t *co[3];
    void *out;

    for (int k = 0; k < 3; k++)
        co[k] = create_ok(errno_keeper, P(1000 * (k + 1)));
    for (int i = 0; i <= 10000; i++) {
        for (int k = 0; k < 3; k++) {
            errno = 7 + i;
            out = NULL;
            REQUIRE(coro_resume(co[k], NULL, &out) == 0);
            REQUIRE(errno == 7 + i);
            REQUIRE(out != P(-1));
        }
    }
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(coro_state(co[k]), CORO_FINISHED);
        ck_assert_int_eq(coro_destroy(co[k]), 0);
    }
}
END_TEST

/* errno of a nested coroutine: C's does not leak into B, nor B's into C,
 * nor either into the thread. */
static void *errno_inner(void *unused)
{
    (void)unused;
    for (int i = 0; i < 1000; i++) {
        errno = 9000 + i;
        coro_yield(NULL, NULL);
        if (errno != 9000 + i)
            return P(-1);
    }
    return P(2);
}

static void *errno_outer(void *unused)
{
    coro_t *inner = create_ok(errno_inner, NULL);
    void *out = NULL;

    (void)unused;
    for (int i = 0; i <= 1000; i++) {
        errno = 42 + i;
        if (coro_resume(inner, NULL, &out) != 0 || out == P(-1) || errno != 42 + i)
            return P(-1);
        coro_yield(NULL, NULL);
        if (errno != 42 + i)
            return P(-1);
    }
    if (out != P(2) || coro_destroy(inner) != 0)
        return P(-1);
    return P(1);
}

START_TEST(errno_nested)
{
    coro_t *outer = create_ok(errno_outer, NULL);
    void *out = NULL;

    for (int i = 0; i <= 1000; i++) {
        errno = 1 + i;
        REQUIRE(coro_resume(outer, NULL, &out) == 0);
        REQUIRE(errno == 1 + i);
    }
    ck_assert_int_eq(coro_resume(outer, NULL, &out), 0);
    ck_assert_ptr_eq(out, P(1));
    ck_assert_int_eq(coro_destroy(outer), 0);
}
END_TEST

/* Rounding mode per coroutine.  Arithmetic is checked too where the CPU
 * honours the mode (valgrind emulates only round-to-nearest arithmetic:
 * there the control state alone is checked). */
static volatile double one = 1.0, seven = 7.0;
static volatile double near_d, up_d, down_d;
static int arith_rounds;

static void fp_refs(void)
{
    fesetround(FE_UPWARD);
    up_d = one / seven;
    fesetround(FE_DOWNWARD);
    down_d = one / seven;
    fesetround(FE_TONEAREST);
    near_d = one / seven;
    arith_rounds = up_d != near_d;
    ck_assert(arith_rounds || RUNNING_ON_VALGRIND);
}

static int mode_ok(int mode)
{
    volatile double d = one / seven;

    if (fegetround() != mode)
        return 0;
    if (!arith_rounds)
        return 1;
    return d == (mode == FE_UPWARD ? up_d : mode == FE_DOWNWARD ? down_d : near_d);
}

static void *round_keeper(void *arg)
{
    int mode = (int)I(arg);

    fesetround(mode);
    for (int i = 0; i < 10000; i++) {
        coro_yield(NULL, NULL);
        if (!mode_ok(mode))
            return P(-1);
    }
    return P(1);
}

START_TEST(rounding_per_coroutine)
{
    static const int modes[3] = {FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    coro_t *co[3];
    void *out;

    fp_refs();
    for (int k = 0; k < 3; k++)
        co[k] = create_ok(round_keeper, P(modes[k]));
    for (int i = 0; i <= 10000; i++) {
        for (int k = 0; k < 3; k++) {
            out = NULL;
            REQUIRE(coro_resume(co[k], NULL, &out) == 0);
            REQUIRE(out == (i == 10000 ? P(1) : NULL));
            REQUIRE(mode_ok(FE_TONEAREST));
        }
    }
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(coro_state(co[k]), CORO_FINISHED);
        ck_assert_int_eq(coro_destroy(co[k]), 0);
    }
}
END_TEST

/* printf of a double needs a 16-byte aligned stack (SSE spills). */
static void *print_doubles(void *arg)
{
    char buf[64];
    volatile double x = 3.25;
    intptr_t depth = I(arg);

    if (depth > 0)
        return print_doubles(P(depth - 1)); /* odd frame sizes on the way */
    snprintf(buf, sizeof buf, "%f %.3e %g", x, x * 1000, x / 4);
    ck_assert_str_eq(buf, "3.250000 3.250e+03 0.8125");
    printf("in a coroutine: %f\n", x);
    fflush(stdout);
    coro_yield(NULL, NULL);
    snprintf(buf, sizeof buf, "%f", x * 2);
    ck_assert_str_eq(buf, "6.500000");
    return P(1);
}

START_TEST(printf_double_in_coroutine)
{
    coro_attr_t attr;
    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, CORO_STACK_MIN), 0);
    for (int depth = 0; depth < 4; depth++) {
        coro_t *co;
        void *out = NULL;
        ck_assert_int_eq(coro_create(&co, print_doubles, P(depth),
                                     depth % 2 ? &attr : NULL), 0);
        ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
        ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
        ck_assert_ptr_eq(out, P(1));
        ck_assert_int_eq(coro_destroy(co), 0);
    }
}
END_TEST

/* ----------------------------------------------------------------- threads */

enum { THREADS = 4, PER_THREAD = 100, ROUNDS = 1000 };

struct worker {
    uint64_t ids[PER_THREAD];
    int failures;
};

static void *sum_in(void *arg)
{
    void *in = NULL;
    intptr_t sum = 0;

    coro_yield(arg, &in);
    for (int r = 0; r < ROUNDS; r++) {
        sum += I(in);
        errno = (int)sum;
        coro_yield(P(sum), &in);
        if (errno != (int)sum)
            return P(-1);
    }
    return P(sum);
}

static void *worker(void *p)
{
    struct worker *w = p;
    coro_t *co[PER_THREAD];
    void *out;

    if (coro_self() != NULL)
        w->failures++;
    for (int k = 0; k < PER_THREAD; k++) {
        if (coro_create(&co[k], sum_in, P(k), NULL) != 0 ||
            coro_resume(co[k], NULL, &out) != 0 || out != P(k)) {
            w->failures++;
            return NULL;
        }
        w->ids[k] = coro_id(co[k]);
    }
    for (int r = 1; r <= ROUNDS; r++)
        for (int k = 0; k < PER_THREAD; k++) {
            if (coro_resume(co[k], P(k + r), &out) != 0)
                w->failures++;
            /* sum of (k + 1) .. (k + r) */
            else if (I(out) != (intptr_t)r * k + (intptr_t)r * (r + 1) / 2)
                w->failures++;
        }
    for (int k = 0; k < PER_THREAD; k++) {
        if (coro_resume(co[k], NULL, &out) != 0 || coro_state(co[k]) != CORO_FINISHED ||
            I(out) < 0 || coro_destroy(co[k]) != 0)
            w->failures++;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(four_threads_concurrently)
{
    static struct worker w[THREADS];
    static uint64_t all[THREADS * PER_THREAD];
    pthread_t t[THREADS];

    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(w[i].failures, 0);
        memcpy(&all[i * PER_THREAD], w[i].ids, sizeof w[i].ids);
    }
    qsort(all, THREADS * PER_THREAD, sizeof all[0], cmp_u64);
    for (int i = 1; i < THREADS * PER_THREAD; i++)
        ck_assert_uint_ne(all[i], all[i - 1]);
    ck_assert_ptr_null(coro_self());
}
END_TEST

static atomic_int churn_stop;

static void *churn_named(void *arg)
{
    coro_attr_t attr;
    long rounds = 0;

    coro_attr_init(&attr);
    coro_attr_set_name(&attr, "churn");
    while (!atomic_load(&churn_stop) || rounds < 1000) {
        coro_t *co[8];
        for (int i = 0; i < 8; i++) {
            REQUIRE(coro_create(&co[i], yield_once, arg, &attr) == 0);
            REQUIRE(coro_resume(co[i], NULL, NULL) == 0);
        }
        for (int i = 0; i < 8; i++)
            REQUIRE(coro_destroy(co[i]) == 0);
        rounds++;
    }
    return NULL;
}

/* coro_dump walks every thread's coroutines while another thread creates
 * and destroys its own: each descriptor is read under its sequence lock
 * (ThreadSanitizer reported these reads racing with coro_destroy). */
START_TEST(dump_while_another_thread_churns)
{
    FILE *null = fopen("/dev/null", "w");
    pthread_t t;

    ck_assert_ptr_nonnull(null);
    ck_assert_int_eq(pthread_create(&t, NULL, churn_named, NULL), 0);
    for (int i = 0; i < (UNDER_TSAN || RUNNING_ON_VALGRIND ? 50 : 500); i++)
        coro_dump(null);
    atomic_store(&churn_stop, 1);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    fclose(null);
}
END_TEST

/* ------------------------------------------------------------ coro_close */

/* A generator that owns a buffer: it yields until a yield fails, then
 * frees what it holds.  *yields_failed counts the failed yields (its
 * cleanup yields once more, which must fail at once too). */
struct gen {
    int cleaned;
    int first_err;
    int second_err;
    long produced;
};

static void *generator(void *arg)
{
    struct gen *g = arg;
    char *buf = malloc(4096);
    int err;

    ck_assert_ptr_nonnull(buf);
    while ((err = coro_yield((void *)(intptr_t)++g->produced, NULL)) == 0) {
    }
    g->first_err = err;
    g->second_err = coro_yield(NULL, NULL); /* a later yield: no switch */
    free(buf);
    g->cleaned = 1;
    return (void *)1;
}

START_TEST(close_runs_a_generators_cleanup)
{
    struct gen g = {0, 0, 0, 0};
    coro_t *co;
    void *out = NULL;

    ck_assert_int_eq(coro_create(&co, generator, &g, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
    ck_assert_int_eq((intptr_t)out, 1);
    ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
    ck_assert_int_eq((intptr_t)out, 2);
    errno = 4242;
    ck_assert_int_eq(coro_close(co), 0);
    ck_assert_int_eq(errno, 4242);
    ck_assert_int_eq(g.cleaned, 1);
    ck_assert_int_eq(g.first_err, ECANCELED);
    ck_assert_int_eq(g.second_err, ECANCELED);
    ck_assert_int_eq(g.produced, 2);
}
END_TEST

static int never_ran;

static void *must_not_run(void *arg)
{
    (void)arg;
    never_ran = 0;
    return NULL;
}

START_TEST(close_of_ready_and_finished_destroys)
{
    coro_t *co;

    never_ran = 1;
    ck_assert_int_eq(coro_create(&co, must_not_run, NULL, NULL), 0);
    ck_assert_int_eq(coro_close(co), 0); /* READY: not run */
    ck_assert_int_eq(never_ran, 1);
    ck_assert_int_eq(coro_create(&co, must_not_run, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_close(co), 0);
    ck_assert_int_eq(coro_close(NULL), EINVAL);
}
END_TEST

static coro_t *close_outer;
static int close_self_err, close_outer_err;

static void *closes_inner(void *arg)
{
    (void)arg;
    close_outer_err = coro_close(close_outer); /* NORMAL: resumed us */
    return NULL;
}

static void *closes_itself(void *arg)
{
    coro_t *inner;

    (void)arg;
    close_self_err = coro_close(coro_self()); /* RUNNING */
    ck_assert_int_eq(coro_create(&inner, closes_inner, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(inner, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(inner), 0);
    return NULL;
}

START_TEST(close_of_running_or_normal_is_busy)
{
    ck_assert_int_eq(coro_create(&close_outer, closes_itself, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(close_outer, NULL, NULL), 0);
    ck_assert_int_eq(close_self_err, EBUSY);
    ck_assert_int_eq(close_outer_err, EBUSY);
    ck_assert_int_eq(coro_close(close_outer), 0);
}
END_TEST

/* The closed coroutine's cleanup may itself resume and close others. */
static void *closes_child_on_cancel(void *arg)
{
    struct gen *child_state = arg;
    coro_t *child;

    ck_assert_int_eq(coro_create(&child, generator, child_state, NULL), 0);
    ck_assert_int_eq(coro_resume(child, NULL, NULL), 0);
    while (coro_yield(NULL, NULL) == 0)
        ck_assert_int_eq(coro_resume(child, NULL, NULL), 0);
    ck_assert_int_eq(coro_close(child), 0);
    return NULL;
}

START_TEST(close_nests)
{
    struct gen child = {0, 0, 0, 0};
    coro_t *co;

    ck_assert_int_eq(coro_create(&co, closes_child_on_cancel, &child, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_close(co), 0);
    ck_assert_int_eq(child.cleaned, 1);
    ck_assert_int_eq(child.produced, 2);
}
END_TEST

static void *spawned_body(void *arg)
{
    return arg;
}

static void *joins_it(void *arg)
{
    ck_assert_int_eq(coro_join(arg, NULL, -1), 0);
    return NULL;
}

static coro_t *other_threads;

static void *close_from_thread(void *arg)
{
    *(int *)arg = coro_close(other_threads);
    return NULL;
}

START_TEST(close_refuses_spawned_and_foreign)
{
    struct gen g = {0, 0, 0, 0};
    coro_t *co;
    pthread_t th;
    int err = 0;

    ck_assert_int_eq(coro_spawn(&co, spawned_body, NULL, NULL), 0);
    ck_assert_int_eq(coro_close(co), EPERM);
    ck_assert_int_eq(coro_spawn(NULL, joins_it, co, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(coro_create(&other_threads, generator, &g, NULL), 0);
    ck_assert_int_eq(coro_resume(other_threads, NULL, NULL), 0);
    ck_assert_int_eq(pthread_create(&th, NULL, close_from_thread, &err), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(err, EPERM);
    ck_assert_int_eq(coro_close(other_threads), 0);
    ck_assert_int_eq(g.cleaned, 1);
}
END_TEST

/* -------------------------------------------------- coroutine-local keys */

static coro_key_t key_a, key_b;
static int dtor_calls;
static void *dtor_last;
static coro_state_t dtor_saw_state;

static void count_dtor(void *v)
{
    dtor_calls++;
    dtor_last = v;
    dtor_saw_state = coro_state(coro_self());
}

static void *sets_and_yields(void *arg)
{
    ck_assert_ptr_null(coro_getspecific(key_a)); /* a new coroutine: NULL */
    ck_assert_int_eq(coro_setspecific(key_a, arg), 0);
    ck_assert_int_eq(coro_yield(NULL, NULL), 0);
    ck_assert_ptr_eq(coro_getspecific(key_a), arg); /* its own, kept */
    return NULL;
}

START_TEST(keys_are_per_coroutine)
{
    coro_t *a, *b;
    int va, vb, vmain;

    dtor_calls = 0;
    ck_assert_int_eq(coro_key_create(&key_a, count_dtor), 0);
    ck_assert_int_eq(coro_setspecific(key_a, &vmain), 0); /* the thread's own */
    ck_assert_int_eq(coro_create(&a, sets_and_yields, &va, NULL), 0);
    ck_assert_int_eq(coro_create(&b, sets_and_yields, &vb, NULL), 0);
    ck_assert_int_eq(coro_resume(a, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(b, NULL, NULL), 0);
    ck_assert_ptr_eq(coro_getspecific(key_a), &vmain);
    ck_assert_int_eq(coro_resume(a, NULL, NULL), 0);
    /* a's value went to the destructor as a finished, before the resume
     * that saw it end returned */
    ck_assert_int_eq(dtor_calls, 1);
    ck_assert_ptr_eq(dtor_last, &va);
    ck_assert_int_eq(coro_resume(b, NULL, NULL), 0);
    ck_assert_int_eq(dtor_calls, 2);
    ck_assert_ptr_eq(dtor_last, &vb);
    ck_assert_int_eq(coro_destroy(a), 0);
    ck_assert_int_eq(coro_destroy(b), 0);
    ck_assert_int_eq(dtor_calls, 2);
    ck_assert_ptr_eq(coro_getspecific(key_a), &vmain);
    ck_assert_int_eq(coro_key_delete(key_a), 0);
}
END_TEST

static void *sets_two_then_yields(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_setspecific(key_a, &key_a), 0);
    ck_assert_int_eq(coro_setspecific(key_b, NULL), 0);
    while (coro_yield(NULL, NULL) == 0) {
    }
    return NULL;
}

START_TEST(keys_destroyed_with_closed_and_abandoned)
{
    coro_t *co;

    dtor_calls = 0;
    ck_assert_int_eq(coro_key_create(&key_a, count_dtor), 0);
    ck_assert_int_eq(coro_key_create(&key_b, count_dtor), 0);
    ck_assert_int_ne(key_a, key_b);
    /* closed: the values go as it finishes, on its own stack */
    ck_assert_int_eq(coro_create(&co, sets_two_then_yields, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_close(co), 0);
    ck_assert_int_eq(dtor_calls, 1); /* NULL values are not handed over */
    ck_assert_ptr_eq(dtor_last, &key_a);
    ck_assert_int_eq(dtor_saw_state, CORO_RUNNING);
    /* abandoned by coro_destroy: the values still go */
    ck_assert_int_eq(coro_create(&co, sets_two_then_yields, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(dtor_calls, 2);
    ck_assert_int_eq(coro_key_delete(key_a), 0);
    ck_assert_int_eq(coro_key_delete(key_b), 0);
}
END_TEST

START_TEST(deleted_keys_are_no_keys)
{
    coro_key_t k, again;
    int v;
    coro_t *co;

    dtor_calls = 0;
    ck_assert_int_eq(coro_setspecific(0, &v), EINVAL); /* zeroed: no key */
    ck_assert_ptr_null(coro_getspecific(0));
    ck_assert_int_eq(coro_key_create(NULL, NULL), EINVAL);
    ck_assert_int_eq(coro_key_create(&k, count_dtor), 0);
    ck_assert_int_eq(coro_setspecific(k, &v), 0);
    ck_assert_int_eq(coro_key_delete(k), 0);
    ck_assert_ptr_null(coro_getspecific(k));
    ck_assert_int_eq(coro_setspecific(k, &v), EINVAL);
    ck_assert_int_eq(coro_key_delete(k), EINVAL);
    /* the slot is taken again, by a key the old one does not match */
    ck_assert_int_eq(coro_key_create(&again, NULL), 0);
    ck_assert_int_ne(again, k);
    ck_assert_ptr_null(coro_getspecific(again));
    ck_assert_ptr_null(coro_getspecific(k));
    /* no destructor for a deleted key's values */
    ck_assert_int_eq(coro_key_create(&key_a, count_dtor), 0);
    ck_assert_int_eq(coro_create(&co, sets_and_yields, &v, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_key_delete(key_a), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(dtor_calls, 0);
    ck_assert_int_eq(coro_key_delete(again), 0);
}
END_TEST

/* coro_destroy of a suspended coroutine: its destructors see and set its
 * values, not the caller's, and errno is left alone. */
static coro_key_t key_seen;
static void *dtor_saw_value;
static int main_value, victim_value;

static void looks_then_sets(void *v)
{
    dtor_saw_value = coro_getspecific(key_seen);   /* NULL: handed over */
    (void)v;
    errno = EIO;
    if (!dtor_calls++)
        ck_assert_int_eq(coro_setspecific(key_seen, &victim_value), 0); /* a second round */
}

static void *sets_victim_value(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_setspecific(key_seen, &victim_value), 0);
    coro_yield(NULL, NULL);
    return NULL;
}

START_TEST(destroy_runs_destructors_on_the_victims_values)
{
    coro_t *co;

    dtor_calls = 0;
    ck_assert_int_eq(coro_key_create(&key_seen, looks_then_sets), 0);
    ck_assert_int_eq(coro_setspecific(key_seen, &main_value), 0);
    ck_assert_int_eq(coro_create(&co, sets_victim_value, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    errno = 4242;
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(errno, 4242);
    ck_assert_int_eq(dtor_calls, 2);                /* set again: one more round */
    ck_assert_ptr_null(dtor_saw_value);
    ck_assert_ptr_eq(coro_getspecific(key_seen), &main_value); /* untouched */
    ck_assert_int_eq(coro_key_delete(key_seen), 0);
}
END_TEST


START_TEST(many_keys)
{
    static coro_key_t keys[CORO_KEYS_MAX];
    coro_key_t extra;
    long v[CORO_KEYS_MAX];

    for (int i = 0; i < CORO_KEYS_MAX; i++)
        ck_assert_int_eq(coro_key_create(&keys[i], NULL), 0);
    ck_assert_int_eq(coro_key_create(&extra, NULL), EAGAIN);
    errno = 77;
    for (int i = 0; i < CORO_KEYS_MAX; i++)
        ck_assert_int_eq(coro_setspecific(keys[i], &v[i]), 0);
    ck_assert_int_eq(errno, 77);
    for (int i = 0; i < CORO_KEYS_MAX; i++)
        ck_assert_ptr_eq(coro_getspecific(keys[i]), &v[i]);
    ck_assert_int_eq(coro_key_delete(keys[100]), 0);
    ck_assert_int_eq(coro_key_create(&extra, NULL), 0);
    ck_assert_ptr_null(coro_getspecific(extra));
    for (int i = 0; i < CORO_KEYS_MAX; i++)
        ck_assert_int_eq(coro_key_delete(i == 100 ? extra : keys[i]), 0);
}
END_TEST

/* A destructor that sets its value again is called again, a few rounds
 * (pthread's rule), then the value is dropped. */
static void resets_dtor(void *v)
{
    dtor_calls++;
    coro_setspecific(key_a, v);
}

static void *sets_a(void *arg)
{
    ck_assert_int_eq(coro_setspecific(key_a, arg), 0);
    return NULL;
}

START_TEST(destructor_rounds_are_bounded)
{
    coro_t *co;
    int v;

    dtor_calls = 0;
    ck_assert_int_eq(coro_key_create(&key_a, resets_dtor), 0);
    ck_assert_int_eq(coro_create(&co, sets_a, &v, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(dtor_calls, 4);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(coro_key_delete(key_a), 0);
}
END_TEST

static void *spawned_sets(void *arg)
{
    ck_assert_int_eq(coro_setspecific(key_a, arg), 0);
    coro_sleep(1000000);
    ck_assert_ptr_eq(coro_getspecific(key_a), arg);
    return NULL;
}

static void *thread_sets(void *arg)
{
    ck_assert_int_eq(coro_setspecific(key_a, arg), 0);
    return NULL;
}

START_TEST(keys_in_spawned_coroutines_and_threads)
{
    static int vals[8];
    pthread_t th;

    dtor_calls = 0;
    ck_assert_int_eq(coro_key_create(&key_a, count_dtor), 0);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(coro_spawn(NULL, spawned_sets, &vals[i], NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(dtor_calls, 8);
    /* a thread's own value goes to the destructor when the thread exits */
    ck_assert_int_eq(pthread_create(&th, NULL, thread_sets, &vals[0]), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(dtor_calls, 9);
    ck_assert_ptr_eq(dtor_last, &vals[0]);
    ck_assert_int_eq(coro_key_delete(key_a), 0);
}
END_TEST

/* ------------------------------------------------ errors out of a coroutine
 * The pattern coro_resume(3) documents: the coroutine yields its values
 * and returns a result that carries an error code and a message. */

struct scan {
    const char *text; /* in: numbers separated by spaces */
    int err;          /* out: 0, or an errno value */
    char msg[64];     /* out: why, when err is not 0 */
};

static void *numbers(void *arg)
{
    struct scan *sc = arg;
    const char *s = sc->text;
    char *end;
    long n;

    sc->err = 0;
    for (;;) {
        while (*s == ' ')
            s++;
        if (*s == '\0')
            break;
        errno = 0;
        n = strtol(s, &end, 10);
        if (end == s || errno != 0) {
            sc->err = errno != 0 ? errno : EINVAL;
            snprintf(sc->msg, sizeof sc->msg, "bad number at \"%.20s\"", s);
            break;
        }
        coro_yield(&n, NULL);
        s = end;
    }
    return sc;
}

/* Sums what numbers yields for text, *count of them; *result: what it
 * returned. */
static long scan_sum(const char *text, struct scan *sc, int *count,
                     struct scan **result)
{
    coro_t *co;
    void *out = NULL;
    long sum = 0;

    memset(sc, 0x55, sizeof *sc);
    sc->text = text;
    *count = 0;
    co = create_ok(numbers, sc);
    while (coro_resume(co, NULL, &out) == 0 && coro_state(co) == CORO_SUSPENDED) {
        sum += *(long *)out;
        ++*count;
    }
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), ESRCH); /* libcoro's own error */
    ck_assert_int_eq(coro_destroy(co), 0);
    *result = out;
    return sum;
}

START_TEST(error_out_of_a_coroutine)
{
    struct scan sc, *r;
    int n;

    ck_assert_int_eq(scan_sum(" 12 7  5 ", &sc, &n, &r), 24);
    ck_assert_int_eq(n, 3);
    ck_assert_ptr_eq(r, &sc);
    ck_assert_int_eq(r->err, 0);

    /* It fails part way: the values before the error came out. */
    ck_assert_int_eq(scan_sum("12 7 x4 5", &sc, &n, &r), 19);
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_eq(r, &sc);
    ck_assert_int_eq(r->err, EINVAL);
    ck_assert_str_eq(r->msg, "bad number at \"x4 5\"");

    /* An error number other than EINVAL: strtol's. */
    ck_assert_int_eq(scan_sum("1 99999999999999999999", &sc, &n, &r), 1);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(r->err, ERANGE);

    ck_assert_int_eq(scan_sum("", &sc, &n, &r), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(r->err, 0);
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc = tcase_create("states");

    tcase_add_test(tc, state_transitions);
    tcase_add_test(tc, state_normal);
    tcase_add_test(tc, values_both_ways);
    tcase_add_test(tc, values_null_allowed);
    tcase_add_test(tc, destroy_in_every_allowed_state);
    tcase_add_test(tc, destroy_suspended_reuse);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, create_einval);
    tcase_add_test(tc, attr_einval);
    tcase_add_test(tc, null_handles);
    tcase_add_test(tc, resume_finished_esrch);
    tcase_add_test(tc, yield_outside_eperm);
    tcase_add_test(tc, yield_outside_eperm_new_thread);
    tcase_add_test(tc, ebusy_self_and_ancestors);
    tcase_add_test(tc, resume_other_thread_eperm);
    tcase_add_test(tc, errors_leave_errno_alone);
    tcase_add_test(tc, create_enomem);
    tcase_add_test(tc, calls_leave_errno_alone);
    tcase_add_test(tc, error_out_of_a_coroutine);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, any_number_of_stack_sizes);
    tcase_add_test(tc, burst_gives_memory_back);
    tcase_add_test(tc, big_stack_gives_memory_back);
    tcase_add_test(tc, guard_size_attr);
    tcase_add_test_raise_signal(tc, wide_guard_catches_far_write, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("identity");
    tcase_add_test(tc, first_id_is_one);
    tcase_add_test(tc, ids_unique_increasing);
    tcase_add_test(tc, names);
    tcase_add_test(tc, stack_size_at_least_requested);
    suite_add_tcase(s, tc);

    tc = tcase_create("nesting");
    tcase_add_test(tc, nested_three);
    tcase_add_test(tc, yield_goes_to_current_resumer);
    tcase_add_test(tc, nested_deep);
    suite_add_tcase(s, tc);

    tc = tcase_create("scale");
    tcase_add_test(tc, hundred_thousand_suspended);
    tcase_add_test(tc, million_cycles_no_growth);
    suite_add_tcase(s, tc);

    tc = tcase_create("per-coroutine state");
    tcase_add_test(tc, errno_per_coroutine);
    tcase_add_test(tc, errno_nested);
    tcase_add_test(tc, rounding_per_coroutine);
    tcase_add_test(tc, printf_double_in_coroutine);
    suite_add_tcase(s, tc);

    tc = tcase_create("close");
    tcase_add_test(tc, close_runs_a_generators_cleanup);
    tcase_add_test(tc, close_of_ready_and_finished_destroys);
    tcase_add_test(tc, close_of_running_or_normal_is_busy);
    tcase_add_test(tc, close_nests);
    tcase_add_test(tc, close_refuses_spawned_and_foreign);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_test(tc, keys_are_per_coroutine);
    tcase_add_test(tc, keys_destroyed_with_closed_and_abandoned);
    tcase_add_test(tc, deleted_keys_are_no_keys);
    tcase_add_test(tc, many_keys);
    tcase_add_test(tc, destroy_runs_destructors_on_the_victims_values);
    tcase_add_test(tc, destructor_rounds_are_bounded);
    tcase_add_test(tc, keys_in_spawned_coroutines_and_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_test(tc, four_threads_concurrently);
    tcase_add_test(tc, dump_while_another_thread_churns);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(coro_suite());

    /* first_id_is_one and the RSS measures need a fresh process each. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

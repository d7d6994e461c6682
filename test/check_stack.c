/* Check suite of the stack layer: allocation and reuse through the
 * per-thread cache, guards and their fallbacks, failures that must leave
 * nothing mapped, and memory given back.  Every test runs in its own forked
 * child, so each starts with no stack carved and the kernel probe fresh. */
#define _GNU_SOURCE
#include "lib/coroutine.h"
#include "lib/stack.h"
#include "lib/registry.h"
#include "lib/sys.h"

#include <check.h>
#include "testutil.h"
#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* The guard tests expect a plain SIGSEGV, not ASan's report. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=0";
}

#define KIB ((size_t)1024)

/* The calling thread's stack cache (the coro layer keeps one per thread
 * in its context; these tests drive the stack layer alone). */
static __thread struct coro__stack_cache tc;

/* What the process has mapped: /proc/self/maps lines and address space.
 * A leaked slab shows in both (tens of MB of address space).  valgrind
 * maps memory of its own as the program runs, so there only the address
 * space is compared, with room for that. */
struct footprint {
    long lines;
    size_t vsize;
};

static struct footprint footprint(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return (struct footprint){maps_lines(), pages * (size_t)sysconf(_SC_PAGESIZE)};
}

static void footprint_unchanged(struct footprint before)
{
    struct footprint now = footprint();

    if (!RUNNING_ON_VALGRIND && !UNDER_TSAN) {
        ck_assert_int_eq(now.lines, before.lines);
        ck_assert_uint_eq(now.vsize, before.vsize);
    } else {
        ck_assert_uint_lt(now.vsize, before.vsize + 16 * KIB * KIB);
    }
}

static coro__stack_t *alloc_ok(size_t size)
{
    coro__stack_t *st = NULL;

    ck_assert_int_eq(coro__stack_alloc(&tc, size, 0, &st), 0);
    ck_assert_ptr_nonnull(st);
    ck_assert_uint_ge((size_t)(st->hi - st->lo), size - 4 * KIB);
    return st;
}

/* Puts every system call back to normal. */
static void disarm(void)
{
    for (int op = 0; op < CORO__SYS_NOPS; op++)
        coro__sys_fail((enum coro__sys_op)op, 0, 0, 0);
}

/* ------------------------------------------------------------ alloc, reuse */

START_TEST(alloc_gives_usable_memory)
{
    coro__stack_t *st = alloc_ok(64 * KIB);

    ck_assert_ptr_null(st->user);
    ck_assert_int_ne(st->guard, CORO__GUARD_CANARY);
    /* Every byte below the descriptor is ours. */
    memset(st->lo, 0xa5, (size_t)(st->hi - st->lo));
    ck_assert_ptr_eq(coro__stack_find(st->lo), st);
    ck_assert_ptr_eq(coro__stack_find(st->hi - 1), st);
    ck_assert_ptr_null(coro__stack_find_guard(st->lo));
    ck_assert_ptr_eq(coro__stack_find_guard(st->lo - 1), st);
    ck_assert_ptr_eq(coro__stack_find_guard(st->lo - CORO__GUARD_SIZE), st);
    coro__stack_free(&tc, st);
}
END_TEST

START_TEST(freed_stack_comes_back)
{
    coro__stack_t *a = alloc_ok(64 * KIB);

    coro__stack_free(&tc, a);
    ck_assert_ptr_eq(alloc_ok(64 * KIB), a);
}
END_TEST

START_TEST(cache_returns_same_set)
{
    enum { N = 32 };
    coro__stack_t *st[N], *again[N];

    for (int i = 0; i < N; i++)
        st[i] = alloc_ok(64 * KIB);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < i; j++) {
            ck_assert_ptr_ne(st[i], st[j]);
            /* no two overlap: guard + usable of each are disjoint */
            ck_assert(st[i]->lo - CORO__GUARD_SIZE >= st[j]->hi ||
                      st[j]->lo - CORO__GUARD_SIZE >= st[i]->hi);
        }
    for (int i = 0; i < N; i++)
        coro__stack_free(&tc, st[i]);
    for (int i = 0; i < N; i++)
        again[i] = alloc_ok(64 * KIB);
    /* The cache is last in, first out. */
    for (int i = 0; i < N; i++)
        ck_assert_ptr_eq(again[i], st[N - 1 - i]);
}
END_TEST

START_TEST(sizes_do_not_mix)
{
    coro__stack_t *small = alloc_ok(16 * KIB), *big = alloc_ok(1024 * KIB);

    ck_assert_uint_ge((size_t)(big->hi - big->lo), 1024 * KIB);
    coro__stack_free(&tc, small);
    /* A freed small stack is not handed out for a big request. */
    coro__stack_t *big2 = alloc_ok(1024 * KIB);
    ck_assert_ptr_ne(big2, small);
    ck_assert_ptr_eq(alloc_ok(16 * KIB), small);
}
END_TEST

/* ------------------------------------------------------------------ guards */

START_TEST(guard_faults_below_lo)
{
    coro__stack_t *st = alloc_ok(64 * KIB);

    st->lo[0] = 1;        /* the lowest usable byte is fine */
    st->lo[-1] = 1;       /* the byte below is not */
    ck_abort_msg("write into the guard did not fault");
}
END_TEST

START_TEST(guard_faults_at_its_bottom)
{
    coro__stack_t *st = alloc_ok(64 * KIB);

    st->lo[-(ptrdiff_t)CORO__GUARD_SIZE] = 1;
    ck_abort_msg("write into the guard did not fault");
}
END_TEST

START_TEST(guard_survives_reuse)
{
    coro__stack_t *st = alloc_ok(64 * KIB);

    coro__stack_free(&tc, st);
    st = alloc_ok(64 * KIB);
    st->lo[-4096] = 1;
    ck_abort_msg("write into the guard of a reused stack did not fault");
}
END_TEST

/* MADV_GUARD_INSTALL refused as on a kernel before 6.13: mprotect guards. */
/* The mappings that overlap [lo, hi), and how many of them are
 * inaccessible ("---p"): counted in [lo, hi) only, as valgrind adds
 * mappings of its own elsewhere. */
static long maps_in(const char *lo, const char *hi, long *no_access)
{
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long a, b;
    char perms[8], line[512];
    long n = 0;

    ck_assert_ptr_nonnull(f);
    *no_access = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 &&
            a < (uintptr_t)hi && b > (uintptr_t)lo) {
            n++;
            *no_access += strncmp(perms, "---", 3) == 0;
        }
    fclose(f);
    return n;
}

static coro__stack_t *mprotect_fallback_stack(long *maps_added)
{
    long no_access;

    coro__stack_reset_probe(1000);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    coro__stack_t *first = alloc_ok(64 * KIB);
    coro__stack_t *st = alloc_ok(64 * KIB);
    disarm();
    /* Around the second stack's guard: the first stack's memory, the
     * guard, the second stack's memory. */
    *maps_added = maps_in(st->lo - CORO__GUARD_SIZE - 1, st->lo + 1, &no_access) - 1;
    ck_assert_int_eq(no_access, 1);
    ck_assert_int_eq(first->guard, CORO__GUARD_MPROTECT);
    ck_assert_int_eq(st->guard, CORO__GUARD_MPROTECT);
    return st;
}

START_TEST(fallback_mprotect)
{
    long added;
    coro__stack_t *st = mprotect_fallback_stack(&added);

    /* A guard in the middle of a slab splits its mapping in three: two
     * mappings more than the slab alone. */
    ck_assert_int_eq(added, 2);
    memset(st->lo, 1, (size_t)(st->hi - st->lo));
    /* Learnt once: later stacks go straight to mprotect. */
    ck_assert_int_eq(alloc_ok(64 * KIB)->guard, CORO__GUARD_MPROTECT);
}
END_TEST

START_TEST(fallback_mprotect_faults)
{
    long added;
    coro__stack_t *st = mprotect_fallback_stack(&added);

    st->lo[-1] = 1;
    ck_abort_msg("write into an mprotect guard did not fault");
}
END_TEST

START_TEST(fallback_canary_when_budget_spent)
{
    /* Room for two mprotect guards (two mappings each), then canaries. */
    coro__stack_reset_probe(4);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    coro__stack_t *a = alloc_ok(64 * KIB), *b = alloc_ok(64 * KIB);
    coro__stack_t *c = alloc_ok(64 * KIB), *d = alloc_ok(64 * KIB);
    long no_access;
    disarm();

    ck_assert_int_eq(a->guard, CORO__GUARD_MPROTECT);
    ck_assert_int_eq(b->guard, CORO__GUARD_MPROTECT);
    ck_assert_int_eq(c->guard, CORO__GUARD_CANARY);
    ck_assert_int_eq(d->guard, CORO__GUARD_CANARY);
    /* Canaries cost no mapping: from c's guard to d's top, one. */
    ck_assert_int_eq(maps_in(c->lo - CORO__GUARD_SIZE, d->hi, &no_access), 1);
    ck_assert_int_eq(no_access, 0);
    ck_assert_int_eq(coro__stack_canary_broken(c), 0);
    c->lo[0] ^= 1;
    ck_assert_int_ne(coro__stack_canary_broken(c), 0);
    c->lo[0] ^= 1;
    ck_assert_int_eq(coro__stack_canary_broken(c), 0);
    /* Real guards never report a broken canary. */
    a->lo[0] ^= 1;
    ck_assert_int_eq(coro__stack_canary_broken(a), 0);
}
END_TEST

/* mprotect failing with ENOMEM means the kernel's mapping limit is hit
 * whatever our budget said: canaries from then on. */
START_TEST(fallback_canary_when_mprotect_enomem)
{
    coro__stack_reset_probe(1000);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    coro__sys_fail(CORO__SYS_MPROTECT, 1, ENOMEM, 0);
    coro__stack_t *a = alloc_ok(64 * KIB), *b = alloc_ok(64 * KIB);
    disarm();
    ck_assert_int_eq(a->guard, CORO__GUARD_CANARY);
    ck_assert_int_eq(b->guard, CORO__GUARD_CANARY);
}
END_TEST

/* A canary stack's memory given back above the watermark keeps a valid
 * canary when reused. */
START_TEST(canary_rewritten_after_release)
{
    enum { N = 400 };
    coro__stack_t *st[N];

    coro__stack_reset_probe(0);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    for (int i = 0; i < N; i++)
        st[i] = alloc_ok(64 * KIB);
    coro__sys_fail(CORO__SYS_MADVISE, 0, 0, 0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(st[i]->guard, CORO__GUARD_CANARY);
        coro__stack_free(&tc, st[i]);
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(coro__stack_canary_broken(alloc_ok(64 * KIB)), 0);
}
END_TEST

/* Coroutines on canary stacks: an overwritten canary aborts the switch
 * away from the coroutine. */
static void *smash_then_yield(void *unused)
{
    (void)unused;
    *(volatile uint64_t *)coro_self()->stack->lo = 0;
    coro_yield(NULL, NULL);
    return NULL;
}

static void *smash_then_return(void *unused)
{
    (void)unused;
    *(volatile uint64_t *)coro_self()->stack->lo = 0;
    return NULL;
}

static void *just_yield(void *unused)
{
    (void)unused;
    coro_yield(NULL, NULL);
    return NULL;
}

static void run_on_canary(coro_fn fn)
{
    coro_t *co;

    coro__stack_reset_probe(0);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    ck_assert_int_eq(coro_create(&co, fn, NULL, NULL), 0);
    disarm();
    ck_assert_int_eq(co->stack->guard, CORO__GUARD_CANARY);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    coro_destroy(co);
}

START_TEST(canary_intact_runs)
{
    run_on_canary(just_yield);
}
END_TEST

START_TEST(canary_smashed_yield_aborts)
{
    run_on_canary(smash_then_yield);
    ck_abort_msg("broken canary not detected on yield");
}
END_TEST

START_TEST(canary_smashed_return_aborts)
{
    run_on_canary(smash_then_return);
    ck_abort_msg("broken canary not detected on return");
}
END_TEST

/* ------------------------------------------------------ failures: ENOMEM */

/* Sets up everything that is made once (thread state, first pool), so
 * that a later failure can be compared against a stable mapping count. */
static void warm_up(void)
{
    coro_t *co;

    coro__stack_free(&tc, alloc_ok(64 * KIB));
    ck_assert_int_eq(coro_create(&co, just_yield, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
}

/* A size class not used yet, so that allocation must map a new slab. */
static size_t fresh_size(int k)
{
    return (size_t)(200 + k) * 4 * KIB;
}

static void expect_enomem(enum coro__sys_op op, int err, int k)
{
    coro__stack_t *st = (coro__stack_t *)&st;
    coro_t *co = (coro_t *)&co;
    coro_attr_t attr;

    warm_up();
    struct footprint before = footprint();

    coro__sys_fail(op, 1, err, 1);
    ck_assert_int_eq(coro__stack_alloc(&tc, fresh_size(k), 0, &st), ENOMEM);
    ck_assert_ptr_eq(st, (coro__stack_t *)&st); /* untouched */
    footprint_unchanged(before);

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, fresh_size(k + 1)), 0);
    ck_assert_int_eq(coro_create(&co, just_yield, NULL, &attr), ENOMEM);
    ck_assert_ptr_eq(co, (coro_t *)&co);
    footprint_unchanged(before);
    disarm();

    /* Nothing was learnt from the failure: the next try works. */
    st = alloc_ok(fresh_size(k));
    ck_assert_int_ne(st->guard, CORO__GUARD_CANARY);
    ck_assert_int_eq(coro_create(&co, just_yield, NULL, &attr), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
}

START_TEST(mmap_fails_enomem)
{
    expect_enomem(CORO__SYS_MMAP, ENOMEM, 0);
}
END_TEST

START_TEST(guard_madvise_fails_enomem)
{
    /* Any error but EINVAL: the kernel has the feature but refused. */
    expect_enomem(CORO__SYS_MADVISE, ENOMEM, 2);
}
END_TEST

START_TEST(guard_mprotect_fails_enomem)
{
    /* In the mprotect fallback, an error other than ENOMEM (the mapping
     * limit) is a failure, not a reason to use canaries. */
    coro__stack_reset_probe(1000);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    warm_up(); /* learns "no madvise guards" */
    coro__sys_fail(CORO__SYS_MADVISE, 0, 0, 0);
    ck_assert_int_eq(alloc_ok(64 * KIB)->guard, CORO__GUARD_MPROTECT);
    expect_enomem(CORO__SYS_MPROTECT, EACCES, 4);
}
END_TEST

/* A failure on a stack carved from a slab that already exists: possible
 * only when the kernel could not guard the whole slab at once. */
START_TEST(guard_fails_in_existing_slab)
{
    coro__sys_madvise_vec_enable(0);
    coro__stack_t *a = alloc_ok(64 * KIB), *b = (coro__stack_t *)&b;
    struct footprint before = footprint();

    coro__sys_fail(CORO__SYS_MADVISE, 1, ENOMEM, 0);
    ck_assert_int_eq(coro__stack_alloc(&tc, 64 * KIB, 0, &b), ENOMEM);
    footprint_unchanged(before);
    b = alloc_ok(64 * KIB);
    ck_assert_ptr_ne(a, b);
    ck_assert_int_ne(b->guard, CORO__GUARD_CANARY);
}
END_TEST

/* A new slab gets all its guards with one system call; when that call
 * fails, each stack still gets its own guard. */
START_TEST(slab_guarded_at_once)
{
    coro__stack_t *st[8];

    for (int i = 0; i < 8; i++)
        st[i] = alloc_ok(64 * KIB);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(st[i]->guard, CORO__GUARD_MADVISE);
    st[7]->lo[-1] = 1;
    ck_abort_msg("write into the guard of a bulk-guarded stack did not fault");
}
END_TEST

START_TEST(slab_guard_bulk_fails_falls_back)
{
    /* Call 1 is the slab's MADV_NOHUGEPAGE, call 2 the bulk guard install. */
    coro__sys_fail(CORO__SYS_MADVISE, 2, ENOMEM, 0);
    coro__stack_t *a = alloc_ok(64 * KIB);
    disarm();
    coro__stack_t *b = alloc_ok(64 * KIB);
    ck_assert_int_eq(a->guard, CORO__GUARD_MADVISE);
    ck_assert_int_eq(b->guard, CORO__GUARD_MADVISE);
    b->lo[-CORO__GUARD_SIZE] = 1;
    ck_abort_msg("write into the per-stack guard did not fault");
}
END_TEST

/* ---------------------------------------------------- memory given back */

START_TEST(memory_above_watermark_released)
{
    enum { N = 3000, CACHED = 1024 /* stack.c's CACHE_MAX */ };
    const size_t touch = 16 * KIB;
    static coro__stack_t *st[N];

    for (int i = 0; i < N; i++) {
        st[i] = alloc_ok(256 * KIB);
        memset(st[i]->hi - touch, 0x5a, touch); /* the top, as a stack grows */
    }
    size_t full = rss_bytes();
    for (int i = 0; i < N; i++)
        coro__stack_free(&tc, st[i]);
    size_t after = rss_bytes();

    /* The cache keeps a bounded number of stacks as they are (1024 at
     * most); the rest go back. */
    ck_assert_msg(after + (N - CACHED) * touch * 3 / 4 <= full,
                  "RSS %zu KiB with %d touched stacks, %zu KiB after freeing",
                  full / KIB, N, after / KIB);

    /* Released stacks still work, and read as zeroes. */
    int zeroed = 0;
    for (int i = 0; i < N; i++) {
        st[i] = alloc_ok(256 * KIB);
        zeroed += st[i]->hi[-touch] == 0;
        st[i]->hi[-touch] = 0x33;
    }
    ck_assert_int_ge(zeroed, N / 2);
}
END_TEST

/* ----------------------------------------------------------------- threads */

struct handoff {
    coro__stack_t *in;      /* a stack the thread frees */
    coro__stack_t *out[16]; /* what the thread allocated */
    int n;
    size_t size;
};

/* Frees h->in (allocated elsewhere), allocates again: the same stack. */
static void *free_then_alloc(void *p)
{
    struct handoff *h = p;

    coro__stack_free(&tc, h->in);
    coro__stack_t *st = NULL;
    if (coro__stack_alloc(&tc, h->size, 0, &st) == 0)
        h->out[0] = st;
    /* Freed again: it stays in this thread's cache until the thread ends
     * (the coro layer flushes a thread's cache at its exit). */
    coro__stack_free(&tc, st);
    coro__stack_cache_flush(&tc);
    return NULL;
}

START_TEST(freed_on_other_thread_reusable)
{
    struct handoff h = {.size = 96 * KIB};
    pthread_t t;

    h.in = alloc_ok(h.size);
    ck_assert_int_eq(pthread_create(&t, NULL, free_then_alloc, &h), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_ptr_eq(h.out[0], h.in);
    /* The thread has exited: its cache went back to the pool. */
    ck_assert_ptr_eq(alloc_ok(h.size), h.in);
}
END_TEST

static void *alloc_n_free_n(void *p)
{
    struct handoff *h = p;

    for (int i = 0; i < h->n; i++)
        if (coro__stack_alloc(&tc, h->size, 0, &h->out[i]) != 0)
            h->out[i] = NULL;
    for (int i = 0; i < h->n; i++)
        if (h->out[i])
            coro__stack_free(&tc, h->out[i]);
    coro__stack_cache_flush(&tc);
    return NULL;
}

START_TEST(thread_exit_returns_cache)
{
    struct handoff h = {.size = 112 * KIB, .n = 16};
    pthread_t t;
    coro__stack_t *got[16];

    ck_assert_int_eq(pthread_create(&t, NULL, alloc_n_free_n, &h), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < h.n; i++)
        ck_assert_ptr_nonnull(h.out[i]);

    /* Every stack the thread had cached comes back here, and no new one
     * is carved meanwhile. */
    for (int i = 0; i < h.n; i++)
        got[i] = alloc_ok(h.size);
    for (int i = 0; i < h.n; i++) {
        int found = 0;
        for (int j = 0; j < h.n; j++)
            found += got[i] == h.out[j];
        ck_assert_msg(found == 1, "stack %d not one of the exited thread's", i);
    }
    /* Threads keep going after an exit: a second round works the same. */
    for (int i = 0; i < h.n; i++)
        coro__stack_free(&tc, got[i]);
}
END_TEST

/* Many threads allocating and freeing the same size at once. */
static void *churn(void *p)
{
    size_t size = *(size_t *)p;
    coro__stack_t *st[64];

    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 64; i++) {
            if (coro__stack_alloc(&tc, size, 0, &st[i]) != 0)
                return (void *)1;
            *(volatile char *)st[i]->lo = (char)i;
            ((volatile char *)st[i]->hi)[-1] = (char)i;
        }
        for (int i = 0; i < 64; i++) {
            if (((volatile char *)st[i]->hi)[-1] != (char)i)
                return (void *)2;
            coro__stack_free(&tc, st[i]);
        }
    }
    return NULL;
}

START_TEST(threads_churn)
{
    size_t size = 32 * KIB;
    pthread_t t[4];
    void *r;

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, churn, &size), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(t[i], &r), 0);
        ck_assert_ptr_null(r);
    }
}
END_TEST


/* ------------------------------------------------------ quiet by default */

static void *yield_back(void *arg)
{
    return arg;
}

/* Runs one create on the mprotect fallback (as on a kernel without
 * MADV_GUARD_INSTALL) with stderr going to a file; returns what came out. */
static size_t stderr_of_fallback_create(char *buf, size_t len)
{
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fileno(tmp), 2), 2);

    coro__debug_env_reset();
    coro__stack_reset_probe(1000);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    /* A size of its own each time: a new pool, a stack carved and guarded
     * now (not one cached by the call before). */
    static size_t size = 64 * KIB;
    coro_attr_t attr;
    coro_attr_init(&attr);
    coro_attr_set_stack_size(&attr, size *= 2);
    coro_t *co;
    int err = coro_create(&co, yield_back, NULL, &attr);
    disarm();
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(co->stack->guard, CORO__GUARD_MPROTECT);
    ck_assert_int_eq(coro_destroy(co), 0);
    rewind(tmp);
    size_t n = fread(buf, 1, len - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return n;
}

START_TEST(fallback_quiet_unless_asked)
{
    char buf[512];

    unsetenv("CORO_DEBUG");
    ck_assert_uint_eq(stderr_of_fallback_create(buf, sizeof buf), 0);
    setenv("CORO_DEBUG", "0", 1);
    ck_assert_uint_eq(stderr_of_fallback_create(buf, sizeof buf), 0);
    setenv("CORO_DEBUG", "", 1);
    ck_assert_uint_eq(stderr_of_fallback_create(buf, sizeof buf), 0);
    setenv("CORO_DEBUG", "1", 1);
    ck_assert_uint_gt(stderr_of_fallback_create(buf, sizeof buf), 0);
    ck_assert_ptr_nonnull(strstr(buf, "MADV_GUARD_INSTALL"));
    unsetenv("CORO_DEBUG");
    coro__debug_env_reset();
}
END_TEST

/* ----------------------------------------------------------------- fork */

static atomic_int hammer_stop, hammer_going;

/* Creates and destroys without pause, with stacks no cache keeps (every
 * one takes the pool's lock) and cached ones. */
static void *hammer(void *arg)
{
    coro_attr_t big;

    (void)arg;
    coro_attr_init(&big);
    coro_attr_set_stack_size(&big, (size_t)300 << 20);
    for (int first = 1; !atomic_load(&hammer_stop); first = 0) {
        coro_t *a, *b;
        if (coro_create(&a, yield_back, NULL, &big) == 0)
            coro_destroy(a);
        if (coro_create(&b, yield_back, NULL, NULL) == 0)
            coro_destroy(b);
        if (first)
            atomic_store(&hammer_going, 1);
    }
    return NULL;
}

/* Forks a child whose first calls create, resume and destroy a coroutine
 * with attr (if not NULL), then one with the defaults, and exits 0 if all
 * worked.  Check's timeout handler is inherited: a stuck child must die
 * of its own alarm (secs), not kill the whole test's process group.
 * Returns the child's wait status (SIGALRM when it hung). */
static int fork_child_creates(unsigned secs, const coro_attr_t *attr)
{
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        coro_t *co;
        signal(SIGALRM, SIG_DFL);
        alarm(secs);
        if (attr && (coro_create(&co, yield_back, NULL, attr) != 0 ||
                     coro_resume(co, NULL, NULL) != 0 || coro_destroy(co) != 0))
            _exit(2);
        if (coro_create(&co, yield_back, NULL, NULL) != 0 ||
            coro_resume(co, NULL, NULL) != 0 || coro_destroy(co) != 0)
            _exit(3);
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* fork() while another thread holds a pool's or the table's lock: the
 * child's first create must not hang. */
START_TEST(fork_while_another_thread_creates)
{
    pthread_t t;

    /* valgrind runs a forked child slowly: fewer forks, more time. */
    const int forks = RUNNING_ON_VALGRIND ? 5 : 100;
    const int wait_ms = RUNNING_ON_VALGRIND ? 60000 : 10000;
    ck_assert_int_eq(pthread_create(&t, NULL, hammer, NULL), 0);
    /* Its first calls done: the process-wide pthread_once inits are (a
     * fork in the middle of one is glibc's to handle, which it does, but
     * TSan's pthread_once does not, and the child would hang there). */
    while (!atomic_load(&hammer_going))
        usleep(1000);
    coro_attr_t big;
    coro_attr_init(&big);
    coro_attr_set_stack_size(&big, (size_t)300 << 20);
    for (int i = 0; i < forks; i++) {
        int status = fork_child_creates((unsigned)wait_ms / 1000, &big);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "fork %d: child status 0x%x", i, status);
    }
    atomic_store(&hammer_stop, 1);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
}
END_TEST

/* ------------------------------------------------------ per-thread context */

/* pthread_key_create, as every call in this program makes it (the
 * executable's definition comes first): with slow_key set, it says it is
 * in and takes 100 ms, so that a fork lands while libcoro makes its key. */
static atomic_int slow_key, in_key;

/* glibc's other name for it: no dlsym, which a sanitizer's start (that
 * makes keys too) cannot take. */
extern int __pthread_key_create(pthread_key_t *key, void (*destructor)(void *));

/* Not instrumented: TSan makes its key with it before it is ready. */
__attribute__((no_sanitize("thread"))) int pthread_key_create(pthread_key_t *key,
                                                             void (*destructor)(void *))
{
    if (atomic_load(&slow_key)) {
        atomic_store(&in_key, 1);
        usleep(100000);
    }
    return __pthread_key_create(key, destructor);
}

static void *first_call(void *arg)
{
    coro_t *co;

    (void)arg;
    if (coro_create(&co, yield_back, NULL, NULL) != 0 || coro_destroy(co) != 0)
        return (void *)1;
    return NULL;
}

/* fork() while another thread makes libcoro's thread key (its lock
 * held): the child's first call must not hang on that lock. */
START_TEST(fork_while_the_key_is_made)
{
    pthread_t t;
    void *r;

    atomic_store(&slow_key, 1);
    ck_assert_int_eq(pthread_create(&t, NULL, first_call, NULL), 0);
    while (!atomic_load(&in_key))
        usleep(1000);
    int status = fork_child_creates(10, NULL);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    ck_assert_int_eq(pthread_join(t, &r), 0);
    ck_assert_ptr_null(r);
}
END_TEST

static void *spawn_and_exit(void *arg)
{
    for (int i = 0; i < 3000; i++)
        if (coro_spawn(NULL, yield_back, NULL, NULL) != 0)
            return (void *)1;
    (void)arg;
    return NULL; /* no coro_run: they never ran */
}

/* A thread that exits with spawned coroutines that never ran gives their
 * stacks and descriptors back, whatever order the exit destructors run
 * in: the slabs empty and go (but a pool's last), the chunks are free. */
START_TEST(thread_exit_frees_unrun_spawns)
{
    pthread_t t;
    void *r;

    ck_assert_int_eq(pthread_create(&t, NULL, spawn_and_exit, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &r), 0);
    ck_assert_ptr_null(r);
    /* 0: spawned coroutines get their stacks at their first run. */
    ck_assert_uint_le(coro__stack_slabs_mapped(), 1);
    ck_assert_uint_eq(coro__chunks_in_use(), 0);
}
END_TEST

/* Every thread-specific key taken before libcoro's first call: the
 * create fails with EAGAIN (and touches no other library's key), then
 * works once a key is free. */
START_TEST(key_create_failure_is_an_error)
{
    static pthread_key_t keys[PTHREAD_KEYS_MAX + 1];
    int n = 0;
    int mine = 42;

    while (n <= PTHREAD_KEYS_MAX && pthread_key_create(&keys[n], NULL) == 0)
        pthread_setspecific(keys[n++], &mine);
    ck_assert_int_gt(n, 0);
    coro_t *co = NULL;
    errno = 99;
    ck_assert_int_eq(coro_create(&co, yield_back, NULL, NULL), EAGAIN);
    ck_assert_int_eq(errno, 99);
    ck_assert_ptr_null(co);
    for (int i = 0; i < n; i++)
        ck_assert_ptr_eq(pthread_getspecific(keys[i]), &mine);
    ck_assert_int_eq(pthread_key_delete(keys[n - 1]), 0);
    ck_assert_int_eq(coro_create(&co, yield_back, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
    for (int i = 0; i < n - 1; i++)
        ck_assert_ptr_eq(pthread_getspecific(keys[i]), &mine);
}
END_TEST

/* ------------------------------------------------------------ lazy stacks */

static void count_any(const struct coro__view *v, void *arg)
{
    (void)v;
    (*(int *)arg)++;
}

static void count_live(const struct coro__view *v, void *arg)
{
    (*(int *)arg)++;
    ck_assert_ptr_null(v->lo);
    ck_assert_ptr_null(v->hi);
}

/* A coroutine made with CORO__LAZY_STACK costs its descriptor only until
 * its first resume, which gives it its stack; one that never runs is
 * destroyed without one. */
START_TEST(lazy_stack_at_first_resume)
{
    enum { N = 1000 };
    static coro_t *co[N];

    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(coro__create(&co[i], yield_back, (void *)(intptr_t)i, NULL,
                                      CORO__LAZY_STACK), 0);
        ck_assert_int_eq(coro_state(co[i]), CORO_READY);
        ck_assert_uint_ge(coro_stack_size(co[i]), CORO_DEFAULT_STACK_SIZE);
    }
    ck_assert_uint_eq(coro__stack_slabs_mapped(), 0);
    int live = 0;
    coro__registry_foreach(count_live, &live);
    ck_assert_int_eq(live, N);
    ck_assert_int_eq(coro_destroy(co[0]), 0);
    for (int i = 1; i < N; i++) {
        void *out = NULL;
        ck_assert_int_eq(coro_resume(co[i], NULL, &out), 0);
        ck_assert_ptr_eq(out, (void *)(intptr_t)i);
        ck_assert_ptr_nonnull(co[i]->stack);
        ck_assert_uint_eq((size_t)(co[i]->stack->hi - co[i]->stack->lo),
                          coro_stack_size(co[i]));
        ck_assert_int_eq(coro_destroy(co[i]), 0);
    }
    ck_assert_uint_eq(coro__stack_slabs_mapped(), 1);
}
END_TEST

/* A finished coroutine's stack can go before its destroy: the next
 * coroutine gets the same stack; the finished one keeps its identity. */
START_TEST(finished_drops_its_stack)
{
    coro_t *a, *b;

    ck_assert_int_eq(coro__create(&a, yield_back, NULL, NULL, CORO__LAZY_STACK), 0);
    ck_assert_int_eq(coro__drop_stack(a), EBUSY);
    ck_assert_int_eq(coro_resume(a, NULL, NULL), 0);
    coro__stack_t *st = a->stack;
    ck_assert_int_eq(coro__drop_stack(a), 0);
    ck_assert_ptr_null(a->stack);
    ck_assert_int_eq(coro__drop_stack(a), 0);
    ck_assert_int_eq(coro__create(&b, yield_back, NULL, NULL, CORO__LAZY_STACK), 0);
    ck_assert_int_eq(coro_resume(b, NULL, NULL), 0);
    ck_assert_ptr_eq(b->stack, st);
    ck_assert_int_eq(coro_state(a), CORO_FINISHED);
    ck_assert_uint_eq(coro_id(a) + 1, coro_id(b));
    int live = 0;
    coro__registry_foreach(count_any, &live);
    ck_assert_int_eq(live, 2);
    ck_assert_int_eq(coro_destroy(a), 0);
    ck_assert_int_eq(coro_destroy(b), 0);
}
END_TEST

/* No stack at the first resume: ENOMEM from coro_resume, errno as it
 * was, the coroutine still READY; it runs once memory can be had. */
START_TEST(lazy_stack_enomem_at_first_resume)
{
    coro_t *co;
    coro_attr_t attr;

    coro_attr_init(&attr);
    /* Once on another size, so that whatever the failing path allocates
     * for itself (a sanitizer's allocator maps on first use) is there. */
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 200 * KIB), 0);
    ck_assert_int_eq(coro__create(&co, yield_back, &attr, &attr, CORO__LAZY_STACK), 0);
    coro__sys_fail(CORO__SYS_MMAP, 1, ENOMEM, 1);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), ENOMEM);
    disarm();
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 100 * KIB), 0);
    ck_assert_int_eq(coro__create(&co, yield_back, &attr, &attr, CORO__LAZY_STACK), 0);
    struct footprint before = footprint();
    coro__sys_fail(CORO__SYS_MMAP, 1, ENOMEM, 1);
    errno = 55;
    ck_assert_int_eq(coro_resume(co, NULL, NULL), ENOMEM);
    ck_assert_int_eq(errno, 55);
    ck_assert_int_eq(coro_state(co), CORO_READY);
    ck_assert_ptr_null(co->stack);
    disarm();
    footprint_unchanged(before);
    void *out = NULL;
    ck_assert_int_eq(coro_resume(co, NULL, &out), 0);
    ck_assert_ptr_eq(out, &attr);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

static Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = tcase_create("alloc");

    tcase_add_test(tc, alloc_gives_usable_memory);
    tcase_add_test(tc, freed_stack_comes_back);
    tcase_add_test(tc, cache_returns_same_set);
    tcase_add_test(tc, sizes_do_not_mix);
    suite_add_tcase(s, tc);

    tc = tcase_create("guard");
    tcase_add_test_raise_signal(tc, guard_faults_below_lo, SIGSEGV);
    tcase_add_test_raise_signal(tc, guard_faults_at_its_bottom, SIGSEGV);
    tcase_add_test_raise_signal(tc, guard_survives_reuse, SIGSEGV);
    tcase_add_test(tc, fallback_mprotect);
    tcase_add_test_raise_signal(tc, fallback_mprotect_faults, SIGSEGV);
    tcase_add_test(tc, fallback_canary_when_budget_spent);
    tcase_add_test(tc, fallback_canary_when_mprotect_enomem);
    tcase_add_test(tc, canary_rewritten_after_release);
    tcase_add_test(tc, canary_intact_runs);
    tcase_add_test_raise_signal(tc, canary_smashed_yield_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, canary_smashed_return_aborts, SIGABRT);
    suite_add_tcase(s, tc);

    tc = tcase_create("enomem");
    tcase_add_test(tc, mmap_fails_enomem);
    tcase_add_test(tc, guard_madvise_fails_enomem);
    tcase_add_test(tc, guard_mprotect_fails_enomem);
    tcase_add_test(tc, guard_fails_in_existing_slab);
    tcase_add_test_raise_signal(tc, slab_guarded_at_once, SIGSEGV);
    tcase_add_test_raise_signal(tc, slab_guard_bulk_fails_falls_back, SIGSEGV);
    suite_add_tcase(s, tc);

    tc = tcase_create("memory");
    tcase_add_test(tc, memory_above_watermark_released);
    suite_add_tcase(s, tc);

    tc = tcase_create("context");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fallback_quiet_unless_asked);
    tcase_add_test(tc, fork_while_another_thread_creates);
    tcase_add_test(tc, fork_while_the_key_is_made);
    tcase_add_test(tc, thread_exit_frees_unrun_spawns);
    tcase_add_test(tc, key_create_failure_is_an_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("lazy");
    tcase_add_test(tc, lazy_stack_at_first_resume);
    tcase_add_test(tc, lazy_stack_enomem_at_first_resume);
    tcase_add_test(tc, finished_drops_its_stack);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_test(tc, freed_on_other_thread_reusable);
    tcase_add_test(tc, thread_exit_returns_cache);
    tcase_add_test(tc, threads_churn);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stack_suite());

    /* Each test needs a process of its own: the probe, the injected
     * failures and the caches are process-wide. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

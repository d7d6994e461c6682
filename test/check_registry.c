/* Check suite of the registry (debug layer): coro_debug_root leads a
 * reader that knows only its offsets to exactly the live coroutines, with
 * their ids, names, states and saved registers; coro__registry_foreach
 * sees the same set.  The gdb extension (test/gdb) walks the same way. */
#define _GNU_SOURCE
#include "lib/coroutine.h"
#include "lib/registry.h"
#include "lib/stack.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#define MAXCO 64

static const struct coro_debug_root *r = &coro_debug_root;

static const void *ptr_at(const void *base, uint32_t off)
{
    const void *p;

    memcpy(&p, (const char *)base + off, sizeof p);
    return p;
}

static size_t size_at(const void *base, uint32_t off)
{
    size_t n;

    memcpy(&n, (const char *)base + off, sizeof n);
    return n;
}

static uint32_t u32_at(const void *base, uint32_t off)
{
    uint32_t v;

    memcpy(&v, (const char *)base + off, sizeof v);
    return v;
}

/* A debugger's walk, through the root's offsets only: every live
 * descriptor of every chunk, and the stack bounds (lows, highs) it names. */
static int walk3(const char *found[], const char *lows[], const char *highs[], int max)
{
    int n = 0;

    for (const char *k = ptr_at(r->chunks, 0); k; k = ptr_at(k, r->chunk_next)) {
        uint32_t count = u32_at(k, r->chunk_count);
        for (uint32_t i = 0; i < count; i++) {
            const char *co = k + r->chunk_first + (size_t)i * r->coro_size;
            if ((u32_at(co, r->coro_seq) & 3) != 2)
                continue;
            const char *st = ptr_at(co, r->coro_stack);
            ck_assert_ptr_nonnull(st);
            ck_assert_int_lt(n, max);
            lows[n] = ptr_at(st, r->stack_lo);
            if (highs)
                highs[n] = ptr_at(st, r->stack_hi);
            ck_assert_uint_eq(size_at(co, r->coro_guard), CORO__GUARD_SIZE);
            found[n++] = co;
        }
    }
    return n;
}

static int walk(const char *found[], const char *lows[], int max)
{
    return walk3(found, lows, NULL, max);
}

static int index_of(const char *const set[], int n, const void *p)
{
    for (int i = 0; i < n; i++)
        if (set[i] == p)
            return i;
    return -1;
}

static void *yielder(void *arg)
{
    coro_yield(NULL, NULL);
    return arg;
}

static void *returner(void *arg)
{
    return arg;
}

static coro_t *make(const char *name, size_t stack, coro_fn fn)
{
    coro_attr_t attr;
    coro_t *co;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_name(&attr, name), 0);
    if (stack)
        ck_assert_int_eq(coro_attr_set_stack_size(&attr, stack), 0);
    ck_assert_int_eq(coro_create(&co, fn, NULL, &attr), 0);
    return co;
}

/* The fields a reader checks before it trusts the rest. */
START_TEST(root_describes_itself)
{
    ck_assert_uint_eq(r->magic, CORO_DEBUG_MAGIC);
    ck_assert_uint_eq(r->version, CORO_DEBUG_VERSION);
    ck_assert_uint_eq(r->size, sizeof *r);
    ck_assert_uint_eq(r->ptr_size, sizeof(void *));
    ck_assert_ptr_eq(r->chunks, (const void *)&coro__chunks);
    ck_assert_uint_eq(r->coro_size, sizeof(struct coro));
    ck_assert_uint_eq(r->coro_name_size, CORO_NAME_MAX + 1);
    ck_assert_uint_eq(r->ctx_mcontext, offsetof(ucontext_t, uc_mcontext));
}
END_TEST

START_TEST(empty_before_any_coroutine)
{
    const char *found[MAXCO], *lows[MAXCO];

    ck_assert_int_eq(walk(found, lows, MAXCO), 0);
}
END_TEST

struct seen {
    coro_t *set[MAXCO];
    int n;
};

static void collect(const struct coro__view *v, void *arg)
{
    struct seen *s = arg;

    ck_assert_int_lt(s->n, MAXCO);
    ck_assert_uint_eq(coro_id(v->co), coro_id(v->real));
    ck_assert_str_eq(coro_name(v->co), coro_name(v->real));
    ck_assert_ptr_eq(v->lo, v->real->stack->lo);
    ck_assert_ptr_eq(v->hi, v->real->stack->hi);
    s->set[s->n++] = (coro_t *)v->real;
}

/* Live coroutines of two stack sizes (two pools), in every state a
 * debugger sees, and destroyed ones that must not show. */
START_TEST(walk_finds_exactly_the_live)
{
    coro_t *co[8];
    const char *names[8] = {"ready", "susp", "fin", "gone", "big-susp",
                            "big-ready", "reused", "big-gone"};

    co[0] = make(names[0], 0, yielder);
    co[1] = make(names[1], 0, yielder);
    ck_assert_int_eq(coro_resume(co[1], NULL, NULL), 0);
    co[2] = make(names[2], 0, returner);
    ck_assert_int_eq(coro_resume(co[2], NULL, NULL), 0);
    co[3] = make(names[3], 0, yielder);
    co[4] = make(names[4], 1 << 20, yielder);
    ck_assert_int_eq(coro_resume(co[4], NULL, NULL), 0);
    co[5] = make(names[5], 1 << 20, yielder);
    co[7] = make(names[7], 1 << 20, yielder);
    ck_assert_int_eq(coro_destroy(co[3]), 0);
    ck_assert_int_eq(coro_destroy(co[7]), 0);
    co[6] = make(names[6], 0, yielder);   /* takes gone's stack */

    const char *found[MAXCO], *lows[MAXCO], *highs[MAXCO];
    int n = walk3(found, lows, highs, MAXCO);
    ck_assert_int_eq(n, 6);
    static const int live[] = {0, 1, 2, 4, 5, 6};
    static const int state[] = {CORO_READY, CORO_SUSPENDED, CORO_FINISHED,
                                CORO_SUSPENDED, CORO_READY, CORO_READY};
    for (int i = 0; i < 6; i++) {
        const char *p = (const char *)co[live[i]];
        int at = index_of(found, n, p);
        ck_assert_int_ge(at, 0);
        uint64_t id;
        int st;
        coro_fn fn;
        memcpy(&id, p + r->coro_id, sizeof id);
        memcpy(&st, p + r->coro_state, sizeof st);
        memcpy(&fn, p + r->coro_fn, sizeof fn);
        ck_assert_uint_eq(id, coro_id(co[live[i]]));
        ck_assert_int_eq(st, state[i]);
        ck_assert_ptr_eq((void *)fn, (void *)(live[i] == 2 ? returner : yielder));
        ck_assert_str_eq(p + r->coro_name, names[live[i]]);
        /* The stack is [lo, hi): as big as coro_stack_size, and the
         * descriptor is on no stack. */
        ck_assert_uint_eq((size_t)(highs[at] - lows[at]), coro_stack_size(co[live[i]]));
        ck_assert(p < lows[at] - CORO__GUARD_SIZE || p >= highs[at]);
        ck_assert_ptr_null(coro__stack_find(p));
    }

    struct seen s = {.n = 0};
    coro__registry_foreach(collect, &s);
    ck_assert_int_eq(s.n, n);
    for (int i = 0; i < s.n; i++)
        ck_assert_int_ge(index_of(found, n, s.set[i]), 0);
}
END_TEST

/* A suspended coroutine's saved stack pointer and resume address, read
 * at the root's offsets, lie on its stack and in the library's code. */
START_TEST(saved_registers_are_where_the_root_says)
{
    coro_t *co = make("regs", 0, yielder);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);

    const char *found[MAXCO], *lows[MAXCO], *highs[MAXCO];
    ck_assert_int_eq(walk3(found, lows, highs, MAXCO), 1);
    const char *mc = found[0] + r->coro_ctx + r->ctx_mcontext;
    const ucontext_t *uc = (const ucontext_t *)(found[0] + r->coro_ctx);
    ck_assert_ptr_eq(mc, (const char *)&uc->uc_mcontext);
    ck_assert_ptr_eq(found[0] + r->coro_ctx, (const char *)&co->ctx);
#if defined(__x86_64__) || defined(__aarch64__)
    /* The register maps the gdb extension uses. */
    uintptr_t sp, pc;
#if defined(__x86_64__)
    memcpy(&sp, mc + 8 * REG_RSP, sizeof sp);
    memcpy(&pc, mc + 8 * REG_RIP, sizeof pc);
#else
    memcpy(&sp, mc + 8 + 8 * 31, sizeof sp);
    memcpy(&pc, mc + 8 + 8 * 32, sizeof pc);
#endif
    ck_assert_uint_gt(sp, (uintptr_t)lows[0]);
    ck_assert_uint_lt(sp, (uintptr_t)highs[0]);
    ck_assert_uint_ne(pc, 0);
#endif
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
    ck_assert_int_eq(walk(found, lows, MAXCO), 0);
}
END_TEST

static void *other_thread(void *arg)
{
    coro_t *co = make("elsewhere", 0, yielder);

    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    *(coro_t **)arg = co;
    return NULL;
}

/* One registry for the process: a coroutine made on another thread, which
 * has exited since, is still found. */
START_TEST(walk_sees_every_thread)
{
    pthread_t t;
    coro_t *co = NULL;

    ck_assert_int_eq(pthread_create(&t, NULL, other_thread, &co), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    const char *found[MAXCO], *lows[MAXCO];
    ck_assert_int_eq(walk(found, lows, MAXCO), 1);
    ck_assert_ptr_eq(found[0], (const char *)co);
    ck_assert_str_eq(found[0] + r->coro_name, "elsewhere");
}
END_TEST

/* Chunks fill up and new ones are linked in front: the walk follows the
 * list through all of them. */
START_TEST(walk_follows_the_chunk_list)
{
    enum { N = 5000 };   /* more than two chunks of descriptors (1 MiB each) */
    static coro_t *co[N];

    for (int i = 0; i < N; i++)
        co[i] = make("many", 0, yielder);
    int chunks = 0;
    for (const struct coro__chunk *k = coro__chunks; k; k = k->next)
        chunks++;
    ck_assert_int_gt(chunks, 1);
    const char **found = malloc(sizeof *found * N), **lows = malloc(sizeof *lows * N);
    ck_assert_ptr_nonnull(found);
    ck_assert_ptr_nonnull(lows);
    int n = walk(found, lows, N);
    ck_assert_int_eq(n, N);
    for (int i = 0; i < N; i++)
        ck_assert_int_ge(index_of(found, n, co[i]), 0);
    free(found);
    free(lows);
}
END_TEST

static Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");

    tcase_add_test(tc, root_describes_itself);
    tcase_add_test(tc, empty_before_any_coroutine);
    tcase_add_test(tc, walk_finds_exactly_the_live);
    tcase_add_test(tc, saved_registers_are_where_the_root_says);
    tcase_add_test(tc, walk_sees_every_thread);
    tcase_add_test(tc, walk_follows_the_chunk_list);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(registry_suite());

    /* Each test starts from an empty registry: a process of its own. */
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* A self-checking test of the core (ctx and coro layers) that needs no
 * test framework: built where Check is not available, such as an aarch64
 * cross build run under qemu-user.  Uses only the public API plus
 * lib/ctx.h.  Prints one line per test and "N passed, N failed"; exits
 * non-zero when any test failed. */
#define _GNU_SOURCE
#include "coro.h"
#include "lib/ctx.h"

#include <errno.h>
#include <execinfo.h>
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__)
#include <asm/sigcontext.h>
#endif

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                     \
            return 1;                                                     \
        }                                                                 \
    } while (0)

/* A check made inside a coroutine: it records the first failure and the
 * test that resumed it reports it. */
static const char *co_failure;
static int co_failure_line;
#define CO_CHECK(cond)                                                    \
    do {                                                                  \
        if (!(cond) && !co_failure) {                                     \
            co_failure = #cond;                                           \
            co_failure_line = __LINE__;                                   \
        }                                                                 \
    } while (0)
#define CHECK_CO_CHECKS()                                                 \
    do {                                                                  \
        if (co_failure) {                                                 \
            fprintf(stderr, "%s:%d: check failed in a coroutine: %s\n",   \
                    __FILE__, co_failure_line, co_failure);               \
            co_failure = NULL;                                            \
            return 1;                                                     \
        }                                                                 \
    } while (0)

/* ------------------------------------------------------------ ctx layer */

struct raw {
    ucontext_t main, co;
    long count;
    int round;          /* FE_* mode the entry saw on its first run */
    int swap_ret;       /* OR of what the entry's swaps returned */
    uintptr_t sp_mod16; /* OR of the entry's frame addresses mod 16 */
    char text[32];
};

static void raw_entry(void *p)
{
    struct raw *r = p;

    r->round = fegetround();
    snprintf(r->text, sizeof r->text, "%.3f", 1.0 / 8);
    for (;;) {
        r->sp_mod16 |= (uintptr_t)__builtin_frame_address(0) % 16;
        r->count++;
        r->swap_ret |= coro__ctx_swap(&r->co, &r->main, 0);
    }
}

static int test_ctx_swap(void)
{
    static struct raw r;
    size_t size = 65536;
    char *stack = malloc(size + 64);

    CHECK(stack != NULL);
    memset(&r, 0, sizeof r);
    /* An odd top: make must align the entry stack itself. */
    CHECK(fesetround(FE_UPWARD) == 0);
    coro__ctx_make(&r.co, stack + 3, size + 5, raw_entry, &r);
    CHECK(fesetround(FE_TONEAREST) == 0);
    for (long i = 1; i <= 1000; i++) {
        CHECK(coro__ctx_swap(&r.main, &r.co, 0) == 0);
        CHECK(r.count == i);
    }
    CHECK(r.swap_ret == 0);
    CHECK(r.sp_mod16 == 0);
    CHECK(r.round == FE_UPWARD);       /* rounding mode copied at make */
    CHECK(fegetround() == FE_TONEAREST);
    CHECK(strcmp(r.text, "0.125") == 0);
#if defined(__aarch64__)
    {
        /* The saved state sits where glibc's getcontext puts it. */
        const struct fpsimd_context *fp =
            (const void *)r.co.uc_mcontext.__reserved;
        const struct _aarch64_ctx *end = (const void *)(fp + 1);
        uint64_t fpcr;
        char here;
        __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
        CHECK(fp->head.magic == FPSIMD_MAGIC);
        CHECK(fp->head.size == sizeof *fp);
        CHECK(end->magic == 0 && end->size == 0);
        /* The creator's FPCR, rounding mode RP (toward +inf, bits 22-23). */
        CHECK(fp->fpcr == (((uint32_t)fpcr & ~(3u << 22)) | (1u << 22)));
        /* The coroutine's saved sp is inside its stack, its pc past the
         * entry; the thread's saved sp is near this frame. */
        CHECK(r.co.uc_mcontext.sp > (uintptr_t)stack &&
              r.co.uc_mcontext.sp < (uintptr_t)stack + size);
        CHECK(r.co.uc_mcontext.sp % 16 == 0);
        CHECK(r.co.uc_mcontext.pc != 0 &&
              r.co.uc_mcontext.pc == r.co.uc_mcontext.regs[30]);
        CHECK(r.main.uc_mcontext.sp % 16 == 0);
        CHECK((uintptr_t)&here - r.main.uc_mcontext.sp < 65536);
    }
#endif
    free(stack); /* raw_entry is abandoned where it stands */
    return 0;
}

/* ------------------------------------------------------ values, states */

static void *gen(void *arg)
{
    long n = (long)arg, sum = 0;
    coro_t *self = coro_self();

    CO_CHECK(self != NULL);
    CO_CHECK(coro_state(self) == CORO_RUNNING);
    for (long i = 0; i < n; i++) {
        void *in = NULL;
        CO_CHECK(coro_yield((void *)(i * 3), &in) == 0);
        CO_CHECK((long)in == i * 7);
        sum += (long)in;
        CO_CHECK(coro_self() == self);
    }
    return (void *)sum;
}

static int test_values(void)
{
    coro_t *co;
    void *out = NULL;
    long n = 500, want = 0;

    CHECK(coro_self() == NULL);
    CHECK(coro_yield(NULL, NULL) == EPERM);
    CHECK(coro_create(&co, gen, (void *)n, NULL) == 0);
    CHECK(coro_state(co) == CORO_READY);
    CHECK(coro_resume(co, (void *)12345, &out) == 0); /* first in is ignored */
    for (long i = 0; i < n; i++) {
        CHECK(coro_state(co) == CORO_SUSPENDED);
        CHECK((long)out == i * 3);
        CHECK(coro_resume(co, (void *)(i * 7), &out) == 0);
        want += i * 7;
    }
    CHECK(coro_state(co) == CORO_FINISHED);
    CHECK((long)out == want);
    CHECK(coro_resume(co, NULL, NULL) == ESRCH);
    CHECK(coro_destroy(co) == 0);
    CHECK(coro_self() == NULL);
    CHECK_CO_CHECKS();
    return 0;
}

/* ------------------------------------------------ registers (aarch64) */

#if defined(__aarch64__)
/* Loads x19-x28 and d8-d15 from x_in/d_in, calls fn(arg), and stores the
 * same registers into x_out/d_out: whatever fn does, the callee-saved
 * registers must come back. */
struct regblock {
    uint64_t x_in[10];
    double d_in[8];
    uint64_t x_out[10];
    double d_out[8];
    void (*fn)(void *);
    void *arg;
};
_Static_assert(offsetof(struct regblock, d_in) == 80, "d_in");
_Static_assert(offsetof(struct regblock, x_out) == 144, "x_out");
_Static_assert(offsetof(struct regblock, d_out) == 224, "d_out");
_Static_assert(offsetof(struct regblock, fn) == 288, "fn");

static void call_with_regs(struct regblock *b)
{
    register struct regblock *x0 __asm__("x0") = b;
    __asm__ volatile(
        "str x0, [sp, #-16]!\n\t"
        "ldp x19, x20, [x0, #0]\n\t"
        "ldp x21, x22, [x0, #16]\n\t"
        "ldp x23, x24, [x0, #32]\n\t"
        "ldp x25, x26, [x0, #48]\n\t"
        "ldp x27, x28, [x0, #64]\n\t"
        "ldp d8, d9, [x0, #80]\n\t"
        "ldp d10, d11, [x0, #96]\n\t"
        "ldp d12, d13, [x0, #112]\n\t"
        "ldp d14, d15, [x0, #128]\n\t"
        "ldp x9, x0, [x0, #288]\n\t"
        "blr x9\n\t"
        "ldr x0, [sp], #16\n\t"
        "stp x19, x20, [x0, #144]\n\t"
        "stp x21, x22, [x0, #160]\n\t"
        "stp x23, x24, [x0, #176]\n\t"
        "stp x25, x26, [x0, #192]\n\t"
        "stp x27, x28, [x0, #208]\n\t"
        "stp d8, d9, [x0, #224]\n\t"
        "stp d10, d11, [x0, #240]\n\t"
        "stp d12, d13, [x0, #256]\n\t"
        "stp d14, d15, [x0, #272]\n\t"
        : "+r"(x0)
        :
        : "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11",
          "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x19", "x20",
          "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x30",
          "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10",
          "v11", "v12", "v13", "v14", "v15", "v16", "v17", "v18", "v19",
          "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27", "v28",
          "v29", "v30", "v31", "cc", "memory");
}

static void fill(struct regblock *b, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 10; i++)
        b->x_in[i] = seed * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0x1000193;
    for (int i = 0; i < 8; i++)
        b->d_in[i] = (double)(seed % 1000) + i / 8.0 + 0.5;
}

static int same(const struct regblock *b)
{
    return memcmp(b->x_in, b->x_out, sizeof b->x_in) == 0 &&
           memcmp(b->d_in, b->d_out, sizeof b->d_in) == 0;
}

static void yield_it(void *p)
{
    (void)p;
    coro_yield(NULL, NULL);
}

static void resume_it(void *co)
{
    coro_resume(co, NULL, NULL);
}

static void *reg_body(void *arg)
{
    long rounds = (long)arg;
    struct regblock b;

    for (long i = 0; i < rounds; i++) {
        fill(&b, 1000 + (uint64_t)i);
        b.fn = yield_it;
        call_with_regs(&b);
        CO_CHECK(same(&b));
    }
    return NULL;
}

static int test_registers(void)
{
    coro_t *co;
    struct regblock b;
    long rounds = 100;

    CHECK(coro_create(&co, reg_body, (void *)rounds, NULL) == 0);
    for (long i = 0; i <= rounds; i++) {
        fill(&b, 7 + (uint64_t)i);
        b.fn = resume_it;
        b.arg = co;
        call_with_regs(&b);
        CHECK(same(&b));
    }
    CHECK(coro_state(co) == CORO_FINISHED);
    CHECK(coro_destroy(co) == 0);
    CHECK_CO_CHECKS();
    return 0;
}
#endif

/* ------------------------------------------------------ floating point */

static volatile double one = 1.0, three = 3.0;

static void *fp_body(void *arg)
{
    double nearest = *(double *)arg;

    CO_CHECK(fegetround() == FE_DOWNWARD); /* the creator's, at create */
    CO_CHECK(one / three == nearest);      /* 1/3 rounds down to nearest */
    fesetround(FE_UPWARD);
    coro_yield(NULL, NULL);
    CO_CHECK(fegetround() == FE_UPWARD);
    CO_CHECK(one / three > nearest);

    feclearexcept(FE_ALL_EXCEPT);
    feraiseexcept(FE_OVERFLOW);
    coro_yield(NULL, NULL);
    CO_CHECK(fetestexcept(FE_OVERFLOW) != 0);
    CO_CHECK(fetestexcept(FE_DIVBYZERO) == 0);
    return NULL;
}

static int test_fenv(void)
{
    coro_t *co;
    double nearest = one / three;

    CHECK(fesetround(FE_DOWNWARD) == 0);
    CHECK(coro_create(&co, fp_body, &nearest, NULL) == 0);
    CHECK(fesetround(FE_TONEAREST) == 0);
    CHECK(coro_resume(co, NULL, NULL) == 0);
    CHECK(fegetround() == FE_TONEAREST);
    CHECK(one / three == nearest);

    feclearexcept(FE_ALL_EXCEPT);
    CHECK(coro_resume(co, NULL, NULL) == 0);
    CHECK(fegetround() == FE_TONEAREST);
    CHECK(fetestexcept(FE_OVERFLOW) == 0);
    feraiseexcept(FE_DIVBYZERO);
    CHECK(coro_resume(co, NULL, NULL) == 0);
    CHECK(fetestexcept(FE_DIVBYZERO) != 0);
    CHECK(fetestexcept(FE_OVERFLOW) == 0);
    feclearexcept(FE_ALL_EXCEPT);
    CHECK(coro_state(co) == CORO_FINISHED);
    CHECK(coro_destroy(co) == 0);
    CHECK_CO_CHECKS();
    return 0;
}

/* --------------------------------------------------------------- errno */

static void *errno_body(void *arg)
{
    (void)arg;
    CO_CHECK(errno == 0);
    errno = EILSEQ;
    coro_yield(NULL, NULL);
    CO_CHECK(errno == EILSEQ);
    errno = ERANGE;
    return NULL;
}

static int test_errno(void)
{
    coro_t *co;

    errno = EAGAIN;
    CHECK(coro_create(&co, errno_body, NULL, NULL) == 0);
    CHECK(coro_resume(co, NULL, NULL) == 0);
    CHECK(errno == EAGAIN);
    errno = EDOM;
    CHECK(coro_resume(co, NULL, NULL) == 0);
    CHECK(errno == EDOM);
    CHECK(coro_destroy(co) == 0);
    CHECK_CO_CHECKS();
    return 0;
}

/* ------------------------------------------------------- stack and ABI */

static void *print_body(void *arg)
{
    char buf[64];
    double x = *(double *)arg;

    CO_CHECK((uintptr_t)__builtin_frame_address(0) % 16 == 0);
    snprintf(buf, sizeof buf, "%.4f %g %e", x, x * 2, x / 4);
    CO_CHECK(strcmp(buf, "2.7182 5.4364 6.795500e-01") == 0);
    printf("  printf of a double in a coroutine: %.4f\n", x);
    return NULL;
}

/* Uses about depth KiB of stack. */
static long deep(int depth)
{
    volatile char pad[1024];

    pad[0] = (char)depth;
    pad[sizeof pad - 1] = (char)depth;
    return depth == 0 ? pad[0] : deep(depth - 1) + pad[sizeof pad - 1];
}

/* The unwinder must stop at the coroutine's entry frame (its return
 * address is marked undefined) instead of walking into garbage. */
static void *bt_body(void *arg)
{
    void *frames[64];

    (void)arg;
    return (void *)(long)backtrace(frames, 64);
}

static void *deep_body(void *arg)
{
    return (void *)deep((int)(long)arg);
}

static int test_stack(void)
{
    coro_t *co;
    void *out;
    double x = 2.7182;
    coro_attr_t attr;

    CHECK(coro_create(&co, print_body, &x, NULL) == 0);
    CHECK(coro_resume(co, NULL, NULL) == 0);
    CHECK(coro_destroy(co) == 0);

    CHECK(coro_create(&co, bt_body, NULL, NULL) == 0);
    CHECK(coro_resume(co, NULL, &out) == 0);
    CHECK((long)out >= 2 && (long)out < 16);
    CHECK(coro_destroy(co) == 0);

    /* 192 KiB of frames in a 256 KiB stack. */
    coro_attr_init(&attr);
    CHECK(coro_attr_set_stack_size(&attr, 262144) == 0);
    CHECK(coro_create(&co, deep_body, (void *)192L, &attr) == 0);
    CHECK(coro_resume(co, NULL, &out) == 0);
    CHECK((long)out == 192L * 193 / 2);
    CHECK(coro_destroy(co) == 0);
    CHECK_CO_CHECKS();
    return 0;
}

/* ------------------------------------------------------------- nesting */

static void *inner(void *arg)
{
    coro_t *outer = arg;

    CO_CHECK(coro_state(outer) == CORO_NORMAL);
    CO_CHECK(coro_resume(outer, NULL, NULL) == EBUSY);
    CO_CHECK(coro_yield((void *)1, NULL) == 0);
    CO_CHECK(coro_yield((void *)2, NULL) == 0);
    return (void *)3;
}

static void *outer_body(void *arg)
{
    coro_t *in, *self = coro_self();
    void *v;
    long sum = 0;

    (void)arg;
    CO_CHECK(coro_create(&in, inner, self, NULL) == 0);
    while (coro_state(in) != CORO_FINISHED) {
        CO_CHECK(coro_resume(in, NULL, &v) == 0);
        CO_CHECK(coro_self() == self);
        CO_CHECK(coro_state(self) == CORO_RUNNING);
        sum += (long)v;
        coro_yield((void *)sum, NULL);
    }
    coro_destroy(in);
    return (void *)(sum * 100);
}

/* Each level runs the next inside itself and adds one to its result. */
static void *chain(void *arg)
{
    long depth = (long)arg;
    coro_t *next;
    void *v = NULL;

    if (depth == 0)
        return (void *)0;
    CO_CHECK(coro_create(&next, chain, (void *)(depth - 1), NULL) == 0);
    CO_CHECK(coro_resume(next, NULL, &v) == 0);
    CO_CHECK(coro_state(next) == CORO_FINISHED);
    coro_destroy(next);
    return (void *)((long)v + 1);
}

static int test_nested(void)
{
    coro_t *co;
    void *v;
    long seen[4], n = 0;

    CHECK(coro_create(&co, outer_body, NULL, NULL) == 0);
    while (coro_state(co) != CORO_FINISHED && n < 4) {
        CHECK(coro_resume(co, NULL, &v) == 0);
        seen[n++] = (long)v;
    }
    CHECK(n == 4);
    CHECK(seen[0] == 1 && seen[1] == 3 && seen[2] == 6 && seen[3] == 600);
    CHECK(coro_destroy(co) == 0);

    CHECK(coro_create(&co, chain, (void *)64L, NULL) == 0);
    CHECK(coro_resume(co, NULL, &v) == 0);
    CHECK((long)v == 64);
    CHECK(coro_destroy(co) == 0);
    CHECK(coro_self() == NULL);
    CHECK_CO_CHECKS();
    return 0;
}

/* ----------------------------------------------------------- lifecycle */

static void *ret_arg(void *arg)
{
    return arg;
}

static void *yield_once(void *arg)
{
    coro_yield(arg, NULL);
    return NULL;
}

static int test_cycles(void)
{
    enum { CYCLES = 20000, LIVE = 1000 };
    static coro_t *live[LIVE];
    uint64_t last = 0;

    for (long i = 0; i < CYCLES; i++) {
        coro_t *co;
        void *v = NULL;
        CHECK(coro_create(&co, ret_arg, (void *)i, NULL) == 0);
        CHECK(coro_id(co) > last);
        last = coro_id(co);
        CHECK(coro_resume(co, NULL, &v) == 0);
        CHECK((long)v == i);
        CHECK(coro_destroy(co) == 0);
    }
    for (int round = 0; round < 3; round++) {
        for (long i = 0; i < LIVE; i++) {
            void *v = NULL;
            CHECK(coro_create(&live[i], yield_once, (void *)i, NULL) == 0);
            CHECK(coro_resume(live[i], NULL, &v) == 0);
            CHECK((long)v == i);
        }
        for (long i = 0; i < LIVE; i++) {
            CHECK(coro_state(live[i]) == CORO_SUSPENDED);
            if (i % 2)
                CHECK(coro_resume(live[i], NULL, NULL) == 0);
            CHECK(coro_destroy(live[i]) == 0);
        }
    }
    return 0;
}

/* --------------------------------------------------------------- main */

static int passed, failed;

static void run(const char *name, int (*fn)(void))
{
    int bad = fn();

    printf("%s %s\n", bad ? "FAIL" : "ok  ", name);
    fflush(stdout);
    if (bad)
        failed++;
    else
        passed++;
}

int main(void)
{
    run("ctx: make and swap, alignment, saved fields", test_ctx_swap);
    run("values both ways, states, misuse", test_values);
#if defined(__aarch64__)
    run("callee-saved x19-x28, d8-d15 survive switches", test_registers);
#endif
    run("rounding mode and FP flags per coroutine", test_fenv);
    run("errno per coroutine", test_errno);
    run("stack: printf of a double, backtrace ends, deep frames", test_stack);
    run("nested coroutines", test_nested);
    run("create/destroy cycles", test_cycles);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

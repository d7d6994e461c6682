/* lifecycle: the cost of creating a coroutine, running it (its function
 * returns at once) and destroying it, for libcoro and, in the same run:
 *   - the textbook coroutine: a fresh mmap'd stack with an mprotect'd
 *     guard page, getcontext + makecontext, swapcontext into it, munmap;
 *   - Boost.Context's fcontext on a malloc'd stack (when available).
 * All use stacks of libcoro's default size (256 KiB).
 *
 *   lifecycle [cycles [runs]]     defaults: 500000 cycles, 7 runs
 *
 * The textbook coroutine costs microseconds: it runs cycles / 50 times per
 * run, the others `cycles` times, so that every run lasts long enough to
 * measure.
 * Runs are interleaved; the table shows the median of the runs. */
#define _GNU_SOURCE
#include "bench.h"

#include <coro.h>
#include <stdint.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define STACK_SIZE (256 * 1024)

static volatile uintptr_t sink;

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

/* ------------------------------------------------------------- libcoro */

static void *ret_at_once(void *arg)
{
    return arg;
}

static double run_libcoro(long n)
{
    uintptr_t sum = 0;

    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        coro_t *co;
        void *out = NULL;
        if (coro_create(&co, ret_at_once, (void *)(uintptr_t)i, NULL) != 0)
            fail("coro_create");
        coro_resume(co, NULL, &out);
        coro_destroy(co);
        sum += (uintptr_t)out;
    }
    double t1 = bench_now_ns();
    sink = sum;
    return (t1 - t0) / (double)n;
}

/* ------------------------------------------------- textbook ucontext */

static ucontext_t tb_main;
static uintptr_t tb_value;

static void tb_body(void)
{
    tb_value++; /* returns at once: uc_link leads back to tb_main */
}

/* One textbook coroutine, start to end.  A function of its own:
 * getcontext and swapcontext return twice. */
static __attribute__((noinline)) uintptr_t tb_cycle(uintptr_t v, size_t page)
{
    ucontext_t uc;
    char *m = mmap(NULL, STACK_SIZE + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

    if (m == MAP_FAILED)
        fail("mmap");
    if (mprotect(m, page, PROT_NONE) != 0)
        fail("mprotect");
    if (getcontext(&uc) != 0)
        fail("getcontext");
    uc.uc_stack.ss_sp = m + page;
    uc.uc_stack.ss_size = STACK_SIZE;
    uc.uc_link = &tb_main;
    makecontext(&uc, tb_body, 0);
    tb_value = v;
    swapcontext(&tb_main, &uc);
    munmap(m, STACK_SIZE + page);
    return tb_value;
}

static double run_textbook(long n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t sum = 0;

    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        sum += tb_cycle((uintptr_t)i, page);
    double t1 = bench_now_ns();
    sink = sum;
    return (t1 - t0) / (double)n;
}

/* ------------------------------------------------------------ fcontext */

#ifdef HAVE_FCONTEXT
/* Boost.Context's switch, declared in C (its header is C++). */
typedef void *fcontext_t;
typedef struct {
    fcontext_t fctx;
    void *data;
} transfer_t;
transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));

/* An fcontext function must not return: "returning" is jumping back for
 * the last time. */
static void fc_body(transfer_t t)
{
    jump_fcontext(t.fctx, t.data);
}

static double run_fcontext(long n)
{
    uintptr_t sum = 0;

    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        char *stack = malloc(STACK_SIZE);
        if (!stack)
            fail("malloc");
        fcontext_t fc = make_fcontext(stack + STACK_SIZE, STACK_SIZE, fc_body);
        transfer_t t = jump_fcontext(fc, (void *)(uintptr_t)i);
        sum += (uintptr_t)t.data;
        free(stack);
    }
    double t1 = bench_now_ns();
    sink = sum;
    return (t1 - t0) / (double)n;
}
#endif

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long n = 500000;
    int runs = 7;
    struct bench_row coro = {.name = "libcoro create+resume+destroy"};
    struct bench_row tb = {.name = "mmap+mprotect+makecontext"};
#ifdef HAVE_FCONTEXT
    struct bench_row fc = {.name = "fcontext, malloc'd stack"};
#endif

    bench_args(argc, argv, &n, &runs);
    run_libcoro(n / 10 + 1);
    run_textbook(n / 500 + 1);
#ifdef HAVE_FCONTEXT
    run_fcontext(n / 10 + 1);
#endif
    for (int r = 0; r < runs; r++) {
        coro.ns[r] = run_libcoro(n);
        tb.ns[r] = run_textbook(n / 50 + 1);
#ifdef HAVE_FCONTEXT
        fc.ns[r] = run_fcontext(n);
#endif
    }
    bench_summarise(&coro, runs);
    bench_summarise(&tb, runs);

    printf("lifecycle: create + run (returns at once) + destroy, 256 KiB stacks, "
           "%ld cycles (textbook %ld), %d runs interleaved\n\n", n, n / 50 + 1, runs);
    bench_print_head();
    bench_print_row(&coro);
    bench_print_row(&tb);
#ifdef HAVE_FCONTEXT
    bench_summarise(&fc, runs);
    bench_print_row(&fc);
    printf("\nlibcoro / fcontext:     %5.2f\n", coro.median / fc.median);
#else
    printf("\nlibcoro / fcontext:     n/a (built without libboost_context)\n");
#endif
    printf("textbook / libcoro:     %5.2f\n", tb.median / coro.median);
    return 0;
}

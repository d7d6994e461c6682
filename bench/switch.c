/* switch: the cost of one resume + yield round trip (two context
 * switches, a value each way), for libcoro and, in the same run, for the
 * same ping-pong written with glibc makecontext/swapcontext and, when
 * available, with Boost.Context's fcontext.
 *
 *   switch [round_trips [runs]]     defaults: 1000000 round trips, 7 runs
 *
 * Runs are interleaved (libcoro, swapcontext, fcontext, libcoro, ...) so
 * that a noisy neighbour hurts every implementation alike; the table shows
 * the median of the runs.
 *
 * A second table repeats the measure with the floating-point exception
 * flags differing between the two sides: the coroutine made one inexact
 * division, the resumer cleared its flags.  Every real program gets there
 * (any double arithmetic raises "inexact"), and a switch that carries the
 * flags per coroutine then writes them on every switch: on some x86 cores
 * an ldmxcsr that changes a status flag, read back by stmxcsr, costs about
 * a hundred times more than one that changes nothing. */
#define _GNU_SOURCE
#include "bench.h"

#include <coro.h>
#include <fenv.h>
#include <stdint.h>
#include <ucontext.h>

#define STACK_SIZE (256 * 1024)

static volatile uintptr_t sink;
static volatile double fp_one = 1.0, fp_three = 3.0, fp_sink;

/* Whether the coroutine side raises "inexact" before the ping-pong starts. */
static int dirty;

static void raise_inexact(void)
{
    fp_sink = fp_one / fp_three;
}

/* Called by the resumer right before timing. */
static void clear_flags(void)
{
    if (dirty)
        feclearexcept(FE_ALL_EXCEPT);
}

/* ------------------------------------------------------------- libcoro */

static void *coro_pong(void *arg)
{
    void *in = arg;
    if (dirty)
        raise_inexact();
    for (;;)
        coro_yield(in, &in);
    return NULL;
}

static double run_libcoro(long n)
{
    coro_t *co;
    void *out = NULL;
    uintptr_t sum = 0;

    if (coro_create(&co, coro_pong, NULL, NULL) != 0) {
        fprintf(stderr, "coro_create failed\n");
        exit(1);
    }
    coro_resume(co, NULL, NULL);
    clear_flags();
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        coro_resume(co, (void *)(uintptr_t)i, &out);
        sum += (uintptr_t)out;
    }
    double t1 = bench_now_ns();
    coro_destroy(co);
    sink = sum;
    return (t1 - t0) / (double)n;
}

/* --------------------------------------------------------- swapcontext */

static ucontext_t uc_main, uc_co;
static uintptr_t uc_value;

static void uc_pong(void)
{
    if (dirty)
        raise_inexact();
    for (;;) {
        uc_value++;
        swapcontext(&uc_co, &uc_main);
    }
}

/* getcontext and swapcontext return twice: they live in functions of their
 * own, so no caller's locals need to be kept in memory for them. */
static __attribute__((noinline)) char *uc_start(void)
{
    char *stack = malloc(STACK_SIZE);

    if (!stack || getcontext(&uc_co) != 0) {
        fprintf(stderr, "swapcontext setup failed\n");
        exit(1);
    }
    uc_co.uc_stack.ss_sp = stack;
    uc_co.uc_stack.ss_size = STACK_SIZE;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, uc_pong, 0);
    swapcontext(&uc_main, &uc_co);
    return stack;
}

static __attribute__((noinline)) uintptr_t uc_round_trip(uintptr_t v)
{
    uc_value = v;
    swapcontext(&uc_main, &uc_co);
    return uc_value;
}

static double run_swapcontext(long n)
{
    char *stack = uc_start();
    uintptr_t sum = 0;

    clear_flags();
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++)
        sum += uc_round_trip((uintptr_t)i);
    double t1 = bench_now_ns();
    free(stack); /* uc_pong is abandoned where it stands */
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

static void fc_pong(transfer_t t)
{
    if (dirty)
        raise_inexact();
    for (;;)
        t = jump_fcontext(t.fctx, t.data);
}

static double run_fcontext(long n)
{
    char *stack = malloc(STACK_SIZE);
    uintptr_t sum = 0;

    if (!stack) {
        fprintf(stderr, "malloc failed\n");
        exit(1);
    }
    fcontext_t fc = make_fcontext(stack + STACK_SIZE, STACK_SIZE, fc_pong);
    fc = jump_fcontext(fc, NULL).fctx;
    clear_flags();
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        transfer_t t = jump_fcontext(fc, (void *)(uintptr_t)i);
        fc = t.fctx;
        sum += (uintptr_t)t.data;
    }
    double t1 = bench_now_ns();
    free(stack);
    sink = sum;
    return (t1 - t0) / (double)n;
}
#endif

/* ---------------------------------------------------------------- main */

/* Measures every implementation runs times, interleaved, and prints the
 * table. */
static void measure(long n, int runs, const char *title)
{
    struct bench_row coro = {.name = "libcoro coro_resume+yield"};
    struct bench_row uc = {.name = "glibc swapcontext"};
#ifdef HAVE_FCONTEXT
    struct bench_row fc = {.name = "Boost.Context fcontext"};
#endif

    /* Warm-up: caches, the stack cache, page faults. */
    run_libcoro(n / 10 + 1);
    run_swapcontext(n / 10 + 1);
#ifdef HAVE_FCONTEXT
    run_fcontext(n / 10 + 1);
#endif
    for (int r = 0; r < runs; r++) {
        coro.ns[r] = run_libcoro(n);
        uc.ns[r] = run_swapcontext(n);
#ifdef HAVE_FCONTEXT
        fc.ns[r] = run_fcontext(n);
#endif
    }
    bench_summarise(&coro, runs);
    bench_summarise(&uc, runs);

    printf("switch: one resume + yield round trip (2 switches), %s; "
           "%ld round trips, %d runs interleaved\n\n", title, n, runs);
    bench_print_head();
    bench_print_row(&coro);
    bench_print_row(&uc);
#ifdef HAVE_FCONTEXT
    bench_summarise(&fc, runs);
    bench_print_row(&fc);
    printf("\nlibcoro / fcontext:     %5.2f\n", coro.median / fc.median);
#else
    printf("\nlibcoro / fcontext:     n/a (built without libboost_context)\n");
#endif
    printf("swapcontext / libcoro:  %5.2f\n\n", uc.median / coro.median);
}

int main(int argc, char **argv)
{
    long n = 1000000;
    int runs = 7;

    bench_args(argc, argv, &n, &runs);
    dirty = 0;
    measure(n, runs, "same FP flags on both sides");
    dirty = 1;
    measure(n / 4 + 1, runs, "FP exception flags differ");
    return 0;
}

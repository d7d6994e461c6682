/* chan: the cost of one round trip over unbuffered channels between two
 * coroutines (ping sends a value on one channel, pong receives it and
 * sends it back on another), for libcoro and, in the same run, for:
 *   - glibc swapcontext: two ucontexts handing a value back and forth (the
 *     switches alone, with no scheduler or channel);
 *   - Go (optional): the same ping-pong with unbuffered Go channels,
 *     GOMAXPROCS=1, from the program bench/chan_go built by run-chan.sh.
 *
 *   chan [round_trips [runs]] [--go PROGRAM]
 *        defaults: 1000000 round trips, 7 runs
 *
 * Runs are interleaved (libcoro, swapcontext, Go, libcoro, ...) so that a
 * noisy neighbour hurts every implementation alike; the table shows the
 * median of the runs and each baseline's ratio to libcoro. */
#define _GNU_SOURCE
#include "bench.h"

#include <coro.h>
#include <stdint.h>
#include <ucontext.h>

#define STACK_SIZE (256 * 1024)

static volatile long sink;

/* ------------------------------------------------------------- libcoro */

static coro_chan_t *ping_ch, *pong_ch;
static long n_trips;
static double coro_ns;

static void *pong(void *arg)
{
    long v;

    (void)arg;
    while (coro_chan_recv(ping_ch, &v, -1) == 0)
        coro_chan_send(pong_ch, &v, -1);
    return NULL;
}

static void *ping(void *arg)
{
    long v = 0, sum = 0;

    (void)arg;
    /* one trip first, so that both coroutines are parked in their loops */
    coro_chan_send(ping_ch, &v, -1);
    coro_chan_recv(pong_ch, &v, -1);
    double t0 = bench_now_ns();
    for (long i = 0; i < n_trips; i++) {
        coro_chan_send(ping_ch, &i, -1);
        coro_chan_recv(pong_ch, &v, -1);
        sum += v;
    }
    double t1 = bench_now_ns();
    coro_chan_close(ping_ch);
    sink = sum;
    coro_ns = (t1 - t0) / (double)n_trips;
    return NULL;
}

static double run_libcoro(long n)
{
    n_trips = n;
    if (coro_chan_create(&ping_ch, sizeof(long), 0) ||
        coro_chan_create(&pong_ch, sizeof(long), 0) ||
        coro_spawn(NULL, pong, NULL, NULL) ||
        coro_spawn(NULL, ping, NULL, NULL) ||
        coro_run()) {
        fprintf(stderr, "libcoro setup failed\n");
        exit(1);
    }
    coro_chan_destroy(ping_ch);
    coro_chan_destroy(pong_ch);
    return coro_ns;
}

/* --------------------------------------------------------- swapcontext */

static ucontext_t uc_ping, uc_pong;
static long uc_value;

static void uc_pong_fn(void)
{
    for (;;) {
        uc_value++;
        swapcontext(&uc_pong, &uc_ping);
    }
}

/* getcontext and swapcontext return twice: they live in functions of their
 * own, so no caller's locals need to be kept in memory for them. */
static __attribute__((noinline)) char *uc_start(void)
{
    char *stack = malloc(STACK_SIZE);

    if (!stack || getcontext(&uc_pong) != 0) {
        fprintf(stderr, "swapcontext setup failed\n");
        exit(1);
    }
    uc_pong.uc_stack.ss_sp = stack;
    uc_pong.uc_stack.ss_size = STACK_SIZE;
    uc_pong.uc_link = NULL;
    makecontext(&uc_pong, uc_pong_fn, 0);
    return stack;
}

static __attribute__((noinline)) void uc_trip(long i)
{
    uc_value = i;
    swapcontext(&uc_ping, &uc_pong);
}

static double run_swapcontext(long n)
{
    char *stack = uc_start();
    long sum = 0;

    uc_trip(0);
    double t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        uc_trip(i);
        sum += uc_value;
    }
    double t1 = bench_now_ns();
    free(stack);
    sink = sum;
    return (t1 - t0) / (double)n;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long n = 1000000;
    int runs = 7;
    const char *go = NULL;
    struct bench_row rows[3] = {
        { .name = "libcoro channels" },
        { .name = "glibc swapcontext (no chan)" },
        { .name = "Go channels, GOMAXPROCS=1" },
    };
    int nrows;

    if (argc > 2 && strcmp(argv[argc - 2], "--go") == 0) {
        go = argv[argc - 1];
        argc -= 2;
    }
    bench_args(argc, argv, &n, &runs);
    nrows = go ? 3 : 2;

    run_libcoro(n / 10 + 1);              /* warm the stack cache and code */
    for (int r = 0; r < runs; r++) {
        rows[0].ns[r] = run_libcoro(n);
        rows[1].ns[r] = run_swapcontext(n);
        if (go)
            rows[2].ns[r] = bench_run_go(go, n, 1);
    }

    printf("unbuffered channel ping-pong: ns per round trip "
           "(2 sends + 2 receives), %ld round trips, %d runs\n\n", n, runs);
    printf("| %-30s | %10s | %10s | %10s | %10s |\n", "implementation",
           "median ns", "min ns", "max ns", "vs libcoro");
    printf("|--------------------------------|------------|------------|"
           "------------|------------|\n");
    for (int i = 0; i < nrows; i++) {
        bench_summarise(&rows[i], runs);
        printf("| %-30s | %10.1f | %10.1f | %10.1f | %9.2fx |\n", rows[i].name,
               rows[i].median, rows[i].min, rows[i].max,
               rows[i].median / rows[0].median);
    }
    if (go)
        printf("\nlibcoro / Go = %.2f (target: at most 0.33)\n",
               rows[0].median / rows[2].median);
    return 0;
}

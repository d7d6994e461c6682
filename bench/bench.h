/* Helpers shared by the benchmarks: a clock, medians, the result table.
 * Every benchmark measures its baselines in the same run, interleaved with
 * libcoro, and reports medians: the machines are noisy. */
#ifndef CORO_BENCH_H
#define CORO_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_RUNS 101

/* CPU time of the calling thread (user and system): on a loaded machine a
 * run is not charged for the time other processes held the CPU, which
 * would otherwise swamp a few nanoseconds per operation.  System calls
 * (swapcontext's sigprocmask, mmap, page faults) are still counted. */
static inline double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int bench_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n), which it sorts. */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One measured implementation: its name and ns per operation of each run. */
struct bench_row {
    const char *name;
    double ns[BENCH_MAX_RUNS];
    double median, min, max;
};

static inline void bench_summarise(struct bench_row *r, int runs)
{
    double v[BENCH_MAX_RUNS];
    memcpy(v, r->ns, sizeof(double) * (size_t)runs);
    r->median = bench_median(v, runs);
    r->min = v[0];
    r->max = v[runs - 1];
}

static inline void bench_print_row(const struct bench_row *r)
{
    printf("| %-30s | %10.1f | %10.1f | %10.1f |\n", r->name, r->median,
           r->min, r->max);
}

static inline void bench_print_head(void)
{
    printf("| %-30s | %10s | %10s | %10s |\n", "implementation", "median ns",
           "min ns", "max ns");
    printf("|--------------------------------|------------|------------|------------|\n");
}

/* Reads [iterations [runs]] from the command line. */
static inline void bench_args(int argc, char **argv, long *iters, int *runs)
{
    if (argc > 1)
        *iters = strtol(argv[1], NULL, 10);
    if (argc > 2)
        *runs = (int)strtol(argv[2], NULL, 10);
    if (*iters < 1 || *runs < 1 || *runs > BENCH_MAX_RUNS) {
        fprintf(stderr, "usage: %s [iterations >= 1] [runs 1..%d]\n", argv[0],
                BENCH_MAX_RUNS);
        exit(2);
    }
}

/* coro_join without a deadline, whichever form the header has: two
 * arguments until issue 8, a deadline third since (bench/meson.build and
 * bench/compare.sh define BENCH_JOIN_DEADLINE when a probe with three
 * compiles). */
#ifdef BENCH_JOIN_DEADLINE
#define BENCH_JOIN(co, result) coro_join((co), (result), -1)
#else
#define BENCH_JOIN(co, result) coro_join((co), (result))
#endif

/* Runs the Go baseline bench/chan_go for n round trips with GOMAXPROCS
 * procs; it prints ns per round trip.  A run that fails ends the
 * benchmark. */
static inline double bench_run_go(const char *prog, long n, int procs)
{
    char cmd[4096];
    double ns = -1;
    FILE *p;

    snprintf(cmd, sizeof cmd, "'%s' %ld %d", prog, n, procs);
    if (!(p = popen(cmd, "r")) || fscanf(p, "%lf", &ns) != 1 || pclose(p) != 0 ||
        ns <= 0) {
        fprintf(stderr, "running %s failed\n", prog);
        exit(1);
    }
    return ns;
}

#endif

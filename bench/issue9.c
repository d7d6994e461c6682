/* issue9: the rows of issue 9 (mass spawn, sleepers, switch, yield in the
 * scheduler, memory after a burst), libcoro beside the baselines Debian
 * has, in the same run: Go with GOMAXPROCS=1 (bench/issue9_go, built by
 * bench/run-issue9.sh) and Boost.Context fcontext where it applies.
 *
 *   bench_issue9 [--runs N] [--go PROG] [--only CASE,...] [--scale F]
 *
 * Every measurement runs in a child process of its own (this program,
 * re-executed with --child, or the Go program), so that each starts from
 * a fresh address space and its peak RSS (wait4's ru_maxrss) is its own.
 * The child times the work itself: wall clock (CLOCK_MONOTONIC) and the
 * process's CPU time, user and system, all threads (Go's collector
 * included).  Runs are interleaved: run 1 of every case and
 * implementation, then run 2, ...; the tables show medians (and the
 * range of the wall time).
 *
 * Cases (counts at --scale 1):
 *   batch100   1,000,000 spawn+join, in batches of 100: spawn 100, join
 *              them, again (Go: 100 goroutines and a WaitGroup; fcontext:
 *              100 contexts on 256 KiB stacks from a pool, each run to
 *              its end, its stack back to the pool)
 *   batch1000  the same in batches of 1000
 *   spawnall   1,000,000 spawned, then all joined (Go: spawned, then one
 *              WaitGroup wait)
 *   detached   1,000,000 detached spawns, then coro_run (Go: as spawnall)
 *   sleepers   100,000 coroutines, the i-th sleeps 1 ms + i ns, then
 *              finishes (Go: time.Sleep)
 *   switch     resume + yield round trips (fcontext: two jumps), ns each
 *   yield100   100 spawned coroutines yield in turn, ns per yield (Go:
 *              runtime.Gosched; fcontext: a ring of 100 contexts, each
 *              jumping straight to the next)
 *   burst      resident memory before, at the peak of and after a burst
 *              of 300,000 coroutines, all created (each runs to a yield,
 *              touching its stack), then all finished and destroyed (Go:
 *              300,000 goroutines blocked on a channel, then released)
 *
 *   bench_issue9 --child CASE IMPL COUNT     one measurement; prints
 *              "wall_ns cpu_ns" (burst: "rss_before rss_peak rss_after"
 *              in bytes)
 */
#define _GNU_SOURCE
#include "bench.h"

#include <coro.h>
#include <errno.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define STACK_SIZE (256 * 1024)

extern char **environ;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "bench_issue9: %s failed\n", what);
    exit(1);
}

static double mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size, resident;

    if (!f || fscanf(f, "%lu %lu", &size, &resident) != 2)
        die("/proc/self/statm");
    fclose(f);
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* ------------------------------------------------------------- libcoro */

static long count, batch;
static coro_t **handles;

static void *body(void *arg)
{
    return arg;
}

static void join_one(coro_t *co, void *want)
{
    void *r;
    if (BENCH_JOIN(co, &r) || r != want)
        die("coro_join");
}

static void *batched(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i += batch) {
        long n = count - i < batch ? count - i : batch;
        for (long k = 0; k < n; k++)
            if (coro_spawn(&handles[k], body, (void *)(i + k), NULL))
                die("coro_spawn");
        for (long k = 0; k < n; k++)
            join_one(handles[k], (void *)(i + k));
    }
    return NULL;
}

static void *all_then_join(void *arg)
{
    (void)arg;
    for (long i = 0; i < count; i++)
        if (coro_spawn(&handles[i], body, (void *)i, NULL))
            die("coro_spawn");
    for (long i = 0; i < count; i++)
        join_one(handles[i], (void *)i);
    return NULL;
}

static void run_root(coro_fn fn)
{
    if (coro_spawn(NULL, fn, NULL, NULL) || coro_run())
        die("coro_run");
}

static void *sleeper(void *arg)
{
    if (coro_sleep(1000000 + (int64_t)(intptr_t)arg))
        die("coro_sleep");
    return NULL;
}

static void *pong(void *arg)
{
    void *in = arg;
    for (;;)
        coro_yield(in, &in);
    return NULL;
}

static volatile uintptr_t sink;

static long yields_each;

static void *yielder(void *arg)
{
    (void)arg;
    for (long i = 0; i < yields_each; i++)
        coro_yield(NULL, NULL);
    return NULL;
}

static void *burst_body(void *arg)
{
    volatile char touch[512];

    touch[0] = 1;
    coro_yield(NULL, NULL);
    return (void *)(uintptr_t)(touch[0] + (uintptr_t)arg);
}

static void libcoro_case(const char *name, long n)
{
    count = n;
    if (!strcmp(name, "batch100") || !strcmp(name, "batch1000")) {
        batch = strcmp(name, "batch1000") ? 100 : 1000;
        handles = malloc((size_t)batch * sizeof *handles);
        if (!handles)
            die("malloc");
        run_root(batched);
    } else if (!strcmp(name, "spawnall")) {
        handles = malloc((size_t)n * sizeof *handles);
        if (!handles)
            die("malloc");
        run_root(all_then_join);
    } else if (!strcmp(name, "detached")) {
        for (long i = 0; i < n; i++)
            if (coro_spawn(NULL, body, NULL, NULL))
                die("coro_spawn");
        if (coro_run())
            die("coro_run");
    } else if (!strcmp(name, "sleepers")) {
        for (long i = 0; i < n; i++)
            if (coro_spawn(NULL, sleeper, (void *)(intptr_t)i, NULL))
                die("coro_spawn");
        if (coro_run())
            die("coro_run");
    } else if (!strcmp(name, "switch")) {
        coro_t *co;
        void *out;
        uintptr_t sum = 0;
        if (coro_create(&co, pong, NULL, NULL) || coro_resume(co, NULL, NULL))
            die("coro_create");
        for (long i = 0; i < n; i++) {
            coro_resume(co, (void *)(uintptr_t)i, &out);
            sum += (uintptr_t)out;
        }
        sink = sum;
    } else if (!strcmp(name, "yield100")) {
        yields_each = n / 100;
        for (int i = 0; i < 100; i++)
            if (coro_spawn(NULL, yielder, NULL, NULL))
                die("coro_spawn");
        if (coro_run())
            die("coro_run");
    } else
        die(name);
}

/* The burst: prints resident bytes before, at the peak and after. */
static void libcoro_burst(long n)
{
    coro_t **cos = malloc((size_t)n * sizeof *cos);
    coro_t *warm;

    if (!cos)
        die("malloc");
    /* libcoro's per-thread state and the handle array are in the baseline. */
    memset(cos, 0, (size_t)n * sizeof *cos);
    if (coro_create(&warm, body, NULL, NULL) || coro_resume(warm, NULL, NULL) ||
        coro_destroy(warm))
        die("coro_create");
    size_t before = rss_now();
    for (long i = 0; i < n; i++)
        if (coro_create(&cos[i], burst_body, (void *)i, NULL) ||
            coro_resume(cos[i], NULL, NULL))
            die("coro_create");
    size_t peak = rss_now();
    for (long i = 0; i < n; i++)
        if (coro_resume(cos[i], NULL, NULL) || coro_destroy(cos[i]))
            die("coro_destroy");
    size_t after = rss_now();
    printf("%zu %zu %zu\n", before, peak, after);
    free(cos);
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

/* A context that "returns": jumps back for the last time. */
static void fc_once(transfer_t t)
{
    jump_fcontext(t.fctx, t.data);
}

static void fc_pong(transfer_t t)
{
    for (;;)
        t = jump_fcontext(t.fctx, t.data);
}

/* The ring: context i jumps straight to i + 1; each jump carries the
 * jumper's index, so the one resumed can store where the jumper stands. */
enum { RING = 100 };
static fcontext_t ring[RING + 1];      /* [RING]: the main flow */
static int ring_starting;
static long ring_left;

static void fc_ring(transfer_t t)
{
    int me = ring_starting;

    t = jump_fcontext(t.fctx, (void *)(intptr_t)me);   /* parked; main goes on */
    for (;;) {
        ring[(intptr_t)t.data] = t.fctx;
        int to = --ring_left > 0 ? (me + 1) % RING : RING;
        t = jump_fcontext(ring[to], (void *)(intptr_t)me);
    }
}

static void fcontext_case(const char *name, long n)
{
    if (!strcmp(name, "batch100") || !strcmp(name, "batch1000")) {
        long b = strcmp(name, "batch100") ? 1000 : 100;
        char **stacks = malloc((size_t)b * sizeof *stacks);
        fcontext_t *fc = malloc((size_t)b * sizeof *fc);
        uintptr_t sum = 0;
        /* A pool of stacks, as Boost's pooled_fixedsize_stack keeps:
         * malloc'd once, reused hot (a malloc and free of each 256 KiB
         * stack costs glibc a trim and fresh page faults every batch). */
        char **pool = malloc((size_t)b * sizeof *pool);
        long npool = 0;
        if (!stacks || !fc || !pool)
            die("malloc");
        for (long i = 0; i < n; i += b) {
            long m = n - i < b ? n - i : b;
            for (long k = 0; k < m; k++) {
                if (npool)
                    stacks[k] = pool[--npool];
                else if (!(stacks[k] = malloc(STACK_SIZE)))
                    die("malloc");
                fc[k] = make_fcontext(stacks[k] + STACK_SIZE, STACK_SIZE, fc_once);
            }
            for (long k = 0; k < m; k++) {
                sum += (uintptr_t)jump_fcontext(fc[k], (void *)(i + k)).data;
                pool[npool++] = stacks[k];
            }
        }
        sink = sum;
    } else if (!strcmp(name, "switch")) {
        char *stack = malloc(STACK_SIZE);
        uintptr_t sum = 0;
        if (!stack)
            die("malloc");
        fcontext_t fc = make_fcontext(stack + STACK_SIZE, STACK_SIZE, fc_pong);
        fc = jump_fcontext(fc, NULL).fctx;
        for (long i = 0; i < n; i++) {
            transfer_t t = jump_fcontext(fc, (void *)(uintptr_t)i);
            fc = t.fctx;
            sum += (uintptr_t)t.data;
        }
        sink = sum;
    } else if (!strcmp(name, "yield100")) {
        for (int i = 0; i < RING; i++) {
            char *stack = malloc(STACK_SIZE);
            if (!stack)
                die("malloc");
            ring_starting = i;
            transfer_t t = jump_fcontext(make_fcontext(stack + STACK_SIZE, STACK_SIZE, fc_ring),
                                         (void *)(intptr_t)RING);
            ring[i] = t.fctx;
        }
        ring_left = n;
        transfer_t t = jump_fcontext(ring[0], (void *)(intptr_t)RING);
        ring[(intptr_t)t.data] = t.fctx;
    } else
        die(name);
}
#endif

static int child(const char *name, const char *impl, long n)
{
    if (!strcmp(name, "burst")) {
        libcoro_burst(n);
        return 0;
    }
    double w0 = mono_ns(), c0 = cpu_ns();
    if (!strcmp(impl, "libcoro"))
        libcoro_case(name, n);
#ifdef HAVE_FCONTEXT
    else if (!strcmp(impl, "fcontext"))
        fcontext_case(name, n);
#endif
    else
        die(impl);
    printf("%.0f %.0f\n", mono_ns() - w0, cpu_ns() - c0);
    return 0;
}

/* ---------------------------------------------------------------- driver */

struct kase {
    const char *name, *what;
    long count;
    int per_op;            /* the table shows ns per operation, not totals */
    int fcontext;          /* fcontext has this case */
};

static const struct kase cases[] = {
    {"batch100", "spawn+join 1M, batches of 100", 1000000, 0, 1},
    {"batch1000", "spawn+join 1M, batches of 1000", 1000000, 0, 1},
    {"spawnall", "spawn 1M, then join all", 1000000, 0, 0},
    {"detached", "1M detached spawns + coro_run", 1000000, 0, 0},
    {"sleepers", "100k sleepers (1 ms + i ns)", 100000, 0, 0},
    {"switch", "switch: resume+yield round trip", 20000000, 1, 1},
    {"yield100", "yield among 100 coroutines", 20000000, 1, 1},
    {"burst", "burst of 300k: RSS", 300000, 0, 0},
};
enum { NCASES = sizeof cases / sizeof cases[0], NIMPL = 3 };
static const char *const impls[NIMPL] = {"libcoro", "Go", "fcontext"};

struct result {
    int n;                          /* runs measured */
    double wall[BENCH_MAX_RUNS], cpu[BENCH_MAX_RUNS], rss[BENCH_MAX_RUNS];
    double b[3][BENCH_MAX_RUNS];    /* burst: before, peak, after */
};
static struct result res[NCASES][NIMPL];

/* Runs argv as a child and reads the numbers it prints; stores its peak
 * RSS.  Returns how many numbers were read (0 on failure). */
static int measure(char *const argv[], double *out, int nout, double *maxrss)
{
    int fds[2];
    posix_spawn_file_actions_t fa;
    pid_t pid;
    char buf[256];
    size_t len = 0;
    ssize_t k;
    int st, got = 0;
    struct rusage ru;

    if (pipe(fds))
        die("pipe");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ))
        die(argv[0]);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    while (len < sizeof buf - 1 && (k = read(fds[0], buf + len, sizeof buf - 1 - len)) != 0) {
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    close(fds[0]);
    while (wait4(pid, &st, 0, &ru) < 0)
        if (errno != EINTR)
            die("wait4");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_issue9: %s %s %s failed\n", argv[0], argv[1], argv[2]);
        return 0;
    }
    char *p = buf;
    for (; got < nout; got++) {
        char *end;
        out[got] = strtod(p, &end);
        if (end == p)
            break;
        p = end;
    }
    *maxrss = (double)ru.ru_maxrss * 1024;
    return got;
}

static int wanted(const char *only, const char *name)
{
    size_t l = strlen(name);
    for (const char *p = only; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == l && !strncmp(p, name, l))
            return 1;
        p = e ? e + 1 : NULL;
    }
    return !only;
}

static double med(const double *v, int n)
{
    double t[BENCH_MAX_RUNS];
    memcpy(t, v, sizeof(double) * (size_t)n);
    return bench_median(t, n);
}

static double mn(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double mx(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

int main(int argc, char **argv)
{
    int runs = 5;
    const char *go = NULL, *only = NULL;
    double scale = 1;
    char self[4096];

    if (argc == 5 && !strcmp(argv[1], "--child"))
        return child(argv[2], argv[3], strtol(argv[4], NULL, 10));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--go") && i + 1 < argc)
            go = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = strtod(argv[++i], NULL);
        else {
            fprintf(stderr, "usage: %s [--runs N] [--go PROG] [--only CASE,...] "
                    "[--scale F]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > BENCH_MAX_RUNS || scale <= 0)
        die("arguments");
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl < 0)
        die("readlink /proc/self/exe");
    self[sl] = '\0';

    for (int r = 0; r < runs; r++)
        for (int c = 0; c < NCASES; c++) {
            const struct kase *k = &cases[c];
            if (!wanted(only, k->name))
                continue;
            for (int im = 0; im < NIMPL; im++) {
                char nbuf[32];
                long n = (long)((double)k->count * scale);
                double out[3], rss;
                char *av[6];
                int want = strcmp(k->name, "burst") ? 2 : 3;
                snprintf(nbuf, sizeof nbuf, "%ld", n < 100 ? 100 : n);
                if (im == 0)
                    av[0] = self;
                else if (im == 1 && go && strcmp(k->name, "switch"))
                    av[0] = (char *)go;
#ifdef HAVE_FCONTEXT
                else if (im == 2 && k->fcontext)
                    av[0] = self;
#endif
                else
                    continue;
                if (av[0] == self) {
                    av[1] = (char *)"--child";
                    av[2] = (char *)k->name;
                    av[3] = (char *)(im == 0 ? "libcoro" : "fcontext");
                    av[4] = nbuf;
                    av[5] = NULL;
                } else {
                    av[1] = (char *)k->name;
                    av[2] = nbuf;
                    av[3] = NULL;
                }
                if (measure(av, out, want, &rss) != want)
                    continue;
                struct result *s = &res[c][im];
                if (want == 3) {
                    for (int j = 0; j < 3; j++)
                        s->b[j][s->n] = out[j];
                } else {
                    s->wall[s->n] = out[0] / (k->per_op ? (double)(n < 100 ? 100 : n) : 1e6);
                    s->cpu[s->n] = out[1] / (k->per_op ? (double)(n < 100 ? 100 : n) : 1e6);
                }
                s->rss[s->n] = rss / 1048576;
                s->n++;
            }
        }

    printf("issue 9 rows: medians of %d interleaved runs, each in a process of its own%s\n"
           "(wall and CPU of the work; CPU is the process's, all threads; peak RSS of "
           "the process)\n\n", runs, scale != 1 ? " (counts scaled)" : "");
    printf("| %-32s | %-8s | %10s | %21s | %10s | %8s | %8s |\n", "row", "impl",
           "wall", "wall min - max", "CPU", "peak RSS", "wall vs");
    printf("| %-32s | %-8s | %10s | %21s | %10s | %8s | %8s |\n", "", "", "", "", "",
           "MiB", "libcoro");
    printf("|----------------------------------|----------|------------|"
           "-----------------------|------------|----------|----------|\n");
    for (int c = 0; c < NCASES; c++) {
        const struct kase *k = &cases[c];
        if (!strcmp(k->name, "burst") || !res[c][0].n)
            continue;
        double base = med(res[c][0].wall, res[c][0].n);
        for (int im = 0; im < NIMPL; im++) {
            struct result *s = &res[c][im];
            if (!s->n)
                continue;
            const char *u = k->per_op ? "ns" : "ms";
            double w = med(s->wall, s->n);
            char range[64], wall[32], cpu[32];
            snprintf(wall, sizeof wall, "%.1f %s", w, u);
            snprintf(range, sizeof range, "%.1f - %.1f", mn(s->wall, s->n), mx(s->wall, s->n));
            snprintf(cpu, sizeof cpu, "%.1f %s", med(s->cpu, s->n), u);
            printf("| %-32s | %-8s | %10s | %21s | %10s | %8.1f | %8.2f |\n",
                   im == 0 ? k->what : "", impls[im], wall, range, cpu,
                   med(s->rss, s->n), w / base);
        }
    }
    for (int c = 0; c < NCASES; c++) {
        const struct kase *k = &cases[c];
        if (strcmp(k->name, "burst"))
            continue;
        if (!res[c][0].n && !res[c][1].n)
            break;
        printf("\nRSS around a burst of %ld coroutines (all created and run to a yield, "
               "then all finished and destroyed), MiB, medians:\n\n",
               (long)((double)k->count * scale));
        printf("| %-8s | %10s | %10s | %10s | %14s |\n", "impl", "before", "peak", "after",
               "after - before");
        printf("|----------|------------|------------|------------|----------------|\n");
        for (int im = 0; im < 2; im++) {
            struct result *s = &res[c][im];
            if (!s->n)
                continue;
            double b = med(s->b[0], s->n) / 1048576, p = med(s->b[1], s->n) / 1048576,
                   a = med(s->b[2], s->n) / 1048576;
            printf("| %-8s | %10.1f | %10.1f | %10.1f | %14.1f |\n", impls[im], b, p, a, a - b);
        }
    }
    return 0;
}

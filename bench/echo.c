/* bench_echo: echo throughput over loopback TCP with many connections and
 * small messages.  Two servers, each in a child process of its own: the
 * libcoro one (a coroutine per connection, read then write, one thread)
 * and the same by hand on level-triggered epoll.  The load is this
 * process: a plain epoll client keeping one message in flight on every
 * connection, sending the next as soon as the echo is back.  With two
 * CPUs or more the server is pinned to CPU 0 and the client to CPU 1.
 *
 *   bench_echo [seconds [connections [bytes [runs]]]]
 *              (default 2 s, 100 connections, 64-byte messages, 3 runs)
 *
 * Prints per server the median messages per second (an echo round trip
 * each) and server CPU time per message (getrusage of the child, user +
 * system, over its whole life), with min and max; the runs alternate
 * between the servers. */
#define _GNU_SOURCE
#include <coro.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS_MAX 50

static _Noreturn void die(const char *what)
{
    perror(what);
    exit(1);
}

static void pin(int cpu)
{
    cpu_set_t set;

    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* ------------------------------------------------------------- libcoro */

static void *coro_session(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    size_t n, sent;

    while (coro_read(fd, buf, sizeof buf, &n, -1) == 0 && n > 0)
        if (coro_write(fd, buf, n, &sent, -1) != 0)
            break;
    coro_fd_close(fd);
    return NULL;
}

static void *coro_server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd;
    coro_attr_t attr;

    coro_attr_init(&attr);
    coro_attr_set_stack_size(&attr, 32 * 1024);
    while (coro_accept(lfd, &fd, NULL, NULL, -1) == 0)
        if (coro_spawn(NULL, coro_session, (void *)(intptr_t)fd, &attr) != 0)
            coro_fd_close(fd);
    return NULL;
}

static void serve_coro(int lfd)
{
    if (coro_spawn(NULL, coro_server, (void *)(intptr_t)lfd, NULL) != 0 || coro_run() != 0)
        die("bench_echo: libcoro server");
}

/* --------------------------------------------------------------- epoll */

struct econn {
    int fd;
    int out;                    /* waiting for EPOLLOUT, not EPOLLIN */
    size_t len, pos;            /* buf[pos..len) still to write back */
    char buf[4096];
};

static void serve_epoll(int lfd)
{
    struct epoll_event evs[256], ev = { .events = EPOLLIN, .data.ptr = NULL };
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
        die("bench_echo: epoll");
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct econn *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    c = calloc(1, sizeof *c);
                    if (!c)
                        die("calloc");
                    c->fd = fd;
                    ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
                        die("epoll_ctl");
                }
                continue;
            }
            if (c->pos == c->len) {     /* readable */
                ssize_t r = read(c->fd, c->buf, sizeof c->buf);
                if (r <= 0) {
                    if (r < 0 && errno == EAGAIN)
                        continue;
                    close(c->fd);
                    free(c);
                    continue;
                }
                c->len = (size_t)r;
                c->pos = 0;
            }
            while (c->pos < c->len) {   /* echo, or finish a full write */
                ssize_t w = write(c->fd, c->buf + c->pos, c->len - c->pos);
                if (w < 0)
                    break;
                c->pos += (size_t)w;
            }
            if (c->pos < c->len && errno != EAGAIN) {
                close(c->fd);
                free(c);
                continue;
            }
            int out = c->pos < c->len;
            if (out != c->out) {
                ev = (struct epoll_event){ .events = out ? EPOLLOUT : EPOLLIN, .data.ptr = c };
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->out = out;
            }
        }
    }
}

/* -------------------------------------------------------------- client */

struct cconn {
    int fd;
    size_t got;                 /* bytes of the current echo received */
};

static double now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Drives conns connections to port for secs seconds; messages echoed. */
static long drive(int port, double secs, int conns, size_t bytes)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct cconn *cs = calloc((size_t)conns, sizeof *cs);
    struct epoll_event evs[256];
    char msg[4096], buf[4096];
    int ep = epoll_create1(EPOLL_CLOEXEC), one = 1;
    long done = 0;

    if (!cs || ep < 0)
        die("bench_echo: client");
    memset(msg, 'x', sizeof msg);
    for (int i = 0; i < conns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
            die("bench_echo: connect");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
        cs[i].fd = fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0 || write(fd, msg, bytes) != (ssize_t)bytes)
            die("bench_echo: client start");
    }
    double end = now_s() + secs;
    while (now_s() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct cconn *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0)
                die("bench_echo: server went away");
            c->got += (size_t)r;
            while (c->got >= bytes) {
                c->got -= bytes;
                done++;
                if (write(c->fd, msg, bytes) != (ssize_t)bytes)
                    die("bench_echo: client write");
            }
        }
    }
    for (int i = 0; i < conns; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    return done;
}

/* ---------------------------------------------------------------- main */

struct result {
    double rate;                /* messages per second */
    double cpu_us;              /* server CPU per message */
};

static struct result run(void (*serve)(int), double secs, int conns, size_t bytes)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct rusage ru;
    int status;

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(lfd, SOMAXCONN) != 0 || getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die("bench_echo: listen");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        pin(0);
        serve(lfd);
        _exit(1);
    }
    close(lfd);
    double t0 = now_s();
    long msgs = drive(ntohs(a.sin_port), secs, conns, bytes);
    double t = now_s() - t0;
    kill(pid, SIGKILL);
    if (wait4(pid, &status, 0, &ru) != pid)
        die("wait4");
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return (struct result){ msgs / t, msgs ? cpu * 1e6 / (double)msgs : 0 };
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Prints the median of v[0..n) with min and max, prec decimals. */
static double row(const char *name, const double *v, int n, int prec, const char *unit)
{
    double s[RUNS_MAX];

    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp);
    printf("  %-8s %12.*f %s (min %.*f, max %.*f)\n", name, prec, s[n / 2], unit, prec, s[0],
           prec, s[n - 1]);
    return s[n / 2];
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2;
    int conns = argc > 2 ? atoi(argv[2]) : 100;
    size_t bytes = argc > 3 ? (size_t)atol(argv[3]) : 64;
    int runs = argc > 4 ? atoi(argv[4]) : 3;
    double rate[2][RUNS_MAX], cpu[2][RUNS_MAX];
    struct rlimit rl;

    if (secs <= 0 || conns < 1 || bytes < 1 || bytes > 4096 || runs < 1 || runs > RUNS_MAX) {
        fprintf(stderr, "usage: bench_echo [seconds [connections [bytes (1-4096) [runs (1-%d)]]]]\n",
                RUNS_MAX);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns * 2 + 64) {
        rl.rlim_cur = rl.rlim_max < (rlim_t)conns * 2 + 64 ? rl.rlim_max : (rlim_t)conns * 2 + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pin(1);
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < 2; k++) {
            int which = (k + r) % 2;
            struct result x = run(which ? serve_epoll : serve_coro, secs, conns, bytes);
            rate[which][r] = x.rate;
            cpu[which][r] = x.cpu_us;
        }
    printf("echo: %d connections, %zu-byte messages, one in flight each; %d x %.1f s\n",
           conns, bytes, runs, secs);
    printf("messages echoed per second:\n");
    row("libcoro", rate[0], runs, 0, "/s");
    row("epoll", rate[1], runs, 0, "/s");
    printf("server CPU per message:\n");
    double a = row("libcoro", cpu[0], runs, 2, "us");
    double b = row("epoll", cpu[1], runs, 2, "us");
    printf("libcoro / epoll CPU per message (medians): %.2f\n", a / b);
    return 0;
}

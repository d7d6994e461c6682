/* Check suite for the io layer: the reactor and the calls that park on
 * it, on real sockets over loopback (127.0.0.1) and socketpairs; the
 * offload pool, getaddrinfo and signals. */
#define _GNU_SOURCE
#include <coro.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MS 1000000LL

static int64_t in_ms(int64_t ms)
{
    return coro_now() + ms * MS;
}

static void spawn(coro_fn fn, void *arg)
{
    ck_assert_int_eq(coro_spawn(NULL, fn, arg, NULL), 0);
}

static void run(void)
{
    ck_assert_int_eq(coro_run(), 0);
}

/* A non-blocking, close-on-exec socketpair. */
static void pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* A listener on 127.0.0.1 with a port of the kernel's choice; *port gets
 * it as a string. */
static int listener(char port[16], int backlog)
{
    int fd;
    struct sockaddr_in a;
    socklen_t len = sizeof a;

    ck_assert_int_eq(coro_tcp_listen("127.0.0.1", "0", backlog, &fd), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    snprintf(port, 16, "%u", ntohs(a.sin_port));
    return fd;
}

static int result[8];

/* ---------------------------------------------------------------- basic */

static char port_s[16];
static int lfd;

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    size_t n, m;

    while (coro_read(fd, buf, sizeof buf, &n, -1) == 0 && n > 0)
        ck_assert_int_eq(coro_write(fd, buf, n, &m, -1), 0);
    ck_assert_int_eq(coro_fd_close(fd), 0);
    return NULL;
}

static void *echo_server(void *arg)
{
    long conns = (long)arg;

    for (long i = 0; i < conns; i++) {
        int c;
        ck_assert_int_eq(coro_accept(lfd, &c, NULL, NULL, -1), 0);
        ck_assert_int_ge(fcntl(c, F_GETFL) & O_NONBLOCK, 1);
        ck_assert_int_eq(fcntl(c, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        spawn(echo_conn, (void *)(intptr_t)c);
    }
    ck_assert_int_eq(coro_fd_close(lfd), 0);
    return NULL;
}

static void *echo_client(void *arg)
{
    int fd;
    char msg[64], back[64];
    size_t n, got = 0;

    /* Generous: with 10,000 dialling at once the accept queue overflows and
     * SYNs are retransmitted (1 s, 3 s, ...), slower still under ASan. */
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &fd, in_ms(60000)), 0);
    int len = snprintf(msg, sizeof msg, "hello %ld", (long)arg);
    ck_assert_int_eq(coro_write(fd, msg, (size_t)len, &n, -1), 0);
    ck_assert_uint_eq(n, (size_t)len);
    while (got < (size_t)len) {
        ck_assert_int_eq(coro_read(fd, back + got, sizeof back - got, &n, in_ms(60000)), 0);
        ck_assert_uint_gt(n, 0);
        got += n;
    }
    ck_assert_int_eq(memcmp(msg, back, (size_t)len), 0);
    ck_assert_int_eq(coro_fd_close(fd), 0);
    return NULL;
}

START_TEST(tcp_echo)
{
    lfd = listener(port_s, 16);
    spawn(echo_server, (void *)8L);
    for (long i = 0; i < 8; i++)
        spawn(echo_client, (void *)i);
    run();
}
END_TEST

/* Many connections at once: every client and its server side are alive
 * together. */
static long nconns;

START_TEST(tcp_many_connections)
{
    struct rlimit rl;

    nconns = (RUNNING_ON_VALGRIND || UNDER_TSAN) ? 200 : 10000;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rlim_t want = (rlim_t)(2 * nconns + 64);
    if (rl.rlim_cur < want) {
        struct rlimit more = { want, rl.rlim_max > want ? rl.rlim_max : want };
        if (setrlimit(RLIMIT_NOFILE, &more) != 0) { /* not root: what we may */
            more = (struct rlimit){ rl.rlim_max, rl.rlim_max };
            ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &more), 0);
            nconns = ((long)rl.rlim_max - 64) / 2;
        }
    }
    ck_assert_int_ge(nconns, 200);
    lfd = listener(port_s, 4096);
    spawn(echo_server, (void *)nconns);
    for (long i = 0; i < nconns; i++)
        spawn(echo_client, (void *)i);
    run();
}
END_TEST

/* A full socket buffer: the writer parks part way and goes on as the
 * reader drains it; every byte arrives once, in order. */
#define BIG (4 << 20)

static void *big_writer(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char *buf = malloc(BIG);
    size_t n;

    for (size_t i = 0; i < BIG; i++)
        buf[i] = (unsigned char)(i * 7 + 1);
    ck_assert_int_eq(coro_write(fd, buf, BIG, &n, -1), 0);
    ck_assert_uint_eq(n, BIG);
    free(buf);
    /* Half-close: the reader sees end of file. */
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    char c;
    ck_assert_int_eq(coro_read(fd, &c, 1, &n, in_ms(5000)), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(coro_fd_close(fd), 0);
    return NULL;
}

static void *slow_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    unsigned char buf[3000];
    size_t total = 0, n;

    for (;;) {
        ck_assert_int_eq(coro_read(fd, buf, sizeof buf, &n, in_ms(10000)), 0);
        if (!n)
            break;
        /* One assertion per read, not per byte: 4 M of those took most of
         * this suite's time under valgrind. */
        size_t bad = n;
        for (size_t i = 0; i < n && bad == n; i++)
            if (buf[i] != (unsigned char)((total + i) * 7 + 1))
                bad = i;
        ck_assert_uint_eq(bad, n); /* the offset of the first wrong byte */
        total += n;
        if ((total / sizeof buf) % 64 == 0)
            coro_yield(NULL, NULL);
    }
    ck_assert_uint_eq(total, BIG);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(coro_fd_close(fd), 0);
    return NULL;
}

START_TEST(partial_writes_and_eof)
{
    int sv[2];

    pair(sv);
    spawn(big_writer, (void *)(intptr_t)sv[0]);
    spawn(slow_reader, (void *)(intptr_t)sv[1]);
    run();
}
END_TEST

/* A peer that resets: the reader gets ECONNRESET. */
static void *resets(void *arg)
{
    int c;
    struct linger l = { 1, 0 };

    (void)arg;
    ck_assert_int_eq(coro_accept(lfd, &c, NULL, NULL, in_ms(5000)), 0);
    ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    coro_sleep(20 * MS); /* the client waits in its read */
    ck_assert_int_eq(coro_fd_close(c), 0);
    return NULL;
}

static void *reads_reset(void *arg)
{
    int fd;
    char c;
    size_t n;

    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &fd, in_ms(5000)), 0);
    result[0] = coro_read(fd, &c, 1, &n, in_ms(5000));
    result[1] = (int)n;
    coro_fd_close(fd);
    return NULL;
}

START_TEST(peer_reset)
{
    lfd = listener(port_s, 4);
    spawn(resets, NULL);
    spawn(reads_reset, NULL);
    run();
    ck_assert_int_eq(result[0], ECONNRESET);
    ck_assert_int_eq(result[1], 0);
    coro_fd_close(lfd);
}
END_TEST

/* ------------------------------------------------------------- connect */

static void *dials_closed_port(void *arg)
{
    int fd = -1;

    (void)arg;
    result[0] = coro_tcp_dial("127.0.0.1", port_s, &fd, in_ms(5000));
    return NULL;
}

START_TEST(connect_refused)
{
    int l = listener(port_s, 1);

    close(l); /* nobody listens on that port now */
    spawn(dials_closed_port, NULL);
    run();
    ck_assert_int_eq(result[0], ECONNREFUSED);
}
END_TEST

/* A listener that never accepts, its queue full: a new SYN is dropped,
 * so the connect can only time out. */
static void *dials_full_listener(void *arg)
{
    int fd;

    (void)arg;
    int64_t t0 = coro_now();
    result[0] = coro_tcp_dial("127.0.0.1", port_s, &fd, in_ms(300));
    result[1] = (int)((coro_now() - t0) / MS);
    return NULL;
}

START_TEST(connect_times_out)
{
    int fds[8], n = 0;

    lfd = listener(port_s, 0);
    /* Fill the accept queue (backlog 0 still holds one or two). */
    for (; n < 8; n++) {
        fds[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port_s)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        connect(fds[n], (struct sockaddr *)&a, sizeof a);
    }
    usleep(100000);
    spawn(dials_full_listener, NULL);
    run();
    ck_assert_int_eq(result[0], ETIMEDOUT);
    ck_assert_int_ge(result[1], 250);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(lfd);
}
END_TEST

/* -------------------------------------------- deadlines, cancel, close */

static coro_t *victim;

static void *reads_forever(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    size_t n = 99;

    result[0] = coro_read(fd, &c, 1, &n, -1);
    result[1] = (int)n;
    return NULL;
}

static void *cancels_reader(void *arg)
{
    int sv[2];

    (void)arg;
    pair(sv);
    ck_assert_int_eq(coro_spawn(&victim, reads_forever, (void *)(intptr_t)sv[0], NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_cancel(victim), 0);
    ck_assert_int_eq(coro_join(victim, NULL, -1), 0);
    ck_assert_int_eq(result[0], ECANCELED);
    ck_assert_int_eq(result[1], 0);
    /* Close while waiting: EBADF. */
    ck_assert_int_eq(coro_spawn(&victim, reads_forever, (void *)(intptr_t)sv[0], NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_fd_close(sv[0]), 0);
    ck_assert_int_eq(coro_join(victim, NULL, -1), 0);
    ck_assert_int_eq(result[0], EBADF);
    coro_fd_close(sv[1]);
    return NULL;
}

START_TEST(cancel_and_close_while_waiting)
{
    spawn(cancels_reader, NULL);
    run();
}
END_TEST

/* Every call with a deadline: passed (a try) and near (it parks). */
static void *every_call_times_out(void *arg)
{
    int sv[2], c;
    char buf[16];
    size_t n;
    struct iovec iov = { buf, sizeof buf };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct pollfd p;
    unsigned rev;

    (void)arg;
    pair(sv);
    int l = listener(port_s, 4);
    for (int k = 0; k < 2; k++) {
        int64_t d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_read(sv[0], buf, sizeof buf, &n, d), ETIMEDOUT);
        d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_readv(sv[0], &iov, 1, &n, d), ETIMEDOUT);
        d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_recv(sv[0], buf, sizeof buf, 0, &n, d), ETIMEDOUT);
        d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_recvmsg(sv[0], &msg, 0, &n, d), ETIMEDOUT);
        d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_accept(l, &c, NULL, NULL, d), ETIMEDOUT);
        d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_wait_fd(sv[0], CORO_IN, &rev, d), ETIMEDOUT);
        p = (struct pollfd){ .fd = sv[0], .events = POLLIN };
        d = k ? in_ms(20) : 0;
        ck_assert_int_eq(coro_poll(&p, 1, NULL, d), ETIMEDOUT);
    }
    /* Writes: fill the buffer, then one more byte cannot go. */
    static char chunk[65536];
    for (;;) {
        int r = coro_write(sv[0], chunk, sizeof chunk, &n, 0);
        if (r == ETIMEDOUT)
            break;
        ck_assert_int_eq(r, 0);
    }
    ck_assert_int_eq(coro_write(sv[0], chunk, 1, &n, in_ms(20)), ETIMEDOUT);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(coro_send(sv[0], chunk, 1, MSG_NOSIGNAL, &n, in_ms(20)), ETIMEDOUT);
    iov = (struct iovec){ chunk, 1 };
    ck_assert_int_eq(coro_writev(sv[0], &iov, 1, &n, in_ms(20)), ETIMEDOUT);
    ck_assert_int_eq(coro_sendmsg(sv[0], &msg, 0, &n, in_ms(20)), ETIMEDOUT);
    ck_assert_int_eq(coro_wait_fd(sv[1], CORO_IN | CORO_OUT, &rev, -1), 0);
    ck_assert_uint_eq(rev & CORO_IN, CORO_IN);
    coro_fd_close(sv[0]);
    coro_fd_close(sv[1]);
    coro_fd_close(l);
    return NULL;
}

START_TEST(deadlines_on_every_call)
{
    spawn(every_call_times_out, NULL);
    run();
}
END_TEST

/* A plain close(2) of a registered fd, then a new fd with its number:
 * the new one works (no hang), and events of the old are not taken for
 * the new one's. */
static void *reuses_numbers(void *arg)
{
    int a[2], b[2];
    char c = 'x';
    size_t n;

    (void)arg;
    pair(a);
    ck_assert_int_eq(coro_read(a[0], &c, 1, &n, in_ms(5)), ETIMEDOUT); /* registered */
    int old = a[0], dup_old = dup(a[0]);   /* the old file stays open */
    close(a[0]);
    pair(b);
    int fresh = b[0] == old ? b[0] : b[1];
    ck_assert_int_eq(fresh, old);          /* the number came back */
    int other = fresh == b[0] ? b[1] : b[0];
    /* An event of the old file (still open through dup_old) does not make
     * the new one's read return. */
    ck_assert_int_eq(write(a[1], "o", 1), 1);
    ck_assert_int_eq(coro_read(fresh, &c, 1, &n, in_ms(50)), ETIMEDOUT);
    /* The new file's data is seen, within the deadline. */
    ck_assert_int_eq(write(other, "n", 1), 1);
    ck_assert_int_eq(coro_read(fresh, &c, 1, &n, in_ms(3000)), 0);
    ck_assert_int_eq(c, 'n');
    /* A waiter parked before the new file's data comes is woken too. */
    result[0] = -1;
    ck_assert_int_eq(coro_spawn(&victim, reads_forever, (void *)(intptr_t)fresh, NULL), 0);
    coro_sleep(10 * MS);
    ck_assert_int_eq(write(other, "m", 1), 1);
    ck_assert_int_eq(coro_join(victim, NULL, in_ms(3000)), 0);
    ck_assert_int_eq(result[0], 0);
    close(dup_old);
    close(a[1]);
    coro_fd_close(fresh);
    close(other);
    return NULL;
}

START_TEST(fd_number_reuse)
{
    spawn(reuses_numbers, NULL);
    run();
}
END_TEST

/* Several acceptors on one listener: each connection goes to one of them,
 * first come first served. */
static int accepted[4];

static void *acceptor(void *arg)
{
    int c;

    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(coro_accept(lfd, &c, NULL, NULL, in_ms(5000)), 0);
        accepted[(intptr_t)arg]++;
        coro_fd_close(c);
    }
    return NULL;
}

static void *dialer(void *arg)
{
    int fd;

    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &fd, in_ms(5000)), 0);
    char c;
    size_t n;
    coro_read(fd, &c, 1, &n, in_ms(5000)); /* until the server closes */
    coro_fd_close(fd);
    return NULL;
}

START_TEST(many_acceptors)
{
    lfd = listener(port_s, 16);
    for (intptr_t i = 0; i < 4; i++)
        spawn(acceptor, (void *)i);
    for (int i = 0; i < 8; i++)
        spawn(dialer, NULL);
    run();
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(accepted[i], 2);
    coro_fd_close(lfd);
}
END_TEST

/* coro_poll over several fds: wakes when one of them is ready, and says
 * which. */
static int pfds[3][2];

static void *writes_later(void *arg)
{
    coro_sleep(10 * MS);
    ck_assert_int_eq(write(pfds[(intptr_t)arg][1], "z", 1), 1);
    return NULL;
}

static void *polls(void *arg)
{
    struct pollfd p[4];
    int nready = -1;

    (void)arg;
    for (int i = 0; i < 3; i++)
        p[i] = (struct pollfd){ .fd = pfds[i][0], .events = POLLIN };
    p[3] = (struct pollfd){ .fd = -1, .events = POLLIN };
    spawn(writes_later, (void *)2);
    ck_assert_int_eq(coro_poll(p, 4, &nready, in_ms(5000)), 0);
    ck_assert_int_eq(nready, 1);
    ck_assert(p[2].revents & POLLIN);
    ck_assert_int_eq(p[0].revents, 0);
    ck_assert_int_eq(p[3].revents, 0);
    ck_assert_int_eq(coro_poll(NULL, 0, &nready, in_ms(5)), ETIMEDOUT);
    return NULL;
}

START_TEST(poll_several)
{
    for (int i = 0; i < 3; i++)
        pair(pfds[i]);
    spawn(polls, NULL);
    run();
    for (int i = 0; i < 3; i++) {
        coro_fd_close(pfds[i][0]);
        close(pfds[i][1]);
    }
}
END_TEST

/* ------------------------------------------------- offload, dns, signal */

static void *sleeps_then_doubles(void *arg)
{
    usleep(30000);
    return (void *)((intptr_t)arg * 2);
}

static atomic_int job_release;

static void *waits_for_release(void *arg)
{
    while (!atomic_load(&job_release))
        usleep(1000);
    return arg;
}

static void *offload_victim(void *arg);

static void *offloads(void *arg)
{
    void *r = NULL;

    (void)arg;
    ck_assert_int_eq(coro_offload(sleeps_then_doubles, (void *)21, &r, -1), 0);
    ck_assert_ptr_eq(r, (void *)42);
    /* Timed out: the coroutine goes on, the job finishes into nothing.
     * The job cannot end before the call returns (it waits for the flag
     * set after), so the ETIMEDOUT was not a wait for the job. */
    atomic_store(&job_release, 0);
    ck_assert_int_eq(coro_offload(waits_for_release, (void *)1, &r, in_ms(5)), ETIMEDOUT);
    ck_assert_int_eq(coro_offload(waits_for_release, (void *)1, &r, 0), ETIMEDOUT);
    atomic_store(&job_release, 1);
    ck_assert_int_eq(coro_offload(NULL, NULL, &r, -1), EINVAL);
    /* Cancelled while it waits. */
    ck_assert_int_eq(coro_spawn(&victim, offload_victim, NULL, NULL), 0);
    coro_yield(NULL, NULL);
    ck_assert_int_eq(coro_cancel(victim), 0);
    ck_assert_int_eq(coro_join(victim, NULL, -1), 0);
    ck_assert_int_eq(result[0], ECANCELED);
    return NULL;
}

static void *offload_victim(void *arg)
{
    (void)arg;
    result[0] = coro_offload(sleeps_then_doubles, (void *)1, NULL, -1);
    return NULL;
}

START_TEST(offload_pool)
{
    spawn(offloads, NULL);
    run();
    usleep(60000); /* the abandoned jobs finish; ASan and valgrind see them freed */
}
END_TEST

static void *resolves(void *arg)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;

    (void)arg;
    ck_assert_int_eq(coro_getaddrinfo("localhost", "80", &hints, &res, in_ms(10000)), 0);
    ck_assert_ptr_nonnull(res);
    int loopback = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET &&
            ((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
            loopback = 1;
        else if (a->ai_family == AF_INET6)
            loopback = 1;
    ck_assert(loopback);
    freeaddrinfo(res);
    ck_assert_int_lt(coro_getaddrinfo("no-such-host.invalid", "80", &hints, &res,
                                      in_ms(10000)), 0);
    return NULL;
}

START_TEST(getaddrinfo_localhost)
{
    spawn(resolves, NULL);
    run();
}
END_TEST

static void *waits_signal(void *arg)
{
    sigset_t set;
    int sig = 0;

    (void)arg;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    ck_assert_int_eq(coro_signal_wait(&set, &sig, in_ms(5000)), 0);
    ck_assert_int_eq(sig, SIGUSR1);
    ck_assert_int_eq(coro_signal_wait(&set, &sig, in_ms(10)), ETIMEDOUT);
    sigemptyset(&set);
    ck_assert_int_eq(coro_signal_wait(&set, &sig, -1), EINVAL);
    return NULL;
}

static void *raises_later(void *arg)
{
    (void)arg;
    coro_sleep(10 * MS);
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    return NULL;
}

START_TEST(signal_wait)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    spawn(waits_signal, NULL);
    spawn(raises_later, NULL);
    run();
}
END_TEST

/* A thread whose coroutine stopped waiting for a signal does not read it
 * for nobody: the process's signal goes to the thread still waiting. */
static sigset_t usr1;
static atomic_int long_wait_result, brief_wait_over, long_wait_started;

static void *waits_briefly(void *arg)
{
    int sig;

    (void)arg;
    ck_assert_int_eq(coro_signal_wait(&usr1, &sig, in_ms(10)), ETIMEDOUT);
    atomic_store(&brief_wait_over, 1);
    coro_sleep(400 * MS);                   /* its reactor stays, idle */
    return NULL;
}

static void *waits_long(void *arg)
{
    int sig = 0;

    (void)arg;
    atomic_store(&long_wait_started, 1);
    int err = coro_signal_wait(&usr1, &sig, in_ms(10000));
    atomic_store(&long_wait_result, err == 0 && sig == SIGUSR1 ? 0 : err ? err : -1);
    return NULL;
}

static void *runs_on_a_thread(void *arg)
{
    spawn(arg ? waits_long : waits_briefly, NULL);
    run();
    return NULL;
}

START_TEST(signal_goes_to_the_thread_that_waits)
{
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr1, NULL), 0);
    for (int round = 0; round < 5; round++) {
        pthread_t a, b;
        atomic_store(&long_wait_result, -2);
        atomic_store(&brief_wait_over, 0);
        atomic_store(&long_wait_started, 0);
        ck_assert_int_eq(pthread_create(&a, NULL, runs_on_a_thread, NULL), 0);
        while (!atomic_load(&brief_wait_over))
            usleep(1000);
        ck_assert_int_eq(pthread_create(&b, NULL, runs_on_a_thread, (void *)1), 0);
        while (!atomic_load(&long_wait_started))
            usleep(1000);
        usleep(20 * 1000);                  /* b parks in its wait */
        ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
        ck_assert_int_eq(pthread_join(b, NULL), 0);
        ck_assert_int_eq(pthread_join(a, NULL), 0);
        int r = atomic_load(&long_wait_result);
        ck_assert_int_eq(r, 0);
    }
}
END_TEST

/* The child of a fork gets a reactor of its own: the parent, idle in its
 * epoll_wait meanwhile, takes none of the child's events, and an offload
 * the parent's threads were running ends with ECANCELED in the child
 * instead of waiting for ever. */
static int fork_inflight = -1;

static void *sleeps_300ms(void *arg)
{
    usleep(300 * 1000);
    return arg;
}

static void *offloads_across_the_fork(void *arg)
{
    (void)arg;
    fork_inflight = coro_offload(sleeps_300ms, NULL, NULL, in_ms(3000));
    return NULL;
}

static int child_sv[2];

static void *child_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        coro_sleep(5 * MS);
        if (write(child_sv[1], "x", 1) != 1)
            _exit(10);
    }
    return NULL;
}

/* The child's checks; its exit status says which failed. */
static void *child_main(void *arg)
{
    char b;
    size_t n;
    void *r = NULL;
    int bad = 0;

    (void)arg;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, child_sv) != 0)
        _exit(11);
    spawn(child_writer, NULL);
    for (int i = 0; i < 20; i++)
        if (coro_read(child_sv[0], &b, 1, &n, in_ms(1000)) != 0 || n != 1)
            bad |= 1;
    if (coro_offload(sleeps_then_doubles, (void *)4, &r, in_ms(2000)) != 0 || r != (void *)8)
        bad |= 2;
    coro_sleep(5 * MS); /* the cancelled offload's coroutine has run */
    if (fork_inflight != ECANCELED)
        bad |= 4;
    _exit(bad);
}

static void *forks(void *arg)
{
    int sv[2], status;
    char b;
    size_t n;

    (void)arg;
    pair(sv);
    /* The parent's reactor watches an fd, and an offload is in flight. */
    ck_assert_int_eq(coro_read(sv[0], &b, 1, &n, in_ms(10)), ETIMEDOUT);
    spawn(offloads_across_the_fork, NULL);
    coro_sleep(20 * MS);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        spawn(child_main, NULL);
        coro_sleep(60 * 1000 * MS); /* child_main exits first */
        _exit(12);
    }
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0)
        coro_sleep(20 * MS); /* idle in the shared epoll meanwhile */
    ck_assert_int_eq(w, pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    close(sv[0]);
    close(sv[1]);
    return NULL;
}

START_TEST(fork_child_has_its_own_reactor)
{
    /* TSan follows no fork made on a coroutine's stack with threads
     * running (it reports its own fiber state as races in the child) and
     * starts no thread after one: the check runs in the other builds. */
    if (UNDER_TSAN)
        return;
    spawn(forks, NULL);
    run();
    ck_assert_int_eq(fork_inflight, 0); /* in the parent the job ran */
}
END_TEST



/* --------------------------------------------------------------- liveness */

/* A coroutine waiting on an fd with no deadline is not deadlocked: another
 * thread may write to it. */
static int live_sv[2];

static void *writes_from_a_thread(void *arg)
{
    (void)arg;
    usleep(100000);
    ck_assert_int_eq(write(live_sv[1], "w", 1), 1);
    return NULL;
}

START_TEST(fd_waiter_is_not_a_deadlock)
{
    pthread_t th;

    pair(live_sv);
    spawn(reads_forever, (void *)(intptr_t)live_sv[0]);
    ck_assert_int_eq(pthread_create(&th, NULL, writes_from_a_thread, NULL), 0);
    run(); /* 0, not EDEADLK */
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(result[0], 0);
    ck_assert_int_eq(result[1], 1);
    coro_fd_close(live_sv[0]);
    close(live_sv[1]);
}
END_TEST

/* Yields hand the thread from coroutine to coroutine without the run
 * loop; the loop must still run now and then and poll the reactor, or a
 * reader woken by I/O would wait behind yielders for ever. */
static int yield_sv[2], read_done;
static long yields_meanwhile;

static void *reads_once(void *arg)
{
    char c;
    size_t n;

    (void)arg;
    ck_assert_int_eq(coro_read(yield_sv[0], &c, 1, &n, -1), 0); /* parks */
    ck_assert_uint_eq(n, 1);
    read_done = 1;
    return NULL;
}

static void *yields_until_read(void *arg)
{
    if (arg)
        ck_assert_int_eq(write(yield_sv[1], "x", 1), 1); /* the reader parked first */
    while (!read_done) {
        ck_assert_int_eq(coro_yield(NULL, NULL), 0);
        ck_assert_int_lt(++yields_meanwhile, 1000000);
    }
    return NULL;
}

START_TEST(yielders_do_not_starve_io)
{
    pair(yield_sv);
    spawn(reads_once, NULL);
    spawn(yields_until_read, (void *)1);
    spawn(yields_until_read, NULL);
    spawn(yields_until_read, NULL);
    run();
    ck_assert_int_eq(read_done, 1);
    ck_assert_int_gt(yields_meanwhile, 0);
    coro_fd_close(yield_sv[0]);
    close(yield_sv[1]);
}
END_TEST

/* Outside a scheduled coroutine every call says EPERM; errno is kept. */
START_TEST(calls_outside_coroutines)
{
    char c;
    size_t n;
    int fd;

    errno = 12345;
    ck_assert_int_eq(coro_read(0, &c, 1, &n, -1), EPERM);
    ck_assert_int_eq(coro_accept(0, &fd, NULL, NULL, -1), EPERM);
    ck_assert_int_eq(coro_wait_fd(0, CORO_IN, NULL, -1), EPERM);
    ck_assert_int_eq(coro_offload(sleeps_then_doubles, NULL, NULL, -1), EPERM);
    ck_assert_int_eq(coro_wait_fd(0, 0, NULL, -1), EINVAL);
    ck_assert_int_eq(coro_read(0, &c, 1, NULL, -1), EINVAL);
    /* *n is written on every failure, bad arguments included. */
    n = 777;
    ck_assert_int_eq(coro_read(0, NULL, 1, &n, -1), EINVAL);
    ck_assert_uint_eq(n, 0);
    n = 777;
    ck_assert_int_eq(coro_writev(1, NULL, 1, &n, -1), EINVAL);
    ck_assert_uint_eq(n, 0);
    n = 777;
    ck_assert_int_eq(coro_recvmsg(0, NULL, 0, &n, -1), EINVAL);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(errno, 12345);
}
END_TEST

/* The peer writes and closes at once: data and hang-up come in one
 * event; the short read of the data does not hide the end of file. */
static int eof_sv[2];

static void *writes_and_closes(void *arg)
{
    (void)arg;
    coro_sleep(10 * MS);                    /* the reader waits first */
    ck_assert_int_eq(write(eof_sv[1], "abc", 3), 3);
    ck_assert_int_eq(close(eof_sv[1]), 0);
    return NULL;
}

static void *reads_to_eof(void *arg)
{
    int fd;
    char buf[100];
    size_t n;

    (void)arg;
    ck_assert_int_eq(coro_accept(lfd, &fd, NULL, NULL, in_ms(5000)), 0);
    eof_sv[0] = fd;
    ck_assert_int_eq(coro_read(fd, buf, sizeof buf, &n, in_ms(5000)), 0);
    ck_assert_uint_eq(n, 3);
    int64_t t0 = coro_now();
    ck_assert_int_eq(coro_read(fd, buf, sizeof buf, &n, in_ms(5000)), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_lt(coro_now() - t0, 200 * MS); /* not the 1 s recheck */
    coro_fd_close(fd);
    return NULL;
}

static void *dials_for_eof(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &eof_sv[1], in_ms(5000)), 0);
    spawn(writes_and_closes, NULL);
    return NULL;
}

START_TEST(eof_with_the_last_data)
{
    lfd = listener(port_s, 4);
    spawn(reads_to_eof, NULL);
    spawn(dials_for_eof, NULL);
    run();
    coro_fd_close(lfd);
}
END_TEST

/* A passed deadline tries the call even after a short read said the fd
 * was drained (data may have come since). */
static void *tries_after_short_read(void *arg)
{
    int c, s;
    char buf[100];
    size_t n;

    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &c, in_ms(5000)), 0);
    ck_assert_int_eq(coro_accept(lfd, &s, NULL, NULL, in_ms(5000)), 0);
    ck_assert_int_eq(coro_write(c, "x", 1, &n, -1), 0);
    ck_assert_int_eq(coro_read(s, buf, sizeof buf, &n, in_ms(5000)), 0); /* short */
    ck_assert_int_eq(coro_write(c, "yz", 2, &n, -1), 0);
    usleep(20000);                          /* it is there; no event taken yet */
    ck_assert_int_eq(coro_read(s, buf, sizeof buf, &n, 0), 0);
    ck_assert_uint_eq(n, 2);
    coro_fd_close(c);
    coro_fd_close(s);
    return NULL;
}

/* The events this process's epoll set watches on fd (from the epoll fd's
 * /proc fdinfo), or -1 if fd is not in it.  One epoll set: one scheduler. */
static long epoll_events_of(int fd)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    long events = -1;

    ck_assert_ptr_nonnull(d);
    while ((de = readdir(d)) != NULL && events < 0) {
        char path[64], link[64], line[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(path, link, sizeof link - 1);
        if (len < 0)
            continue;
        link[len] = '\0';
        if (strcmp(link, "anon_inode:[eventpoll]") != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%s", de->d_name);
        FILE *f = fopen(path, "r");
        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof line, f)) {
            int tfd;
            unsigned ev;
            if (sscanf(line, "tfd: %d events: %x", &tfd, &ev) == 2 && tfd == fd)
                events = (long)ev;
        }
        fclose(f);
    }
    closedir(d);
    return events;
}

enum { WATCH_BYTES = 8 << 20 };
static int watched[2]; /* [0] is written, [1] drained */

static void *drains_late(void *arg)
{
    static char buf[65536];
    size_t n, got = 0;

    (void)arg;
    coro_sleep(20 * MS); /* the writer waits, its buffer full */
    result[1] = (int)epoll_events_of(watched[0]);
    while (got < WATCH_BYTES &&
           coro_read(watched[1], buf, sizeof buf, &n, in_ms(5000)) == 0 && n > 0)
        got += n;
    result[2] = got == WATCH_BYTES;
    return NULL;
}

static void *reads_then_fills(void *arg)
{
    int fd = watched[0];
    char c;
    size_t n;
    static char big[WATCH_BYTES];

    (void)arg;
    /* A read that waits registers the fd, for reading only. */
    ck_assert_int_eq(coro_read(fd, &c, 1, &n, in_ms(20)), ETIMEDOUT);
    result[0] = (int)epoll_events_of(fd);
    /* A write that fills the buffer waits: from now on EPOLLOUT too. */
    ck_assert_int_eq(coro_write(fd, big, sizeof big, &n, in_ms(5000)), 0);
    ck_assert_uint_eq(n, sizeof big);
    result[3] = (int)epoll_events_of(fd);
    return NULL;
}

/* An fd is watched for writing only from its first write that blocks:
 * with EPOLLOUT from the start, every ACK that frees send buffer woke an
 * idle reactor. */
START_TEST(writes_watched_once_they_block)
{
    pair(watched);
    spawn(reads_then_fills, NULL);
    spawn(drains_late, NULL);
    run();
    ck_assert_int_ne(result[0], -1); /* in the set (EPOLLET is the sign bit) */
    ck_assert_int_eq(result[0] & EPOLLIN, EPOLLIN);
    ck_assert_int_eq(result[0] & EPOLLOUT, 0);
    ck_assert_int_eq(result[1] & EPOLLOUT, EPOLLOUT); /* while the writer waits */
    ck_assert_int_eq(result[2], 1);
    ck_assert_int_eq(result[3] & (EPOLLIN | EPOLLOUT), EPOLLIN | EPOLLOUT);
    close(watched[0]);
    close(watched[1]);
}
END_TEST

START_TEST(try_after_short_read)
{
    lfd = listener(port_s, 4);
    spawn(tries_after_short_read, NULL);
    run();
    coro_fd_close(lfd);
}
END_TEST

/* coro_offload always runs fn, even with a passed deadline. */
static volatile int ran_anyway;

static void *marks_ran(void *arg)
{
    (void)arg;
    __atomic_store_n(&ran_anyway, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *offloads_too_late(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_offload(marks_ran, NULL, NULL, 0), ETIMEDOUT);
    for (int k = 0; k < 500 && !__atomic_load_n(&ran_anyway, __ATOMIC_ACQUIRE); k++)
        coro_sleep(2 * MS);
    ck_assert_int_eq(ran_anyway, 1);
    return NULL;
}

START_TEST(offload_runs_even_when_late)
{
    spawn(offloads_too_late, NULL);
    run();
}
END_TEST

/* coro_tcp_listen(NULL, ...) takes IPv4 and IPv6 (where there is IPv6). */
static void *dials_both(void *arg)
{
    int fd, c;

    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &fd, in_ms(5000)), 0);
    ck_assert_int_eq(coro_accept(lfd, &c, NULL, NULL, in_ms(5000)), 0);
    coro_fd_close(fd);
    coro_fd_close(c);
    int s6 = socket(AF_INET6, SOCK_STREAM, 0);
    if (s6 >= 0) {
        close(s6);
        int r = coro_tcp_dial("::1", port_s, &fd, in_ms(5000));
        if (r != EADDRNOTAVAIL && r != ENETUNREACH) { /* ::1 configured */
            ck_assert_int_eq(r, 0);
            ck_assert_int_eq(coro_accept(lfd, &c, NULL, NULL, in_ms(5000)), 0);
            coro_fd_close(fd);
            coro_fd_close(c);
        }
    }
    return NULL;
}

START_TEST(listen_on_every_address)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof a;

    ck_assert_int_eq(coro_tcp_listen(NULL, "0", 8, &lfd), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    unsigned port = a.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a)->sin6_port)
                                            : ntohs(((struct sockaddr_in *)&a)->sin_port);
    snprintf(port_s, sizeof port_s, "%u", port);
    spawn(dials_both, NULL);
    run();
    coro_fd_close(lfd);
}
END_TEST

/* ------------------------------------------------------ readiness waits */

/* Waiting for readiness moves no data: like poll(2), every waiter sees
 * it, and a reader queued behind a poller still gets its wake (edge
 * triggering gives one event for all of them). */
static int rw_sv[2];

static void *waits_fd_in(void *arg)
{
    unsigned rev = 0;

    result[(intptr_t)arg] = coro_wait_fd(rw_sv[0], CORO_IN, &rev, in_ms(2000));
    ck_assert_uint_eq(rev, CORO_IN);
    return NULL;
}

static void *polls_in(void *arg)
{
    struct pollfd p = { .fd = rw_sv[0], .events = POLLIN };
    int nr = 0;

    result[(intptr_t)arg] = coro_poll(&p, 1, &nr, in_ms(2000));
    ck_assert_int_eq(nr, 1);
    return NULL;
}

static void *reads_one(void *arg)
{
    char c;
    size_t n;

    result[(intptr_t)arg] = coro_read(rw_sv[0], &c, 1, &n, in_ms(2000));
    ck_assert_uint_eq(n, 1);
    return NULL;
}

static void *writes_one_later(void *arg)
{
    (void)arg;
    coro_sleep(20 * MS);                    /* every waiter is parked */
    ck_assert_int_eq(write(rw_sv[1], "x", 1), 1);
    return NULL;
}

START_TEST(readiness_is_seen_by_every_waiter)
{
    pair(rw_sv);
    for (int i = 0; i < 4; i++)
        result[i] = -1;
    spawn(waits_fd_in, (void *)0);
    spawn(waits_fd_in, (void *)1);
    spawn(polls_in, (void *)2);
    spawn(reads_one, (void *)3);            /* last in line */
    spawn(writes_one_later, NULL);
    run();
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(result[i], 0);
    close(rw_sv[0]);
    close(rw_sv[1]);
}
END_TEST

/* coro_poll asking for nothing still ends on a hang-up (poll(2) always
 * reports POLLHUP), and POLLPRI waits for out-of-band data. */
static int hup_sv[2], oob_fd[2];

static void *polls_for_nothing(void *arg)
{
    struct pollfd p = { .fd = hup_sv[0], .events = 0 };
    int nr = 0;

    (void)arg;
    ck_assert_int_eq(coro_poll(&p, 1, &nr, in_ms(2000)), 0);
    ck_assert_int_eq(nr, 1);
    ck_assert_int_eq(p.revents & POLLHUP, POLLHUP);
    return NULL;
}

static void *writes_then_closes_later(void *arg)
{
    (void)arg;
    coro_sleep(20 * MS);
    ck_assert_int_eq(write(hup_sv[1], "x", 1), 1); /* not a hang-up: still waits */
    coro_sleep(20 * MS);
    ck_assert_int_eq(close(hup_sv[1]), 0);
    return NULL;
}

static void *polls_pri(void *arg)
{
    struct pollfd p = { .fd = oob_fd[0], .events = POLLPRI };
    int nr = 0;

    (void)arg;
    ck_assert_int_eq(coro_poll(&p, 1, &nr, in_ms(2000)), 0);
    ck_assert_int_eq(p.revents & POLLPRI, POLLPRI);
    return NULL;
}

static void *sends_oob_later(void *arg)
{
    (void)arg;
    coro_sleep(20 * MS);
    ck_assert_int_eq(send(oob_fd[1], "!", 1, MSG_OOB), 1);
    return NULL;
}

static void *dials_oob(void *arg)
{
    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &oob_fd[1], in_ms(5000)), 0);
    ck_assert_int_eq(coro_accept(lfd, &oob_fd[0], NULL, NULL, in_ms(5000)), 0);
    spawn(polls_pri, NULL);
    spawn(sends_oob_later, NULL);
    return NULL;
}

START_TEST(poll_hangup_and_pri)
{
    pair(hup_sv);
    spawn(polls_for_nothing, NULL);
    spawn(writes_then_closes_later, NULL);
    run();
    close(hup_sv[0]);

    lfd = listener(port_s, 4);
    spawn(dials_oob, NULL);
    run();
    coro_fd_close(oob_fd[0]);
    coro_fd_close(oob_fd[1]);
    coro_fd_close(lfd);
}
END_TEST

/* An fd libcoro made, closed with close(2) after a call that timed out:
 * a new fd with the same number is tried at once, not parked on as
 * drained (nothing watches the new file, so no event would come). */
static void *reuses_a_timed_out_number(void *arg)
{
    int c, a, p[2];
    char buf[16];
    size_t n;

    (void)arg;
    ck_assert_int_eq(coro_tcp_dial("127.0.0.1", port_s, &c, in_ms(5000)), 0);
    ck_assert_int_eq(coro_accept(lfd, &a, NULL, NULL, in_ms(5000)), 0);
    ck_assert_int_eq(coro_read(a, buf, sizeof buf, &n, in_ms(20)), ETIMEDOUT);
    ck_assert_int_eq(close(a), 0);
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    ck_assert_int_eq(p[0], a); /* the lowest free number */
    ck_assert_int_eq(write(p[1], "hi", 2), 2);
    int64_t t0 = coro_now();
    ck_assert_int_eq(coro_read(p[0], buf, sizeof buf, &n, in_ms(3000)), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_lt(coro_now() - t0, 500 * MS); /* not the 1 s recheck */
    close(p[0]);
    close(p[1]);
    coro_fd_close(c);
    return NULL;
}

START_TEST(reused_number_after_a_timeout)
{
    lfd = listener(port_s, 4);
    spawn(reuses_a_timed_out_number, NULL);
    run();
    coro_fd_close(lfd);
}
END_TEST

/* On a message socket a short read is one message, not a drained fd:
 * the second of two messages is read at once. */
static struct sockaddr_un seq_addr;
static socklen_t seq_len;

static void *reads_two_messages(void *arg)
{
    int c;
    char buf[16];
    size_t n;

    ck_assert_int_eq(coro_accept((int)(intptr_t)arg, &c, NULL, NULL, in_ms(5000)), 0);
    ck_assert_int_eq(coro_read(c, buf, sizeof buf, &n, in_ms(5000)), 0); /* waits: registers */
    ck_assert_uint_eq(n, 1);
    int64_t t0 = coro_now();
    ck_assert_int_eq(coro_read(c, buf, sizeof buf, &n, in_ms(5000)), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(buf[0], 'b');
    ck_assert_int_lt(coro_now() - t0, 500 * MS); /* not the 1 s recheck */
    coro_fd_close(c);
    return NULL;
}

static void *sends_two_messages(void *arg)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    (void)arg;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(coro_connect(fd, (struct sockaddr *)&seq_addr, seq_len, in_ms(5000)), 0);
    coro_sleep(20 * MS);                    /* the reader waits first */
    ck_assert_int_eq(write(fd, "a", 1), 1);
    ck_assert_int_eq(write(fd, "b", 1), 1);
    coro_sleep(1500 * MS);                  /* no hang-up to wake the reader */
    coro_fd_close(fd);
    return NULL;
}

START_TEST(message_socket_short_reads)
{
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(l, 0);
    seq_addr = (struct sockaddr_un){ .sun_family = AF_UNIX };
    /* An abstract name (sun_path[0] == 0), unique to this process. */
    int len = snprintf(seq_addr.sun_path + 1, sizeof seq_addr.sun_path - 1, "coro-seq-%d", getpid());
    seq_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&seq_addr, seq_len), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    spawn(reads_two_messages, (void *)(intptr_t)l);
    spawn(sends_two_messages, NULL);
    run();
    coro_fd_close(l);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("tcp");

    tcase_add_test(tc, tcp_echo);
    tcase_add_test(tc, tcp_many_connections);
    tcase_add_test(tc, partial_writes_and_eof);
    tcase_add_test(tc, peer_reset);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, connect_times_out);
    tcase_add_test(tc, eof_with_the_last_data);
    tcase_add_test(tc, try_after_short_read);
    tcase_add_test(tc, writes_watched_once_they_block);
    tcase_add_test(tc, listen_on_every_address);
    suite_add_tcase(s, tc);

    tc = tcase_create("waits");
    tcase_add_test(tc, cancel_and_close_while_waiting);
    tcase_add_test(tc, deadlines_on_every_call);
    tcase_add_test(tc, fd_number_reuse);
    tcase_add_test(tc, many_acceptors);
    tcase_add_test(tc, poll_several);
    tcase_add_test(tc, fd_waiter_is_not_a_deadlock);
    tcase_add_test(tc, yielders_do_not_starve_io);
    tcase_add_test(tc, calls_outside_coroutines);
    tcase_add_test(tc, readiness_is_seen_by_every_waiter);
    tcase_add_test(tc, poll_hangup_and_pri);
    tcase_add_test(tc, reused_number_after_a_timeout);
    tcase_add_test(tc, message_socket_short_reads);
    suite_add_tcase(s, tc);

    tc = tcase_create("offload");
    tcase_add_test(tc, offload_pool);
    tcase_add_test(tc, offload_runs_even_when_late);
    tcase_add_test(tc, getaddrinfo_localhost);
    tcase_add_test(tc, signal_wait);
    tcase_add_test(tc, signal_goes_to_the_thread_that_waits);
    tcase_add_test(tc, fork_child_has_its_own_reactor);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(io_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

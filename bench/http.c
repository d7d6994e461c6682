/* bench_http: the libcoro side of the HTTP benchmark (bench/run-http.sh):
 * a keep-alive "hello" server on one thread, one coroutine per connection,
 * written as blocking code.  Each read's whole requests are answered in
 * one write (pipelining).  No deadlines, as the epoll server has none.
 *
 *   bench_http PORT        serves on 127.0.0.1:PORT until killed
 *   bench_http PORT N      the same over a pool of N threads, each with its
 *                          own SO_REUSEPORT listener on PORT */
#include "http.h"

#include <coro.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void *session(void *arg)
{
    int fd = (int)(intptr_t)arg, done = 0, err = 0;
    char in[HTTP_REQ_MAX], out[4096];
    size_t len = 0, n;

    while (!done && !err && coro_read(fd, in + len, sizeof in - len, &n, -1) == 0 && n) {
        size_t at = 0, olen = 0, took, alen;
        const char *answer;
        len += n;
        while (!done && (took = http_parse(in + at, len - at, &answer, &alen, &done))) {
            if (olen + alen > sizeof out) {
                if ((err = coro_write(fd, out, olen, &n, -1)) != 0)
                    break;
                olen = 0;
            }
            memcpy(out + olen, answer, alen);
            olen += alen;
            at += took;
        }
        memmove(in, in + at, len - at);
        len -= at;
        if (!err && olen)
            err = coro_write(fd, out, olen, &n, -1);
    }
    coro_fd_close(fd);
    return NULL;
}

static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd, err;
    coro_attr_t attr;

    coro_attr_init(&attr);
    coro_attr_set_stack_size(&attr, 32 * 1024);     /* session: ~13 KiB */
    while ((err = coro_accept(lfd, &fd, NULL, NULL, -1)) == 0)
        if (coro_spawn(NULL, session, (void *)(intptr_t)fd, &attr) != 0)
            coro_fd_close(fd);
    fprintf(stderr, "bench_http: accept: %s\n", strerror(err));
    return NULL;
}

/* A pool thread's own listener on 127.0.0.1:PORT, beside the others'. */
static void *thread_server(void *arg)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(uintptr_t)arg),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, SOMAXCONN) != 0) {
        perror("bench_http: listen");
        exit(1);
    }
    return server((void *)(intptr_t)s);
}

int main(int argc, char **argv)
{
    int lfd, err;

    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: bench_http PORT [THREADS]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3) {
        coro_pool_t *pool;
        unsigned n = (unsigned)strtoul(argv[2], NULL, 10);
        if ((err = coro_pool_create(&pool, n)) != 0) {
            fprintf(stderr, "bench_http: pool: %s\n", strerror(err));
            return 1;
        }
        for (unsigned i = 0; i < n; i++)
            if (coro_pool_spawn(pool, (int)i, NULL, thread_server,
                                (void *)(uintptr_t)strtoul(argv[1], NULL, 10), NULL) != 0)
                return 1;
        return coro_pool_wait(pool, -1); /* until killed */
    }
    if ((err = coro_tcp_listen("127.0.0.1", argv[1], -1, &lfd)) != 0) {
        fprintf(stderr, "bench_http: listen: %s\n", err < 0 ? "bad address" : strerror(err));
        return 1;
    }
    if ((err = coro_spawn(NULL, server, (void *)(intptr_t)lfd, NULL)) != 0 ||
        (err = coro_run()) != 0) {
        fprintf(stderr, "bench_http: %s\n", strerror(err));
        return 1;
    }
    return 0;
}

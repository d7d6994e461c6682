/* echo_server: a TCP echo server with one coroutine per connection.  Each
 * connection's coroutine reads and writes as if the calls blocked; while
 * one waits, the scheduler runs the others and sleeps in epoll when none
 * can run.
 *
 *   echo_server            self-test: a server on 127.0.0.1 (a free port)
 *                          and 10 clients in the same process
 *   echo_server PORT       serve on every address, PORT, until killed
 *                          (try: nc localhost PORT)
 *
 * Build: cc echo_server.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define SEC 1000000000LL
#define CLIENTS 10
#define MESSAGES 100

static _Noreturn void die(const char *what, int err)
{
    fprintf(stderr, "echo_server: %s: %s\n", what,
            err < 0 ? "name not resolved" : strerror(err));
    exit(1);
}

/* One connection: echo everything back until the peer closes. */
static void *session(void *arg)
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

/* Accepts until the listener is closed (coro_fd_close: EBADF). */
static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd, err;

    while ((err = coro_accept(lfd, &fd, NULL, NULL, -1)) == 0)
        if ((err = coro_spawn(NULL, session, (void *)(intptr_t)fd, NULL)) != 0) {
            fprintf(stderr, "echo_server: spawn: %s\n", strerror(err));
            coro_fd_close(fd);
        }
    if (err != EBADF)
        die("accept", err);
    return NULL;
}

/* ------------------------------------------------------------ self-test */

static char port[8];
static int listener;
static int clients_left = CLIENTS, echoed, failed;

/* Dials the server, sends MESSAGES lines and checks each echo. */
static void *client(void *arg)
{
    int id = (int)(intptr_t)arg, fd, err;
    char msg[64], back[64];

    if ((err = coro_tcp_dial("127.0.0.1", port, &fd, coro_now() + 5 * SEC)) != 0)
        die("dial", err);
    for (int i = 0; i < MESSAGES; i++) {
        size_t len = (size_t)snprintf(msg, sizeof msg, "client %d message %d\n", id, i);
        size_t n, got = 0;
        if ((err = coro_write(fd, msg, len, &n, coro_now() + 5 * SEC)) != 0)
            die("write", err);
        /* The echo may come back in pieces: read until all of it is here. */
        while (got < len) {
            err = coro_read(fd, back + got, len - got, &n, coro_now() + 5 * SEC);
            if (err != 0 || n == 0)
                die("read", err ? err : ECONNRESET);
            got += n;
        }
        if (memcmp(msg, back, len) != 0)
            failed++;
        else
            echoed++;
    }
    coro_fd_close(fd);
    if (--clients_left == 0)
        coro_fd_close(listener);    /* the last client stops the server */
    return NULL;
}

static int self_test(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int err;

    if ((err = coro_tcp_listen("127.0.0.1", "0", -1, &listener)) != 0)
        die("listen", err);
    if (getsockname(listener, (struct sockaddr *)&a, &alen) != 0)
        die("getsockname", errno);
    snprintf(port, sizeof port, "%u", ntohs(a.sin_port));
    if ((err = coro_spawn(NULL, server, (void *)(intptr_t)listener, NULL)) != 0)
        die("spawn", err);
    for (int i = 0; i < CLIENTS; i++)
        if ((err = coro_spawn(NULL, client, (void *)(intptr_t)i, NULL)) != 0)
            die("spawn", err);
    if ((err = coro_run()) != 0)
        die("run", err);
    printf("%d clients, %d messages echoed, %d wrong\n", CLIENTS, echoed, failed);
    return failed || echoed != CLIENTS * MESSAGES;
}

int main(int argc, char **argv)
{
    int lfd, err;

    signal(SIGPIPE, SIG_IGN);       /* a peer that goes away: EPIPE, not death */
    if (argc < 2)
        return self_test();
    if ((err = coro_tcp_listen(NULL, argv[1], -1, &lfd)) != 0)
        die("listen", err);
    if ((err = coro_spawn(NULL, server, (void *)(intptr_t)lfd, NULL)) != 0 ||
        (err = coro_run()) != 0)
        die("run", err);
    return 0;
}

/* dial: a TCP client that connects with a deadline, sends a line and reads
 * the reply, giving up on either if it takes too long.  One deadline covers
 * the whole exchange: name lookup (coro_tcp_dial resolves off the
 * scheduler's thread), connecting, writing and reading.
 *
 *   dial                   self-test: in the same process, a server that
 *                          answers in capitals, one that never answers and
 *                          a port where nobody listens
 *   dial HOST PORT [LINE]  sends LINE (default "hello") and a newline to
 *                          HOST:PORT and prints what comes back within 2 s
 *
 * Build: cc dial.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MS 1000000LL

/* Dials host:port, sends line and a newline, and reads the reply into
 * reply (NUL-terminated) until a newline, end of file or the deadline
 * (timeout_ms from now).  Returns 0 or the error of the step that failed,
 * which *step names. */
static int talk(const char *host, const char *port, const char *line, char *reply,
                size_t cap, int64_t timeout_ms, const char **step)
{
    int64_t deadline = coro_now() + timeout_ms * MS;
    size_t len = 0, n;
    int fd, err;

    *reply = 0;
    *step = "connect";
    if ((err = coro_tcp_dial(host, port, &fd, deadline)) != 0)
        return err;
    *step = "send";
    if ((err = coro_write(fd, line, strlen(line), &n, deadline)) == 0 &&
        (err = coro_write(fd, "\n", 1, &n, deadline)) == 0) {
        *step = "reply";
        while (len + 1 < cap &&
               (err = coro_read(fd, reply + len, cap - 1 - len, &n, deadline)) == 0 && n) {
            len += n;
            if (reply[len - 1] == '\n')
                break;
        }
        reply[len] = 0;
    }
    coro_fd_close(fd);
    return err;
}

static _Noreturn void die(const char *what, int err)
{
    fprintf(stderr, "dial: %s: %s\n", what, strerror(err));
    exit(1);
}

/* Prints how talk went, as the self-test and the command line show it. */
static int show(const char *host, const char *port, const char *line, int64_t timeout_ms)
{
    char reply[256];
    const char *step;
    int err = talk(host, port, line, reply, sizeof reply, timeout_ms, &step);

    if (err == 0)
        printf("reply: %s%s", reply, *reply && reply[strlen(reply) - 1] == '\n' ? "" : "\n");
    else if (err < 0)
        printf("%s: cannot resolve %s\n", step, host);
    else
        printf("%s: %s%s\n", step, strerror(err),
               err == ETIMEDOUT ? " (nothing within the deadline)" : "");
    return err;
}

/* ------------------------------------------------------------ self-test */

/* A listener on 127.0.0.1 at a free port; the port in port[]. */
static int listen_any(char port[8])
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int fd, err;

    if ((err = coro_tcp_listen("127.0.0.1", "0", -1, &fd)) != 0)
        die("listen", err < 0 ? EINVAL : err);
    if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        die("getsockname", errno);
    snprintf(port, 8, "%u", ntohs(a.sin_port));
    return fd;
}

static int upper_lfd, silent_lfd;
static char upper_port[8], silent_port[8], refused_port[8];

/* Answers one line in capitals, once. */
static void *upper_server(void *arg)
{
    char buf[256];
    size_t n, len = 0;
    int fd, err;

    (void)arg;
    if ((err = coro_accept(upper_lfd, &fd, NULL, NULL, -1)) != 0)
        die("accept", err);
    while (len < sizeof buf && coro_read(fd, buf + len, sizeof buf - len, &n, -1) == 0 && n) {
        len += n;
        if (buf[len - 1] == '\n')
            break;
    }
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)toupper((unsigned char)buf[i]);
    coro_write(fd, buf, len, &n, -1);
    coro_fd_close(fd);
    return NULL;
}

/* Takes the connection and says nothing until its client has given up. */
static void *silent_server(void *arg)
{
    char buf[256];
    size_t n;
    int fd, err;

    (void)arg;
    if ((err = coro_accept(silent_lfd, &fd, NULL, NULL, -1)) != 0)
        die("accept", err);
    while (coro_read(fd, buf, sizeof buf, &n, -1) == 0 && n) {
    }
    coro_fd_close(fd);
    return NULL;
}

static void *client(void *arg)
{
    int *bad = arg;

    *bad |= show("127.0.0.1", upper_port, "hello, server", 1000) != 0;
    *bad |= show("127.0.0.1", silent_port, "anyone there?", 100) != ETIMEDOUT;
    *bad |= show("127.0.0.1", refused_port, "hello?", 1000) != ECONNREFUSED;
    return NULL;
}

static int self_test(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    int bad = 0, err;

    upper_lfd = listen_any(upper_port);
    silent_lfd = listen_any(silent_port);
    /* A port bound but not listening: nobody else can take it, and a
     * connection to it is refused. */
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    if (hold < 0 || bind(hold, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(hold, (struct sockaddr *)&a, &alen) != 0)
        die("bind", errno);
    snprintf(refused_port, sizeof refused_port, "%u", ntohs(a.sin_port));

    if ((err = coro_spawn(NULL, upper_server, NULL, NULL)) != 0 ||
        (err = coro_spawn(NULL, silent_server, NULL, NULL)) != 0 ||
        (err = coro_spawn(NULL, client, &bad, NULL)) != 0 ||
        (err = coro_run()) != 0)
        die("run", err);
    close(hold);
    coro_fd_close(upper_lfd);
    coro_fd_close(silent_lfd);
    return bad;
}

struct args {
    char **argv;
    int err;
};

static void *command(void *arg)
{
    struct args *a = arg;

    a->err = show(a->argv[1], a->argv[2], a->argv[3] ? a->argv[3] : "hello", 2000);
    return NULL;
}

int main(int argc, char **argv)
{
    struct args a = { argv, 0 };
    int err;

    signal(SIGPIPE, SIG_IGN);
    if (argc < 2)
        return self_test();
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: dial [HOST PORT [LINE]]\n");
        return 2;
    }
    if ((err = coro_spawn(NULL, command, &a, NULL)) != 0 || (err = coro_run()) != 0)
        die("run", err);
    return a.err != 0;
}

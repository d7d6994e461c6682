/* bench_http_epoll: the baseline of the HTTP benchmark (bench/run-http.sh):
 * the same server as bench_http written by hand on level-triggered epoll,
 * the way a small C server usually is: one epoll_wait, then per ready
 * connection one read, the answers to its whole requests, one write.  A
 * write that does not take everything is finished when EPOLLOUT says so
 * (reading stops meanwhile).
 *
 *   bench_http_epoll PORT  serves on 127.0.0.1:PORT until killed */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    int fd;
    int closing;                /* close once out is written */
    size_t len;                 /* bytes in in */
    size_t olen, opos;          /* out[opos..olen) still to write */
    char in[HTTP_REQ_MAX];
    char out[4096 + HTTP_ANSWER_MAX];
};

static int ep;

static void drop(struct conn *c)
{
    close(c->fd);               /* leaves the epoll set with it */
    free(c);
}

/* Writes what is pending; 0 when all is written, 1 when the socket is
 * full (EPOLLOUT is asked for), -1 when the connection is gone. */
static int flush(struct conn *c)
{
    while (c->opos < c->olen) {
        ssize_t n = write(c->fd, c->out + c->opos, c->olen - c->opos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -1;
            struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
            return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) ? -1 : 1;
        }
        c->opos += (size_t)n;
    }
    c->olen = c->opos = 0;
    return 0;
}

/* Answers the whole requests in in, and writes the answers. */
static void answer_all(struct conn *c)
{
    size_t at = 0, took, alen;
    const char *answer;
    int r = 0;

    while (!c->closing && (took = http_parse(c->in + at, c->len - at, &answer, &alen,
                                             &c->closing))) {
        if (c->olen + alen > sizeof c->out && (r = flush(c)) != 0)
            break;          /* full: the rest waits for EPOLLOUT */
        memcpy(c->out + c->olen, answer, alen);
        c->olen += alen;
        at += took;
    }
    memmove(c->in, c->in + at, c->len - at);
    c->len -= at;
    if (r == 0)
        r = flush(c);
    if (r < 0 || (r == 0 && c->closing))
        drop(c);
}

/* The connection is readable: one read, and the answers. */
static void on_read(struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->len, sizeof c->in - c->len);

    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop(c);
        return;
    }
    c->len += (size_t)n;
    answer_all(c);
}

static void on_write(struct conn *c)
{
    int r = flush(c);

    if (r < 0 || (r == 0 && c->closing)) {
        drop(c);
    } else if (r == 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
            drop(c);
        else if (c->len)
            answer_all(c);  /* requests left unanswered while it was full */
    }
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;             /* EAGAIN, or out of fds: next event */
        }
        struct conn *c = malloc(sizeof *c);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->closing = 0;
        c->len = c->olen = c->opos = 0;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            drop(c);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    struct epoll_event evs[256];
    int lfd, one = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: bench_http_epoll PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    a.sin_port = htons((unsigned short)atoi(argv[1]));
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, SOMAXCONN) != 0 ||
        (ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        perror("bench_http_epoll");
        return 1;
    }
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) != 0) {
        perror("bench_http_epoll: epoll_ctl");
        return 1;
    }
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c)
                on_accept(lfd);
            else if (c->olen)
                on_write(c);
            else
                on_read(c);
        }
    }
}

/* http_server: an HTTP/1.1 "hello" server, one coroutine per connection.
 * GET / (or HEAD /) answers 200 "Hello, world!"; other paths 404, other
 * methods 405, anything that does not parse 400 (and the connection is
 * closed).  Connections are kept alive (HTTP/1.1's default) until the
 * client sends "Connection: close" or stays idle for 30 s; pipelined
 * requests are answered in order, all the answers to one read in one
 * write.
 *
 *   http_server            self-test: a server on 127.0.0.1 (a free port)
 *                          over a pool of 2 threads, and clients in the
 *                          same process (on its main thread)
 *   http_server PORT       serve on every address, PORT, until killed
 *                          (try: curl -v localhost:PORT/)
 *   http_server PORT N     the same over a pool of N threads: each has a
 *                          listener of its own on PORT (SO_REUSEPORT), and
 *                          the kernel spreads the connections over them
 *
 * Build: cc http_server.c $(pkg-config --cflags --libs coro) */
#define _GNU_SOURCE             /* memmem, strncasecmp */
#include <coro.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEC 1000000000LL
#define IDLE (30 * SEC)         /* a keep-alive connection's longest silence */
#define REQ_MAX 8192            /* request line + headers + body */

static const char hello[] = "Hello, world!\n";

/* ---------------------------------------------------------------- parse */

/* What the server makes of one request. */
struct request {
    int status;                 /* 200, 404, 405 or 400 */
    int close;                  /* close the connection after answering */
    int head;                   /* HEAD: no body in the answer */
    size_t size;                /* bytes of the buffer it took, body included */
};

/* Whether the comma-separated header value v (length n) has token t. */
static int has_token(const char *v, size_t n, const char *t)
{
    size_t tl = strlen(t);

    while (n) {
        while (n && (*v == ' ' || *v == '\t' || *v == ',')) {
            v++;
            n--;
        }
        size_t k = 0;
        while (k < n && v[k] != ',')
            k++;
        size_t e = k;
        while (e && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == tl && strncasecmp(v, t, tl) == 0)
            return 1;
        v += k;
        n -= k;
    }
    return 0;
}

static int tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parses the request at the start of buf[0..len).  Returns 1 and fills *r
 * for a whole request (or one that is bad: status 400), 0 when more bytes
 * are needed. */
static int parse(const char *buf, size_t len, struct request *r)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    const char *p = buf, *line;
    size_t clen = 0;
    int minor;

    *r = (struct request){ .status = 400, .close = 1 };
    if (!end) {
        if (len < REQ_MAX)
            return 0;
        r->size = len;          /* too long: bad */
        return 1;
    }
    r->size = (size_t)(end + 4 - buf);
    /* Request line: METHOD SP TARGET SP HTTP/1.x CRLF */
    const char *m = p;
    while (p < end && tchar(*p))
        p++;
    size_t mlen = (size_t)(p - m);
    if (!mlen || *p++ != ' ')
        return 1;
    const char *target = p;
    while (p < end && *p > ' ' && *p != 0x7f)
        p++;
    size_t tlen = (size_t)(p - target);
    if (!tlen || *p++ != ' ' || end - p < 8 || memcmp(p, "HTTP/1.", 7) != 0 ||
        (p[7] != '0' && p[7] != '1'))
        return 1;
    minor = p[7] - '0';
    p += 8;
    if (p != end && (p[0] != '\r' || p[1] != '\n'))
        return 1;
    int keep = minor == 1;
    /* Header lines: NAME ":" OWS VALUE OWS CRLF */
    while (p < end) {
        p += 2;
        line = p;
        const char *eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
        if (!eol)
            eol = end;
        while (p < eol && tchar(*p))
            p++;
        if (p == line || p == eol || *p != ':')
            return 1;
        size_t nlen = (size_t)(p - line);
        const char *v = p + 1;
        size_t vlen = (size_t)(eol - v);
        if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (has_token(v, vlen, "close"))
                keep = 0;
            else if (has_token(v, vlen, "keep-alive"))
                keep = 1;
        } else if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
            char *e;
            while (vlen && (*v == ' ' || *v == '\t')) {
                v++;
                vlen--;
            }
            if (!vlen || *v < '0' || *v > '9')
                return 1;
            unsigned long long c = strtoull(v, &e, 10);
            while (e < eol && (*e == ' ' || *e == '\t'))
                e++;
            if (e != eol || c > REQ_MAX)
                return 1;
            clen = (size_t)c;
        } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            return 1;           /* no chunked bodies here */
        }
        p = eol;
    }
    /* A body (rare with GET) is skipped. */
    if (len - r->size < clen)
        return r->size + clen > REQ_MAX ? (r->size = len, 1) : 0;
    r->size += clen;
    r->close = !keep;
    r->head = mlen == 4 && memcmp(m, "HEAD", 4) == 0;
    if (!r->head && !(mlen == 3 && memcmp(m, "GET", 3) == 0))
        r->status = 405;
    else if (tlen == 1 && target[0] == '/')
        r->status = 200;
    else
        r->status = 404;
    return 1;
}

/* Appends the answer to r to out (room enough: see session); its length. */
static size_t answer(char *out, const struct request *r)
{
    const char *reason = r->status == 200   ? "OK"
                         : r->status == 404 ? "Not Found"
                         : r->status == 405 ? "Method Not Allowed"
                                            : "Bad Request";
    const char *body = r->status == 200 ? hello : reason;
    size_t blen = r->status == 200 ? sizeof hello - 1 : strlen(reason);
    int n = sprintf(out,
                    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
                    "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
                    r->status, reason, r->status == 200 ? blen : blen + 1,
                    r->status == 405 ? "Allow: GET, HEAD\r\n" : "",
                    r->close ? "close" : "keep-alive");
    if (r->head)
        return (size_t)n;
    memcpy(out + n, body, blen);
    n += (int)blen;
    if (r->status != 200)
        out[n++] = '\n';
    return (size_t)n;
}

/* --------------------------------------------------------------- server */

#define ANSWER_MAX 160          /* the longest answer above */

/* One connection: read, answer every whole request the bytes hold, write
 * the answers at once, until the client closes, asks to, sends garbage or
 * stays silent too long. */
static void *session(void *arg)
{
    int fd = (int)(intptr_t)arg, done = 0, err = 0;
    char in[REQ_MAX], out[4096];
    size_t len = 0, n;

    while (!done && !err &&
           coro_read(fd, in + len, sizeof in - len, &n, coro_now() + IDLE) == 0 && n > 0) {
        size_t at = 0, olen = 0;
        struct request r;
        len += n;
        while (!done && at < len && parse(in + at, len - at, &r)) {
            if (olen + ANSWER_MAX > sizeof out) {
                if ((err = coro_write(fd, out, olen, &n, coro_now() + IDLE)) != 0)
                    break;
                olen = 0;
            }
            olen += answer(out + olen, &r);
            at += r.size;
            done = r.close;
        }
        memmove(in, in + at, len - at);
        len -= at;
        if (!err && olen)
            err = coro_write(fd, out, olen, &n, coro_now() + IDLE);
    }
    coro_fd_close(fd);
    return NULL;
}

static _Noreturn void die(const char *what, int err)
{
    fprintf(stderr, "http_server: %s: %s\n", what,
            err < 0 ? "name not resolved" : strerror(err));
    exit(1);
}

/* Accepts until the listener is closed (coro_fd_close: EBADF) or the
 * pool it runs on shuts down (ECANCELED). */
static void *server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd, err;
    coro_attr_t attr;

    coro_attr_init(&attr);
    coro_attr_set_stack_size(&attr, 64 * 1024);     /* session uses ~13 KiB */
    while ((err = coro_accept(lfd, &fd, NULL, NULL, -1)) == 0)
        if ((err = coro_spawn(NULL, session, (void *)(intptr_t)fd, &attr)) != 0) {
            fprintf(stderr, "http_server: spawn: %s\n", strerror(err));
            coro_fd_close(fd);
        }
    if (err == ECANCELED)
        coro_fd_close(lfd);
    else if (err != EBADF)
        die("accept", err);
    return NULL;
}

/* A listener on addr:port (port 0: a free one) that other threads may
 * share by binding the same port: SO_REUSEPORT gives each its own accept
 * queue, and the kernel spreads new connections over them. */
static int listen_shared(in_addr_t addr, unsigned short port, int *fd)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1, s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = addr;
    if (s < 0)
        return errno;
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, SOMAXCONN) != 0) {
        int err = errno;
        close(s);
        return err;
    }
    *fd = s;
    return 0;
}

/* One server per pool thread, each on a listener of its own on port. */
static void *thread_server(void *arg)
{
    unsigned short p = (unsigned short)(uintptr_t)arg;
    int lfd, err = listen_shared(htonl(INADDR_ANY), p, &lfd);

    if (err)
        die("listen", err);
    return server((void *)(intptr_t)lfd);
}

/* ------------------------------------------------------------ self-test */

static char port[8];

/* A client connection and what it has read but not yet taken. */
struct client {
    int fd;
    char buf[4096];
    size_t len;
};

static void dial(struct client *c)
{
    int err = coro_tcp_dial("127.0.0.1", port, &c->fd, coro_now() + 5 * SEC);

    if (err)
        die("dial", err);
    c->len = 0;
}

static void send_str(struct client *c, const char *s)
{
    size_t n;
    int err = coro_write(c->fd, s, strlen(s), &n, coro_now() + 5 * SEC);

    if (err)
        die("write", err);
}

/* Reads one response; its status (0 if the server closed first), and in
 * *keep whether it said keep-alive. */
static int response(struct client *c, int *keep)
{
    for (;;) {
        const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end) {
            size_t hlen = (size_t)(end + 4 - c->buf), blen;
            const char *cl = memmem(c->buf, hlen, "Content-Length: ", 16);
            if (!cl || sscanf(cl + 16, "%zu", &blen) != 1)
                die("response", EPROTO);
            if (c->len >= hlen + blen) {
                int status = atoi(c->buf + 9);
                *keep = memmem(c->buf, hlen, "Connection: keep-alive", 22) != NULL;
                memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
                c->len -= hlen + blen;
                return status;
            }
        }
        size_t n;
        int err = coro_read(c->fd, c->buf + c->len, sizeof c->buf - c->len, &n,
                            coro_now() + 5 * SEC);
        if (err)
            die("read", err);
        if (n == 0)
            return 0;
        c->len += n;
    }
}

/* Whether the server closed the connection (EOF with nothing more). */
static int closed(struct client *c)
{
    size_t n;
    int err = coro_read(c->fd, c->buf, sizeof c->buf, &n, coro_now() + 5 * SEC);

    return err == 0 && n == 0 && c->len == 0;
}

#define GET "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"

static char report[5][128];

/* Three requests one after the other on one connection. */
static void *keep_alive(void *arg)
{
    struct client c;
    int ok = 0, keep;

    (void)arg;
    dial(&c);
    for (int i = 0; i < 3; i++) {
        send_str(&c, GET);
        ok += response(&c, &keep) == 200 && keep;
    }
    coro_fd_close(c.fd);
    snprintf(report[0], sizeof report[0], "keep-alive: %d of 3 requests answered 200 "
             "on one connection", ok);
    return NULL;
}

/* Three requests in one write. */
static void *pipelined(void *arg)
{
    struct client c;
    int keep, a, b, d;

    (void)arg;
    dial(&c);
    send_str(&c, GET "GET /missing HTTP/1.1\r\n\r\n" GET);
    a = response(&c, &keep);
    b = response(&c, &keep);
    d = response(&c, &keep);
    coro_fd_close(c.fd);
    snprintf(report[1], sizeof report[1], "pipelined: %d %d %d", a, b, d);
    return NULL;
}

static void *close_asked(void *arg)
{
    struct client c;
    int keep, status;

    (void)arg;
    dial(&c);
    send_str(&c, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n" GET);
    status = response(&c, &keep);
    snprintf(report[2], sizeof report[2], "Connection: close: %d, %s", status,
             !keep && closed(&c) ? "then closed (the request after it ignored)"
                                 : "NOT CLOSED");
    coro_fd_close(c.fd);
    return NULL;
}

static void *garbage(void *arg)
{
    struct client c;
    int keep, status;

    (void)arg;
    dial(&c);
    send_str(&c, "HELLO THERE\r\n\r\n");
    status = response(&c, &keep);
    snprintf(report[3], sizeof report[3], "garbage: %d, %s", status,
             closed(&c) ? "then closed" : "NOT CLOSED");
    coro_fd_close(c.fd);
    return NULL;
}

/* One request a few bytes at a time. */
static void *dribble(void *arg)
{
    struct client c;
    const char *req = "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n";
    int keep;

    (void)arg;
    dial(&c);
    for (size_t i = 0, len = strlen(req); i < len; i += 5) {
        char piece[6] = { 0 };
        memcpy(piece, req + i, len - i < 5 ? len - i : 5);
        send_str(&c, piece);
        coro_sleep(SEC / 1000);
    }
    snprintf(report[4], sizeof report[4], "dribbled GET: %d", response(&c, &keep));
    coro_fd_close(c.fd);
    return NULL;
}

/* Runs the clients together. */
static void *driver(void *arg)
{
    coro_fn tests[] = { keep_alive, pipelined, close_asked, garbage, dribble };
    coro_t *co[5];
    int err;

    (void)arg;
    for (int i = 0; i < 5; i++)
        if ((err = coro_spawn(&co[i], tests[i], NULL, NULL)) != 0)
            die("spawn", err);
    for (int i = 0; i < 5; i++)
        coro_join(co[i], NULL, -1);
    return NULL;
}

/* The server over a pool of nthreads, each with its own listener on
 * *port_io (0: a free port, stored back). */
static coro_pool_t *serve_pool(in_addr_t addr, unsigned short *port_io, unsigned nthreads)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    coro_pool_t *pool;
    int lfd, err;

    /* The first listener here, to learn the port when it is a free one;
     * each thread then opens its own (the first one's goes to thread 0). */
    if ((err = listen_shared(addr, *port_io, &lfd)) != 0)
        die("listen", err);
    if (getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die("getsockname", errno);
    *port_io = ntohs(a.sin_port);
    if ((err = coro_pool_create(&pool, nthreads)) != 0 ||
        (err = coro_pool_spawn(pool, 0, NULL, server, (void *)(intptr_t)lfd, NULL)) != 0)
        die("pool", err);
    for (unsigned i = 1; i < nthreads; i++)
        if ((err = coro_pool_spawn(pool, (int)i, NULL, thread_server,
                                   (void *)(uintptr_t)*port_io, NULL)) != 0)
            die("pool", err);
    return pool;
}

static int self_test(void)
{
    static const char *want[5] = {
        "keep-alive: 3 of 3 requests answered 200 on one connection",
        "pipelined: 200 404 200",
        "Connection: close: 200, then closed (the request after it ignored)",
        "garbage: 400, then closed",
        "dribbled GET: 200",
    };
    unsigned short p = 0;
    int err, bad = 0;
    coro_pool_t *pool = serve_pool(htonl(INADDR_LOOPBACK), &p, 2);

    snprintf(port, sizeof port, "%u", p);
    if ((err = coro_spawn(NULL, driver, NULL, NULL)) != 0 || (err = coro_run()) != 0)
        die("run", err);
    /* The servers' accepts end with ECANCELED; they close their listeners. */
    if ((err = coro_pool_destroy(pool)) != 0)
        die("pool", err);
    for (int i = 0; i < 5; i++) {
        printf("%s\n", report[i]);
        bad |= strcmp(report[i], want[i]) != 0;
    }
    return bad;
}

int main(int argc, char **argv)
{
    int lfd, err;

    signal(SIGPIPE, SIG_IGN);
    if (argc < 2)
        return self_test();
    if (argc > 2) {
        unsigned short p = (unsigned short)atoi(argv[1]);
        coro_pool_t *pool = serve_pool(htonl(INADDR_ANY), &p, (unsigned)atoi(argv[2]));
        return coro_pool_wait(pool, -1); /* until killed */
    }
    if ((err = coro_tcp_listen(NULL, argv[1], -1, &lfd)) != 0)
        die("listen", err);
    if ((err = coro_spawn(NULL, server, (void *)(intptr_t)lfd, NULL)) != 0 ||
        (err = coro_run()) != 0)
        die("run", err);
    return 0;
}

/* The request parsing and the answers shared by the two C servers of the
 * HTTP benchmark (bench_http with libcoro, bench_http_epoll by hand), so
 * that they differ only in how they wait.  bench/http_go/main.go does the
 * same work in Go.  Enough HTTP/1.1 for wrk and curl: the request line is
 * checked, headers are scanned for "Connection: close" and
 * "Content-Length" (a body is skipped); GET / is answered 200, any other
 * target 404, anything that does not parse 400 and the connection is
 * closed. */
#ifndef BENCH_HTTP_H
#define BENCH_HTTP_H

#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTP_REQ_MAX 8192       /* request line, headers and body */

static const char http_200[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 14\r\n\r\nHello, world!\n";
static const char http_404[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 10\r\n\r\nNot Found\n";
static const char http_400[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 12\r\nConnection: close\r\n\r\nBad Request\n";
#define HTTP_ANSWER_MAX (sizeof http_400)

/* http_parse, which may store into its outputs when it returns 0. */
static inline size_t http_parse_(const char *buf, size_t len, const char **answer,
                                 size_t *alen, int *close)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4), *p = buf, *t;
    size_t size, clen = 0;

    *answer = http_400;
    *alen = sizeof http_400 - 1;
    *close = 1;
    if (!end)
        return len >= HTTP_REQ_MAX ? len : 0;
    size = (size_t)(end + 4 - buf);
    while (p < end && *p >= 'A' && *p <= 'Z')
        p++;
    if (p == buf || *p++ != ' ')
        return size;
    t = p;
    while (p < end && *p > ' ')
        p++;
    if (p == t || end - p < 9 || memcmp(p, " HTTP/1.", 8) != 0 || (p[8] != '1' && p[8] != '0'))
        return size;
    int keep = p[8] == '1';
    int get = t - buf == 4 && memcmp(buf, "GET", 3) == 0;
    int root = p - t == 1 && *t == '/';
    p += 9;
    while (p < end) {           /* at the CRLF ending the previous line */
        const char *line = p + 2, *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || colon == line)
            return size;
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        if (colon - line == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (eol - v >= 5 && strncasecmp(v, "close", 5) == 0)
                keep = 0;
            else if (eol - v >= 10 && strncasecmp(v, "keep-alive", 10) == 0)
                keep = 1;
        } else if (colon - line == 14 && strncasecmp(line, "content-length", 14) == 0) {
            char *e;
            if (v == eol || *v < '0' || *v > '9')
                return size;
            clen = strtoul(v, &e, 10);
            if (clen > HTTP_REQ_MAX)
                return size;
        }
        p = eol;
    }
    if (len - size < clen)
        return size + clen > HTTP_REQ_MAX ? len : 0;
    *close = !keep;
    if (get && root) {
        *answer = http_200;
        *alen = sizeof http_200 - 1;
    } else {
        *answer = http_404;
        *alen = sizeof http_404 - 1;
    }
    return size + clen;
}

/* Parses the request at buf[0..len).  Returns the bytes it takes (body
 * included) and stores in *answer the response (*alen bytes) and in
 * *close whether to close the connection after it; returns 0 and leaves
 * them alone when the request is not whole yet. */
static inline size_t http_parse(const char *buf, size_t len, const char **answer,
                                size_t *alen, int *close)
{
    const char *a;
    size_t al;
    int c;
    size_t took = http_parse_(buf, len, &a, &al, &c);

    if (took) {
        *answer = a;
        *alen = al;
        *close = c;
    }
    return took;
}

#endif

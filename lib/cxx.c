/* cxx: C++ exception state per coroutine, and the report of a
 * std::terminate in a coroutine (see cxx.h). */
#include "cxx.h"
#include "coro.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* Defined by the C++ runtime when the program has one (libstdc++, or
 * libc++abi); a weak reference is NULL otherwise, and a static link does
 * not pull the runtime in for it. */
extern struct coro__eh *__cxa_get_globals(void) __attribute__((weak));

/* std::set_terminate(std::terminate_handler), by its mangled name: the
 * same in libstdc++ and libc++abi.  Weak, as above. */
typedef void (*coro__terminate_fn)(void);
extern coro__terminate_fn coro__std_set_terminate(coro__terminate_fn)
    __asm__("_ZSt13set_terminatePFvvE") __attribute__((weak));

/* ------------------------------------------- std::terminate in a coroutine
 *
 * An exception that leaves a coroutine's function finds no handler: the
 * unwinder stops at the coroutine's entry frame, whose return address is
 * marked undefined.  The runtime then calls std::terminate() right there,
 * on the coroutine's stack, with coro_self() still the coroutine.  The
 * handler below names it on stderr and passes on to the handler installed
 * before it (libstdc++'s default prints the exception's type and what(),
 * then aborts).  It is installed once per process, when a thread's state
 * is first set up (see coro.c), and only when a C++ runtime is present: a
 * handler the program set earlier is chained to, one it sets later
 * replaces ours.  Nothing is printed unless the program terminates. */

static pthread_once_t terminate_once = PTHREAD_ONCE_INIT;
static _Atomic(coro__terminate_fn) prev_terminate;
static __thread int terminating __attribute__((tls_model("initial-exec")));

/* v in decimal at p (room for 20 digits); returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s, const char *end)
{
    while (*s && p < end)
        *p++ = *s++;
    return p;
}

/* The line's form is what test/check_cxx.cc and coro_resume(3) expect:
 *   coro: std::terminate in coroutine #ID "NAME"
 * Formatted on the stack and written with one write(2): no stdio, no
 * malloc (the heap may be what failed). */
static void report(const coro_t *co)
{
    char buf[64 + CORO_NAME_MAX];
    char *end = buf + sizeof buf, *p = buf;

    p = put_str(p, "coro: std::terminate in coroutine #", end);
    p = put_u64(p, coro_id(co));
    p = put_str(p, " \"", end);
    p = put_str(p, coro_name(co), end - 2);
    p = put_str(p, "\"\n", end);
    for (const char *q = buf; q < p;) {
        ssize_t n = write(STDERR_FILENO, q, (size_t)(p - q));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        q += n;
    }
}

static void on_terminate(void)
{
    coro__terminate_fn prev;
    const coro_t *co;

    /* Entered again on this thread (the handler we chain to called
     * std::terminate): finish now instead of going round. */
    if (terminating)
        abort();
    terminating = 1;
    if ((co = coro_self()) != NULL)
        report(co);
    prev = atomic_load_explicit(&prev_terminate, memory_order_acquire);
    if (prev && prev != on_terminate) /* never ourselves: no loop */
        prev();
    abort(); /* a terminate handler must not return */
}

static void install_terminate(void)
{
    int saved = errno;
    coro__terminate_fn prev = coro__std_set_terminate(on_terminate);

    /* Until this store a terminate in another thread aborts without
     * chaining: a window of a few instructions, once per process. */
    atomic_store_explicit(&prev_terminate, prev, memory_order_release);
    errno = saved;
}

struct coro__eh *coro__eh_globals(void)
{
    if (!__cxa_get_globals)
        return NULL;
    if (coro__std_set_terminate)
        pthread_once(&terminate_once, install_terminate);
    return __cxa_get_globals();
}

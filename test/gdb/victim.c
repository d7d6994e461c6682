/* The program test/gdb/run.py debugs: coroutines in every state, each
 * stopped at a known call depth, then a call to victim_ready() where gdb
 * breaks.  The build asks for -O0 -g, but a distribution's CFLAGS (-O2)
 * come later on the command line: every function whose frame the test
 * looks for is NOINLINE, and a leaf's last call is followed by
 * KEEP_FRAME, so it stays a call (a tail call would drop the leaf's frame
 * from the backtrace).
 *
 *   alpha   suspended in alpha_leaf <- alpha_mid <- alpha_top
 *   beta    suspended in beta_leaf <- beta_top
 *   gamma   ready (never resumed), entry gamma_top
 *   delta   finished (returned, not destroyed), entry delta_top
 *   outer   normal: outer_top resumed inner and waits for it
 *   inner   running on the main thread: victim_ready <- inner_leaf <- inner_top
 *   worker  running on a second thread, blocked in read() <- worker_block
 *           <- worker_top
 * A sixth coroutine, "gone", is destroyed before the stop: gdb must not
 * list it.  Given the argument "overflow", the program first resumes
 * "deep", which recurses until it faults in its stack's guard: gdb stops
 * there on SIGSEGV instead.
 *
 * Built a second time, linked with the static library, with
 * VICTIM_MPROTECT_GUARDS: madvise fails, so the stacks get mprotect guards
 * (mappings of their own), which gdb's plain gcore can dump.  Guards made
 * with MADV_GUARD_INSTALL are unreadable pages inside the slab's mapping,
 * and gcore stops copying a mapping at its first unreadable page: cores of
 * the default build are made with "coro gcore". */
#include <coro.h>
#ifdef VICTIM_MPROTECT_GUARDS
#include "lib/sys.h"
#include <errno.h>
#endif

#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Neither inlined nor cloned (an .isra or .constprop copy), nor given
 * interprocedural assumptions: each function is its own frame. */
#if defined(__has_attribute)
#if __has_attribute(noipa)
#define NOINLINE __attribute__((noinline, noipa))
#endif
#endif
#ifndef NOINLINE
#define NOINLINE __attribute__((noinline))
#endif
/* After a function's last call: the compiler cannot turn that call into a
 * jump. */
#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static sem_t worker_started;
static int never_written[2];

/* gdb breaks here. */
NOINLINE void victim_ready(void)
{
    __asm__ volatile("" ::: "memory");
}

static void must(int err, const char *what)
{
    if (err) {
        fprintf(stderr, "victim: %s: error %d\n", what, err);
        exit(2);
    }
}

static coro_t *spawn(const char *name, coro_fn fn, void *arg)
{
    coro_attr_t attr;
    coro_t *co;

    coro_attr_init(&attr);
    must(coro_attr_set_name(&attr, name), "coro_attr_set_name");
    must(coro_create(&co, fn, arg, &attr), "coro_create");
    return co;
}

NOINLINE static int alpha_leaf(int x)
{
    coro_yield(NULL, NULL);
    KEEP_FRAME();
    return x + 1;
}

NOINLINE static int alpha_mid(int x)
{
    int r = alpha_leaf(x * 2);

    KEEP_FRAME();
    return r + 1;
}

NOINLINE static void *alpha_top(void *arg)
{
    int r = alpha_mid((int)(long)arg);

    KEEP_FRAME();
    return (void *)(long)r;
}

NOINLINE static void beta_leaf(void)
{
    coro_yield(NULL, NULL);
    KEEP_FRAME();
}

NOINLINE static void *beta_top(void *arg)
{
    beta_leaf();
    KEEP_FRAME();
    return arg;
}

NOINLINE static void *gamma_top(void *arg)
{
    return arg;
}

NOINLINE static void *delta_top(void *arg)
{
    return arg;
}

NOINLINE static void inner_leaf(void)
{
    victim_ready();
    KEEP_FRAME();
}

NOINLINE static void *inner_top(void *arg)
{
    inner_leaf();
    KEEP_FRAME();
    return arg;
}

NOINLINE static void *outer_top(void *arg)
{
    coro_t *inner = spawn("inner", inner_top, NULL);

    must(coro_resume(inner, NULL, NULL), "resume inner");
    KEEP_FRAME();
    return arg;
}

NOINLINE static void worker_block(void)
{
    char c;

    sem_post(&worker_started);
    while (read(never_written[0], &c, 1) < 0) {
        /* interrupted: wait again */
    }
    KEEP_FRAME();
}

static volatile int deep_end = -1;   /* never reached */

NOINLINE static int deep(int n)
{
    volatile char pad[1024];

    if (n == deep_end)
        return 0;
    pad[0] = (char)n;
    return deep(n + 1) + pad[0];
}

NOINLINE static void *deep_top(void *arg)
{
    int r = deep((int)(long)arg);

    KEEP_FRAME();
    return (void *)(long)r;
}

NOINLINE static void *worker_top(void *arg)
{
    worker_block();
    KEEP_FRAME();
    return arg;
}

static void *worker_thread(void *arg)
{
    must(coro_resume(spawn("worker", worker_top, NULL), NULL, NULL), "resume worker");
    return arg;
}

int main(int argc, char **argv)
{
    pthread_t thread;

#ifdef VICTIM_MPROTECT_GUARDS
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
#endif
    must(sem_init(&worker_started, 0, 0), "sem_init");
    if (pipe(never_written) != 0)
        must(1, "pipe");

    must(coro_resume(spawn("alpha", alpha_top, (void *)20L), NULL, NULL), "resume alpha");
    must(coro_resume(spawn("beta", beta_top, NULL), NULL, NULL), "resume beta");
    spawn("gamma", gamma_top, NULL);
    must(coro_resume(spawn("delta", delta_top, NULL), NULL, NULL), "resume delta");
    must(coro_destroy(spawn("gone", gamma_top, NULL)), "destroy gone");

    must(pthread_create(&thread, NULL, worker_thread, NULL), "pthread_create");
    while (sem_wait(&worker_started) != 0) {
        /* interrupted: wait again */
    }
    if (argc > 1 && strcmp(argv[1], "overflow") == 0)
        must(coro_resume(spawn("deep", deep_top, NULL), NULL, NULL), "resume deep");
    must(coro_resume(spawn("outer", outer_top, NULL), NULL, NULL), "resume outer");
    return 0;
}

/* debug: the stack overflow report.
 *
 * A coroutine that runs off the bottom of its stack touches the guard
 * below it (lib/stack.h) and takes a SIGSEGV.  The handler, on a per-thread
 * alternate signal stack (the faulting stack has no room left), maps the
 * fault address to the guard's stack, and when that stack belongs to the
 * coroutine running on this thread prints
 *   coro: stack overflow in coroutine #ID "NAME" (stack SIZE bytes)
 * and a backtrace on stderr, then aborts.  Every other fault goes to the
 * handler that was there before.
 *
 * The alternate signal stack may be the program's own (kept when it had
 * one), as small as SIGSTKSZ, and a backtrace needs far more (libunwind's
 * cursors are 1 KiB each): the handler only decides whether the fault is
 * ours on it, then moves to a report stack of its own, mapped once per
 * process, for the report.  Only with libunwind, which walks from the
 * saved registers wherever it runs: glibc's backtrace() walks from where
 * it is called, through the kernel's signal frame, so without libunwind
 * the report stays on the signal stack.
 *
 * The handler is installed once per process, on the first thread's first
 * create or resume, so a handler the program installed earlier is kept
 * and chained to, and one it installs later replaces ours (and may chain
 * to it).  The report uses async-signal-safe calls only: it formats into
 * a buffer and writes it with write(2); the backtrace comes from libunwind
 * (documented as safe in a signal handler for local unwinding) or, without
 * it, from glibc's backtrace(), warmed up at install time so that it does
 * not load libgcc in the handler. */
#define _GNU_SOURCE
#include "coroutine.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(CORO_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#else
#include <execinfo.h>
#endif
#if defined(CORO_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define ALT_EXTRA ((size_t)65536) /* room for the program's own handlers, and
                                   * the report where no report stack */
#define REPORT_STACK ((size_t)262144) /* the report and the unwinder */
#define SHOWN 16                  /* frames printed at each end of a deep stack */
#define MAX_FRAMES 1000000        /* a corrupt stack must not loop forever */

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static struct sigaction old_segv, old_bus; /* what was installed before us */
static atomic_flag reporting = ATOMIC_FLAG_INIT;

/* The one report at a time (see `reporting`) runs on report_stack, NULL
 * when it could not be mapped; what it reports is passed in these. */
#if defined(CORO_HAVE_LIBUNWIND)
static void *report_stack;
static ucontext_t report_ctx, fault_ctx;
#endif
static const coro_t *report_co;
static void *report_uc;

static __thread void *alt_mem __attribute__((tls_model("initial-exec")));
static __thread size_t alt_len __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------- formatting, no malloc */

struct line {
    char buf[320];
    size_t len;
};

static void flush(struct line *l)
{
    size_t done = 0;

    while (done < l->len) {
        ssize_t n = write(STDERR_FILENO, l->buf + done, l->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    l->len = 0;
}

static void put(struct line *l, const char *s)
{
    while (*s) {
        if (l->len == sizeof l->buf)
            flush(l);
        l->buf[l->len++] = *s++;
    }
}

static void put_num(struct line *l, uint64_t v, unsigned base)
{
    char tmp[24];
    int i = sizeof tmp - 1;

    tmp[i] = '\0';
    do {
        tmp[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && i > 0);
    if (base == 16)
        put(l, "0x");
    put(l, tmp + i);
}

/* The report's first line; the tests and the man page rely on its form. */
static void headline(struct line *l, const coro_t *co)
{
    put(l, "coro: stack overflow in coroutine #");
    put_num(l, coro_id(co), 10);
    put(l, " \"");
    put(l, coro_name(co));
    put(l, "\" (stack ");
    put_num(l, coro_stack_size(co), 10);
    put(l, " bytes)\n");
    flush(l);
}

/* ------------------------------------------------------------- backtrace */

#if !defined(CORO_HAVE_LIBUNWIND)
/* glibc's backtrace(), warmed up at install time. */
static void *frames[8192]; /* one report at a time (see `reporting`) */

static void glibc_backtrace(struct line *l, void *uc)
{
    int n = backtrace(frames, (int)(sizeof frames / sizeof frames[0]));
    uintptr_t pc = coro__uc_pc(uc);
    int from = 0;

    /* Skip the handler's own frames, up to the faulting instruction. */
    for (int i = 0; i < n; i++)
        if ((uintptr_t)frames[i] == pc) {
            from = i;
            break;
        }
    put(l, "coro: backtrace:\n");
    flush(l);
    if (n - from <= 2 * SHOWN) {
        backtrace_symbols_fd(frames + from, n - from, STDERR_FILENO);
        return;
    }
    backtrace_symbols_fd(frames + from, SHOWN, STDERR_FILENO);
    put(l, "  ... ");
    put_num(l, (uint64_t)(n - from - 2 * SHOWN), 10);
    put(l, " frames ...\n");
    flush(l);
    backtrace_symbols_fd(frames + n - SHOWN, SHOWN, STDERR_FILENO);
}

#else
static void frame_line(struct line *l, int i, unw_cursor_t *c)
{
    unw_word_t ip = 0, off = 0;
    char name[160];

    unw_get_reg(c, UNW_REG_IP, &ip);
    put(l, "  #");
    put_num(l, (uint64_t)i, 10);
    put(l, " ");
    put_num(l, ip, 16);
    if (unw_get_proc_name(c, name, sizeof name, &off) == 0) {
        name[sizeof name - 1] = '\0';
        put(l, " in ");
        put(l, name);
        put(l, "+");
        put_num(l, off, 16);
    }
    put(l, "\n");
    flush(l);
}

/* Walks from the interrupted context: the first SHOWN frames (where it
 * overflowed) and the last SHOWN (how it got there). */
static void unwind_backtrace(struct line *l, void *uc)
{
    unw_cursor_t c, tail[SHOWN];
    int n = 0;

    if (unw_init_local2(&c, (unw_context_t *)uc, UNW_INIT_SIGNAL_FRAME) < 0)
        return;
    put(l, "coro: backtrace:\n");
    do {
        if (n < SHOWN)
            frame_line(l, n, &c);
        else
            tail[n % SHOWN] = c;
        n++;
    } while (n < MAX_FRAMES && unw_step(&c) > 0);
    int first = n - SHOWN > SHOWN ? n - SHOWN : SHOWN;
    if (first > SHOWN) {
        put(l, "  ... ");
        put_num(l, (uint64_t)(first - SHOWN), 10);
        put(l, " frames ...\n");
    }
    for (int i = first; i < n; i++)
        frame_line(l, i, &tail[i % SHOWN]);
}

/* libunwind sets itself up on its first cursor (locks, its address space,
 * the probe pipe): done here, not in the handler.  No step: a step probes
 * the stack pages it reads by writing their first byte to a pipe, which
 * sets errno and which memcheck reports (the bytes may never have been
 * written); what a step sets up lazily (its caches, in memory it maps
 * itself) is safe to set up in a handler. */
static void unwind_warm_up(void)
{
    unw_context_t uc;
    unw_cursor_t c;

    unw_getcontext(&uc);
    (void)unw_init_local(&c, &uc);
}
#endif

static void print_backtrace(struct line *l, void *uc)
{
#if defined(CORO_HAVE_LIBUNWIND)
    /* libunwind probes the memory it reads with write(2), and valgrind
     * 3.19 dies on such a probe of the guard; it also hides glibc's
     * backtrace() behind its own. */
    if (RUNNING_ON_VALGRIND) {
        put(l, "coro: no backtrace under valgrind\n");
        flush(l);
        return;
    }
    unwind_backtrace(l, uc);
#else
    glibc_backtrace(l, uc);
#endif
}

static void warm_up(void)
{
#if defined(CORO_HAVE_LIBUNWIND)
    unwind_warm_up();
#else
    void *f[2];

    (void)backtrace(f, 2); /* loads libgcc_s now, not in the handler */
#endif
}

/* ----------------------------------------------------------------- signals */

/* Hands a fault that is not ours to the handler installed before us. */
static void chain(int sig, siginfo_t *si, void *uc)
{
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;

    if (old->sa_flags & SA_SIGINFO) {
        pthread_sigmask(SIG_BLOCK, &old->sa_mask, NULL);
        old->sa_sigaction(sig, si, uc);
        return;
    }
    if (old->sa_handler == SIG_IGN && si->si_code <= 0)
        return; /* sent by kill(): ignored as it was before us */
    if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        /* The default action, as if we had never been there: a fault
         * happens again when we return, and kills with the usual core;
         * a signal that was sent is sent again. */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        if (si->si_code <= 0)
            raise(sig);
        return;
    }
    pthread_sigmask(SIG_BLOCK, &old->sa_mask, NULL);
    old->sa_handler(sig);
}

/* The fault's registers, kept in the coroutine's saved context, marked
 * in its (otherwise unused) uc_flags: the report runs on another stack
 * and then aborts, so in the core file no thread's registers lead into
 * the overflowed stack, and the gdb extension (gdb/libcoro-gdb.py) walks
 * it from these instead.  The kernel's ucontext has glibc's layout up to
 * the end of uc_mcontext. */
#define FAULT_MARK UINT64_C(0x6c756166206f7263) /* arbitrary; the same there */

static void keep_fault(coro_t *co, const ucontext_t *fault)
{
    ucontext_t *uc = coro__uc(&co->ctx);
    size_t from = offsetof(ucontext_t, uc_mcontext);
    size_t end = from + sizeof fault->uc_mcontext;

    if (end > CORO__CTX_SIZE)
        end = CORO__CTX_SIZE;
    memcpy((char *)uc + from, (const char *)fault + from, end - from);
    uc->uc_flags = FAULT_MARK;
}

_Noreturn static void report(void *arg)
{
    struct line l = {.len = 0};

    (void)arg;
    headline(&l, report_co);
    print_backtrace(&l, report_uc);
    abort();
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    coro__stack_t *st = si->si_code > 0 ? coro__stack_find_guard(si->si_addr) : NULL;

    /* Ours only when the guard is that of the coroutine running here: a
     * stray pointer into another stack's guard is a plain fault. */
    if (st && st->user && st->user == coro_self()) {
        while (atomic_flag_test_and_set(&reporting))
            pause(); /* another thread reports, then aborts */
        report_co = st->user;
        report_uc = uc;
        keep_fault(st->user, uc);
#if defined(CORO_HAVE_LIBUNWIND)
        if (report_stack) {
            coro__ctx_make(&report_ctx, report_stack, REPORT_STACK, report, NULL);
            coro__ctx_swap(&fault_ctx, &report_ctx, 0); /* never comes back */
        }
#endif
        report(NULL);
    }
    chain(sig, si, uc);
    errno = saved;
}

static void install(void)
{
    struct sigaction sa;

    warm_up();
#if defined(CORO_HAVE_LIBUNWIND)
    /* Not through coro__sys_mmap: its failure injection is for stacks.
     * Address space only, until a report touches it. */
    void *p = mmap(NULL, REPORT_STACK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
        report_stack = p;
        CORO__VALGRIND_STACK(p, (char *)p + REPORT_STACK, 0);
    } else {
        coro__debug_note("coro: no memory for the overflow report's stack: "
                         "reports use the signal stack\n");
    }
#endif
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

static void thread_start(void)
{
    stack_t cur;

    pthread_once(&install_once, install);
    if (alt_mem || sigaltstack(NULL, &cur) != 0 || !(cur.ss_flags & SS_DISABLE))
        return; /* ours already, or the program's own: keep it */
    size_t min = (size_t)getauxval(AT_MINSIGSTKSZ);
    if (min < (size_t)MINSIGSTKSZ)
        min = (size_t)MINSIGSTKSZ;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (min + ALT_EXTRA + page - 1) / page * page;
    /* Not through coro__sys_mmap: its failure injection is for stacks. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        coro__debug_note("coro: no memory for this thread's alternate signal "
                         "stack: its stack overflows will not be reported\n");
        return;
    }
    stack_t ss = {.ss_sp = p, .ss_size = len, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(p, len);
        coro__debug_note("coro: sigaltstack failed: this thread's stack "
                         "overflows will not be reported\n");
        return;
    }
    alt_mem = p;
    alt_len = len;
}

/* Keeps errno: it runs inside public calls (a thread's first create or
 * resume), and libunwind's warm-up, sigaltstack or mmap may set it. */
void coro__debug_thread_start(void)
{
    int saved = errno;

    thread_start();
    errno = saved;
}

void coro__debug_thread_stop(void)
{
    stack_t cur;

    if (!alt_mem)
        return;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == alt_mem) {
        if (cur.ss_flags & SS_ONSTACK)
            return; /* exiting from a handler: leave it mapped */
        stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    }
    munmap(alt_mem, alt_len);
    alt_mem = NULL;
}

_Noreturn void coro__debug_canary(const struct coro *co)
{
    struct line l = {.len = 0};

    headline(&l, co);
    put(&l, "coro: found at a switch by its canary (this stack has no guard "
            "page), after the overflow: no backtrace\n");
    flush(&l);
    abort();
}

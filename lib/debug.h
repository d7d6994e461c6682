/* debug: what the coro layer calls into the debug layer for: the overflow
 * handler's per-thread setup, the canary report, and the hooks that
 * announce every switch to the sanitizers.  Private: not installed.
 *
 * The switch hooks are macros that expand to nothing in a normal build;
 * in an ASan or TSan build they call lib/sanitize.c.  They name the flows
 * by their saved contexts: a coroutine's is its `ctx`, a thread's own is
 * its `main_ctx`. */
#ifndef CORO_DEBUG_H
#define CORO_DEBUG_H

#include "annotate.h"

#include <stdint.h>
#include <ucontext.h>

struct coro;

/* The stack pointer and program counter saved in uc, by a switch or by
 * the kernel for a signal; 0 where this libc does not say. */
static inline uintptr_t coro__uc_sp(const ucontext_t *uc)
{
#if defined(REG_RSP)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
    (void)uc;
    return 0;
#endif
}

static inline uintptr_t coro__uc_pc(const ucontext_t *uc)
{
#if defined(REG_RIP)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

/* A thread's first create or resume: installs the overflow handler (once
 * per process) and gives the thread an alternate signal stack unless it
 * has one.  Quiet on failure: overflows are then not reported. */
void coro__debug_thread_start(void);

/* Writes msg on stderr when the environment asks for diagnostics
 * (CORO_DEBUG set, not empty and not "0"), else nothing: libcoro says
 * nothing unasked outside coro_dump and the overflow report.  Keeps errno.
 * Not for signal handlers. */
void coro__debug_note(const char *msg);

/* Thread exit: frees the alternate signal stack made by thread_start. */
void coro__debug_thread_stop(void);

/* Reports an overflow found by the canary check of co (a stack without a
 * guard) and aborts. */
_Noreturn void coro__debug_canary(const struct coro *co);

#if defined(CORO__ASAN) || defined(CORO__TSAN)
/* lib/sanitize.c.  from: the context the running flow saves into; to: the
 * one it continues. */
void coro__san_created(struct coro *co);
void coro__san_destroyed(struct coro *co);
void coro__san_entered(struct coro *co);
#else
#define coro__san_created(co) ((void)0)
#define coro__san_destroyed(co) ((void)0)
#define coro__san_entered(co) ((void)0)
#endif

#if defined(CORO__ASAN)
void coro__asan_start(ucontext_t *from, const ucontext_t *to);
void coro__asan_finish(ucontext_t *from);
#define CORO__BEFORE_SWITCH(from, to) coro__asan_start((from), (to))
#define CORO__AFTER_SWITCH(from) coro__asan_finish(from)
#elif defined(CORO__TSAN)
/* Called here, in the function that switches, right before the switch:
 * TSan must see no function exit between the two (it would be charged to
 * the other fiber), so the switch must not be a tail call either: the
 * empty asm after it keeps the caller's frame (and its exit) on this
 * side. */
void *coro__tsan_fiber(ucontext_t *from, const ucontext_t *to);
#define CORO__BEFORE_SWITCH(from, to) \
    __tsan_switch_to_fiber(coro__tsan_fiber((from), (to)), 0)
#define CORO__AFTER_SWITCH(from) __asm__ volatile("" ::: "memory")
#endif

#endif

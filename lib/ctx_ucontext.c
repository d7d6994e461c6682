/* ctx backend on glibc makecontext/swapcontext: portable to every
 * architecture glibc supports, keeps a signal mask per coroutine, and pays
 * an rt_sigprocmask system call on every switch (getcontext on create). */
#include "ctx.h"

#include <stdint.h>
#include <stdlib.h>

/* makecontext passes int arguments only, so the entry and its argument
 * travel as 32-bit halves. */
static void trampoline(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo)
{
    void (*entry)(void *) =
        (void (*)(void *))(uintptr_t)(((uint64_t)e_hi << 32) | e_lo);
    void *arg = (void *)(uintptr_t)(((uint64_t)a_hi << 32) | a_lo);
    entry(arg);
    abort(); /* entry never returns */
}

void coro__ctx_make(ucontext_t *uc, void *lo, size_t size,
                    void (*entry)(void *), void *arg)
{
    uint64_t e = (uintptr_t)entry, a = (uintptr_t)arg;

    if (getcontext(uc) != 0)
        abort(); /* cannot fail on Linux with a valid pointer */
    uc->uc_stack.ss_sp = lo;
    uc->uc_stack.ss_size = size;
    uc->uc_link = NULL;
    makecontext(uc, (void (*)(void))trampoline, 4,
                (unsigned)(e >> 32), (unsigned)e, (unsigned)(a >> 32), (unsigned)a);
}

/* The ret of the switch that continued this thread's flow last. */
static __thread int swap_ret;

int coro__ctx_swap(ucontext_t *from, const ucontext_t *to, int ret)
{
    swap_ret = ret;
    if (swapcontext(from, to) != 0)
        abort(); /* only fails for a bad pointer */
    return swap_ret;
}

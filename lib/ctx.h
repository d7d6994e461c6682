/* ctx: a machine context, the saved registers of a suspended flow.
 *
 * The state lives in a ucontext_t, in the fields glibc's swapcontext uses,
 * so libunwind, gdb and our own diagnostics read it the same way whichever
 * backend wrote it.  Backends: lib/arch/<cpu>.S (no system call) or
 * lib/ctx_ucontext.c (glibc makecontext/swapcontext), chosen by meson. */
#ifndef CORO_CTX_H
#define CORO_CTX_H

#include <stddef.h>
#include <ucontext.h>

/* Prepares uc so that switching to it calls entry(arg) on the stack
 * [lo, lo + size).  entry must never return.  The floating-point control
 * state (rounding mode, exception masks) is copied from the caller's. */
void coro__ctx_make(ucontext_t *uc, void *lo, size_t size,
                    void (*entry)(void *), void *arg);

/* Saves the current flow into from and continues the one saved in to.
 * Returns 0 when something switches back to from.  The saved resume point
 * is this call's return address, so a caller that tail-calls it
 * (`return coro__ctx_swap(...)`) is resumed straight in its own caller: no
 * return crosses stacks, and the return stack predictor stays right. */
int coro__ctx_swap(ucontext_t *from, const ucontext_t *to);

#endif

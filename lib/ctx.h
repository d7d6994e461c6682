/* ctx: a machine context, the saved registers of a suspended flow.
 *
 * The state lives in a ucontext_t, in the fields glibc's swapcontext uses,
 * so libunwind, gdb and our own diagnostics read it the same way whichever
 * backend wrote it.  Backends: lib/arch/<cpu>.S (no system call) or
 * lib/ctx_ucontext.c (glibc makecontext/swapcontext), chosen by meson.
 *
 * The assembly backends use only the leading bytes of the ucontext_t (the
 * callee-saved registers, the FP control words), so a coroutine keeps only
 * those (coro__ctx_t): 176 of glibc's 968 bytes on x86_64 (the FP control
 * words in a caller-saved register's slot, see lib/arch/x86_64.S), 1000 of
 * 4560 on aarch64.  That is most of a coroutine's descriptor, touched once per
 * coroutine: a burst of them costs that much less memory. */
#ifndef CORO_CTX_H
#define CORO_CTX_H

#include <stddef.h>
#include <ucontext.h>

#if defined(CORO__CTX_ASM) && defined(__x86_64__)
#define CORO__CTX_SIZE 176  /* through gregs[REG_RIP] (lib/arch/x86_64.S) */
#elif defined(CORO__CTX_ASM) && defined(__aarch64__)
#define CORO__CTX_SIZE 1000 /* through the FP/SIMD record's terminator */
#else
#define CORO__CTX_SIZE sizeof(ucontext_t)
#endif

/* A saved context as a coroutine keeps it: the first CORO__CTX_SIZE bytes
 * of a ucontext_t, used through coro__uc. */
typedef union coro__ctx {
    unsigned char bytes[CORO__CTX_SIZE];
    long double align_; /* a ucontext_t's alignment (16 on aarch64) */
} coro__ctx_t;

static inline ucontext_t *coro__uc(coro__ctx_t *c)
{
    return (ucontext_t *)(void *)c;
}

/* Prepares uc so that switching to it calls entry(arg) on the stack
 * [lo, lo + size).  entry must never return.  The floating-point control
 * state (rounding mode, exception masks) is copied from the caller's. */
void coro__ctx_make(ucontext_t *uc, void *lo, size_t size,
                    void (*entry)(void *), void *arg);

/* Saves the current flow into from and continues the one saved in to,
 * whose own pending coro__ctx_swap returns ret (0 for a flow that starts
 * there).  Returns the ret of the switch that continues from.  The saved
 * resume point
 * is this call's return address, so a caller that tail-calls it
 * (`return coro__ctx_swap(...)`) is resumed straight in its own caller: no
 * return crosses stacks, and the return stack predictor stays right. */
int coro__ctx_swap(ucontext_t *from, const ucontext_t *to, int ret);

#if defined(CORO__CTX_ASM) && defined(__x86_64__)
/* Nonzero: each context keeps all of MXCSR, exception flags included;
 * zero: only its control bits, the flags stay with the thread.  Set
 * before main from the CPU (lib/arch/x86_64_cpu.c); tests flip it to
 * check both ways on one machine. */
extern unsigned char coro__ctx_mxcsr_whole;
#endif

#endif

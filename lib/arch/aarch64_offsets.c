/* Build-time check that the offsets hard-coded in lib/arch/<cpu>.S match
 * this libc's ucontext_t and the kernel's FP/SIMD record.  No code: a
 * mismatch stops the build. */
#define _GNU_SOURCE
#include "../ctx.h"

#include <stddef.h>
#include <ucontext.h>
#include <asm/sigcontext.h>

#define REG(n) (offsetof(ucontext_t, uc_mcontext.regs) + 8 * (n))
_Static_assert(REG(19) == 336, "x19");
_Static_assert(REG(21) == 352, "x21");
_Static_assert(REG(23) == 368, "x23");
_Static_assert(REG(25) == 384, "x25");
_Static_assert(REG(27) == 400, "x27");
_Static_assert(REG(29) == 416, "x29");
_Static_assert(offsetof(ucontext_t, uc_mcontext.sp) == 432, "sp");
_Static_assert(offsetof(ucontext_t, uc_mcontext.pc) == 440, "pc (stored with sp as a pair)");
_Static_assert(offsetof(ucontext_t, uc_mcontext.pstate) == 448, "pstate");

/* glibc's getcontext puts the fpsimd_context record first in __reserved. */
#define FP(m) (offsetof(ucontext_t, uc_mcontext.__reserved) + \
               offsetof(struct fpsimd_context, m))
_Static_assert(offsetof(ucontext_t, uc_mcontext.__reserved) == 464, "__reserved");
_Static_assert(FP(fpsr) == 472, "fpsr");
_Static_assert(FP(fpcr) == 476, "fpcr");
_Static_assert(FP(vregs) + 16 * 8 == 608, "v8");
_Static_assert(FP(vregs) + 16 * 10 == 640, "v10");
_Static_assert(FP(vregs) + 16 * 12 == 672, "v12");
_Static_assert(FP(vregs) + 16 * 14 == 704, "v14");
_Static_assert(FPSIMD_MAGIC == 0x46508001, "FPSIMD_MAGIC");
_Static_assert(sizeof(struct fpsimd_context) == 528, "fpsimd_context size");
/* The record and its terminator fit in __reserved. */
_Static_assert(sizeof(struct fpsimd_context) + sizeof(struct _aarch64_ctx) <=
               sizeof(((ucontext_t *)0)->uc_mcontext.__reserved), "__reserved size");
/* A coroutine keeps the bytes up to the record's terminator only. */
_Static_assert(CORO__CTX_SIZE >= 464 + sizeof(struct fpsimd_context) + sizeof(struct _aarch64_ctx) &&
               CORO__CTX_SIZE < sizeof(ucontext_t), "ctx size");

typedef int coro__ctx_offsets_checked;

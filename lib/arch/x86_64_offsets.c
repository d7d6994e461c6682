/* Build-time check that the offsets hard-coded in lib/arch/<cpu>.S match
 * this libc's ucontext_t.  No code: a mismatch stops the build. */
#define _GNU_SOURCE
#include "../ctx.h"

#include <stddef.h>
#include <ucontext.h>


#define GREG(r) (offsetof(ucontext_t, uc_mcontext.gregs) + 8 * (r))
_Static_assert(GREG(REG_R12) == 72, "R12");
_Static_assert(GREG(REG_R13) == 80, "R13");
_Static_assert(GREG(REG_R14) == 88, "R14");
_Static_assert(GREG(REG_R15) == 96, "R15");
_Static_assert(GREG(REG_RBP) == 120, "RBP");
_Static_assert(GREG(REG_RBX) == 128, "RBX");
_Static_assert(GREG(REG_RSP) == 160, "RSP");
_Static_assert(GREG(REG_RIP) == 168, "RIP");
/* The FP control words go in R11's slot (see x86_64.S). */
_Static_assert(GREG(REG_R11) == 64, "R11");
/* A coroutine keeps the bytes up to RIP only. */
_Static_assert(CORO__CTX_SIZE == GREG(REG_RIP) + 8 && CORO__CTX_SIZE < sizeof(ucontext_t),
               "ctx size");


typedef int coro__ctx_offsets_checked;

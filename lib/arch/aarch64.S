/* ctx backend for aarch64 (AAPCS64, Linux): no system call per switch.
 *
 * The saved state goes where glibc's getcontext/swapcontext put it, so
 * libunwind and gdb read a suspended coroutine like any ucontext_t:
 *   uc_mcontext.regs[19..30]   callee-saved x19-x28, fp (x29), lr (x30)
 *   uc_mcontext.sp, .pc        stack pointer, resume address
 *   uc_mcontext.__reserved     a struct fpsimd_context record (magic and
 *                              size written at make time, then a zero
 *                              terminator record): q8-q15 in vregs[8..15]
 *                              (d8-d15 are their low halves), fpsr, fpcr
 * lib/arch/aarch64_offsets.c checks these offsets against <ucontext.h> and
 * <asm/sigcontext.h> at build time.  The signal mask is not touched (that
 * is the system call we avoid).
 *
 * FPSR (the cumulative exception flags) travels with FPCR: each coroutine
 * keeps its own fenv, as on AMD's x86_64 cores (see x86_64.S). */

#define UC_X19        336   /* uc_mcontext.regs[19] */
#define UC_X21        352
#define UC_X23        368
#define UC_X25        384
#define UC_X27        400
#define UC_X29        416   /* regs[29], regs[30] */
#define UC_SP         432   /* sp, then pc at 440 */
#define UC_PSTATE     448
#define UC_FPSIMD     464   /* uc_mcontext.__reserved: struct fpsimd_context */
#define UC_FPSR       472   /* fpsimd_context.fpsr */
#define UC_FPCR       476   /* fpsimd_context.fpcr */
#define UC_V8         608   /* fpsimd_context.vregs[8] */
#define UC_V10        640
#define UC_V12        672
#define UC_V14        704
#define FPSIMD_MAGIC  0x46508001
#define FPSIMD_SIZE   528   /* sizeof(struct fpsimd_context) */

/* Branch Target Identification and pointer authentication.  BTI pads are
 * hints (no-ops on cores without BTI), so they are always there.  A `br`
 * to a return address lands on no pad and would fault on a page that BTI
 * guards, so when the toolchain builds for BTI the switch ends with
 * `ret x16` instead (RET is never checked), and the object then says it
 * is BTI-safe.  PAC needs nothing: these functions never spill lr. */
#define BTI_C  hint #34
#define BTI_J  hint #36
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define JUMP_X16 ret x16
#define FEATURE_BTI 1
#else
#define JUMP_X16 br x16
#define FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
#define FEATURE_PAC 2
#else
#define FEATURE_PAC 0
#endif

    .text

/* int coro__ctx_swap(ucontext_t *from, const ucontext_t *to, int ret)
 * Ends with an indirect branch, not ret: a ret to another stack's return
 * address is mispredicted on every switch.  The flow it continues sees its
 * own call return ret (w0). */
    .globl  coro__ctx_swap
    .hidden coro__ctx_swap
    .type   coro__ctx_swap, %function
    .p2align 4
coro__ctx_swap:
    .cfi_startproc
    BTI_C
    mov     w7, w2                      /* ret: x2 is needed below */
    stp     x19, x20, [x0, #UC_X19]
    stp     x21, x22, [x0, #UC_X21]
    stp     x23, x24, [x0, #UC_X23]
    stp     x25, x26, [x0, #UC_X25]
    stp     x27, x28, [x0, #UC_X27]
    stp     x29, x30, [x0, #UC_X29]
    mov     x2, sp
    stp     x2, x30, [x0, #UC_SP]       /* sp, and pc: where the caller continues */
    stp     q8, q9, [x0, #UC_V8]
    stp     q10, q11, [x0, #UC_V10]
    stp     q12, q13, [x0, #UC_V12]
    stp     q14, q15, [x0, #UC_V14]
    mrs     x2, fpsr
    mrs     x3, fpcr
    str     w2, [x0, #UC_FPSR]
    str     w3, [x0, #UC_FPCR]

    ldp     x19, x20, [x1, #UC_X19]
    ldp     x21, x22, [x1, #UC_X21]
    ldp     x23, x24, [x1, #UC_X23]
    ldp     x25, x26, [x1, #UC_X25]
    ldp     x27, x28, [x1, #UC_X27]
    ldp     x29, x30, [x1, #UC_X29]
    ldp     q8, q9, [x1, #UC_V8]
    ldp     q10, q11, [x1, #UC_V10]
    ldp     q12, q13, [x1, #UC_V12]
    ldp     q14, q15, [x1, #UC_V14]
    /* Writing FPCR can stall the pipeline, and the FP state almost never
     * differs between coroutines: write only what changed. */
    ldr     w4, [x1, #UC_FPSR]
    ldr     w5, [x1, #UC_FPCR]
    cmp     w4, w2
    b.ne    .Lload_fpsr
.Lfpsr_done:
    cmp     w5, w3
    b.ne    .Lload_fpcr
.Lfpcr_done:
    ldp     x2, x16, [x1, #UC_SP]
    mov     sp, x2
    mov     w0, w7
    JUMP_X16
.Lload_fpsr:
    msr     fpsr, x4
    b       .Lfpsr_done
.Lload_fpcr:
    msr     fpcr, x5
    b       .Lfpcr_done
    .cfi_endproc
    .size   coro__ctx_swap, .-coro__ctx_swap

/* First code of every coroutine: x19 holds the entry function, x20 its
 * argument, sp is 16-byte aligned and fp is 0 (the end of the frame
 * chain).  lr is marked undefined so unwinders stop here instead of
 * walking into garbage. */
    .type   coro__ctx_trampoline, %function
    .p2align 4
coro__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    BTI_J
    mov     x0, x20
    blr     x19
    brk     #0x3e8                      /* entry never returns */
    .cfi_endproc
    .size   coro__ctx_trampoline, .-coro__ctx_trampoline

/* void coro__ctx_make(ucontext_t *uc, void *lo, size_t size,
 *                     void (*entry)(void *), void *arg) */
    .globl  coro__ctx_make
    .hidden coro__ctx_make
    .type   coro__ctx_make, %function
    .p2align 4
coro__ctx_make:
    .cfi_startproc
    BTI_C
    add     x5, x1, x2
    and     x5, x5, #~15
    adr     x6, coro__ctx_trampoline
    stp     x5, x6, [x0, #UC_SP]
    str     xzr, [x0, #UC_PSTATE]
    stp     x3, x4, [x0, #UC_X19]
    stp     xzr, xzr, [x0, #UC_X21]
    stp     xzr, xzr, [x0, #UC_X23]
    stp     xzr, xzr, [x0, #UC_X25]
    stp     xzr, xzr, [x0, #UC_X27]
    stp     xzr, xzr, [x0, #UC_X29]
    /* The FP/SIMD record, laid out as glibc's getcontext leaves it, so
     * readers of the extension area (libunwind, gdb) find a valid one. */
    add     x7, x0, #UC_FPSIMD
    mov     w5, #(FPSIMD_MAGIC & 0xffff)
    movk    w5, #(FPSIMD_MAGIC >> 16), lsl #16
    mov     w6, #FPSIMD_SIZE
    stp     w5, w6, [x7]
    mrs     x5, fpsr
    mrs     x6, fpcr
    stp     w5, w6, [x7, #8]
    movi    v16.2d, #0
    stp     q16, q16, [x0, #UC_V8]
    stp     q16, q16, [x0, #UC_V10]
    stp     q16, q16, [x0, #UC_V12]
    stp     q16, q16, [x0, #UC_V14]
    str     xzr, [x7, #FPSIMD_SIZE]     /* terminator: magic 0, size 0 */
    ret
    .cfi_endproc
    .size   coro__ctx_make, .-coro__ctx_make

#if FEATURE_BTI || FEATURE_PAC
/* GNU_PROPERTY_AARCH64_FEATURE_1_AND: what this object is safe with. */
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .long   4                           /* name size */
    .long   16                          /* descriptor size */
    .long   5                           /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000                  /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4
    .long   FEATURE_BTI | FEATURE_PAC
    .long   0
    .popsection
#endif

    .section .note.GNU-stack,"",%progbits

/* ctx backend for x86_64 (System V): no system call per switch.
 *
 * The registers go where glibc's swapcontext puts them, so libunwind and
 * gdb read a suspended coroutine like any ucontext_t:
 *   uc_mcontext.gregs[REG_x]   callee-saved registers, RSP, RIP
 *   uc_mcontext.gregs[REG_R11] x87 control word (+0), SSE control/status (+4)
 * The FP control words are not where glibc keeps them (__fpregs_mem, 360
 * bytes further on) but in the slot of R11, which is caller-saved and so
 * never saved: the context then ends at RIP, three cache lines a switch
 * touches instead of five, and 280 bytes less per coroutine.  Unwinding
 * needs only the gregs; uc_mcontext.fpregs is not set.
 * lib/arch/x86_64_offsets.c checks these offsets against <ucontext.h> at build time.
 * The signal mask is not touched (that is the system call we avoid). */

/* Intel CET.  Indirect branch tracking: every entry reached by an
 * indirect call or jump starts with endbr64 (the trampoline is jumped to).
 * Shadow stacks: not supported, since a switch would have to switch
 * shadow stacks too.  So the object's property note claims IBT and never
 * SHSTK: <cet.h> would claim both under -fcf-protection(=full), and a
 * loader would then turn shadow stacks on and kill the first switch.  The
 * linker ANDs the notes of all objects, so the library says the same. */
#if defined(__CET__) && (__CET__ & 1)
#define _CET_ENDBR endbr64
    .pushsection ".note.gnu.property", "a"
    .p2align 3
    .long   4                       /* name size: "GNU" */
    .long   16                      /* descriptor size */
    .long   5                       /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002              /* GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4
    .long   0x1                     /* GNU_PROPERTY_X86_FEATURE_1_IBT only */
    .p2align 3
    .popsection
#else
#define _CET_ENDBR
#endif

#define UC_R12   72
#define UC_R13   80
#define UC_R14   88
#define UC_R15   96
#define UC_RBP  120
#define UC_RBX  128
#define UC_RSP  160
#define UC_RIP  168
#define UC_FPMEM   64   /* gregs[REG_R11]: cwd at +0, mxcsr at +4 */
#define UC_MXCSR   68

    .text

/* int coro__ctx_swap(ucontext_t *from, const ucontext_t *to, int ret)
 * Ends with an indirect jmp, not ret: a ret to another stack's return
 * address is mispredicted on every switch.  The flow it continues sees its
 * own call return ret (eax).  In .text.hot, beside coro_resume and
 * coro_yield (marked hot): a round trip's code then sits in a few adjacent
 * lines, and its speed stops depending on where the pages land (13.0-16.8
 * ns between copies of one library otherwise, on an AMD EPYC). */
    .pushsection .text.hot.coro__ctx_swap, "ax", @progbits
    .hidden coro__ctx_mxcsr_whole       /* lib/arch/x86_64_cpu.c */
    .globl  coro__ctx_swap
    .hidden coro__ctx_swap
    .type   coro__ctx_swap, @function
    .p2align 4
coro__ctx_swap:
    .cfi_startproc
    _CET_ENDBR
    movq    (%rsp), %rax            /* where the caller continues */
    leaq    8(%rsp), %rcx           /* its stack pointer after the return */
    movq    %rbx, UC_RBX(%rdi)
    movq    %rbp, UC_RBP(%rdi)
    movq    %r12, UC_R12(%rdi)
    movq    %r13, UC_R13(%rdi)
    movq    %r14, UC_R14(%rdi)
    movq    %r15, UC_R15(%rdi)
    movq    %rcx, UC_RSP(%rdi)
    movq    %rax, UC_RIP(%rdi)
    fnstcw  UC_FPMEM(%rdi)
    stmxcsr UC_MXCSR(%rdi)

    movq    UC_RBX(%rsi), %rbx
    movq    UC_RBP(%rsi), %rbp
    movq    UC_R12(%rsi), %r12
    movq    UC_R13(%rsi), %r13
    movq    UC_R14(%rsi), %r14
    movq    UC_R15(%rsi), %r15
    /* MXCSR two ways, picked once per process (lib/arch/x86_64_cpu.c).
     * Where writing it is cheap whatever changes (AMD), each context keeps
     * all of it, exception flags too, and the target's is loaded as it is:
     * checking first would read back what stmxcsr just stored, which no
     * load can take early, and that read alone costs 3 ns a round trip on
     * an AMD EPYC (15.9 against 13.0 ns, fcontext 11.0).  Elsewhere (Intel)
     * an ldmxcsr that changes a status flag costs about a hundred times
     * more (see bench/switch.c), and the flags of any two coroutines that
     * did some double arithmetic differ: the flags stay with the thread and
     * only control bits that differ are loaded. */
    testb   $1, coro__ctx_mxcsr_whole(%rip)
    jz      .Lmxcsr_check
    ldmxcsr UC_MXCSR(%rsi)
.Lmxcsr_done:
    /* fldcw stalls the pipeline on some cores and the x87 control word
     * almost never differs: load it only when it does (this read-back
     * costs nothing measurable). */
    movzwl  UC_FPMEM(%rsi), %eax
    cmpw    UC_FPMEM(%rdi), %ax
    jne     .Lload_fpcw
.Lfpcw_done:
    movq    UC_RSP(%rsi), %rsp
    movl    %edx, %eax
    jmpq    *UC_RIP(%rsi)
.Lmxcsr_check:
    movl    UC_MXCSR(%rsi), %eax
    xorl    UC_MXCSR(%rdi), %eax
    testl   $0xffc0, %eax           /* control bits only: DAZ, masks, RC, FZ */
    jz      .Lmxcsr_done
    /* The target's control bits with the current exception flags. */
    movl    UC_MXCSR(%rsi), %eax
    andl    $0xffc0, %eax
    movl    UC_MXCSR(%rdi), %ecx
    andl    $0x003f, %ecx
    orl     %ecx, %eax
    movl    %eax, -8(%rsp)          /* red zone: still on the old stack */
    ldmxcsr -8(%rsp)
    jmp     .Lmxcsr_done
.Lload_fpcw:
    fldcw   UC_FPMEM(%rsi)
    jmp     .Lfpcw_done
    .cfi_endproc
    .size   coro__ctx_swap, .-coro__ctx_swap
    .popsection

/* First code of every coroutine: rbx holds the entry function, r12 its
 * argument, rsp is 16-byte aligned, so the call leaves the callee with
 * (rsp + 8) % 16 == 0 as the ABI wants.  The return address is marked
 * undefined so unwinders stop here instead of walking into garbage. */
    .type   coro__ctx_trampoline, @function
    .p2align 4
coro__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    _CET_ENDBR
    movq    %r12, %rdi
    callq   *%rbx
    ud2                             /* entry never returns */
    .cfi_endproc
    .size   coro__ctx_trampoline, .-coro__ctx_trampoline

/* void coro__ctx_make(ucontext_t *uc, void *lo, size_t size,
 *                     void (*entry)(void *), void *arg) */
    .globl  coro__ctx_make
    .hidden coro__ctx_make
    .type   coro__ctx_make, @function
    .p2align 4
coro__ctx_make:
    .cfi_startproc
    _CET_ENDBR
    leaq    (%rsi,%rdx), %rax
    andq    $-16, %rax
    movq    %rax, UC_RSP(%rdi)
    leaq    coro__ctx_trampoline(%rip), %rax
    movq    %rax, UC_RIP(%rdi)
    movq    %rcx, UC_RBX(%rdi)
    movq    %r8, UC_R12(%rdi)
    xorl    %eax, %eax
    movq    %rax, UC_RBP(%rdi)
    movq    %rax, UC_R13(%rdi)
    movq    %rax, UC_R14(%rdi)
    movq    %rax, UC_R15(%rdi)
    fnstcw  UC_FPMEM(%rdi)
    stmxcsr UC_MXCSR(%rdi)
    ret
    .cfi_endproc
    .size   coro__ctx_make, .-coro__ctx_make

    .section .note.GNU-stack,"",%progbits

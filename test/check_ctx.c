/* Check suite of the ctx layer: coro__ctx_make and coro__ctx_swap, driven
 * directly on mmap'd stacks, whichever backend the build chose. */
#define _GNU_SOURCE
#include "lib/ctx.h"

#include <check.h>
#include "testutil.h"
#include <fenv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <xmmintrin.h>
#endif

#define STACK_SIZE ((size_t)256 << 10)

static ucontext_t main_uc, co_uc;

/* The stacks are registered with valgrind as the library does, otherwise
 * it takes a switch between two nearby stacks for a huge frame.  A page
 * above each keeps the registered ranges (bounds included) apart. */
static struct { void *p; unsigned id; } stacks[4];

static void *stack_new(void)
{
    void *p = mmap(NULL, STACK_SIZE + 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    for (int i = 0; i < 4; i++)
        if (!stacks[i].p) {
            stacks[i].p = p;
            stacks[i].id = VALGRIND_STACK_REGISTER(p, (char *)p + STACK_SIZE);
            break;
        }
    return p;
}

static void stack_delete(void *p)
{
    for (int i = 0; i < 4; i++)
        if (stacks[i].p == p) {
            VALGRIND_STACK_DEREGISTER(stacks[i].id);
            stacks[i].p = NULL;
        }
    ck_assert_int_eq(munmap(p, STACK_SIZE + 4096), 0);
}

/* ------------------------------------------------------------ round trips */

static int trips;
static void *got_arg;

/* Counts every time it is switched to, and switches straight back. */
static void ping(void *arg)
{
    got_arg = arg;
    for (;;) {
        trips++;
        coro__ctx_swap(&co_uc, &main_uc, 0);
    }
}

START_TEST(swap_round_trips)
{
    void *stk = stack_new();
    int marker = 42;

    trips = 0;
    got_arg = NULL;
    coro__ctx_make(&co_uc, stk, STACK_SIZE, ping, &marker);
    ck_assert_int_eq(trips, 0); /* make does not run the entry */
    for (int i = 1; i <= 10000; i++) {
        ck_assert_int_eq(coro__ctx_swap(&main_uc, &co_uc, 0), 0);
        ck_assert_int_eq(trips, i);
    }
    ck_assert_ptr_eq(got_arg, &marker);
    stack_delete(stk);
}
END_TEST

/* Two contexts passing control around a ring main -> a -> b -> main. */
static ucontext_t ring_uc[3];
static int ring_log[64], ring_len;

static void ring_member(void *arg)
{
    int me = (int)(intptr_t)arg;

    for (;;) {
        ring_log[ring_len++] = me;
        coro__ctx_swap(&ring_uc[me], &ring_uc[(me + 1) % 3], 0);
    }
}

START_TEST(swap_ring)
{
    void *s1 = stack_new(), *s2 = stack_new();

    ring_len = 0;
    coro__ctx_make(&ring_uc[1], s1, STACK_SIZE, ring_member, (void *)1);
    coro__ctx_make(&ring_uc[2], s2, STACK_SIZE, ring_member, (void *)2);
    for (int i = 0; i < 20; i++) {
        ring_log[ring_len++] = 0;
        coro__ctx_swap(&ring_uc[0], &ring_uc[1], 0);
    }
    ck_assert_int_eq(ring_len, 60);
    for (int i = 0; i < ring_len; i++)
        ck_assert_int_eq(ring_log[i], i % 3);
    stack_delete(s1);
    stack_delete(s2);
}
END_TEST

/* A context made again on the same stack starts over. */
START_TEST(make_again_restarts)
{
    void *stk = stack_new();
    int a = 1, b = 2;

    trips = 0;
    coro__ctx_make(&co_uc, stk, STACK_SIZE, ping, &a);
    coro__ctx_swap(&main_uc, &co_uc, 0);
    coro__ctx_swap(&main_uc, &co_uc, 0);
    ck_assert_ptr_eq(got_arg, &a);
    coro__ctx_make(&co_uc, stk, STACK_SIZE, ping, &b);
    coro__ctx_swap(&main_uc, &co_uc, 0);
    ck_assert_ptr_eq(got_arg, &b);
    ck_assert_int_eq(trips, 3);
    stack_delete(stk);
}
END_TEST

/* The entry runs inside [lo, lo + size). */
static uintptr_t seen_sp;

static void where_am_i(void *unused)
{
    volatile char here = 0;
    (void)unused;
    seen_sp = (uintptr_t)&here;
    for (;;)
        coro__ctx_swap(&co_uc, &main_uc, 0);
}

START_TEST(runs_on_given_stack)
{
    char *stk = stack_new();

    /* A smaller size than the mapping: the entry must stay below it. */
    coro__ctx_make(&co_uc, stk, STACK_SIZE / 2, where_am_i, NULL);
    coro__ctx_swap(&main_uc, &co_uc, 0);
    ck_assert_uint_gt(seen_sp, (uintptr_t)stk);
    ck_assert_uint_lt(seen_sp, (uintptr_t)stk + STACK_SIZE / 2);
    stack_delete(stk);
}
END_TEST

/* ------------------------------------------------------ callee-saved state */

#if defined(__x86_64__)
/* Loads pattern p (a different 64-bit value per register) into every
 * callee-saved register, switches from -> to, and when switched back
 * stores what those registers hold into got[0..6]: rbx rbp r12 r13 r14
 * r15, and the stack pointer's distance from the one before the switch.
 * The compiler cannot help here: the values live only in the registers
 * across the switch. */
/* Called from the asm below through this pointer, a C operand, so that
 * link-time optimisation sees the use (a name inside an asm string is
 * invisible to it, and it may rename a hidden function). */
static int (*const swap_fn)(ucontext_t *, const ucontext_t *, int) = coro__ctx_swap;

static void swap_with_pattern(ucontext_t *from, const ucontext_t *to,
                              uint64_t p, uint64_t *got)
{
    /* One register left for both: a pointer to them. */
    struct { uint64_t p; uint64_t *got; } a = {p, got}, *ap = &a;

    __asm__ volatile(
        "movq   %%rsp, %%rax\n\t"
        "subq   $128, %%rsp\n\t"        /* leave the red zone alone */
        "andq   $-16, %%rsp\n\t"
        "pushq  %%rax\n\t"              /* the caller's rsp */
        "pushq  %%rbp\n\t"
        "pushq  %%rdx\n\t"              /* &a */
        "movq   0(%%rdx), %%rbx\n\t"
        "movq   %%rbx, %%rbp\n\t"  "xorq $1, %%rbp\n\t"
        "movq   %%rbx, %%r12\n\t"  "xorq $2, %%r12\n\t"
        "movq   %%rbx, %%r13\n\t"  "xorq $3, %%r13\n\t"
        "movq   %%rbx, %%r14\n\t"  "xorq $4, %%r14\n\t"
        "movq   %%rbx, %%r15\n\t"  "xorq $5, %%r15\n\t"
        "movq   %%rsp, %%rax\n\t"
        "pushq  %%rax\n\t"              /* rsp is 16-byte aligned again */
        "call   *%[fn]\n\t"          /* rip-relative: rsp has moved */
        "popq   %%rax\n\t"
        "subq   %%rsp, %%rax\n\t"       /* 0 when rsp came back intact */
        "popq   %%rcx\n\t"              /* &a */
        "movq   8(%%rcx), %%rcx\n\t"    /* got */
        "movq   %%rbx, 0(%%rcx)\n\t"
        "movq   %%rbp, 8(%%rcx)\n\t"
        "movq   %%r12, 16(%%rcx)\n\t"
        "movq   %%r13, 24(%%rcx)\n\t"
        "movq   %%r14, 32(%%rcx)\n\t"
        "movq   %%r15, 40(%%rcx)\n\t"
        "movq   %%rax, 48(%%rcx)\n\t"
        "popq   %%rbp\n\t"
        "popq   %%rsp\n\t"
        : "+D"(from), "+S"(to), "+d"(ap)
        : [fn] "m"(swap_fn)
        : "rax", "rbx", "rcx", "r8", "r9", "r10", "r11", "r12", "r13",
          "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
          "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
          "xmm13", "xmm14", "xmm15", "memory", "cc");
}

static void check_pattern(const uint64_t *got, uint64_t p)
{
    ck_assert_uint_eq(got[0], p);
    ck_assert_uint_eq(got[1], p ^ 1);
    ck_assert_uint_eq(got[2], p ^ 2);
    ck_assert_uint_eq(got[3], p ^ 3);
    ck_assert_uint_eq(got[4], p ^ 4);
    ck_assert_uint_eq(got[5], p ^ 5);
    ck_assert_uint_eq(got[6], 0);
}

#define PATTERN_MAIN 0x0123456789abcde0ull
#define PATTERN_CO 0xfedcba9876543210ull
static int co_checks;

static void pattern_entry(void *unused)
{
    uint64_t got[7];
    (void)unused;
    for (;;) {
        swap_with_pattern(&co_uc, &main_uc, PATTERN_CO, got);
        check_pattern(got, PATTERN_CO);
        co_checks++;
    }
}

START_TEST(callee_saved_registers_survive)
{
    void *stk = stack_new();
    uint64_t got[7];

    co_checks = 0;
    coro__ctx_make(&co_uc, stk, STACK_SIZE, pattern_entry, NULL);
    for (int i = 0; i < 1000; i++) {
        swap_with_pattern(&main_uc, &co_uc, PATTERN_MAIN + (uint64_t)i * 16, got);
        check_pattern(got, PATTERN_MAIN + (uint64_t)i * 16);
    }
    ck_assert_int_eq(co_checks, 999);
    stack_delete(stk);
}
END_TEST
#endif

/* A switch hands its third argument to the flow it continues, as the
 * return value of that flow's own pending swap (coro_close's ECANCELED). */
static int ret_seen[3];

static void ret_entry(void *unused)
{
    (void)unused;
    ret_seen[0] = coro__ctx_swap(&co_uc, &main_uc, 7);
    ret_seen[1] = coro__ctx_swap(&co_uc, &main_uc, -1);
    for (;;)
        coro__ctx_swap(&co_uc, &main_uc, 0);
}

START_TEST(swap_passes_its_value)
{
    void *stk = stack_new();

    coro__ctx_make(&co_uc, stk, STACK_SIZE, ret_entry, NULL);
    ck_assert_int_eq(coro__ctx_swap(&main_uc, &co_uc, 99), 7); /* first entry ignores 99 */
    ck_assert_int_eq(coro__ctx_swap(&main_uc, &co_uc, 125), -1);
    ck_assert_int_eq(ret_seen[0], 125);
    ck_assert_int_eq(coro__ctx_swap(&main_uc, &co_uc, 3), 0);
    ck_assert_int_eq(ret_seen[1], 3);
    stack_delete(stk);
}
END_TEST

/* Portable counterpart: many values live across the switch, on both sides,
 * so the compiler keeps some in callee-saved registers. */
static volatile uint64_t seed = 7;
static uint64_t co_sum_bad;

static void busy_entry(void *unused)
{
    (void)unused;
    for (;;) {
        uint64_t a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11,
                 e = seed * 13, f = seed * 17, g = seed * 19, h = seed * 23;
        coro__ctx_swap(&co_uc, &main_uc, 0);
        if (a != seed * 3 || b != seed * 5 || c != seed * 7 || d != seed * 11 ||
            e != seed * 13 || f != seed * 17 || g != seed * 19 || h != seed * 23)
            co_sum_bad++;
    }
}

START_TEST(live_values_survive)
{
    void *stk = stack_new();

    co_sum_bad = 0;
    coro__ctx_make(&co_uc, stk, STACK_SIZE, busy_entry, NULL);
    for (int i = 0; i < 1000; i++) {
        uint64_t a = seed + 1, b = seed + 2, c = seed + 3, d = seed + 4,
                 e = seed + 5, f = seed + 6, g = seed + 7, h = seed + 8;
        coro__ctx_swap(&main_uc, &co_uc, 0);
        ck_assert(a == seed + 1 && b == seed + 2 && c == seed + 3 &&
                  d == seed + 4 && e == seed + 5 && f == seed + 6 &&
                  g == seed + 7 && h == seed + 8);
    }
    ck_assert_uint_eq(co_sum_bad, 0);
    stack_delete(stk);
}
END_TEST

/* --------------------------------------------------------------- alignment */

static uintptr_t entry_frame, nested_frame;

static __attribute__((noinline)) void nested(void)
{
    nested_frame = (uintptr_t)__builtin_frame_address(0);
    __asm__ volatile("" ::: "memory");
}

/* The frame address is the stack pointer at entry minus the return
 * address and the saved frame pointer: 16-byte aligned when the entry was
 * called as the ABI says ((sp + 8) % 16 == 0 on x86_64, sp % 16 == 0 on
 * aarch64). */
static void align_entry(void *unused)
{
    (void)unused;
    entry_frame = (uintptr_t)__builtin_frame_address(0);
    nested();
    for (;;)
        coro__ctx_swap(&co_uc, &main_uc, 0);
}

START_TEST(entry_stack_aligned)
{
    char *stk = stack_new();

    /* Every misalignment of the top the caller might hand over. */
    for (size_t off = 0; off < 16; off++) {
        entry_frame = nested_frame = 1;
        coro__ctx_make(&co_uc, stk, STACK_SIZE - off, align_entry, NULL);
        coro__ctx_swap(&main_uc, &co_uc, 0);
        ck_assert_msg(entry_frame % 16 == 0, "size -%zu: frame %#lx", off,
                      (unsigned long)entry_frame);
        ck_assert_msg(nested_frame % 16 == 0, "size -%zu: nested frame %#lx",
                      off, (unsigned long)nested_frame);
    }
    stack_delete(stk);
}
END_TEST

/* ------------------------------------------------- floating-point control */

/* 1/7 is inexact, and its nearest value is the one rounded down both in
 * double (SSE) and long double (x87): rounding up gives another value. */
static volatile double one = 1.0, seven = 7.0;
static volatile long double one_l = 1.0L, seven_l = 7.0L;

/* 1/7 under each mode, computed once by fp_refs before any switch.
 * Volatile: otherwise the compiler may move a division across fesetround
 * (it assumes the mode never changes). */
static volatile double up_d, near_d;
static volatile long double up_l, near_l;

static int arith_rounds; /* the CPU honours the modes in arithmetic */

static void fp_refs(void)
{
    fesetround(FE_UPWARD);
    up_d = one / seven;
    up_l = one_l / seven_l;
    fesetround(FE_TONEAREST);
    near_d = one / seven;
    near_l = one_l / seven_l;
    arith_rounds = up_d != near_d && up_l != near_l;
    /* valgrind emulates only round-to-nearest arithmetic (its manual,
     * "Limitations"): there the modes are checked through the control
     * registers alone. */
    ck_assert(arith_rounds || RUNNING_ON_VALGRIND);
}

/* 1 when SSE (double) and x87 (long double) arithmetic both round up, -1
 * when both round to nearest (or down), 0 when they disagree.  Reads the
 * modes only through arithmetic, without touching them.  Under valgrind,
 * the answer fegetround gives. */
static int rounding_seen(void)
{
    volatile double d = one / seven;
    volatile long double l = one_l / seven_l;

    if (!arith_rounds)
        return fegetround() == FE_UPWARD ? 1 : -1;
    if (d == up_d && l == up_l)
        return 1;
    if (d == near_d && l == near_l)
        return -1;
    return 0;
}

static int co_fp_ok, co_fp_rounds;

static void fp_entry(void *unused)
{
    (void)unused;
    fesetround(FE_UPWARD);
    for (;;) {
        if (fegetround() == FE_UPWARD && rounding_seen() == 1)
            co_fp_ok++;
        co_fp_rounds++;
        coro__ctx_swap(&co_uc, &main_uc, 0);
    }
}

START_TEST(fp_control_per_context)
{
    void *stk = stack_new();

    co_fp_ok = co_fp_rounds = 0;
    fp_refs();
    coro__ctx_make(&co_uc, stk, STACK_SIZE, fp_entry, NULL);
    for (int i = 0; i < 1000; i++) {
        /* Alternate what main uses so both sides change between switches. */
        int mine = i % 2 ? FE_DOWNWARD : FE_TONEAREST;
        fesetround(mine);
        coro__ctx_swap(&main_uc, &co_uc, 0);
        ck_assert_int_eq(fegetround(), mine);
        ck_assert_int_eq(rounding_seen(), -1);
    }
    ck_assert_int_eq(co_fp_rounds, 1000);
    ck_assert_int_eq(co_fp_ok, 1000);
    fesetround(FE_TONEAREST);
    stack_delete(stk);
}
END_TEST

#if defined(__x86_64__)
/* The two control registers separately: MXCSR (SSE) and the x87 control
 * word, including bits fesetround does not touch (exception masks, x87
 * precision). */
static unsigned co_mxcsr_seen, co_fpcw_seen;

static unsigned short get_fpcw(void)
{
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}

static void set_fpcw(unsigned short cw)
{
    __asm__ volatile("fldcw %0" : : "m"(cw));
}

#define CO_MXCSR (0x1f80u | 0x6000u)       /* all masked, round toward zero */
#define CO_FPCW ((unsigned short)0x0f7f)  /* x87: toward zero */

static void regs_entry(void *unused)
{
    (void)unused;
    _mm_setcsr(CO_MXCSR);
    set_fpcw(CO_FPCW);
    for (;;) {
        co_mxcsr_seen = _mm_getcsr() & 0xffc0u; /* control bits, not flags */
        co_fpcw_seen = get_fpcw();
        coro__ctx_swap(&co_uc, &main_uc, 0);
    }
}

/* Both ways of keeping MXCSR (lib/arch/x86_64.S) keep its control bits
 * and the x87 control word per context; the machine's own way first. */
static void check_fp_control_kept(void)
{
    void *stk = stack_new();
    unsigned mxcsr0 = _mm_getcsr();
    unsigned short fpcw0 = get_fpcw();

    coro__ctx_make(&co_uc, stk, STACK_SIZE, regs_entry, NULL);
    for (int i = 0; i < 100; i++) {
        /* Main changes one register at a time; the other must not leak. */
        unsigned m = i % 2 ? 0x1f80u | 0x2000u : 0x1f80u; /* up / nearest */
        unsigned short c = i % 3 ? (unsigned short)0x037f : (unsigned short)0x077f;
        _mm_setcsr(m);
        set_fpcw(c);
        coro__ctx_swap(&main_uc, &co_uc, 0);
        ck_assert_uint_eq(co_mxcsr_seen, CO_MXCSR);
        ck_assert_uint_eq(co_fpcw_seen, CO_FPCW);
        ck_assert_uint_eq(_mm_getcsr() & 0xffc0u, m);
        ck_assert_uint_eq(get_fpcw(), c);
    }
    _mm_setcsr(mxcsr0);
    set_fpcw(fpcw0);
    stack_delete(stk);
}

START_TEST(mxcsr_and_x87_cw_per_context)
{
    check_fp_control_kept();
#ifdef CORO__CTX_ASM
    unsigned char own = coro__ctx_mxcsr_whole;
    coro__ctx_mxcsr_whole = !own;
    check_fp_control_kept();
    coro__ctx_mxcsr_whole = own;
#endif
}
END_TEST

#ifdef CORO__CTX_ASM
/* The exception flags: kept per context when MXCSR is kept whole, left
 * with the thread otherwise, whether or not the two sides' control bits
 * differ (when they do, the second way loads the target's control bits
 * and must keep the thread's flags).  The context raises "inexact" with an
 * SSE division (volatile operands: computed here, not folded) and reports
 * its flags each time it runs. */
static volatile double fl_one = 1.0, fl_three = 3.0, fl_sink;
static unsigned fl_seen, fl_control;

#define FL_TOWARD_ZERO 0x6000u

static void flags_entry(void *differ)
{
    unsigned m = _mm_getcsr() & ~0x3fu;
    _mm_setcsr(differ ? m | FL_TOWARD_ZERO : m);
    fl_sink = fl_one / fl_three;
    for (;;) {
        fl_seen = _mm_getcsr() & 0x3fu;
        fl_control = _mm_getcsr() & 0xffc0u;
        coro__ctx_swap(&co_uc, &main_uc, 0);
    }
}

static void check_flags(int whole, int differ)
{
    void *stk = stack_new();
    unsigned mxcsr0 = _mm_getcsr();
    unsigned control = mxcsr0 & 0xffc0u;

    coro__ctx_mxcsr_whole = (unsigned char)whole;
    _mm_setcsr(control);
    coro__ctx_make(&co_uc, stk, STACK_SIZE, flags_entry, differ ? &differ : NULL);
    coro__ctx_swap(&main_uc, &co_uc, 0);
    ck_assert_uint_eq(fl_seen, 0x20u); /* its own division: PE */
    /* Main's flags now: the context's (thread) or main's clean ones. */
    ck_assert_uint_eq(_mm_getcsr() & 0x3fu, whole ? 0u : 0x20u);
    _mm_setcsr(control | 0x04u); /* main: ZE only */
    coro__ctx_swap(&main_uc, &co_uc, 0);
    ck_assert_uint_eq(fl_seen, whole ? 0x20u : 0x04u);
    ck_assert_uint_eq(fl_control, differ ? control | FL_TOWARD_ZERO : control);
    ck_assert_uint_eq(_mm_getcsr(), control | 0x04u); /* neither way adds */
    _mm_setcsr(mxcsr0);
    stack_delete(stk);
}

START_TEST(mxcsr_flags_follow_the_way)
{
    unsigned char own = coro__ctx_mxcsr_whole;

    /* Valgrind does not model the SSE exception flags (stmxcsr shows
     * none), so there is nothing to observe under it. */
    if (!RUNNING_ON_VALGRIND)
        for (int i = 0; i < 4; i++)
            check_flags(i & 1, i >> 1);
    coro__ctx_mxcsr_whole = own;
}
END_TEST

/* The way is picked from the CPU: whole on AMD's Zen cores (and Hygon's),
 * where an ldmxcsr costs the same whatever it changes.  It is picked
 * before a program's own constructors run, even with libcoro linked in
 * statically as here: coroutines they make switch the same way. */
static unsigned char way_in_constructor = 2;

__attribute__((constructor)) static void note_way(void)
{
    way_in_constructor = coro__ctx_mxcsr_whole;
}

START_TEST(mxcsr_way_from_vendor)
{
    unsigned a, b, c, d;
    char v[13] = {0};

    ck_assert(__get_cpuid(0, &a, &b, &c, &d));
    memcpy(v, &b, 4);
    memcpy(v + 4, &d, 4);
    memcpy(v + 8, &c, 4);
    int amd = !strcmp(v, "AuthenticAMD") || !strcmp(v, "HygonGenuine");
    ck_assert(__get_cpuid(1, &a, &b, &c, &d));
    unsigned family = (a >> 8 & 0xf) == 0xf ? 0xf + (a >> 20 & 0xff) : a >> 8 & 0xf;
    ck_assert_int_eq(coro__ctx_mxcsr_whole, amd && family >= 0x17);
    ck_assert_int_eq(way_in_constructor, coro__ctx_mxcsr_whole);
}
END_TEST
#endif /* CORO__CTX_ASM */
#endif

/* A new context starts with the rounding mode of the one that made it. */
static int first_round;

static void report_round(void *unused)
{
    (void)unused;
    first_round = fegetround();
    for (;;)
        coro__ctx_swap(&co_uc, &main_uc, 0);
}

START_TEST(make_copies_fp_control)
{
    void *stk = stack_new();

    fesetround(FE_UPWARD);
    coro__ctx_make(&co_uc, stk, STACK_SIZE, report_round, NULL);
    fesetround(FE_TONEAREST);
    coro__ctx_swap(&main_uc, &co_uc, 0);
    ck_assert_int_eq(first_round, FE_UPWARD);
    ck_assert_int_eq(fegetround(), FE_TONEAREST);
    stack_delete(stk);
}
END_TEST

static Suite *ctx_suite(void)
{
    Suite *s = suite_create("ctx");
    TCase *tc = tcase_create("switch");

    tcase_add_test(tc, swap_passes_its_value);
    tcase_add_test(tc, swap_round_trips);
    tcase_add_test(tc, swap_ring);
    tcase_add_test(tc, make_again_restarts);
    tcase_add_test(tc, runs_on_given_stack);
    tcase_add_test(tc, entry_stack_aligned);
    suite_add_tcase(s, tc);

    tc = tcase_create("registers");
#if defined(__x86_64__)
    tcase_add_test(tc, callee_saved_registers_survive);
    tcase_add_test(tc, mxcsr_and_x87_cw_per_context);
#endif
#if defined(__x86_64__) && defined(CORO__CTX_ASM)
    tcase_add_test(tc, mxcsr_flags_follow_the_way);
    tcase_add_test(tc, mxcsr_way_from_vendor);
#endif
    tcase_add_test(tc, live_values_survive);
    tcase_add_test(tc, fp_control_per_context);
    tcase_add_test(tc, make_copies_fp_control);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ctx_suite());

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

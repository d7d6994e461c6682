/* Which of its two ways the x86_64 switch keeps MXCSR (see x86_64.S):
 * whole, per context, on the processors where writing it costs the same
 * whatever changes; otherwise control bits per context and exception
 * flags per thread.  Decided once, from the CPU, before any constructor
 * of a program that links libcoro statically (priority 101, the first a
 * program may use), so that its coroutines switch one way throughout. */
#include "../ctx.h"

#include <cpuid.h>

unsigned char coro__ctx_mxcsr_whole;

/* The vendor string of cpuid leaf 0, in ebx, edx, ecx order. */
static int vendor_is(unsigned b, unsigned c, unsigned d, const char id[13])
{
    unsigned w[3];

    __builtin_memcpy(w, id, sizeof w);
    return b == w[0] && d == w[1] && c == w[2];
}

__attribute__((constructor(101))) static void pick_mxcsr_way(void)
{
    unsigned a, b, c, d;

    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    int amd = vendor_is(b, c, d, "AuthenticAMD") || vendor_is(b, c, d, "HygonGenuine");
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d))
        return;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf)
        family += (a >> 20) & 0xff;
    /* Measured on an AMD EPYC (Zen 4, family 0x19): an ldmxcsr that
     * changes the flags costs no more than one that changes nothing.
     * Assumed for the whole Zen line (0x17 on, Hygon's 0x18 included),
     * not measured on the cores before it. */
    coro__ctx_mxcsr_whole = family >= 0x17;
}

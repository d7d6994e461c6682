/* Which of its two ways the x86_64 switch keeps MXCSR (see x86_64.S):
 * whole, per context, on the processors where writing it costs the same
 * whatever changes; otherwise control bits per context and exception
 * flags per thread.  Decided once, before main, from the CPU vendor. */
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

__attribute__((constructor)) static void pick_mxcsr_way(void)
{
    unsigned a, b, c, d;

    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    /* Measured on an AMD EPYC (Zen 4): an ldmxcsr that changes the flags
     * costs no more than one that changes nothing.  Hygon's cores are
     * AMD's. */
    coro__ctx_mxcsr_whole = vendor_is(b, c, d, "AuthenticAMD") || vendor_is(b, c, d, "HygonGenuine");
}

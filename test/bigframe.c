/* A function with a 16 KiB frame, compiled without
 * -fstack-clash-protection (see test/meson.build): it moves the stack
 * pointer by the whole frame at once and writes the far end first, the
 * way code built without that protection jumps over a narrow guard. */
#include "bigframe.h"

volatile int bigframe_depth_max = -1; /* never reached; keeps gcc from
                                       * calling the recursion endless */

__attribute__((noinline)) int bigframe_recurse(int depth)
{
    volatile char buf[16384];

    buf[0] = (char)depth; /* the lowest address: the far end of the frame */
    buf[sizeof buf - 1] = (char)depth;
    if (depth == bigframe_depth_max)
        return 0;
    return bigframe_recurse(depth + 1) + buf[0];
}

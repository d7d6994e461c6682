/* cxx: C++ exception state per coroutine (see cxx.h). */
#include "cxx.h"

#include <stddef.h>

/* Defined by the C++ runtime when the program has one (libstdc++, or
 * libc++abi); a weak reference is NULL otherwise, and a static link does
 * not pull the runtime in for it. */
extern struct coro__eh *__cxa_get_globals(void) __attribute__((weak));

struct coro__eh *coro__eh_globals(void)
{
    return __cxa_get_globals ? __cxa_get_globals() : NULL;
}

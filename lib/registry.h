/* registry: the live coroutines, as the debug layer and debuggers see
 * them.  The registry costs nothing to keep: it is the stack layer's slab
 * list, whose descriptors point at the coroutine living on each stack (see
 * coroutine.h).  This layer only publishes where it is and how it is laid
 * out (coro_debug_root in include/coro.h), and walks it.  Private: not
 * installed. */
#ifndef CORO_REGISTRY_H
#define CORO_REGISTRY_H

#include "coro.h"

/* Calls fn on every live coroutine (created and not yet destroyed), in no
 * particular order.  Takes the stack pools' locks: not for signal
 * handlers. */
void coro__registry_foreach(void (*fn)(coro_t *co, void *arg), void *arg);

#endif

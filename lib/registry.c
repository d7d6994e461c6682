/* registry: the debuggers' root and the walk of live coroutines (see
 * registry.h and struct coro_debug_root in include/coro.h). */
#define _GNU_SOURCE
#include "registry.h"
#include "coroutine.h"

#include <stddef.h>
#include <ucontext.h>

#define OFF(type, field) ((uint32_t)offsetof(type, field))

const struct coro_debug_root coro_debug_root = {
    .magic = CORO_DEBUG_MAGIC,
    .version = CORO_DEBUG_VERSION,
    .size = sizeof(struct coro_debug_root),
    .ptr_size = sizeof(void *),
    .pools = coro__pools,
    .npools = &coro__npools,
    .guard_size = CORO__GUARD_SIZE,
    .desc_reserve = CORO__STACK_DESC_RESERVE,
    .pool_size = sizeof(struct coro__pool),
    .pool_usable = OFF(struct coro__pool, usable),
    .pool_stride = OFF(struct coro__pool, stride),
    .pool_slabs = OFF(struct coro__pool, slabs),
    .slab_next = OFF(struct coro__slab, next),
    .slab_base = OFF(struct coro__slab, base),
    .slab_carved = OFF(struct coro__slab, carved),
    .stack_lo = OFF(coro__stack_t, lo),
    .stack_user = OFF(coro__stack_t, user),
    .coro_id = OFF(struct coro, id),
    .coro_name = OFF(struct coro, name),
    .coro_name_size = sizeof(((struct coro *)0)->name),
    .coro_state = OFF(struct coro, state),
    .coro_fn = OFF(struct coro, fn),
    .coro_ctx = OFF(struct coro, ctx),
    .ctx_mcontext = OFF(ucontext_t, uc_mcontext),
};

/* The fields a debugger reads have the widths the root documents. */
_Static_assert(sizeof(((struct coro *)0)->id) == 8, "coro id is a uint64_t");
_Static_assert(sizeof(((struct coro *)0)->state) == sizeof(int), "state is an int");
_Static_assert(sizeof(size_t) == sizeof(void *), "size_t fields are ptr_size bytes");

struct walk {
    void (*fn)(coro_t *co, void *arg);
    void *arg;
};

static void visit(coro__stack_t *st, void *arg)
{
    struct walk *w = arg;

    if (st->user)
        w->fn(st->user, w->arg);
}

void coro__registry_foreach(void (*fn)(coro_t *co, void *arg), void *arg)
{
    struct walk w = {fn, arg};

    coro__stack_foreach(visit, &w);
}

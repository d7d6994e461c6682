/* stack: guarded stack memory, carved from large slabs and cached per
 * thread for reuse.
 *
 * A stack is [lo - guard, lo) guard, [lo, top) usable, and the descriptor
 * at top, the very end of the region.  The coro layer puts its coroutine
 * struct just below the descriptor, so a coroutine that has not gone deep
 * touches a single page. */
#ifndef CORO_STACK_H
#define CORO_STACK_H

#include <stddef.h>
#include <stdint.h>

/* Width of the guard below each stack.  A guard made with
 * MADV_GUARD_INSTALL costs neither memory nor a mapping, so it is wide:
 * code built without -fstack-clash-protection may move the stack pointer
 * by a whole large frame before touching it, and 64 KiB catches any frame
 * up to that size.  The mprotect fallback uses the same width (address
 * space only). */
#define CORO__GUARD_SIZE ((size_t)65536)

/* How a stack is protected. */
enum coro__guard {
    CORO__GUARD_MADVISE = 1,  /* MADV_GUARD_INSTALL: faults, no mapping */
    CORO__GUARD_MPROTECT,     /* PROT_NONE page range: faults, splits the mapping */
    CORO__GUARD_CANARY        /* canary words at lo, checked on every switch */
};

struct coro__pool;

typedef struct coro__stack {
    struct coro__stack *next;  /* free-list link while cached; owner: the cache */
    struct coro__pool *pool;   /* the size class this stack belongs to */
    char *lo;                  /* lowest usable byte, just above the guard */
    int guard;                 /* enum coro__guard */
    void *user;                /* the live coroutine on it, NULL while cached;
                                * owner: the coro layer (read by the registry) */
} coro__stack_t;

/* Bytes at the end of a stack region kept for its descriptor: the
 * descriptor of the stack at lo is at lo + pool usable - this. */
#define CORO__STACK_DESC_RESERVE ((sizeof(coro__stack_t) + 63) / 64 * 64)

/* A slab: per_slab stacks side by side, each [guard | usable].  Slabs are
 * never unmapped, and their list only grows (published with release
 * stores), so a signal handler or a debugger can walk it without locks. */
struct coro__slab {
    struct coro__slab *next;
    char *base;                /* first byte of the mapping */
    size_t carved;             /* stacks handed out from it so far */
    int guarded;               /* every guard installed when it was mapped */
    size_t populated;          /* stacks whose top page is already faulted in */
};

/* A size class: every stack in it has the same usable size. */
struct coro__pool {
    size_t usable;             /* bytes from lo to the end of the region */
    size_t stride;             /* guard + usable */
    size_t per_slab;
    struct coro__slab *slabs;  /* newest first */
    void *lock;                /* pthread_mutex_t *; protects cold and carving */
    coro__stack_t *cold;       /* stacks given back by threads, memory released */
};

/* Every pool: the root the registry walks (read-only outside stack.c). */
extern struct coro__pool coro__pools[];
extern int coro__npools;

/* Returns a stack with at least size usable bytes below its descriptor
 * (the descriptor is the returned pointer; usable memory is [lo, st)).
 * 0, or ENOMEM when no memory can be had (nothing is left mapped). */
int coro__stack_alloc(size_t size, coro__stack_t **out);

/* Returns st to this thread's cache; memory above the cache's watermark
 * goes back to the kernel in bulk. */
void coro__stack_free(coro__stack_t *st);

/* 0 when st's canary is intact (always 0 for real guards). */
static inline int coro__stack_canary_broken(const coro__stack_t *st)
{
    return st->guard == CORO__GUARD_CANARY &&
           *(const uint64_t *)st->lo != 0xC0C0DEADBEEFC0C0ull;
}

/* Calls fn on every stack ever carved, live or cached (user says which).
 * Takes each pool's lock while walking it: not for signal handlers. */
void coro__stack_foreach(void (*fn)(coro__stack_t *st, void *arg), void *arg);

/* The stack whose guard contains addr, or NULL.  Lock-free and
 * async-signal-safe: for the overflow handler. */
coro__stack_t *coro__stack_find_guard(const void *addr);

/* The descriptor of the stack containing or guarding addr, or NULL. */
coro__stack_t *coro__stack_find(const void *addr);

/* For tests: forget what was learnt about the kernel (guard support, the
 * mapping budget), so the fallbacks can be exercised in a forked child. */
void coro__stack_reset_probe(long map_budget);

#endif

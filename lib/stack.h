/* stack: guarded stack memory in size classes, carved from large slabs,
 * cached per thread for reuse, given back to the kernel when cold.
 *
 * A stack is [lo - guard, lo) guard and [lo, hi) usable: plain memory.
 * Its descriptor (coro__stack_t) is not on it but in an array beside its
 * slab's header, and the coroutine living on it is in the coro layer's
 * descriptor table: nothing another flow needs sits at the top of a stack,
 * right under the next stack's guard, where an oversized frame lands. */
#ifndef CORO_STACK_H
#define CORO_STACK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Default width of the guard below each stack (coro_attr_set_guard_size
 * changes it per coroutine).  A guard made with MADV_GUARD_INSTALL costs
 * neither memory nor a mapping, so it is wide: code built without
 * -fstack-clash-protection may move the stack pointer by a whole large
 * frame before touching it, and 64 KiB catches any frame up to that size.
 * The mprotect fallback uses the same width (address space only). */
#define CORO__GUARD_SIZE ((size_t)65536)

/* How a stack is protected. */
enum coro__guard {
    CORO__GUARD_MADVISE = 1,  /* MADV_GUARD_INSTALL: faults, no mapping */
    CORO__GUARD_MPROTECT,     /* PROT_NONE page range: faults, splits the mapping */
    CORO__GUARD_CANARY        /* canary words at lo, checked on every switch */
};

struct coro__pool;
struct coro__slab;

typedef struct coro__stack {
    struct coro__stack *next;  /* free-list link while cached; owner: the cache */
    struct coro__pool *pool;   /* the size class this stack belongs to */
    struct coro__slab *slab;
    char *lo;                  /* lowest usable byte, just above the guard */
    char *hi;                  /* one past the highest usable byte */
    int guard;                 /* enum coro__guard */
    void *user;                /* the live coroutine on it, NULL while cached;
                                * owner: the coro layer */
} coro__stack_t;

/* A slab: per_slab stacks side by side, each [guard | usable].  Headers
 * (and their descriptor arrays) are never freed and their list only grows
 * (published with release stores), so a signal handler or a debugger can
 * walk it without locks; a slab whose stacks all came back is unmapped
 * (base goes null first) and its header reused for a later mapping. */
struct coro__slab {
    struct coro__slab *next;   /* every slab header of the pool, newest first */
    char *base;                /* first byte of the mapping; NULL while unmapped */
    size_t carved;             /* stacks handed out from it at least once */
    coro__stack_t *desc;       /* per_slab descriptors */
    /* Private to stack.c, under the pool's lock. */
    coro__stack_t *free;       /* stacks given back, memory released */
    size_t out;                /* stacks out of it (live, or in a thread cache) */
    size_t populated;          /* stacks whose top page is already faulted in */
    long mprotects;            /* guards made with mprotect (two mappings each) */
    int guarded;               /* every guard installed when it was mapped */
    int on_partial;
    struct coro__slab *pnext, *pprev; /* slabs with a stack to give */
    struct coro__slab *spare;  /* unmapped headers, for reuse */
};

/* A size class and guard width: every stack in it has the same usable
 * size and guard. */
struct coro__pool {
    struct coro__pool *next;   /* every pool, newest first; only grows */
    size_t usable;             /* bytes from lo to hi */
    size_t guard;              /* bytes of guard below lo */
    size_t stride;             /* guard + usable */
    size_t per_slab;
    struct coro__slab *slabs;  /* newest first */
    /* Private to stack.c. */
    struct coro__slab *partial;
    struct coro__slab *spare;
    size_t mapped;             /* slabs mapped now */
    uint32_t cache_max;        /* stacks of this pool a thread cache keeps */
    pthread_mutex_t lock;      /* everything above but usable, guard, stride */
};

/* Every pool, newest first (read-only outside stack.c). */
extern struct coro__pool *coro__pools;

/* Stacks of one pool a thread's cache keeps at most (fewer for big
 * stacks, lib/stack.c). */
#define CORO__STACK_CACHE_MAX 1024u

/* A thread's cache of stacks, as they are (not given back): a few ways,
 * each for one pool, each bounded (see stack.c).  Zero-initialised. */
#define CORO__STACK_WAYS 8
struct coro__stack_cache {
    struct coro__stack_way {
        coro__stack_t *head;
        size_t usable;          /* the pool's, to match without a load */
        size_t guard;
        struct coro__pool *pool;
        uint32_t count;
    } way[CORO__STACK_WAYS];
    size_t last_size, last_guard;   /* the last request that hit way[last] */
    int last;
    size_t shape[4];                /* coro__stack_shape's last request (size,
                                     * guard) and answer (usable, guard) */
};

/* The usable size of the class a request of size bytes falls in (at least
 * size; whole pages; few classes: quarter steps between powers of two). */
size_t coro__stack_class(size_t size);

/* The guard width actually used for a request of guard bytes (0: the
 * default): whole pages. */
size_t coro__stack_guard(size_t guard);

/* Both of the above for a request, from the cache when it is the request
 * that last hit it (the class costs a few dozen instructions, and a lazy
 * spawn asks for it each time). */
static inline void coro__stack_shape(struct coro__stack_cache *c, size_t size, size_t guard,
                                     size_t *usable, size_t *g)
{
    if (!c->shape[2] || size != c->shape[0] || guard != c->shape[1]) {
        c->shape[0] = size;
        c->shape[1] = guard;
        c->shape[2] = coro__stack_class(size);
        c->shape[3] = coro__stack_guard(guard);
    }
    *usable = c->shape[2];
    *g = c->shape[3];
}

/* Returns a stack with at least size usable bytes and a guard of
 * coro__stack_guard(guard) bytes, from cache c (may be NULL) or the pool.
 * 0, or ENOMEM when no memory can be had (nothing is left mapped).  Leaves
 * errno as it was. */
int coro__stack_alloc(struct coro__stack_cache *c, size_t size, size_t guard,
                      coro__stack_t **out);

/* Returns st to cache c (may be NULL: then straight to its pool, memory
 * released); what the cache cannot hold goes back to the pool in bulk,
 * memory released.  Leaves errno as it was. */
void coro__stack_free(struct coro__stack_cache *c, coro__stack_t *st);

/* The fast paths of the two above, inline: the request the cache served
 * last (or exactly its class: a lazy spawn's first run asks for its
 * own), and a free to the way it came from. */
static inline int coro__stack_get(struct coro__stack_cache *c, size_t size, size_t guard,
                                  coro__stack_t **out)
{
    struct coro__stack_way *w = &c->way[c->last];
    coro__stack_t *st = w->head;

    if (__builtin_expect(((size == c->last_size && guard == c->last_guard) ||
                          (size == w->usable && guard == w->guard)) && st != NULL, 1)) {
        w->head = st->next;
        w->count--;
        *out = st;
        return 0;
    }
    return coro__stack_alloc(c, size, guard, out);
}

static inline void coro__stack_put(struct coro__stack_cache *c, coro__stack_t *st)
{
    if (c) {
        struct coro__stack_way *w = &c->way[c->last];
        if (__builtin_expect(w->pool == st->pool && w->count < st->pool->cache_max, 1)) {
            st->user = NULL;
            st->next = w->head;
            w->head = st;
            w->count++;
            return;
        }
    }
    coro__stack_free(c, st);
}

/* Gives every stack of c back to its pool (thread exit). */
void coro__stack_cache_flush(struct coro__stack_cache *c);

/* 0 when st's canary is intact (always 0 for real guards). */
static inline int coro__stack_canary_broken(const coro__stack_t *st)
{
    return st->guard == CORO__GUARD_CANARY &&
           *(const uint64_t *)st->lo != 0xC0C0DEADBEEFC0C0ull;
}

/* Calls fn on every stack carved in a mapped slab, live or cached (user
 * says which).  Takes each pool's lock while walking it: not for signal
 * handlers. */
void coro__stack_foreach(void (*fn)(coro__stack_t *st, void *arg), void *arg);

/* The stack whose guard contains addr, or NULL.  Lock-free and
 * async-signal-safe: for the overflow handler. */
coro__stack_t *coro__stack_find_guard(const void *addr);

/* The descriptor of the stack containing or guarding addr, or NULL.
 * Lock-free and async-signal-safe. */
coro__stack_t *coro__stack_find(const void *addr);

/* For tests: forget what was learnt about the kernel (guard support, the
 * mapping budget), so the fallbacks can be exercised in a forked child. */
void coro__stack_reset_probe(long map_budget);

/* For tests: slabs mapped now, over every pool. */
size_t coro__stack_slabs_mapped(void);

#endif

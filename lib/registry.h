/* registry: the coroutine descriptor table, which is also the registry
 * of live coroutines as the debug layer and debuggers see it.
 *
 * Descriptors (struct coro, lib/coroutine.h) live in chunks mapped with
 * mmap, linked newest first and published with release stores, never
 * unmapped: a debugger or a signal handler walks them without locks
 * (coro_debug_root in include/coro.h says how).  Free descriptors are kept
 * per thread (a bounded cache) and per chunk; a chunk whose descriptors
 * are all free gives its memory back (MADV_DONTNEED: it reads as zeros,
 * i.e. free).  A descriptor's seq is its sequence lock: create and destroy
 * each raise it twice, so it is odd while they write and seq % 4 == 2
 * while the coroutine is live.  Private: not installed. */
#ifndef CORO_REGISTRY_H
#define CORO_REGISTRY_H

#include "coro.h"

#include <stdint.h>

struct coro__desc_cache;

/* A chunk of descriptors.  The header is in the chunk's first page, the
 * descriptors from CORO__CHUNK_FIRST on. */
struct coro__chunk {
    struct coro__chunk *next;  /* older chunk; the list only grows */
    uint32_t count;            /* descriptors in the chunk */
    /* Private to registry.c, under the table's lock. */
    uint32_t carved;           /* descriptors handed out at least once since
                                * the chunk was (re)initialised */
    uint32_t out;              /* descriptors out (live or in a thread cache) */
    int on_partial;
    struct coro *free;
    struct coro__chunk *pnext, *pprev;
};

/* The newest chunk (the debuggers' root points here). */
extern struct coro__chunk *coro__chunks;

/* A free descriptor, from cache c (may be NULL) or the table; NULL when
 * no memory can be had.  Its seq is even (free); the other fields hold
 * garbage.  Leaves errno alone. */
struct coro *coro__desc_get(struct coro__desc_cache *c);

/* Gives co (free: its seq % 4 == 0) back to cache c (may be NULL: then
 * to the table).  Leaves errno alone. */
void coro__desc_put(struct coro__desc_cache *c, struct coro *co);

/* Gives every descriptor of c back to the table (thread exit). */

void coro__desc_flush(struct coro__desc_cache *c);

/* What coro__registry_foreach shows of a live coroutine: co, a
 * consistent copy of its descriptor taken under its sequence lock; real,
 * its address (to compare with, not to read); [lo, hi) its stack (null
 * before it has one). */
struct coro__view {
    const coro_t *co;
    const coro_t *real;
    const char *lo, *hi;
};

/* Calls fn on every live coroutine (created and not yet destroyed), in no
 * particular order.  Safe against creates and destroys on other threads;
 * takes no lock (but fn may): not for signal handlers. */
void coro__registry_foreach(void (*fn)(const struct coro__view *v, void *arg), void *arg);

/* For tests: chunks whose memory is in use now (not given back). */
size_t coro__chunks_in_use(void);

#endif

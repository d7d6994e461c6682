/* stack: size classes, slabs, guards and the per-thread cache (see
 * stack.h). */
#define _GNU_SOURCE
#include "stack.h"
#include "annotate.h"
#include "registry.h"
#include "sys.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#define CANARY 0xC0C0DEADBEEFC0C0ull
#define SLAB_BYTES ((size_t)64 << 20)   /* address space per slab */
/* A thread cache keeps up to CACHE_MAX stacks of a pool as they are, and
 * no more than CACHE_BYTES of their usable address space: 1024 stacks of
 * the default 256 KiB, none of a stack over 256 MiB (given back at once).
 * A burst beyond that goes back to the pool half a cache at a time. */
#define CACHE_MAX CORO__STACK_CACHE_MAX
#define CACHE_BYTES ((size_t)256 << 20)
#define RELEASE_BATCH 64                /* ranges per process_madvise call */

struct coro__pool *coro__pools;
/* Keeps lib/registry.c, the debuggers' root, in every program linked
 * with the static library. */
static const void *const keep_registry __attribute__((used)) = &coro_debug_root;
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static size_t page_size;

/* What the kernel offers, learnt on first use. */
enum { GUARD_TRY_MADVISE, GUARD_TRY_MPROTECT, GUARD_CANARY_ONLY };
static atomic_int guard_mode;
static atomic_long maps_left = -1;   /* mprotect guards cost two mappings */
static atomic_flag warned_mprotect = ATOMIC_FLAG_INIT;
static atomic_flag warned_canary = ATOMIC_FLAG_INIT;
static atomic_flag warned_nomap = ATOMIC_FLAG_INIT;

/* to is a power of two (a page size, a class step). */
static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) & ~(to - 1);
}

static size_t page(void)
{
    size_t n = __atomic_load_n(&page_size, __ATOMIC_RELAXED);

    if (__builtin_expect(!n, 0)) {
        n = (size_t)sysconf(_SC_PAGESIZE);
        __atomic_store_n(&page_size, n, __ATOMIC_RELAXED);
    }
    return n;
}

/* Says msg on stderr once, only when CORO_DEBUG asks for it. */
static void debug_note(atomic_flag *once, const char *msg)
{
    if (coro__debug_env() && !atomic_flag_test_and_set(once))
        fputs(msg, stderr);
}

size_t coro__stack_class(size_t size)
{
    size_t n = round_up(size ? size : 1, page());

    if (n <= 4 * page())
        return n;
    /* Quarter steps between powers of two: at most 25% more than asked,
     * and four classes per doubling (about 60 between 16 KiB and 1 GiB). */
    size_t b = (size_t)1 << (63 - __builtin_clzll((unsigned long long)(n - 1)));
    return round_up(n, b / 4 > page() ? b / 4 : page());
}

size_t coro__stack_guard(size_t guard)
{
    return guard ? round_up(guard, page()) : CORO__GUARD_SIZE;
}

static long map_budget(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");

    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    return max / 2; /* leave half for the rest of the program */
}

void coro__stack_reset_probe(long budget)
{
    atomic_store(&guard_mode, GUARD_TRY_MADVISE);
    atomic_store(&maps_left, budget);
}

/* fork(): no pool lock may be held by another thread at the moment of the
 * fork, or the child's first create waits for ever. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&pools_lock);
    for (struct coro__pool *p = coro__pools; p; p = p->next)
        pthread_mutex_lock(&p->lock);
}

static void fork_parent(void)
{
    for (struct coro__pool *p = coro__pools; p; p = p->next)
        pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&pools_lock);
}

static void fork_child(void)
{
    for (struct coro__pool *p = coro__pools; p; p = p->next)
        pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&pools_lock, NULL);
}

static void fork_init(void)
{
    /* ENOMEM only; then a fork while another thread allocates may hang
     * the child, as before this was handled. */
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void coro__stack_atfork(void)
{
    pthread_once(&fork_once, fork_init);
}

static struct coro__pool *pool_lookup(size_t usable, size_t guard)
{
    for (struct coro__pool *p = __atomic_load_n(&coro__pools, __ATOMIC_ACQUIRE); p;
         p = p->next)
        if (p->usable == usable && p->guard == guard)
            return p;
    return NULL;
}

/* The pool of (usable, guard), made if needed; NULL when out of memory. */
static struct coro__pool *pool_for(size_t usable, size_t guard)
{
    struct coro__pool *p = pool_lookup(usable, guard);

    if (p)
        return p;
    coro__stack_atfork();
    pthread_mutex_lock(&pools_lock);
    p = pool_lookup(usable, guard);
    if (!p && (p = coro__calloc(1, sizeof *p))) {
        p->usable = usable;
        p->guard = guard;
        p->stride = guard + usable;
        p->per_slab = p->stride < SLAB_BYTES ? SLAB_BYTES / p->stride : 1;
        size_t max = CACHE_BYTES / usable;
        p->cache_max = max < CACHE_MAX ? (uint32_t)max : CACHE_MAX;
        pthread_mutex_init(&p->lock, NULL);
        p->next = coro__pools;
        __atomic_store_n(&coro__pools, p, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&pools_lock);
    return p;
}

/* Protects the guard range under lo; returns the guard kind or 0 with
 * errno set. */
static int install_guard(struct coro__pool *p, struct coro__slab *slab, char *lo)
{
    char *g = lo - p->guard;

    if (atomic_load(&guard_mode) == GUARD_TRY_MADVISE) {
        if (coro__sys_madvise(g, p->guard, MADV_GUARD_INSTALL) == 0)
            return CORO__GUARD_MADVISE;
        if (errno != EINVAL)
            return 0;
        atomic_store(&guard_mode, GUARD_TRY_MPROTECT);
        debug_note(&warned_mprotect,
                   "coro: no MADV_GUARD_INSTALL (Linux < 6.13): guard pages "
                   "use mprotect, two mappings per stack\n");
    }
    if (atomic_load(&guard_mode) == GUARD_TRY_MPROTECT) {
        long left = atomic_load(&maps_left);
        if (left < 0) {
            long b = map_budget();
            atomic_compare_exchange_strong(&maps_left, &left, b);
            left = atomic_load(&maps_left);
        }
        if (left >= 2 && atomic_fetch_sub(&maps_left, 2) >= 2) {
            if (coro__sys_mprotect(g, p->guard, PROT_NONE) == 0) {
                slab->mprotects++;
                return CORO__GUARD_MPROTECT;
            }
            atomic_fetch_add(&maps_left, 2);
            if (errno != ENOMEM)
                return 0;
        }
        atomic_store(&guard_mode, GUARD_CANARY_ONLY);
        debug_note(&warned_canary,
                   "coro: mapping budget (vm.max_map_count) spent: new stacks "
                   "get canary words instead of guard pages\n");
    }
    *(uint64_t *)lo = CANARY;
    return CORO__GUARD_CANARY;
}

/* Installs every guard of a new slab with one system call per 64 stacks
 * instead of one per stack.  1 when done; 0 when the kernel cannot (then
 * each stack gets its guard when it is carved, as usual). */
static int guard_slab(struct coro__pool *p, char *base)
{
    struct iovec iov[64];

    if (atomic_load(&guard_mode) != GUARD_TRY_MADVISE)
        return 0;
    for (size_t k = 0; k < p->per_slab;) {
        size_t n = 0;
        for (; n < sizeof iov / sizeof iov[0] && k < p->per_slab; n++, k++)
            iov[n] = (struct iovec){base + k * p->stride, p->guard};
        if (coro__sys_madvise_vec(iov, n, MADV_GUARD_INSTALL) != 0)
            return 0;
    }
    return 1;
}

/* Faults in the top pages (the first frames) of the next POPULATE_BATCH
 * stacks to be carved with one system call: a burst of creations then
 * costs one call per batch instead of a page fault each.  Advice only: on
 * failure the pages fault in one by one as they are used. */
#define POPULATE_BATCH 32

static void populate_tops(struct coro__pool *p, struct coro__slab *slab)
{
    struct iovec iov[POPULATE_BATCH];
    size_t k = slab->carved, n = 0;

    for (; n < POPULATE_BATCH && k < p->per_slab; n++, k++)
        iov[n] = (struct iovec){slab->base + k * p->stride + p->stride - page(), page()};
    (void)coro__sys_madvise_vec(iov, n, MADV_POPULATE_WRITE);
    slab->populated = k;
}

static void partial_add(struct coro__pool *p, struct coro__slab *s)
{
    if (s->on_partial)
        return;
    s->on_partial = 1;
    s->pprev = NULL;
    s->pnext = p->partial;
    if (p->partial)
        p->partial->pprev = s;
    p->partial = s;
}

static void partial_del(struct coro__pool *p, struct coro__slab *s)
{
    if (!s->on_partial)
        return;
    s->on_partial = 0;
    if (s->pprev)
        s->pprev->pnext = s->pnext;
    else
        p->partial = s->pnext;
    if (s->pnext)
        s->pnext->pprev = s->pprev;
}

/* Unmaps an empty slab and keeps its header for a later one.  Readers
 * without the lock see base go null before the memory goes. */
static void slab_unmap(struct coro__pool *p, struct coro__slab *s)
{
    char *base = s->base;
    int never_carved = s->carved == 0;

    partial_del(p, s);
    __atomic_store_n(&s->base, NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&s->carved, 0, __ATOMIC_RELEASE);
    (void)coro__sys_munmap(base, p->per_slab * p->stride);
    /* The descriptors read as zeros (no coroutine) from now on.  Those of
     * a slab never carved from were never read by a walker (it reads a
     * descriptor only below carved): they go (a failed create leaves
     * nothing mapped). */
    size_t desc_len = round_up(p->per_slab * sizeof *s->desc, page());
    if (never_carved) {
        (void)coro__sys_munmap(s->desc, desc_len);
        s->desc = NULL;
    } else {
        (void)coro__sys_madvise(s->desc, desc_len, MADV_DONTNEED);
    }
    if (s->mprotects)
        atomic_fetch_add(&maps_left, 2 * s->mprotects);
    s->free = NULL;
    s->populated = 0;
    s->mprotects = 0;
    s->guarded = 0;
    s->spare = p->spare;
    p->spare = s;
    p->mapped--;
}

/* Maps a new slab (or remaps a spare header).  Called with p->lock held. */
static struct coro__slab *slab_map(struct coro__pool *p)
{
    struct coro__slab *s = p->spare;
    int fresh = !s;

    size_t desc_len = round_up(p->per_slab * sizeof *s->desc, page());
    int new_desc = 0;
    if (fresh && !(s = coro__calloc(1, sizeof *s)))
        return NULL;
    if (!s->desc) {
        new_desc = 1;
        /* The descriptors in memory of their own, never unmapped once a
         * stack was carved (walkers read them without locks), given back
         * with the slab. */
        void *d = coro__sys_mmap(NULL, desc_len, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
        if (d == MAP_FAILED) {
            if (fresh)
                free(s);
            return NULL;
        }
        s->desc = d;
    }
    char *m = coro__sys_mmap(NULL, p->per_slab * p->stride, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (m == MAP_FAILED) {
        if (new_desc) {
            (void)coro__sys_munmap(s->desc, desc_len);
            s->desc = NULL;
        }
        if (fresh)
            free(s);
        debug_note(&warned_nomap,
                   errno == ENOMEM
                       ? "coro: cannot map stacks: out of address space or "
                         "mappings (see vm.max_map_count, ulimit -v)\n"
                       : "coro: cannot map stacks\n");
        return NULL;
    }
    if (!fresh)
        p->spare = s->spare;
    /* Advice only: a kernel without transparent huge pages says EINVAL. */
    (void)coro__sys_madvise(m, p->per_slab * p->stride, MADV_NOHUGEPAGE);
    s->guarded = guard_slab(p, m);
    s->spare = NULL;
    s->out = 0;
    __atomic_store_n(&s->base, m, __ATOMIC_RELEASE);
    if (fresh) {
        s->next = p->slabs;
        __atomic_store_n(&p->slabs, s, __ATOMIC_RELEASE);
    }
    p->mapped++;
    partial_add(p, s);
    return s;
}

/* Takes a stack from the pool: one given back, or a new one carved from a
 * slab.  Called with p->lock held; errno may change. */
static int pool_take(struct coro__pool *p, coro__stack_t **out)
{
    struct coro__slab *slab = p->partial;

    if (!slab && !(slab = slab_map(p)))
        return ENOMEM;
    coro__stack_t *st = slab->free;
    if (st) {
        slab->free = st->next;
    } else {
        if (slab->carved >= slab->populated)
            populate_tops(p, slab);
        size_t k = slab->carved;
        char *lo = slab->base + k * p->stride + p->guard;
        int guard = slab->guarded ? CORO__GUARD_MADVISE : install_guard(p, slab, lo);
        if (!guard) {
            if (slab->out == 0 && slab->carved == 0)
                slab_unmap(p, slab);
            return ENOMEM;
        }
        st = &slab->desc[k];
        st->pool = p;
        st->slab = slab;
        st->lo = lo;
        st->hi = lo + p->usable;
        st->guard = guard;
        st->user = NULL;
        __atomic_store_n(&slab->carved, k + 1, __ATOMIC_RELEASE);
        /* valgrind knows an mprotect'd guard, not a MADV_GUARD_INSTALL one. */
        CORO__VALGRIND_STACK(lo, lo + p->usable,
                             guard == CORO__GUARD_MADVISE ? p->guard : 0);
    }
    slab->out++;
    if (!slab->free && slab->carved == p->per_slab)
        partial_del(p, slab);
    st->next = NULL;
    *out = st;
    return 0;
}

/* Gives the memory of a list of stacks of p back to the kernel, then the
 * stacks to their slabs; a slab left empty is unmapped (but the pool's
 * last one, whose memory is released anyway).  errno may change. */
static void pool_put(struct coro__pool *p, coro__stack_t *head)
{
    struct iovec iov[RELEASE_BATCH];
    coro__stack_t *from = head;
    size_t n = 0;

    for (coro__stack_t *s = head; s; s = s->next) {
        iov[n++] = (struct iovec){s->lo, p->usable};
        if (n == RELEASE_BATCH || !s->next) {
            if (coro__sys_madvise_vec(iov, n, MADV_DONTNEED) != 0)
                for (size_t i = 0; i < n; i++)
                    (void)coro__sys_madvise(iov[i].iov_base, iov[i].iov_len,
                                            MADV_DONTNEED);
            for (; from != s->next; from = from->next)
                if (from->guard == CORO__GUARD_CANARY)
                    *(uint64_t *)from->lo = CANARY; /* the page came back zeroed */
            n = 0;
        }
    }
    pthread_mutex_lock(&p->lock);
    while (head) {
        coro__stack_t *s = head;
        struct coro__slab *slab = s->slab;
        head = s->next;
        s->user = NULL;
        s->next = slab->free;
        slab->free = s;
        partial_add(p, slab);
        if (--slab->out == 0 && p->mapped > 1)
            slab_unmap(p, slab);
    }
    pthread_mutex_unlock(&p->lock);
}

static struct coro__stack_way *way_find(struct coro__stack_cache *c,
                                        const struct coro__pool *p)
{
    for (int i = 0; i < CORO__STACK_WAYS; i++)
        if (c->way[i].pool == p)
            return &c->way[i];
    return NULL;
}

/* A way for p: its own, an empty one, or the last one, emptied. */
static struct coro__stack_way *way_claim(struct coro__stack_cache *c,
                                         struct coro__pool *p)
{
    struct coro__stack_way *w = way_find(c, p);

    if (w)
        return w;
    for (int i = 0; i < CORO__STACK_WAYS; i++)
        if (!c->way[i].head) {
            w = &c->way[i];
            break;
        }
    if (!w) {
        w = &c->way[CORO__STACK_WAYS - 1];
        pool_put(w->pool, w->head);
    }
    *w = (struct coro__stack_way){.pool = p, .usable = p->usable, .guard = p->guard};
    if (w == &c->way[c->last])
        c->last_size = 0; /* the way serves another pool now */
    return w;
}

__attribute__((noinline)) int coro__stack_alloc(struct coro__stack_cache *c, size_t size, size_t guard,
                      coro__stack_t **out)
{
    if (c) {
        /* The same request as last time: no class to work out. */
        struct coro__stack_way *w = &c->way[c->last];
        if (__builtin_expect(size == c->last_size && guard == c->last_guard && w->head, 1)) {
            coro__stack_t *st = w->head;
            w->head = st->next;
            w->count--;
            *out = st;
            return 0;
        }
    }
    size_t usable = coro__stack_class(size), g = coro__stack_guard(guard);
    if (c)
        for (int i = 0; i < CORO__STACK_WAYS; i++) {
            struct coro__stack_way *w = &c->way[i];
            if (w->usable == usable && w->guard == g && w->head) {
                coro__stack_t *st = w->head;
                w->head = st->next;
                w->count--;
                c->last = i;
                c->last_size = size;
                c->last_guard = guard;
                *out = st;
                return 0;
            }
        }
    int saved = errno;
    struct coro__pool *p = pool_for(usable, g);
    int err = ENOMEM;
    if (p) {
        pthread_mutex_lock(&p->lock);
        err = pool_take(p, out);
        pthread_mutex_unlock(&p->lock);
    }
    errno = saved;
    return err;
}

__attribute__((noinline)) void coro__stack_free(struct coro__stack_cache *c, coro__stack_t *st)
{
    struct coro__pool *p = st->pool;

    st->user = NULL;
    if (c && p->cache_max) {
        struct coro__stack_way *w = way_claim(c, p);
        st->next = w->head;
        w->head = st;
        if (++w->count <= p->cache_max)
            return;
        /* Over the bound: keep the most recent half as they are and give
         * the rest back in one go. */
        coro__stack_t *keep = w->head;
        for (uint32_t i = 1; i < p->cache_max / 2; i++)
            keep = keep->next;
        st = keep->next;
        keep->next = NULL;
        w->count = p->cache_max / 2 ? p->cache_max / 2 : 1;
    } else {
        st->next = NULL;
    }
    int saved = errno;
    pool_put(p, st);
    errno = saved;
}

void coro__stack_cache_flush(struct coro__stack_cache *c)
{
    int saved = errno;

    for (int i = 0; i < CORO__STACK_WAYS; i++) {
        if (c->way[i].head)
            pool_put(c->way[i].pool, c->way[i].head);
        c->way[i] = (struct coro__stack_way){0};
    }
    errno = saved;
}

void coro__stack_foreach(void (*fn)(coro__stack_t *st, void *arg), void *arg)
{
    for (struct coro__pool *p = __atomic_load_n(&coro__pools, __ATOMIC_ACQUIRE); p;
         p = p->next) {
        pthread_mutex_lock(&p->lock);
        for (struct coro__slab *s = p->slabs; s; s = s->next)
            if (s->base)
                for (size_t k = 0; k < s->carved; k++)
                    fn(&s->desc[k], arg);
        pthread_mutex_unlock(&p->lock);
    }
}

size_t coro__stack_slabs_mapped(void)
{
    size_t n = 0;

    for (struct coro__pool *p = __atomic_load_n(&coro__pools, __ATOMIC_ACQUIRE); p;
         p = p->next) {
        pthread_mutex_lock(&p->lock);
        n += p->mapped;
        pthread_mutex_unlock(&p->lock);
    }
    return n;
}

/* The descriptor of the stack region (guard and usable) holding addr, and
 * addr's offset in it.  Lock-free: headers are never freed and only
 * published with release stores. */
static coro__stack_t *locate(const void *addr, size_t *offset,
                             const struct coro__pool **pool)
{
    const char *a = addr;

    for (struct coro__pool *p = __atomic_load_n(&coro__pools, __ATOMIC_ACQUIRE); p;
         p = p->next) {
        size_t len = p->per_slab * p->stride;
        for (struct coro__slab *s = __atomic_load_n(&p->slabs, __ATOMIC_ACQUIRE); s;
             s = s->next) {
            const char *base = __atomic_load_n(&s->base, __ATOMIC_ACQUIRE);
            if (!base || a < base || a >= base + len)
                continue;
            size_t k = (size_t)(a - base) / p->stride;
            if (k >= __atomic_load_n(&s->carved, __ATOMIC_ACQUIRE))
                return NULL;
            *offset = (size_t)(a - base) % p->stride;
            *pool = p;
            return &s->desc[k];
        }
    }
    return NULL;
}

coro__stack_t *coro__stack_find_guard(const void *addr)
{
    size_t off;
    const struct coro__pool *p;
    coro__stack_t *st = locate(addr, &off, &p);

    return st && off < p->guard ? st : NULL;
}

coro__stack_t *coro__stack_find(const void *addr)
{
    size_t off;
    const struct coro__pool *p;

    return locate(addr, &off, &p);
}

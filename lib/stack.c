/* stack: slabs, guards and the per-thread cache (see stack.h). */
#define _GNU_SOURCE
#include "stack.h"
#include "annotate.h"
#include "registry.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#define CANARY 0xC0C0DEADBEEFC0C0ull
#define SLAB_BYTES ((size_t)64 << 20)   /* address space per slab */
#define MAX_POOLS 16                    /* distinct stack sizes in use */
#define TCACHE_WAYS 4                   /* sizes cached per thread */
#define TCACHE_HOT 64                   /* stacks a thread keeps as they are */

struct coro__pool coro__pools[MAX_POOLS];
int coro__npools;
/* Keeps lib/registry.c, the debuggers' root, in every program linked
 * with the static library. */
static const void *const keep_registry __attribute__((used)) = &coro_debug_root;
static pthread_mutex_t pool_locks[MAX_POOLS];
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t page_size;

/* What the kernel offers, learnt on first use. */
enum { GUARD_TRY_MADVISE, GUARD_TRY_MPROTECT, GUARD_CANARY_ONLY };
static atomic_int guard_mode;
static atomic_long maps_left = -1;   /* mprotect guards cost two mappings */
static atomic_flag warned_mprotect = ATOMIC_FLAG_INIT;
static atomic_flag warned_canary = ATOMIC_FLAG_INIT;
static atomic_flag warned_nomap = ATOMIC_FLAG_INIT;

struct tcache_way {
    struct coro__pool *pool;
    coro__stack_t *head;
    size_t count;
};

static __thread struct tcache_way tcache[TCACHE_WAYS]
    __attribute__((tls_model("initial-exec")));
static __thread int tcache_registered __attribute__((tls_model("initial-exec")));
static pthread_key_t tcache_key;
static pthread_once_t tcache_once = PTHREAD_ONCE_INIT;

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static void debug_note(atomic_flag *once, const char *msg)
{
#ifndef NDEBUG
    if (!atomic_flag_test_and_set(once))
        fputs(msg, stderr);
#else
    (void)once, (void)msg;
#endif
}

static void pool_release(struct coro__pool *p, coro__stack_t *head)
{
    pthread_mutex_lock(p->lock);
    while (head) {
        coro__stack_t *next = head->next;
        head->next = p->cold;
        p->cold = head;
        head = next;
    }
    pthread_mutex_unlock(p->lock);
}

/* Thread exit: its cached stacks go back to their pools. */
static void tcache_flush(void *unused)
{
    (void)unused;
    for (int i = 0; i < TCACHE_WAYS; i++) {
        if (tcache[i].pool)
            pool_release(tcache[i].pool, tcache[i].head);
        tcache[i] = (struct tcache_way){0};
    }
}

static void tcache_init_once(void)
{
    pthread_key_create(&tcache_key, tcache_flush);
    page_size = (size_t)sysconf(_SC_PAGESIZE);
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

static struct coro__pool *pool_for(size_t size)
{
    size_t usable = round_up(size, page_size) + page_size;
    int n = __atomic_load_n(&coro__npools, __ATOMIC_ACQUIRE);

    for (int i = 0; i < n; i++)
        if (coro__pools[i].usable == usable)
            return &coro__pools[i];
    pthread_mutex_lock(&pools_lock);
    n = coro__npools;
    for (int i = 0; i < n; i++)
        if (coro__pools[i].usable == usable) {
            pthread_mutex_unlock(&pools_lock);
            return &coro__pools[i];
        }
    if (n == MAX_POOLS) {
        pthread_mutex_unlock(&pools_lock);
        return NULL;
    }
    struct coro__pool *p = &coro__pools[n];
    p->usable = usable;
    p->stride = CORO__GUARD_SIZE + usable;
    p->per_slab = p->stride < SLAB_BYTES ? SLAB_BYTES / p->stride : 1;
    pthread_mutex_init(&pool_locks[n], NULL);
    p->lock = &pool_locks[n];
    __atomic_store_n(&coro__npools, n + 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&pools_lock);
    return p;
}

/* Protects the guard range under lo; returns the guard kind or 0 with
 * errno set. */
static int install_guard(char *lo)
{
    char *g = lo - CORO__GUARD_SIZE;

    if (atomic_load(&guard_mode) == GUARD_TRY_MADVISE) {
        if (coro__sys_madvise(g, CORO__GUARD_SIZE, MADV_GUARD_INSTALL) == 0)
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
            if (coro__sys_mprotect(g, CORO__GUARD_SIZE, PROT_NONE) == 0)
                return CORO__GUARD_MPROTECT;
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
            iov[n] = (struct iovec){base + k * p->stride, CORO__GUARD_SIZE};
        if (coro__sys_madvise_vec(iov, n, MADV_GUARD_INSTALL) != 0)
            return 0;
    }
    return 1;
}

/* Faults in the top pages (descriptor, coroutine, first frames) of the
 * next POPULATE_BATCH stacks to be carved with one system call: a burst of
 * creations then costs one call per batch instead of a page fault each.
 * Advice only: on failure the pages fault in one by one as they are used. */
#define POPULATE_BATCH 32

static void populate_tops(struct coro__pool *p, struct coro__slab *slab)
{
    struct iovec iov[POPULATE_BATCH];
    size_t k = slab->carved, n = 0;

    for (; n < POPULATE_BATCH && k < p->per_slab; n++, k++)
        iov[n] = (struct iovec){slab->base + k * p->stride + p->stride - page_size,
                                page_size};
    (void)coro__sys_madvise_vec(iov, n, MADV_POPULATE_WRITE);
    slab->populated = k;
}

static coro__stack_t *descriptor(struct coro__pool *p, char *lo)
{
    return (coro__stack_t *)(lo + p->usable - CORO__STACK_DESC_RESERVE);
}

/* Takes a stack from the pool: a cold one, or a new one carved from the
 * slab.  Called with p->lock held. */
static int pool_take(struct coro__pool *p, coro__stack_t **out)
{
    if (p->cold) {
        *out = p->cold;
        p->cold = p->cold->next;
        return 0;
    }
    struct coro__slab *slab = p->slabs, *fresh = NULL;
    if (!slab || slab->carved == p->per_slab) {
        fresh = malloc(sizeof *fresh);
        if (!fresh)
            return ENOMEM;
        char *s = coro__sys_mmap(NULL, p->per_slab * p->stride,
                                 PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
        if (s == MAP_FAILED) {
            free(fresh);
            debug_note(&warned_nomap,
                       errno == ENOMEM
                           ? "coro: cannot map stacks: out of address space or "
                             "mappings (see vm.max_map_count, ulimit -v)\n"
                           : "coro: cannot map stacks\n");
            return ENOMEM;
        }
        /* Advice only: a kernel without transparent huge pages says EINVAL. */
        (void)coro__sys_madvise(s, p->per_slab * p->stride, MADV_NOHUGEPAGE);
        *fresh = (struct coro__slab){.next = slab, .base = s, .carved = 0};
        fresh->guarded = guard_slab(p, s);
        slab = fresh;
    }
    if (slab->carved >= slab->populated)
        populate_tops(p, slab);
    char *lo = slab->base + slab->carved * p->stride + CORO__GUARD_SIZE;
    int guard = slab->guarded ? CORO__GUARD_MADVISE : install_guard(lo);
    if (!guard) {
        if (fresh) {
            coro__sys_munmap(fresh->base, p->per_slab * p->stride);
            free(fresh);
        }
        return ENOMEM;
    }
    if (fresh)
        __atomic_store_n(&p->slabs, fresh, __ATOMIC_RELEASE);
    __atomic_store_n(&slab->carved, slab->carved + 1, __ATOMIC_RELEASE);
    coro__stack_t *st = descriptor(p, lo);
    st->pool = p;
    st->lo = lo;
    st->guard = guard;
    st->user = NULL;
    /* valgrind knows an mprotect'd guard, not a MADV_GUARD_INSTALL one. */
    CORO__VALGRIND_STACK(lo, lo + p->usable,
                         guard == CORO__GUARD_MADVISE ? CORO__GUARD_SIZE : 0);
    *out = st;
    return 0;
}

static struct tcache_way *way_for(struct coro__pool *p, int claim)
{
    struct tcache_way *empty = NULL;

    for (int i = 0; i < TCACHE_WAYS; i++) {
        if (tcache[i].pool == p)
            return &tcache[i];
        if (!empty && !tcache[i].head)
            empty = &tcache[i];
    }
    if (!claim)
        return NULL;
    if (!tcache_registered) {
        pthread_once(&tcache_once, tcache_init_once);
        pthread_setspecific(tcache_key, tcache);
        tcache_registered = 1;
    }
    if (!empty) { /* all ways busy with other sizes: evict the last */
        empty = &tcache[TCACHE_WAYS - 1];
        pool_release(empty->pool, empty->head);
    }
    *empty = (struct tcache_way){.pool = p};
    return empty;
}

int coro__stack_alloc(size_t size, coro__stack_t **out)
{
    pthread_once(&tcache_once, tcache_init_once);
    struct coro__pool *p = pool_for(size);
    if (!p)
        return ENOMEM;

    struct tcache_way *w = way_for(p, 0);
    if (w && w->head) {
        coro__stack_t *st = w->head;
        w->head = st->next;
        w->count--;
        *out = st;
        return 0;
    }
    pthread_mutex_lock(p->lock);
    int err = pool_take(p, out);
    pthread_mutex_unlock(p->lock);
    return err;
}

void coro__stack_free(coro__stack_t *st)
{
    struct coro__pool *p = st->pool;
    struct tcache_way *w = way_for(p, 1);

    st->next = w->head;
    w->head = st;
    if (++w->count <= 2 * TCACHE_HOT)
        return;
    /* Over the watermark: keep the TCACHE_HOT most recent stacks as they
     * are, give the memory of the rest back (all but the descriptor's page)
     * and park them in the pool for any thread. */
    coro__stack_t *keep = w->head;
    for (int i = 1; i < TCACHE_HOT; i++)
        keep = keep->next;
    coro__stack_t *spill = keep->next;
    keep->next = NULL;
    w->count = TCACHE_HOT;
    struct iovec iov[TCACHE_HOT + 1];
    size_t n = 0;
    for (coro__stack_t *s = spill; s; s = s->next)
        iov[n++] = (struct iovec){s->lo, p->usable - page_size};
    if (coro__sys_madvise_vec(iov, n, MADV_DONTNEED) != 0)
        for (size_t i = 0; i < n; i++)
            (void)coro__sys_madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
    for (coro__stack_t *s = spill; s; s = s->next)
        if (s->guard == CORO__GUARD_CANARY)
            *(uint64_t *)s->lo = CANARY; /* the page came back zeroed */
    pool_release(p, spill);
}

void coro__stack_foreach(void (*fn)(coro__stack_t *st, void *arg), void *arg)
{
    int n = __atomic_load_n(&coro__npools, __ATOMIC_ACQUIRE);

    for (int i = 0; i < n; i++) {
        struct coro__pool *p = &coro__pools[i];
        pthread_mutex_lock(p->lock);
        for (struct coro__slab *s = p->slabs; s; s = s->next)
            for (size_t k = 0; k < s->carved; k++)
                fn(descriptor(p, s->base + k * p->stride + CORO__GUARD_SIZE), arg);
        pthread_mutex_unlock(p->lock);
    }
}

/* The pool and slab holding addr; sets *index and *offset within the
 * stride.  Lock-free. */
static coro__stack_t *locate(const void *addr, size_t *offset)
{
    const char *a = addr;
    int n = __atomic_load_n(&coro__npools, __ATOMIC_ACQUIRE);

    for (int i = 0; i < n; i++) {
        struct coro__pool *p = &coro__pools[i];
        size_t len = p->per_slab * p->stride;
        for (struct coro__slab *s = __atomic_load_n(&p->slabs, __ATOMIC_ACQUIRE); s;
             s = s->next) {
            if (a < s->base || a >= s->base + len)
                continue;
            size_t k = (size_t)(a - s->base) / p->stride;
            if (k >= __atomic_load_n(&s->carved, __ATOMIC_ACQUIRE))
                return NULL;
            *offset = (size_t)(a - s->base) % p->stride;
            return descriptor(p, s->base + k * p->stride + CORO__GUARD_SIZE);
        }
    }
    return NULL;
}

coro__stack_t *coro__stack_find_guard(const void *addr)
{
    size_t off;
    coro__stack_t *st = locate(addr, &off);

    return st && off < CORO__GUARD_SIZE ? st : NULL;
}

coro__stack_t *coro__stack_find(const void *addr)
{
    size_t off;

    return locate(addr, &off);
}

/* registry: the descriptor table, the debuggers' root and the walk of
 * live coroutines (see registry.h and struct coro_debug_root in
 * include/coro.h). */
#define _GNU_SOURCE
#include "registry.h"
#include "coroutine.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define OFF(type, field) ((uint32_t)offsetof(type, field))

#define CHUNK_BYTES ((size_t)1 << 20)
#define CHUNK_FIRST ((size_t)4096) /* header page; descriptors after it */
/* A thread keeps up to CACHE_MAX free descriptors, and gives half back
 * when it has more. */
#define CACHE_MAX 1024u

struct coro__chunk *coro__chunks;

const struct coro_debug_root coro_debug_root = {
    .magic = CORO_DEBUG_MAGIC,
    .version = CORO_DEBUG_VERSION,
    .size = sizeof(struct coro_debug_root),
    .ptr_size = sizeof(void *),
    .chunks = (const void *)&coro__chunks,
    .reserved_ = NULL,
    .chunk_next = OFF(struct coro__chunk, next),
    .chunk_count = OFF(struct coro__chunk, count),
    .chunk_first = CHUNK_FIRST,
    .coro_size = sizeof(struct coro),
    .coro_seq = OFF(struct coro, seq),
    .coro_id = OFF(struct coro, id),
    .coro_name = OFF(struct coro, name),
    .coro_name_size = sizeof(((struct coro *)0)->name),
    .coro_state = OFF(struct coro, state),
    .coro_fn = OFF(struct coro, fn),
    .coro_ctx = OFF(struct coro, ctx),
    .ctx_mcontext = OFF(ucontext_t, uc_mcontext),
    .coro_stack = OFF(struct coro, stack),
    .coro_guard = OFF(struct coro, guard_size),
    .stack_lo = OFF(coro__stack_t, lo),
    .stack_hi = OFF(coro__stack_t, hi),
};

/* The fields a debugger reads have the widths the root documents. */
_Static_assert(sizeof(((struct coro *)0)->id) == 8, "coro id is a uint64_t");
_Static_assert(sizeof(((struct coro *)0)->state) == sizeof(int), "state is an int");
_Static_assert(sizeof(((struct coro *)0)->seq) == 4, "seq is a uint32_t");
_Static_assert(sizeof(size_t) == sizeof(void *), "size_t fields are ptr_size bytes");
_Static_assert(sizeof(struct coro__chunk) <= CHUNK_FIRST, "chunk header fits its page");
_Static_assert(sizeof(struct coro) % 8 == 0, "descriptors are copied in words");

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct coro__chunk *partial; /* chunks with a descriptor to give */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
    pthread_mutex_lock(&table_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&table_lock);
}

static void fork_child(void)
{
    pthread_mutex_init(&table_lock, NULL);
}

static void fork_init(void)
{
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void coro__registry_atfork(void)
{
    pthread_once(&fork_once, fork_init);
}

static struct coro *desc_at(struct coro__chunk *k, uint32_t i)
{
    return (struct coro *)((char *)k + CHUNK_FIRST) + i;
}

static void partial_add(struct coro__chunk *k)
{
    if (k->on_partial)
        return;
    k->on_partial = 1;
    k->pprev = NULL;
    k->pnext = partial;
    if (partial)
        partial->pprev = k;
    partial = k;
}

static void partial_del(struct coro__chunk *k)
{
    if (!k->on_partial)
        return;
    k->on_partial = 0;
    if (k->pprev)
        k->pprev->pnext = k->pnext;
    else
        partial = k->pnext;
    if (k->pnext)
        k->pnext->pprev = k->pprev;
}

static struct coro__chunk *chunk_of(const struct coro *co)
{
    return (struct coro__chunk *)((uintptr_t)co & ~(uintptr_t)(CHUNK_BYTES - 1));
}

/* A new chunk, aligned to its size so that a descriptor finds its chunk
 * by masking its address.  Called with the table lock held. */
static struct coro__chunk *chunk_new(void)
{
    char *m = coro__sys_mmap(NULL, 2 * CHUNK_BYTES, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    if (m == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)m + CHUNK_BYTES - 1) & ~(uintptr_t)(CHUNK_BYTES - 1));
    if (a > m)
        (void)coro__sys_munmap(m, (size_t)(a - m));
    if (a + CHUNK_BYTES < m + 2 * CHUNK_BYTES)
        (void)coro__sys_munmap(a + CHUNK_BYTES, (size_t)(m + 2 * CHUNK_BYTES - a - CHUNK_BYTES));
    struct coro__chunk *k = (struct coro__chunk *)a;
    k->count = (uint32_t)((CHUNK_BYTES - CHUNK_FIRST) / sizeof(struct coro));
    k->next = coro__chunks;
    __atomic_store_n(&coro__chunks, k, __ATOMIC_RELEASE);
    return k;
}

/* Faults in the pages of descriptors [i, i + n) of k, never used yet, in
 * one call: they are about to be carved (each one written), and a burst
 * of new coroutines otherwise takes a page fault every six descriptors.
 * Best effort: before Linux 5.14 the faults come one by one as before. */
static void populate(struct coro__chunk *k, uint32_t i, uint32_t n)
{
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)desc_at(k, i) & ~(pg - 1);
    uintptr_t hi = ((uintptr_t)desc_at(k, i + n) + pg - 1) & ~(pg - 1);

    if (n > 1)
        (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE); /* not a failure point */
}

/* Moves co, k's first free descriptor or its next fresh one, to *list. */
static void hand_out(struct coro__chunk *k, struct coro *co, struct coro **list)
{
    if (co == k->free)
        k->free = co->next_free;
    k->out++;
    co->next_free = *list;
    *list = co;
}

/* Takes up to n descriptors from the table into *list; returns how many.
 * errno may change. */
static uint32_t table_take(struct coro **list, uint32_t n)
{
    uint32_t got = 0;

    coro__registry_atfork();
    pthread_mutex_lock(&table_lock);
    while (got < n) {
        struct coro__chunk *k = partial;
        if (!k) {
            if (!(k = chunk_new()))
                break;
            partial_add(k);
        }
        /* Freed descriptors first; then fresh ones, carved after the last
         * and their pages faulted in at once. */
        for (; got < n && k->free; got++)
            hand_out(k, k->free, list);
        uint32_t fresh = k->count - k->carved;
        if (fresh > n - got)
            fresh = n - got;
        populate(k, k->carved, fresh);
        for (; fresh; fresh--, got++)
            hand_out(k, desc_at(k, k->carved++), list);
        if (!k->free && k->carved == k->count)
            partial_del(k);
    }
    pthread_mutex_unlock(&table_lock);
    return got;
}

/* Gives a list of descriptors back to their chunks; a chunk left with
 * none out gives its memory back.  errno may change. */
static void table_put(struct coro *list)
{
    pthread_mutex_lock(&table_lock);
    while (list) {
        struct coro *co = list;
        struct coro__chunk *k = chunk_of(co);
        list = co->next_free;
        co->next_free = k->free;
        k->free = co;
        partial_add(k);
        if (--k->out == 0) {
            /* Every descriptor free: the memory goes back and reads as
             * zeros (seq 0: free) to a walker. */
            (void)coro__sys_madvise((char *)k + CHUNK_FIRST, CHUNK_BYTES - CHUNK_FIRST,
                                    MADV_DONTNEED);
            k->free = NULL;
            k->carved = 0;
        }
    }
    pthread_mutex_unlock(&table_lock);
}

__attribute__((noinline)) struct coro *coro__desc_get(struct coro__desc_cache *c)
{
    struct coro *co;

    if (c && (co = c->head)) {
        c->head = co->next_free;
        c->count--;
        return co;
    }
    int saved = errno;
    struct coro *list = NULL;
    uint32_t n = table_take(&list, c ? CACHE_MAX / 4 : 1);
    errno = saved;
    if (!n)
        return NULL;
    co = list;
    if (c) {
        c->head = co->next_free;
        c->count = n - 1;
    }
    return co;
}

__attribute__((noinline)) void coro__desc_put(struct coro__desc_cache *c, struct coro *co)
{
    if (c) {
        co->next_free = c->head;
        c->head = co;
        if (++c->count <= CACHE_MAX)
            return;
        struct coro *keep = c->head;
        for (uint32_t i = 1; i < CACHE_MAX / 2; i++)
            keep = keep->next_free;
        co = keep->next_free;
        keep->next_free = NULL;
        c->count = CACHE_MAX / 2;
    } else {
        co->next_free = NULL;
    }
    int saved = errno;
    table_put(co);
    errno = saved;
}

void coro__desc_flush(struct coro__desc_cache *c)
{
    if (c->head) {
        int saved = errno;
        table_put(c->head);
        errno = saved;
    }
    c->head = NULL;
    c->count = 0;
}

size_t coro__chunks_in_use(void)
{
    size_t n = 0;

    pthread_mutex_lock(&table_lock);
    for (struct coro__chunk *k = coro__chunks; k; k = k->next)
        n += k->out != 0;
    pthread_mutex_unlock(&table_lock);
    return n;
}

/* Orders the reads before it before the loads after it. */
#if defined(CORO__TSAN)
#define READ_FENCE() __sync_synchronize() /* TSan has no __atomic_thread_fence */
#else
#define READ_FENCE() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif

/* Copies co into *copy, and its stack's bounds into v, while no create
 * or destroy writes them: 1 when the copy is of a live coroutine.  The
 * reads race with the owner's writes by design (the sequence number says
 * when to throw the copy away), so ThreadSanitizer is told not to watch
 * them. */
__attribute__((no_sanitize_thread, noinline)) static int snapshot(const struct coro *co,
                                                                 struct coro *copy,
                                                                 struct coro__view *v)
{
    for (int tries = 0; tries < 100; tries++) {
        uint32_t s = __atomic_load_n(&co->seq, __ATOMIC_ACQUIRE);
        if ((s & 3) != 2)
            return 0;
        const volatile uint64_t *from = (const volatile uint64_t *)co;
        uint64_t *to = (uint64_t *)copy;
        for (size_t i = 0; i < sizeof *co / sizeof *to; i++)
            to[i] = from[i];
        READ_FENCE();
        if (__atomic_load_n(&co->seq, __ATOMIC_RELAXED) != s ||
            *(const volatile uint64_t *)&co->id != copy->id)
            continue; /* torn: nothing in the copy may be followed */
        /* The copy is consistent: its stack pointer may be followed (a
         * stack's descriptor is never unmapped once carved), and its
         * bounds are the coroutine's if seq still has not moved. */
        const volatile coro__stack_t *st = copy->stack;
        v->lo = st ? st->lo : NULL;
        v->hi = st ? st->hi : NULL;
        READ_FENCE();
        if (__atomic_load_n(&co->seq, __ATOMIC_RELAXED) == s)
            return 1;
    }
    return 0;
}

void coro__registry_foreach(void (*fn)(const struct coro__view *v, void *arg), void *arg)
{
    struct coro copy;
    struct coro__view v = {.co = &copy};

    for (struct coro__chunk *k = __atomic_load_n(&coro__chunks, __ATOMIC_ACQUIRE); k;
         k = k->next)
        for (uint32_t i = 0; i < k->count; i++) {
            const struct coro *co = desc_at(k, i);
            if (snapshot(co, &copy, &v)) {
                v.real = co;
                fn(&v, arg);
            }
        }
}

/* coro: create, resume, yield, destroy (see include/coro.h). */
#define _GNU_SOURCE
#include "coroutine.h"
#include "sys.h"
#include "registry.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CORO_DEFAULT_STACK_SIZE
#define CORO_DEFAULT_STACK_SIZE 262144
#endif

#define ID_BLOCK 1024 /* ids a thread reserves at a time */

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

__thread struct coro__thread *coro__tl __attribute__((tls_model("initial-exec")));
#define tl coro__tl
/* The one thread-specific key of libcoro, made by the first thread that
 * needs it; a failure is returned (and tried again next time), never
 * ignored: an unmade key would be key 0, another library's. */
static pthread_key_t thread_key;
static atomic_int key_made;
static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint_fast64_t next_serial = 1;
static atomic_uint_fast64_t next_id_block = 1;

/* The sched layer's part of thread exit, for programs whose sched.c does
 * not define it (a weak alias of a no-op, as musl does). */
static void no_sched_exit(struct coro__thread *t)
{
    (void)t;
}
extern __typeof(no_sched_exit) coro__sched_thread_exit
    __attribute__((weak, alias("no_sched_exit")));

/* Thread exit: the parts in reverse order of their setup. */
static void thread_exit(void *p)
{
    struct coro__thread *t = p;

    if (t->keys)
        coro__keys_finish(&t->keys);
    coro__sched_thread_exit(t);
    coro__debug_thread_stop();
    coro__desc_flush(&t->descs);
    coro__stack_cache_flush(&t->stacks);
    tl = NULL;
    free(t);
}

/* A fork while another thread makes the key would leave key_lock held
 * for good in the child, whose first call would hang: the child starts
 * with it free (from a handler set up at load, before any thread can hold
 * it).  The fork does not wait for the maker; at worst the child makes a
 * key of its own and one of its slots is never used. */
static void key_fork_child(void)
{
    pthread_mutex_init(&key_lock, NULL);
}

static __attribute__((constructor)) void key_fork_init(void)
{
    /* Only ENOMEM; then a fork in that window may hang, as before. */
    (void)pthread_atfork(NULL, NULL, key_fork_child);
}

static int key_init(void)
{
    int err = 0;

    if (atomic_load_explicit(&key_made, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&key_lock);
    if (!atomic_load_explicit(&key_made, memory_order_relaxed)) {
        err = pthread_key_create(&thread_key, thread_exit);
        if (!err)
            atomic_store_explicit(&key_made, 1, memory_order_release);
    }
    pthread_mutex_unlock(&key_lock);
    return err;
}

/* Out of line and cold: the errno it keeps must not cost registers on
 * coro_resume's fast path. */
static __attribute__((noinline, cold)) int thread_init(struct coro__thread **out)
{
    int saved = errno;
    int err = key_init();
    struct coro__thread *t = NULL;

    if (err)
        coro__debug_note("coro: no thread-specific key left (pthread_key_create "
                         "failed): every create and resume fails with EAGAIN\n");
    if (!err && !(t = coro__calloc(1, sizeof *t)))
        err = ENOMEM;
    if (!err && (err = pthread_setspecific(thread_key, t)) != 0) {
        free(t);
        err = ENOMEM;
    }
    if (!err) {
        /* Bottom up: the caches are zeroed, then the coro part, then the
         * debug layer's (the sched layer's comes with the first spawn). */
        t->serial = atomic_fetch_add(&next_serial, 1);
        t->errno_ptr = &errno;
        t->eh = coro__eh_globals();
        tl = t;
        coro__debug_thread_start();
        *out = t;
    }
    errno = saved;
    return err;
}

int coro__thread_need(struct coro__thread **t)
{
    if (likely(tl != NULL)) {
        *t = tl;
        return 0;
    }
    return thread_init(t);
}

struct coro__thread *coro__thread_get(void)
{
    struct coro__thread *t;

    return coro__thread_need(&t) ? NULL : t;
}

static uint64_t new_id(struct coro__thread *t)
{
    if (unlikely(t->next_id == t->end_id)) {
        t->next_id = atomic_fetch_add(&next_id_block, ID_BLOCK);
        t->end_id = t->next_id + ID_BLOCK;
    }
    return t->next_id++;
}

void coro_attr_init(coro_attr_t *attr)
{
    if (!attr)
        return;
    memset(attr, 0, sizeof *attr);
    attr->stack_size = CORO_DEFAULT_STACK_SIZE;
    attr->version = CORO__ATTR_MAGIC;
}

int coro_attr_set_stack_size(coro_attr_t *attr, size_t bytes)
{
    if (!attr || bytes < CORO_STACK_MIN || bytes > CORO_STACK_MAX)
        return EINVAL;
    attr->stack_size = bytes;
    return 0;
}

int coro_attr_set_guard_size(coro_attr_t *attr, size_t bytes)
{
    if (!attr || bytes > CORO_GUARD_MAX)
        return EINVAL;
    attr->guard_size_ = bytes ? coro__stack_guard(bytes) : 0;
    return 0;
}

int coro_attr_set_name(coro_attr_t *attr, const char *name)
{
    if (!attr)
        return EINVAL;
    memset(attr->name, 0, sizeof attr->name);
    if (name)
        strncpy(attr->name, name, CORO_NAME_MAX);
    return 0;
}

/* First code run on a new coroutine's stack. */
static void coro_main(void *p)
{
    coro_t *co = p;
    coro__san_entered(co);
    void *ret = co->fn(co->arg);

    if (co->keys)
        coro__keys_finish(&co->keys); /* before the resume that sees it end */

    coro__leave(tl, co, CORO_FINISHED, ret);
    coro__switch_to(coro__uc(&co->ctx), co->caller, 0);
    abort(); /* a finished coroutine is never switched to */
}


/* The sequence lock of a descriptor (see registry.h): a write section
 * between begin and end.  Plain stores on x86_64 and aarch64 (release
 * only), nothing on the fast path that costs. */
static inline void seq_begin(coro_t *co)
{
#if defined(CORO__TSAN)
    /* TSan has no fences: an exchange that orders what follows. */
    __atomic_exchange_n(&co->seq, co->seq + 1, __ATOMIC_ACQ_REL);
#else
    __atomic_store_n(&co->seq, co->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
#endif
}

static inline void seq_end(coro_t *co)
{
    __atomic_store_n(&co->seq, co->seq + 1, __ATOMIC_RELEASE);
}

/* Gives co (READY, no stack yet) its stack and its first context. */
static int give_stack(struct coro__thread *t, coro_t *co)
{
    coro__stack_t *st;
    int err = t ? coro__stack_get(&t->stacks, co->stack_size, co->guard_size, &st)
                : coro__stack_alloc(NULL, co->stack_size, co->guard_size, &st);

    if (unlikely(err))
        return err;
    /* A write section that keeps seq at 2 modulo 4 (live) once done. */
    seq_begin(co);
    co->stack = st;
    co->canary = st->guard == CORO__GUARD_CANARY;
    coro__ctx_make(coro__uc(&co->ctx), st->lo, (size_t)(st->hi - st->lo), coro_main, co);
    st->user = co;
    __atomic_store_n(&co->seq, co->seq + 3, __ATOMIC_RELEASE);
    return 0;
}

/* The descriptor cache's fast paths (lib/registry.c has the rest). */
static inline coro_t *desc_get(struct coro__desc_cache *c)
{
    coro_t *co = c->head;

    if (likely(co != NULL)) {
        c->head = co->next_free;
        c->count--;
        return co;
    }
    return coro__desc_get(c);
}

static inline void desc_put(struct coro__desc_cache *c, coro_t *co)
{
    if (likely(c != NULL && c->count < 1024)) {
        co->next_free = c->head;
        c->head = co;
        c->count++;
        return;
    }
    coro__desc_put(c, co);
}

/* coro_create and coro__create: one body, inlined into each with its
 * flags a constant, so the eager path has no test of them. */
static inline __attribute__((always_inline)) int create(coro_t **out, coro_fn fn,
                                                        void *arg,
                                                        const coro_attr_t *attr,
                                                        int flags)
{
    size_t size = CORO_DEFAULT_STACK_SIZE, guard = 0;
    coro__stack_t *st = NULL;

    if (!out || !fn)
        return EINVAL;
    if (attr) {
        if (attr->version != CORO__ATTR_MAGIC || attr->stack_size < CORO_STACK_MIN ||
            attr->stack_size > CORO_STACK_MAX || attr->guard_size_ > CORO_GUARD_MAX)
            return EINVAL;
        size = attr->stack_size;
        guard = attr->guard_size_;
    }
    struct coro__thread *t;
    int err = coro__thread_need(&t);
    if (unlikely(err))
        return err;
    coro_t *co = desc_get(&t->descs);
    if (unlikely(!co))
        return ENOMEM;
    if (!(flags & CORO__LAZY_STACK)) {
        err = coro__stack_get(&t->stacks, size, guard, &st);
        if (unlikely(err)) {
            desc_put(&t->descs, co);
            return err;
        }
    }

    seq_begin(co);
    co->caller = NULL;
    co->resumer = NULL;
    co->out = NULL;
    co->in = NULL;
    co->fn = fn;
    co->arg = arg;
    co->stack = st;
    if (st) {
        co->stack_size = (size_t)(st->hi - st->lo);
        co->guard_size = st->pool->guard;
        co->canary = st->guard == CORO__GUARD_CANARY;
    } else {
        coro__stack_shape(&t->stacks, size, guard, &co->stack_size, &co->guard_size);
        co->canary = 0;
    }
    co->owner = 0;
    co->closing = 0;
    co->keys = NULL;
    co->id = new_id(t);
    co->state = CORO_READY;
    co->err = 0;
    co->sched = NULL;
    co->debug = NULL;
    co->eh = (struct coro__eh){0};
    if (attr)
        memcpy(co->name, attr->name, sizeof co->name);
    else
        co->name[0] = '\0';
    co->name[CORO_NAME_MAX] = '\0';
    if (st) {
        coro__ctx_make(coro__uc(&co->ctx), st->lo, (size_t)(st->hi - st->lo), coro_main, co);
        st->user = co;
    }
    seq_end(co);
    coro__san_created(co);
    *out = co;
    return 0;
}

int coro_create(coro_t **out, coro_fn fn, void *arg, const coro_attr_t *attr)
{
    return create(out, fn, arg, attr, 0);
}

int coro__create(coro_t **out, coro_fn fn, void *arg, const coro_attr_t *attr, int flags)
{
    return flags & CORO__LAZY_STACK ? create(out, fn, arg, attr, CORO__LAZY_STACK)
                                    : create(out, fn, arg, attr, 0);
}

/* The rarer cases of coro_resume: a first resume (which may also be this
 * thread's first use of libcoro) and every error. */
static int resume_check_slow(coro_t *co, struct coro__thread **tp)
{
    if (co->sched)
        return EPERM; /* spawned: its scheduler runs it */
    switch (co->state) {
    case CORO_READY: {
        int err = coro__thread_need(tp);
        if (!err && !co->stack)
            err = give_stack(*tp, co);
        if (err)
            return err;
        co->owner = (*tp)->serial;
        return 0;
    }
    case CORO_SUSPENDED:
        return EPERM; /* it started on another thread */
    case CORO_FINISHED:
        return ESRCH;
    default:
        return EBUSY;
    }
}

/* The switch of a resume, once checked: co continues, the caller (a
 * coroutine or the thread's own flow) waits in it. */
static inline __attribute__((always_inline)) int resume_go(struct coro__thread *t, coro_t *co,
                                                           void **out, int ret)
{
    coro_t *self = t->current;
    ucontext_t *from;
    if (self) {
        /* Before co runs: an overflow past a canary may have reached the
         * stack next to it, which may be co's. */
        coro__check_canary(self);
        self->state = CORO_NORMAL;
        self->err = *t->errno_ptr;
        from = coro__uc(&self->ctx);
    } else {
        t->main_err = *t->errno_ptr;
        from = &t->main_ctx;
    }
    co->resumer = self;
    co->caller = from;
    co->out = out;
    co->state = CORO_RUNNING;
    t->current = co;
    *t->errno_ptr = co->err;
    coro__eh_switch(t->eh, self ? &self->eh : &t->main_eh, &co->eh);
    return coro__switch_to(from, coro__uc(&co->ctx), ret);
}

/* coro_resume's rare cases (a first resume, every error), out of line so
 * that the fast path keeps its few values in registers.  Named coro__ so
 * that the gdb extension knows its frame for libcoro's (static builds). */
static __attribute__((noinline)) int coro__resume_slow(coro_t *co, void **out)
{
    struct coro__thread *t = tl;
    int err = resume_check_slow(co, &t);

    return err ? err : resume_go(t, co, out, 0);
}

/* hot: in .text.hot beside the switch itself (see lib/arch/x86_64.S). */
__attribute__((hot)) int coro_resume(coro_t *co, void *in, void **out)
{
    struct coro__thread *t = tl;

    if (unlikely(!co))
        return EINVAL;
    if (unlikely(!(co->state == CORO_SUSPENDED && t && co->owner == t->serial)))
        return coro__resume_slow(co, out); /* in: ignored on a first resume */
    if (co->in)
        *co->in = in;
    return resume_go(t, co, out, 0);
}

int coro__resume_spawned(coro_t *co, void **out)
{
    struct coro__thread *t = tl;

    if (co->state == CORO_READY) {
        if (!co->stack) {
            int err = give_stack(t, co);
            if (unlikely(err))
                return err;
        }
        co->owner = t->serial | CORO__OWNER_SPAWNED;
    } else if (co->in) {
        *co->in = NULL;
    }
    return resume_go(t, co, out, 0);
}

/* A transfer to a coroutine that never ran (see coroutine.h): its stack
 * first, if it has none yet; nothing switched when that fails. */
int coro__transfer_first(coro_t *from, coro_t *to)
{
    struct coro__thread *t = tl;

    if (!to->stack) {
        int err = give_stack(t, to);
        if (unlikely(err))
            return err;
    }
    to->owner = t->serial | CORO__OWNER_SPAWNED;
    return coro__transfer_go(t, from, to, NULL);
}

__attribute__((hot)) int coro_yield(void *out, void **in)
{
    struct coro__thread *t = tl;
    coro_t *co = t ? t->current : NULL;

    if (unlikely(!co))
        return EPERM;
    if (unlikely(co->closing))
        return ECANCELED; /* coro_close: on to its end, no switch */
    if (co->owner & CORO__OWNER_SPAWNED)
        return coro__sched_yield(co, out, in);
    co->in = in;
    coro__leave(t, co, CORO_SUSPENDED, out);
    return coro__switch_to(coro__uc(&co->ctx), co->caller, 0);
}

/* The values of co, never to run again, go to their destructors.  They
 * run on the caller's flow, but coro_getspecific and coro_setspecific in
 * them see co's values: the caller's are put aside meanwhile, not
 * touched.  errno is kept (coro_destroy never sets it). */
static void abandon_keys(coro_t *co)
{
    struct coro__thread *t = coro__thread_get();
    int saved = errno;

    if (!t) {
        coro__keys_finish(&co->keys);
    } else {
        struct coro__keys **mine = t->current ? &t->current->keys : &t->keys;
        struct coro__keys *own = *mine;
        *mine = co->keys;
        co->keys = NULL;
        coro__keys_finish(mine);
        *mine = own;
    }
    errno = saved;
}

int coro_destroy(coro_t *co)
{
    if (!co)
        return EINVAL;
    if (co->state == CORO_RUNNING || co->state == CORO_NORMAL)
        return EBUSY;
    if (co->sched)
        return EPERM; /* spawned: its scheduler frees it */
    if (co->keys)
        abandon_keys(co);
    coro__san_destroyed(co);
    /* Not made for a thread that has none (one exiting, say): the stack
     * and descriptor then go straight back to the pool and the table. */
    struct coro__thread *t = tl;
    coro__stack_t *st = co->stack;
    seq_begin(co);
    co->state = CORO_FINISHED;
    co->stack = NULL;
    seq_end(co);
    if (st)
        coro__stack_put(t ? &t->stacks : NULL, st);
    desc_put(t ? &t->descs : NULL, co);
    return 0;
}

int coro_close(coro_t *co)
{
    if (!co)
        return EINVAL;
    if (co->sched)
        return EPERM; /* spawned: coro_cancel ends those */
    if (co->state == CORO_RUNNING || co->state == CORO_NORMAL)
        return EBUSY;
    if (co->state == CORO_SUSPENDED) {
        struct coro__thread *t = tl;
        if (!t || co->owner != t->serial)
            return EPERM; /* it runs on another thread */
        /* Its pending yield returns ECANCELED and every later one fails
         * without switching, so this resume comes back only when it has
         * finished. */
        co->closing = 1;
        if (co->in)
            *co->in = NULL;
        resume_go(t, co, NULL, ECANCELED);
    }
    return coro_destroy(co);
}

int coro__drop_stack(coro_t *co)
{
    if (co->state != CORO_FINISHED)
        return EBUSY;
    coro__stack_t *st = co->stack;
    if (st) {
        struct coro__thread *t = tl;
        /* A write section that leaves seq live (seq += 4). */
        seq_begin(co);
        co->stack = NULL;
        __atomic_store_n(&co->seq, co->seq + 3, __ATOMIC_RELEASE);
        coro__stack_put(t ? &t->stacks : NULL, st);
    }
    return 0;
}

coro_state_t coro_state(const coro_t *co)
{
    return co ? (coro_state_t)co->state : CORO_FINISHED;
}

coro_t *coro_self(void)
{
    return tl ? tl->current : NULL;
}

uint64_t coro_id(const coro_t *co)
{
    return co ? co->id : 0;
}

const char *coro_name(const coro_t *co)
{
    return co ? co->name : "";
}

size_t coro_stack_size(const coro_t *co)
{
    return co ? co->stack_size : 0;
}

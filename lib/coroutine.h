/* coro: the coroutine object and the per-thread state, shared by the
 * layers above (sched, debug).  Private: not installed. */
#ifndef CORO_COROUTINE_H
#define CORO_COROUTINE_H

#include "coro.h"
#include "ctx.h"
#include "cxx.h"
#include "debug.h"
#include "stack.h"

#include <stdint.h>
#include <ucontext.h>

#define CORO__ATTR_MAGIC 0xC0A77001u

struct coro;

/* A thread's cache of free coroutine descriptors (lib/registry.c). */
struct coro__desc_cache {
    struct coro *head;
    uint32_t count;
};

/* The per-thread context: one thread-specific key for all of libcoro.
 * Created on the thread's first create or resume, its parts set up bottom
 * up (stack cache, coro, debug; the scheduler's when it first spawns) and
 * torn down in reverse when the thread exits (coro__sched_thread_exit,
 * coro__debug_thread_stop, then the caches), so no part finds another
 * already gone. */
struct coro__thread {
    /* The fields every switch reads come first, in one cache line. */
    coro_t *current;         /* running coroutine, NULL on the thread's own stack */
    uint64_t serial;         /* unique per thread, never reused */
    int *errno_ptr;          /* this thread's errno, looked up once */
    int main_err;            /* the thread's own errno while a coroutine runs */
    void *sched;             /* the sched layer's per-thread scheduler, or NULL */
    uint64_t next_id;        /* block of coroutine ids reserved for this thread */
    uint64_t end_id;
    ucontext_t main_ctx;     /* the thread's own flow while a coroutine runs */
    struct coro__eh *eh;     /* the C++ runtime's exception state (cxx.h), or NULL */
    struct coro__eh main_eh; /* the thread's own while a coroutine runs */
    struct coro__keys *keys; /* the thread's own flow's coroutine-local
                              * values (lib/key.c), or NULL */
    struct coro__desc_cache descs;   /* coro part: free descriptors */
    struct coro__stack_cache stacks; /* stack part: stacks as they are */
};

/* lib/key.c: hands each value of *ksp to its key's destructor (pthread's
 * rules: NULL values and deleted keys skipped, a few rounds while the
 * destructors set new ones), then frees the array; *ksp is NULL after. */
struct coro__keys;
void coro__keys_finish(struct coro__keys **ksp);

/* The sched layer's part of thread exit, called first (lib/sched.c
 * defines it; coro.c has a weak no-op for programs without it). */
void coro__sched_thread_exit(struct coro__thread *t);

/* A coroutine's descriptor lives in the descriptor table (lib/registry.c),
 * never on a stack. */
struct coro {
    /* What resume and yield touch, in the first cache line. */
    ucontext_t *caller;      /* where coro_yield goes: the resumer's context */
    struct coro *resumer;    /* the coroutine that resumed it, NULL for a thread */
    void **out;              /* where its next yield or return value goes: the
                              * out argument of the coro_resume running it */
    void **in;               /* where the next resume's value goes: the in
                              * argument of its pending coro_yield */
    uint64_t owner;          /* serial of the thread it started on; 0 before */
    coro__stack_t *stack;    /* its memory, [stack->lo, stack->hi) */
    int state;               /* coro_state_t */
    int err;                 /* its errno while it is not running */
    int canary;              /* its stack has canary words, no guard pages */
    int closing;             /* coro_close runs it to its end: yields fail */
    uint32_t seq;            /* sequence lock of create and destroy: odd while
                              * one runs; live when seq % 4 == 2 */
    coro__ctx_t ctx __attribute__((aligned(64)));
                             /* saved registers while it is not running */
    coro_fn fn;
    void *arg;
    uint64_t id;
    char name[CORO_NAME_MAX + 1];
    void *sched;             /* the sched layer's per-coroutine data */
    void *debug;             /* the debug layer's per-coroutine data (sanitizers) */
    struct coro__eh eh;      /* its C++ exception state while it is not running */
    struct coro__keys *keys; /* its coroutine-local values, or NULL */
    struct coro *next_free;  /* link while free in the descriptor table */
    size_t stack_size;       /* usable bytes of its stack (its class) */
    size_t guard_size;       /* bytes of guard below it */
};

/* This thread's state, created if needed; NULL when it cannot be (then
 * coro__thread_need says why). */
struct coro__thread *coro__thread_get(void);

/* Stores this thread's state, created if needed, in *t: 0, EAGAIN when no
 * thread-specific key can be had, ENOMEM.  Leaves errno alone. */
int coro__thread_need(struct coro__thread **t);

/* This thread's state, or NULL before its first create or resume.  Read
 * directly by the layers above (coro__self) instead of calling coro_self. */
extern __thread struct coro__thread *coro__tl __attribute__((tls_model("initial-exec")));


/* The top bit of a coroutine's owner marks one made by coro_spawn: the
 * public coro_resume's fast path never matches it (the scheduler resumes
 * those with coro__resume_spawned). */
#define CORO__OWNER_SPAWNED ((uint64_t)1 << 63)

/* The scheduler's resume of one of its coroutines (never run, or
 * suspended in a yield or park), with no misuse checks.  Returns as
 * coro_resume; ENOMEM without switching when a never-run coroutine's
 * stack cannot be had. */
int coro__resume_spawned(coro_t *co, void **out);


/* coro_create with flags.  CORO__LAZY_STACK: the coroutine gets its stack
 * at its first resume (or transfer), not now; a coroutine waiting to start
 * then costs its descriptor only, and ENOMEM comes from that first
 * coro_resume or coro__transfer instead (the coroutine stays READY and
 * may be resumed again or destroyed).  For the scheduler's coro_spawn. */
#define CORO__LAZY_STACK 1

/* Gives the stack of a finished coroutine back now, before coro_destroy
 * (its descriptor, id, name and state stay): for the scheduler, whose
 * finished coroutines wait for their join.  0; EBUSY if co has not
 * finished. */
int coro__drop_stack(coro_t *co);
int coro__create(coro_t **co, coro_fn fn, void *arg, const coro_attr_t *attr, int flags);

static inline coro_t *coro__self(void)
{
    struct coro__thread *t = coro__tl;

    return t ? t->current : NULL;
}

/* Every switch is a tail call of coro__ctx_swap made after all the
 * bookkeeping (states, values, errno) is done by the side switching away,
 * so the side switching back resumes straight in its caller.  The debug
 * layer's sanitizer hooks (lib/debug.h) need code after the switch; they
 * define CORO__AFTER_SWITCH and the tail call becomes a plain call.  Both
 * hooks take the context the running flow saves into (from) and the one
 * it continues (to). */
#ifndef CORO__AFTER_SWITCH
#define CORO__BEFORE_SWITCH(from, to) ((void)0)
#define CORO__AFTER_SWITCH(from) ((void)0)
#endif

/* The switch paths, inline so that the scheduler's park (on every channel
 * operation) switches without a call. */

/* Switches from the running flow to `to`, saving it in `from`; to's
 * pending switch returns ret (see coro__ctx_swap); returns what the switch
 * back passes.  Inline so that each caller tail-calls the switch. */
static inline __attribute__((always_inline)) int coro__switch_to(ucontext_t *from,
                                                                 const ucontext_t *to, int ret)
{
    CORO__BEFORE_SWITCH(from, to);
    int r = coro__ctx_swap(from, to, ret);
    CORO__AFTER_SWITCH(from);
    return r;
}

static inline void coro__check_canary(const coro_t *co)
{
    if (__builtin_expect(co->canary, 0) && coro__stack_canary_broken(co->stack))
        coro__debug_canary(co);
}

/* Bookkeeping of a coroutine leaving for its resumer (yield or return):
 * hands value to the resumer, gives it back the thread, and swaps errno. */
static inline void coro__leave(struct coro__thread *t, coro_t *co, int state, void *value)
{
    coro_t *back = co->resumer;

    coro__check_canary(co);
    if (co->out)
        *co->out = value;
    co->state = state;
    co->err = *t->errno_ptr;
    t->current = back;
    coro__eh_switch(t->eh, &co->eh, back ? &back->eh : &t->main_eh);
    if (back) {
        back->state = CORO_RUNNING;
        *t->errno_ptr = back->err;
    } else {
        *t->errno_ptr = t->main_err;
    }
}

/* The switch of a transfer, once to can run; in: where from's next
 * resume stores its value (as coro_yield's). */
static inline __attribute__((always_inline)) int coro__transfer_go(struct coro__thread *t,
                                                                   coro_t *from, coro_t *to,
                                                                   void **in)
{
    coro__check_canary(from);
    to->resumer = from->resumer;
    to->caller = from->caller;
    to->out = from->out;
    from->in = in;
    from->state = CORO_SUSPENDED;
    from->err = *t->errno_ptr;
    to->state = CORO_RUNNING;
    t->current = to;
    *t->errno_ptr = to->err;
    coro__eh_switch(t->eh, &from->eh, &to->eh);
    return coro__switch_to(coro__uc(&from->ctx), coro__uc(&to->ctx), 0);
}

/* coro__transfer to a coroutine that ran before (suspended in a yield or
 * a transfer); from's next resume stores its value in *in (as
 * coro_yield's; NULL: nowhere).  Without the first-run branch, for the
 * scheduler's yield, whose hand-off never goes to one. */
static inline __attribute__((always_inline)) int coro__transfer_suspended(coro_t *from, coro_t *to,
                                                                          void **in)
{
    if (to->in)
        *to->in = NULL;
    return coro__transfer_go(coro__tl, from, to, in);
}

/* lib/coro.c: coro__transfer to a coroutine that never ran. */
int coro__transfer_first(coro_t *from, coro_t *to);

/* For the scheduler: the running coroutine `from` suspends and the
 * suspended (or never run) coroutine `to`, of this thread, continues in its
 * place with the same resumer, as if `from` had yielded and its resumer had
 * resumed `to` at once: one switch instead of two.  Returns 0 when `from`
 * is resumed again; to's pending yield (or transfer) sees NULL.  ENOMEM
 * without switching when to has no stack yet and none can be had (see
 * CORO__LAZY_STACK).  Inline: it is the switch of every channel hand-off;
 * the rare first run is out of line. */
static inline __attribute__((always_inline)) int coro__transfer(coro_t *from, coro_t *to)
{
    if (__builtin_expect(to->state == CORO_READY, 0))
        return coro__transfer_first(from, to);
    return coro__transfer_suspended(from, to, NULL);
}

/* lib/sched.c: coro_yield of a spawned coroutine, co, the running one.
 * Weak: only spawned coroutines call it, and only the sched layer makes
 * those (a static program without it never does). */
int coro__sched_yield(coro_t *co, void *out, void **in) __attribute__((weak));

/* coro_yield without its checks: the scheduler's park goes back to the
 * run loop with it. */
static inline int coro__yield_to_caller(coro_t *co, void *out, void **in)
{
    struct coro__thread *t = coro__tl;

    co->in = in;
    coro__leave(t, co, CORO_SUSPENDED, out);
    return coro__switch_to(coro__uc(&co->ctx), co->caller, 0);
}

#endif

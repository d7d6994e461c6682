/* debug: the sanitizer side of every switch (see debug.h).  Built into
 * ASan and TSan builds only; empty otherwise.
 *
 * ASan keeps, per flow, the bounds of the stack it runs on and a "fake
 * stack" (frames moved off the real stack to catch use after return).
 * Before a switch the flow leaving names the destination stack and saves
 * its fake stack in its own slot (co->debug, or the thread's slot);
 * after it, the flow arriving restores its own.  The bounds of a thread's
 * own stack are learnt from the first coroutine it resumes.  A stack goes
 * back to the cache unpoisoned.
 *
 * TSan keeps a fiber per coroutine that has run (co->debug) and one per
 * thread, the thread's own, which is never destroyed. */
#include "coroutine.h"

#if defined(CORO__ASAN) || defined(CORO__TSAN)

#include <stddef.h>

/* The coroutine whose saved context uc is, or NULL for the thread's own. */
static struct coro *flow(const ucontext_t *uc)
{
    struct coro__thread *t = coro__thread_get();

    if (uc == &t->main_ctx)
        return NULL;
    return (struct coro *)((const char *)uc - offsetof(struct coro, ctx));
}

#if defined(CORO__ASAN)

static __thread void *main_fake;           /* the thread's own fake stack */
static __thread const void *main_bottom;   /* the thread's own stack */
static __thread size_t main_size;
static __thread const void *prev_bottom;   /* the stack just left */
static __thread size_t prev_size;
static __thread int left_main;             /* that stack was the thread's */

/* Learns the thread's stack when the flow just left was the thread's. */
static void arrived(void)
{
    if (left_main) {
        main_bottom = prev_bottom;
        main_size = prev_size;
        left_main = 0;
    }
}

void coro__asan_start(ucontext_t *from, const ucontext_t *to)
{
    struct coro *src = flow(from), *dst = flow(to);
    void **slot = &main_fake;

    if (src)  /* a coroutine that finished never comes back: drop its fake stack */
        slot = src->state == CORO_FINISHED ? NULL : &src->debug;
    left_main = !src;
    if (dst)
        __sanitizer_start_switch_fiber(slot, dst->stack->lo,
                                       dst->stack->pool->usable);
    else
        __sanitizer_start_switch_fiber(slot, main_bottom, main_size);
}

void coro__asan_finish(ucontext_t *from)
{
    struct coro *self = flow(from);

    __sanitizer_finish_switch_fiber(self ? self->debug : main_fake,
                                    &prev_bottom, &prev_size);
    arrived();
}

void coro__san_entered(struct coro *co)
{
    (void)co;
    __sanitizer_finish_switch_fiber(NULL, &prev_bottom, &prev_size);
    arrived();
}

void coro__san_created(struct coro *co)
{
    (void)co;
}

/* The stack goes back to the cache: a coroutine abandoned while suspended
 * leaves the red zones of its live frames behind.  One that finished
 * returned from all of them, and a fresh stack is clean: unpoisoning
 * those would only touch shadow memory for nothing. */
void coro__san_destroyed(struct coro *co)
{
    if (co->state == CORO_SUSPENDED)
        CORO__UNPOISON(co->stack->lo, (size_t)(co->stack->hi - co->stack->lo));
    co->debug = NULL;
}

#else /* TSan */

static __thread void *main_fiber;

/* TSan counts fibers as threads, and allows about 8,000 at once: a
 * coroutine gets its fiber on its first resume, not at creation, so that
 * a program may hold many that have not run. */
void *coro__tsan_fiber(ucontext_t *from, const ucontext_t *to)
{
    struct coro *dst = flow(to);

    if (!flow(from))
        main_fiber = __tsan_get_current_fiber();
    if (!dst)
        return main_fiber;
    if (!dst->debug) {
        dst->debug = __tsan_create_fiber(0);
        if (dst->name[0])
            __tsan_set_fiber_name(dst->debug, dst->name);
    }
    return dst->debug;
}

void coro__san_created(struct coro *co)
{
    (void)co;
}

void coro__san_destroyed(struct coro *co)
{
    if (co->debug)
        __tsan_destroy_fiber(co->debug);
    co->debug = NULL;
}

void coro__san_entered(struct coro *co)
{
    (void)co;
}

#endif
#else
typedef int coro__sanitize_unused; /* ISO C wants a declaration */
#endif

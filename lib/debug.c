/* debug: backtraces of suspended coroutines and coro_dump (see coro.h).
 *
 * A suspended coroutine's registers are in its ucontext_t, the layout
 * libunwind takes as its unw_context_t (on x86_64 it is the same type), so
 * a walk starts from a copy of it as if the coroutine had just returned
 * from its switch.  The registry of live coroutines is the descriptor
 * table (lib/registry.h), walked under each descriptor's sequence lock. */
#define _GNU_SOURCE
#include "coroutine.h"
#include "registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#if defined(CORO_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

#define DUMP_FRAMES 64 /* frames coro_dump prints per coroutine */

/* CORO_DEBUG asks for diagnostics: set, not empty, not "0".  (The same
 * rule as lib/sys.c's coro__debug_env, which the stack layer brings.) */
static int debug_wanted(void)
{
    const char *v = getenv("CORO_DEBUG");

    return v && v[0] && strcmp(v, "0") != 0;
}

void coro__debug_note(const char *msg)
{
    int saved = errno;

    if (debug_wanted())
        fputs(msg, stderr);
    errno = saved;
}

static const char *state_name(int state)
{
    switch (state) {
    case CORO_READY: return "ready";
    case CORO_RUNNING: return "running";
    case CORO_NORMAL: return "normal";
    case CORO_SUSPENDED: return "suspended";
    case CORO_FINISHED: return "finished";
    }
    return "?";
}

#if defined(CORO_HAVE_LIBUNWIND)

static void print_frame(FILE *out, int i, unw_cursor_t *c, unw_word_t ip)
{
    char name[256];
    unw_word_t off;

    if (unw_get_proc_name(c, name, sizeof name, &off) == 0)
        fprintf(out, "    #%-2d 0x%016" PRIxPTR " in %s+0x%" PRIxPTR "\n", i,
                (uintptr_t)ip, name, (uintptr_t)off);
    else
        fprintf(out, "    #%-2d 0x%016" PRIxPTR "\n", i, (uintptr_t)ip);
}

/* Walks up to max frames from cursor c, storing their addresses in frames
 * if it is set and printing them on out if it is set.  Returns how many. */
static int walk(unw_cursor_t *c, void **frames, int max, FILE *out)
{
    int n = 0;

    CORO__VALGRIND_QUIET();
    while (n < max) {
        unw_word_t ip;
        if (unw_get_reg(c, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        if (frames)
            frames[n] = (void *)(uintptr_t)ip;
        if (out)
            print_frame(out, n, c, ip);
        n++;
        if (unw_step(c) <= 0)
            break;
    }
    CORO__VALGRIND_LOUD();
    if (out && n == max)
        fprintf(out, "    ... (more frames)\n");
    return n;
}

/* Walks a coroutine that is not running, from its saved registers. */
static int walk_saved(const coro_t *co, void **frames, int max, FILE *out)
{
    unw_context_t uc;
    unw_cursor_t c;

    memset(&uc, 0, sizeof uc);
    memcpy(&uc, &co->ctx, sizeof uc < sizeof co->ctx ? sizeof uc : sizeof co->ctx);
    if (unw_init_local(&c, &uc) < 0)
        return 0;
    return walk(&c, frames, max, out);
}

#endif

/* Inline in coro_backtrace (which is never inlined), so that the context
 * it takes of a running caller is coro_backtrace's own frame: one step
 * then leaves the walk in the function that called coro_backtrace. */
static inline __attribute__((always_inline)) int backtrace_of(const coro_t *co, void **frames,
                                                              int max)
{
    if (!co || max < 0 || (!frames && max > 0))
        return -EINVAL;
    switch (co->state) {
    case CORO_READY:
    case CORO_FINISHED:
        return 0; /* nothing on its stack */
    case CORO_RUNNING:
        if (co != coro_self())
            return -EBUSY;
        break;
    default:
        break;
    }
#if defined(CORO_HAVE_LIBUNWIND)
    if (max == 0)
        return 0;
    if (co->state == CORO_RUNNING) {
        /* The caller's own stack, from here, less coro_backtrace's frame. */
        unw_context_t uc;
        unw_cursor_t c;
        unw_getcontext(&uc);
        if (unw_init_local(&c, &uc) < 0)
            return 0;
        CORO__VALGRIND_QUIET();
        int r = unw_step(&c);
        CORO__VALGRIND_LOUD();
        return r > 0 ? walk(&c, frames, max, NULL) : 0;
    }
    return walk_saved(co, frames, max, NULL);
#else
    return -ENOTSUP;
#endif
}

/* libunwind's memory probes set errno (EAGAIN from its pipe): kept. */
__attribute__((noinline)) int coro_backtrace(const coro_t *co, void **frames, int max)
{
    int saved = errno;
    int n = backtrace_of(co, frames, max);

    errno = saved;
    return n;
}

struct dump {
    FILE *out;
    coro_t *self;      /* the caller's coroutine, NULL on a thread's own stack */
    uint64_t serial;   /* the calling thread's */
    int count;
#if defined(CORO_HAVE_LIBUNWIND)
    unw_context_t here; /* the caller of coro_dump, for the running coroutine */
#endif
};

static void dump_one(const struct coro__view *v, void *arg)
{
    struct dump *d = arg;
    const coro_t *co = v->co;

    d->count++;
    int state = co->state;
    fprintf(d->out, "coroutine #%" PRIu64 " \"%s\" %s, stack %zu bytes", co->id,
            co->name, state_name(state), coro_stack_size(co));
    switch (state) {
    case CORO_READY:
        fprintf(d->out, ", never ran: no backtrace\n");
        return;
    case CORO_FINISHED:
        fprintf(d->out, ", returned: no backtrace\n");
        return;
    case CORO_RUNNING:
        if (v->real != d->self) {
            fprintf(d->out, ", running on another thread: not unwound\n");
            return;
        }
        fprintf(d->out, ", in use %zu bytes (now; it called coro_dump)\n",
                (size_t)(v->hi - (const char *)&state));
#if defined(CORO_HAVE_LIBUNWIND)
        {
            unw_cursor_t c;
            if (unw_init_local(&c, &d->here) == 0) {
                CORO__VALGRIND_QUIET();
                int r = unw_step(&c);
                CORO__VALGRIND_LOUD();
                if (r > 0)
                    walk(&c, NULL, DUMP_FRAMES, d->out);
            }
        }
#endif
        return;
    }
    /* Suspended, or normal (it resumed another and waits in coro_resume). */
    uintptr_t sp = coro__uc_sp((const ucontext_t *)(const void *)&co->ctx);
    if (sp && v->hi)
        fprintf(d->out, ", in use %zu bytes (at its last switch)",
                (size_t)((uintptr_t)v->hi - sp));
    if ((co->owner & ~CORO__OWNER_SPAWNED) != d->serial) {
        fprintf(d->out, ", on another thread: not unwound\n");
        return;
    }
    fprintf(d->out, "\n");
#if defined(CORO_HAVE_LIBUNWIND)
    walk_saved(co, NULL, DUMP_FRAMES, d->out);
#endif
}

void coro_dump(FILE *out)
{
    int saved = errno; /* libunwind's probes and stdio may set it */
    struct coro__thread *t = coro__tl;
    struct dump d = {.out = out, .self = coro_self(), .serial = t ? t->serial : 0};

    if (!out)
        return;
#if defined(CORO_HAVE_LIBUNWIND)
    unw_getcontext(&d.here);
    fprintf(out, "coro_dump: live coroutines\n");
#else
    fprintf(out, "coro_dump: live coroutines (backtraces not built in: "
                 "libcoro was built without libunwind)\n");
#endif
    coro__registry_foreach(dump_one, &d);
    fprintf(out, "coro_dump: %d live coroutine%s\n", d.count, d.count == 1 ? "" : "s");
    fflush(out);
    errno = saved;
}

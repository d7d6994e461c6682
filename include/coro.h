/*
 * libcoro: stackful coroutines for C11 on Linux.
 *
 * One header, grouped by layer: core (create, resume, yield), attributes,
 * then the scheduler, timers, synchronisation and diagnostics.
 *
 * Conventions, as in pthreads: every function that can fail returns 0 or a
 * positive errno value and leaves errno alone.  Pointer results may be NULL
 * where said.  Each coroutine keeps its own errno and floating-point control
 * state (rounding mode, exception masks) across switches.
 */
#ifndef CORO_H
#define CORO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CORO_BUILDING) && defined(__GNUC__)
#define CORO_API __attribute__((visibility("default")))
#else
#define CORO_API
#endif

/* ------------------------------------------------------------------ core */

/* A coroutine.  Opaque; owned by whoever created it until coro_destroy. */
typedef struct coro coro_t;

/* The body of a coroutine.  arg is the pointer given to coro_create; the
 * return value is handed to the coro_resume that sees the coroutine
 * finish. */
typedef void *(*coro_fn)(void *arg);

typedef enum coro_state {
    CORO_READY = 0,   /* created, never resumed */
    CORO_RUNNING,     /* the coroutine executing now on this thread */
    CORO_NORMAL,      /* it resumed another coroutine and waits for it */
    CORO_SUSPENDED,   /* it called coro_yield and waits to be resumed */
    CORO_FINISHED     /* its function returned; only destroy is left */
} coro_state_t;

/* Creation attributes.  Initialise with coro_attr_init and set fields only
 * through the functions below: the layout is private and may grow (the
 * reserved space keeps the size fixed for the ABI). */
typedef struct coro_attr {
    size_t stack_size;     /* bytes of usable stack */
    char   name[32];       /* NUL-terminated, may be empty */
    uint32_t version;      /* set by coro_attr_init */
    uint32_t flags_;       /* reserved */
    void  *reserved_[6];
} coro_attr_t;

/* Longest name kept, without its terminating NUL; longer names are cut. */
#define CORO_NAME_MAX 31

/* Smallest and largest stack coro_attr_set_stack_size accepts. */
#define CORO_STACK_MIN ((size_t)16384)
#define CORO_STACK_MAX ((size_t)1 << 30)

/* Fills *attr with the defaults: the build's default stack size (262144
 * bytes unless configured otherwise) and no name.  attr may not be NULL. */
CORO_API void coro_attr_init(coro_attr_t *attr);

/* Sets the usable stack size.  It is rounded up to whole pages.
 * Returns 0; EINVAL if attr is NULL or bytes is outside
 * [CORO_STACK_MIN, CORO_STACK_MAX]. */
CORO_API int coro_attr_set_stack_size(coro_attr_t *attr, size_t bytes);

/* Sets the name shown in diagnostics (stack overflow reports, coro_dump,
 * gdb).  The string is copied, cut to CORO_NAME_MAX bytes; NULL clears it.
 * Returns 0; EINVAL if attr is NULL. */
CORO_API int coro_attr_set_name(coro_attr_t *attr, const char *name);

/* Creates a coroutine that will run fn(arg) on its own guarded stack when
 * first resumed.  attr may be NULL for the defaults.  No system call is made
 * when a cached stack is available.
 * Returns 0 and stores the handle in *co; EINVAL if co or fn is NULL or attr
 * was not initialised by coro_attr_init; ENOMEM if no stack memory can be
 * had (nothing is left mapped; *co is unchanged). */
CORO_API int coro_create(coro_t **co, coro_fn fn, void *arg,
                         const coro_attr_t *attr);

/* Runs co until it yields or returns.  in is the value the coroutine
 * receives: as the result of its coro_yield, or ignored on the first resume
 * (fn already got arg).  If out is not NULL it receives the value passed to
 * coro_yield, or fn's return value when the coroutine finished.  While co
 * runs, the caller (if a coroutine) is CORO_NORMAL.
 * Returns 0; EINVAL if co is NULL; ESRCH if co has finished; EBUSY if co is
 * running or normal (itself or one of its resumers); EPERM if co is
 * suspended but belongs to another thread (a coroutine that has started
 * never moves between threads). */
CORO_API int coro_resume(coro_t *co, void *in, void **out);

/* Suspends the running coroutine and returns to whoever resumed it, which
 * receives out.  When resumed again, *in (if in is not NULL) is set to the
 * value given to that coro_resume.
 * Returns 0; EPERM if called outside any coroutine. */
CORO_API int coro_yield(void *out, void **in);

/* Frees a coroutine and returns its stack to the cache.  A suspended
 * coroutine is abandoned where it stands: its stack is not unwound, so
 * whatever it holds is not released.
 * Returns 0; EINVAL if co is NULL; EBUSY if co is running or normal;
 * EPERM if co was made by coro_spawn (coro_join frees it). */
CORO_API int coro_destroy(coro_t *co);

/* The state of co; CORO_FINISHED for NULL. */
CORO_API coro_state_t coro_state(const coro_t *co);

/* The coroutine running on this thread, or NULL outside any coroutine. */
CORO_API coro_t *coro_self(void);

/* A number unique to co in this process, never reused; 0 for NULL.  The
 * first coroutine created gets 1. */
CORO_API uint64_t coro_id(const coro_t *co);

/* The name given at creation; "" when none or co is NULL.  Valid until
 * co is destroyed. */
CORO_API const char *coro_name(const coro_t *co);

/* The usable stack size of co in bytes; 0 for NULL. */
CORO_API size_t coro_stack_size(const coro_t *co);

/* ------------------------------------------------------------- scheduler */
/* Each thread has its own scheduler, made by its first coro_spawn.  A
 * spawned coroutine runs when the thread calls coro_run, until it blocks
 * (coro_join, coro_sleep, a channel, a lock, ...), yields or returns; the
 * scheduler then runs the next ready one.  Spawned coroutines never move to
 * another thread.  Calls that block ("blocking calls") may only be made by
 * a spawned coroutine while its scheduler runs it: anywhere else they
 * return EPERM.  A blocking call that can wait has a variant with a
 * deadline and returns ETIMEDOUT when it passes, and every blocking call
 * returns ECANCELED when the coroutine is cancelled (coro_cancel).
 *
 * A spawned coroutine is freed by coro_join, or when it finishes if it was
 * spawned detached.  Never pass one to coro_resume or coro_destroy: the
 * scheduler owns it.  Inside a spawned coroutine, coro_yield lets every
 * other ready coroutine run once and then continues: the coroutine goes to
 * the back of the ready queue, the value it yields is dropped and *in is
 * set to NULL. */

/* Creates a coroutine that runs fn(arg) on this thread's scheduler, and
 * puts it at the back of the ready queue: it starts at the next coro_run
 * (or, if coro_run is running, after the coroutines already ready).  attr
 * is as for coro_create (NULL for the defaults).  If co is not NULL the
 * handle is stored there and must be given to coro_join exactly once (a
 * handle never joined is reported on stderr and freed when coro_run
 * returns); if co is NULL the coroutine is detached and freed when it
 * finishes.  Any code on the thread may call it: main flow, spawned or
 * plain coroutines.
 * Returns 0; EINVAL if fn is NULL or attr was not initialised by
 * coro_attr_init; ENOMEM if no memory or stack can be had (nothing is
 * left allocated, *co is unchanged). */
CORO_API int coro_spawn(coro_t **co, coro_fn fn, void *arg, const coro_attr_t *attr);

/* Runs this thread's scheduler until every coroutine it was given has
 * finished, sleeping (not polling) while all of them wait for a deadline.
 * Call it from the thread's own flow, outside any coroutine.
 * If at some point every remaining coroutine is blocked with no deadline
 * pending and nothing left that could wake it (a deadlock), it prints on
 * stderr a report naming each one (id, name, whom it joins), then cancels
 * their waits: each blocked call returns ECANCELED, and from then on
 * every blocking call except coro_join fails at once with ECANCELED, so
 * that the coroutines can only unwind and finish.  When they all have,
 * coro_run returns EDEADLK.
 * When it returns, nothing spawned is left: handles that were never joined
 * are reported on stderr and freed (they are invalid from then on).
 * Returns 0 (also when nothing was spawned); EDEADLK after a deadlock as
 * above; EPERM if called inside a coroutine; ENOMEM if this thread's state
 * cannot be allocated. */
CORO_API int coro_run(void);

/* Waits until co finishes, stores its return value in *result (if result
 * is not NULL) and frees co.  Blocking call: only a spawned coroutine run
 * by its scheduler may join, and only coroutines of the same thread.
 * Returns 0; EPERM if the caller is not a spawned coroutine run by this
 * thread's scheduler (the thread's own flow included: use coro_run, and
 * join from a coroutine), or co belongs to another thread; EINVAL if co is
 * NULL, was not made by coro_spawn, is detached, or another coroutine is
 * joining it already; EDEADLK if co is the caller, or co is (directly or
 * through a chain of joins) joining the caller; ECANCELED if the caller was
 * cancelled (co is then still joinable). */
CORO_API int coro_join(coro_t *co, void **result);

/* coro_join with a deadline: absolute CLOCK_MONOTONIC nanoseconds (see
 * coro_now), -1 for none.
 * Returns as coro_join, and also ETIMEDOUT if co has not finished by the
 * deadline (co is then still joinable; a finished co is joined whatever the
 * deadline), EINVAL if deadline is below -1. */
CORO_API int coro_join_until(coro_t *co, void **result, int64_t deadline);

/* Cancels co's current blocking call, or, if it is not blocked now, its
 * next one: that call returns ECANCELED (once; later calls block as
 * usual).  co may be the caller.  May be called from anywhere on co's
 * thread, in or outside coroutines.
 * Returns 0; EINVAL if co is NULL or was not made by coro_spawn; ESRCH if
 * co has finished; EPERM if co belongs to another thread's scheduler. */
CORO_API int coro_cancel(coro_t *co);

/* ----------------------------------------------------------------- timers */
/* Deadlines are absolute nanoseconds on CLOCK_MONOTONIC, -1 meaning none.
 * Deadlines live in a heap per scheduler: adding or removing one costs
 * O(log n) with any number pending.  A deadline that has already passed is
 * not returned at once: the coroutine still waits for the scheduler's next
 * timer check, so coroutines whose deadlines have passed wake in deadline
 * order (equal deadlines in the order they were set). */

/* The current time: CLOCK_MONOTONIC in nanoseconds.  Any thread, any
 * context. */
CORO_API int64_t coro_now(void);

/* Blocks the calling spawned coroutine for ns nanoseconds (0 or less: it
 * lets the other ready coroutines run, then continues).
 * Returns 0 when the time has passed; ECANCELED if the coroutine was
 * cancelled (coro_cancel) before or while sleeping; EPERM if the caller is
 * not a spawned coroutine run by this thread's scheduler. */
CORO_API int coro_sleep(int64_t ns);

/* Blocks the calling spawned coroutine until deadline (see coro_now); -1
 * sleeps until cancelled.
 * Returns 0 when the deadline has passed; ECANCELED if the coroutine was
 * cancelled before or while sleeping; EPERM if the caller is not a spawned
 * coroutine run by this thread's scheduler; EINVAL if deadline is below -1. */
CORO_API int coro_sleep_until(int64_t deadline);

/* -------------------------------------------------------- synchronisation */
/* (sync layer: channels, select, mutex, cond, semaphore, wait group, future) */

/* ------------------------------------------------------------ diagnostics */
/* (debug layer: coro_dump, coro_backtrace, registry root for debuggers) */

/* The root from which a debugger finds every live coroutine by reading
 * memory alone: in a live process without running code in it, or in a core
 * file, even when the library is stripped (this is a dynamic symbol, and
 * the layout of everything it leads to is given here as byte offsets, so
 * no debug information is needed).  Programs have no use for it; gdb's
 * extension (installed with the library, see coro_debug(7)) reads it.
 *
 * The walk: for each pool i in [0, *npools), at pools + i * pool_size;
 * for each slab in its list (the first at pool + pool_slabs, the next at
 * slab + slab_next, a null pointer ends it); for each k in [0, carved):
 * the stack's lowest usable byte is lo = base + k * stride + guard_size,
 * its descriptor is at lo + usable - desc_reserve, and the pointer at
 * descriptor + stack_user is the live coroutine on that stack, or null.
 * A coroutine's fields are at the coro_* offsets: id (uint64_t), name
 * (coro_name_size chars, NUL-terminated), state (int, a coro_state_t),
 * fn (its entry function), and ctx, a ucontext_t holding its saved
 * registers while it is not running (uc_mcontext at ctx + ctx_mcontext).
 * Its stack is [lo, the coroutine's address).  Pointers and size_t fields
 * are ptr_size bytes.  Slabs and their list only grow, and every store
 * that publishes one is a release, so a walk never meets a dangling
 * pointer.
 *
 * Compatibility: magic is CORO_DEBUG_MAGIC; version is CORO_DEBUG_VERSION,
 * raised when a field changes meaning; new fields are only appended, and
 * size says how many there are. */
#define CORO_DEBUG_MAGIC 0xC0D3B6C0u
#define CORO_DEBUG_VERSION 1u

struct coro_debug_root {
    uint32_t magic;         /* CORO_DEBUG_MAGIC */
    uint32_t version;       /* CORO_DEBUG_VERSION */
    uint32_t size;          /* sizeof(struct coro_debug_root) */
    uint32_t ptr_size;      /* sizeof(void *), also sizeof(size_t) */
    const void *pools;      /* the array of stack pools */
    const int *npools;      /* how many of them are in use */
    uint32_t guard_size;    /* bytes of guard below every stack */
    uint32_t desc_reserve;  /* the descriptor rule above */
    uint32_t pool_size;     /* distance between two pools in the array */
    uint32_t pool_usable;   /* offsets in a pool: usable bytes (size_t), */
    uint32_t pool_stride;   /* guard + usable bytes (size_t), */
    uint32_t pool_slabs;    /* newest slab (pointer) */
    uint32_t slab_next;     /* offsets in a slab: older slab (pointer), */
    uint32_t slab_base;     /* first byte (pointer), */
    uint32_t slab_carved;   /* stacks carved from it (size_t) */
    uint32_t stack_lo;      /* offsets in a descriptor: lowest usable byte, */
    uint32_t stack_user;    /* the coroutine on it (pointers) */
    uint32_t coro_id;       /* offsets in a coroutine */
    uint32_t coro_name;
    uint32_t coro_name_size;
    uint32_t coro_state;
    uint32_t coro_fn;
    uint32_t coro_ctx;
    uint32_t ctx_mcontext;  /* offset of uc_mcontext in a ucontext_t */
};

/* For debuggers only; see struct coro_debug_root.  Never changes. */
CORO_API extern const struct coro_debug_root coro_debug_root;

#ifdef __cplusplus
}
#endif
#endif /* CORO_H */

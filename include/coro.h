/*
 * libcoro: stackful coroutines for C11 on Linux.
 *
 * One header, grouped by layer: core (create, resume, yield), attributes,
 * then the scheduler, timers, synchronisation and diagnostics.
 *
 * Conventions, as in pthreads: every function that can fail returns 0 or a
 * positive errno value and leaves errno alone.  Pointer results may be NULL
 * where said.  Each coroutine keeps its own errno and floating-point control
 * state (rounding mode, exception masks) across switches.  The sticky
 * exception flags (fetestexcept) may follow the coroutine or stay with the
 * thread, depending on the processor and on how they were raised (see
 * coro_resume(3)): test them between two switches.  A new coroutine starts
 * with its creator's floating-point state.
 */
#ifndef CORO_H
#define CORO_H

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/select.h> /* sigset_t, even under strict -std=c11 */
#include <sys/socket.h>
#include <sys/uio.h>

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
    size_t guard_size_;    /* 0: the default (since 0.2.0; was reserved) */
    void  *reserved_[5];
} coro_attr_t;

/* Longest name kept, without its terminating NUL; longer names are cut. */
#define CORO_NAME_MAX 31

/* Smallest and largest stack coro_attr_set_stack_size accepts. */
#define CORO_STACK_MIN ((size_t)16384)
#define CORO_STACK_MAX ((size_t)1 << 30)

/* Largest guard coro_attr_set_guard_size accepts. */
#define CORO_GUARD_MAX ((size_t)1 << 30)

/* Fills *attr with the defaults: the build's default stack size (262144
 * bytes unless configured otherwise), the default guard (65536 bytes) and
 * no name.  attr may not be NULL. */
CORO_API void coro_attr_init(coro_attr_t *attr);

/* Sets the usable stack size: a coroutine created with attr gets at least
 * bytes of stack (coro_stack_size tells how much exactly: the size rounded
 * up to its size class, whole pages at most a quarter above the size asked
 * for; only the pages a coroutine touches cost memory).
 * Returns 0; EINVAL if attr is NULL or bytes is outside
 * [CORO_STACK_MIN, CORO_STACK_MAX]. */
CORO_API int coro_attr_set_stack_size(coro_attr_t *attr, size_t bytes);

/* Sets the name shown in diagnostics (stack overflow reports, coro_dump,
 * gdb).  The string is copied, cut to CORO_NAME_MAX bytes; NULL clears it.
 * Returns 0; EINVAL if attr is NULL. */
CORO_API int coro_attr_set_name(coro_attr_t *attr, const char *name);

/* Sets the width of the guard below the stack: an access there (a stack
 * overflow) faults and is reported (see "Stack overflow" below).  bytes is
 * rounded up to whole pages; 0 restores the default (65536).  A wide guard
 * catches large frames of code built without -fstack-clash-protection; it
 * costs address space only (and, on kernels before Linux 6.13, nothing
 * more than a narrow one).
 * Returns 0; EINVAL if attr is NULL or bytes is above CORO_GUARD_MAX.
 * Since 0.2.0. */
CORO_API int coro_attr_set_guard_size(coro_attr_t *attr, size_t bytes);

/* Creates a coroutine that will run fn(arg) on its own guarded stack when
 * first resumed.  attr may be NULL for the defaults.  No system call is made
 * when a cached stack is available.
 * Returns 0 and stores the handle in *co; EINVAL if co or fn is NULL or attr
 * was not initialised by coro_attr_init; ENOMEM if no stack memory can be
 * had (nothing is left mapped; *co is unchanged); EAGAIN if this is the
 * thread's first call and no thread-specific key is left. */
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
 * never moves between threads), or co was made by coro_spawn (its
 * scheduler runs it); ENOMEM if this is the thread's first call into
 * libcoro and its per-thread state cannot be allocated; EAGAIN if no
 * thread-specific key is left for it.  A coroutine leaves only by
 * coro_yield or by returning: a longjmp out of it, or pthread_exit in it,
 * leaves it running for good. */
CORO_API int coro_resume(coro_t *co, void *in, void **out);

/* Suspends the running coroutine and returns to whoever resumed it, which
 * receives out.  When resumed again, *in (if in is not NULL) is set to the
 * value given to that coro_resume.
 * Returns 0; EPERM if called outside any coroutine; ECANCELED when
 * coro_close resumed the coroutine to end it, and at once, without
 * suspending, for every yield after that: the coroutine should release
 * what it holds and return. */
CORO_API int coro_yield(void *out, void **in);

/* Frees a coroutine and returns its stack to the cache.  A suspended
 * coroutine is abandoned where it stands: its stack is not unwound, so
 * whatever it holds is not released.
 * Returns 0; EINVAL if co is NULL; EBUSY if co is running or normal;
 * EPERM if co was made by coro_spawn (coro_join frees it). */
CORO_API int coro_destroy(coro_t *co);

/* Lua 5.4's coroutine.close: ends a coroutine letting it release what it
 * holds, then frees it.  A suspended co is resumed with its pending
 * coro_yield returning ECANCELED, and every later coro_yield of it returns
 * ECANCELED at once, so it runs to its end (its return value is dropped);
 * a coroutine that yields in a loop without looking at the result never
 * ends.  A READY (never run) or finished co is just destroyed.
 * Returns 0; EINVAL if co is NULL; EBUSY if co is running or normal;
 * EPERM if co was made by coro_spawn (coro_cancel ends those) or is
 * suspended on another thread. */
CORO_API int coro_close(coro_t *co);

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

/* The usable stack size of co in bytes (at least the size asked for); 0 for
 * NULL. */
CORO_API size_t coro_stack_size(const coro_t *co);

/* ----------------------------------------------- coroutine-local storage */
/* pthread keys, per coroutine: each coroutine (made by coro_create or
 * coro_spawn) has its own value for every key, NULL until it sets one;
 * the thread's own flow (outside any coroutine) has one too, a plain
 * thread-local value.  When a coroutine finishes (before the resume or
 * join that sees it end returns), is closed or is destroyed, each of its
 * non-NULL values is handed to its key's destructor, as pthread does at
 * thread exit (the thread's own values then). */

/* The number of keys that can exist at once. */
#define CORO_KEYS_MAX 256

typedef unsigned coro_key_t;

/* Makes a new key, whose value is NULL in every coroutine, with an optional
 * destructor.  Thread-safe.
 * Returns 0; EINVAL if key is NULL; EAGAIN if CORO_KEYS_MAX keys exist. */
CORO_API int coro_key_create(coro_key_t *key, void (*destructor)(void *));

/* Deletes key: its values read as NULL from now on, and no destructor is
 * called for them (free them first if they need it).  Thread-safe.
 * Returns 0; EINVAL if key is not a key (never made, or deleted). */
CORO_API int coro_key_delete(coro_key_t key);

/* Sets the running coroutine's (or the thread's own flow's) value of key.
 * Returns 0; EINVAL if key is not a key; ENOMEM (the value is not set). */
CORO_API int coro_setspecific(coro_key_t key, const void *value);

/* The running coroutine's (or the thread's own flow's) value of key; NULL
 * if it set none, or key is not a key. */
CORO_API void *coro_getspecific(coro_key_t key);

/* ------------------------------------------------------------- scheduler */
/* Each thread has its own scheduler, made by its first coro_spawn (or
 * sync object, or I/O wait) and kept until the thread exits.  A
 * spawned coroutine runs when the thread calls coro_run, until it blocks
 * (coro_join, coro_sleep, a channel, a lock, ...), yields or returns; the
 * scheduler then runs the next ready one.  Spawned coroutines never move to
 * another thread.  Calls that block ("blocking calls") may only be made by
 * a spawned coroutine while its scheduler runs it: anywhere else they
 * return EPERM.  Every blocking call that can wait takes a deadline as its
 * last argument and returns ETIMEDOUT when it passes (one already passed
 * only tries: see "timers"), and ECANCELED when the coroutine is cancelled
 * (coro_cancel).
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
 * handle never joined is freed when coro_run returns, and named on stderr
 * if the environment variable CORO_DEBUG is set); if co is NULL the
 * coroutine is detached and freed when it finishes.  Any code on the thread may call it: main flow, spawned or
 * plain coroutines.  Coroutines still unrun when the thread exits (no
 * coro_run after coro_spawn) are freed (and counted on stderr with
 * CORO_DEBUG).
 * The coroutine gets its stack when it first runs, so a queued coroutine
 * costs its descriptor only; if no stack can be had then, it never runs
 * and finishes at once with no result (coro_join returns ENOMEM).
 * Returns 0; EINVAL if fn is NULL or attr was not initialised by
 * coro_attr_init; ENOMEM if no memory can be had (nothing is left
 * allocated, *co is unchanged). */
CORO_API int coro_spawn(coro_t **co, coro_fn fn, void *arg, const coro_attr_t *attr);

/* Runs this thread's scheduler until every coroutine it was given has
 * finished, sleeping (not polling) while all of them wait for a deadline.
 * Call it from the thread's own flow, outside any coroutine.
 * If at some point every remaining coroutine is blocked with no deadline
 * pending and nothing else that could wake it (no fd, signal or offload
 * waited for, and no wait that another thread could end: a deadlock), it
 * prints on stderr a report naming each one
 * (id, name, the call it waits in, whom it joins), then breaks the
 * deadlock in stages, each ending the waits of one more kind and making
 * every later wait of that kind fail at once, so that the coroutines can
 * only unwind and finish: first every wait but joins and condition-wait
 * relocks (they return ECANCELED), then, if only those are left, joins
 * (ECANCELED), last relocks whose mutex can never be had (coro_cond_wait
 * returns EDEADLK).  When they all have finished, coro_run returns
 * EDEADLK.
 * When it returns, nothing spawned is left: handles that were never joined
 * are freed (they are invalid from then on; named on stderr with
 * CORO_DEBUG).  Another thread can end a wait on a shared object (made
 * once the process has a pool, see "synchronisation"), a join of a pool
 * thread's coroutine or coro_pool_spawn's wait for a handle: while a
 * coroutine waits so, the thread sleeps and reports no deadlock.  A pool
 * thread never reports one.
 * Returns 0 (also when nothing was spawned); EDEADLK after a deadlock as
 * above; EPERM if called inside a coroutine; ENOMEM if this thread's state
 * cannot be allocated. */
CORO_API int coro_run(void);

/* Waits until co finishes or the deadline passes (absolute CLOCK_MONOTONIC
 * nanoseconds, see coro_now; -1 for none), stores co's return value in
 * *result (if result is not NULL) and frees co.  Blocking call: only a
 * spawned coroutine run by its scheduler may join.  co may belong to the
 * caller's thread, or to another thread if that is a pool thread
 * (coro_pool_create): its thread then hands the result over and frees it,
 * and a deadline or a cancel ends the wait as on one thread.  A deadline
 * already passed (0 included) only tries: a finished co is joined,
 * otherwise ETIMEDOUT at once.  The EDEADLK check follows chains of joins
 * on one thread only.
 * Returns 0; EPERM if the caller is not a spawned coroutine run by its
 * thread's scheduler (the thread's own flow included: use coro_run, and
 * join from a coroutine), or co belongs to another thread that is not a
 * pool thread (its coro_run frees co when it returns); EINVAL if co is
 * NULL, was not made by coro_spawn, is detached, another coroutine is
 * joining it already, or deadline is below -1; EDEADLK if co is the caller,
 * or co is (directly or through a chain of joins) joining the caller;
 * ETIMEDOUT if co has not finished by the deadline; ECANCELED if the caller
 * was cancelled (for these two, co is still joinable); ENOMEM if co never
 * ran because no stack could be had for it (co is freed, *result is not
 * set). */
CORO_API int coro_join(coro_t *co, void **result, int64_t deadline);

/* Cancels co's current blocking call, or, if it is not blocked now, its
 * next one: that call returns ECANCELED (once; later calls block as
 * usual).  A cancel is never lost: if something else ended co's wait
 * first (a sender handed it an element, an unlock gave it the mutex, its
 * deadline passed) and co has not run since, that call returns what it
 * got and co's next wait (a blocking call that would wait) returns
 * ECANCELED at once.  The part of
 * coro_cond_wait that takes the mutex back is not cancellable: a cancel
 * that comes then waits for the next call.  co may be the caller.  May be
 * called from anywhere on co's thread, in or outside coroutines, and, for
 * a coroutine of a pool thread, from anywhere on any thread: the cancel is
 * then a message to co's thread and takes effect there shortly after (it
 * does nothing if co finishes first).
 * Returns 0; EINVAL if co is NULL or was not made by coro_spawn; ESRCH if
 * co has finished (from another thread: had finished when the call
 * looked); ENOMEM if the message to another thread cannot be allocated;
 * EPERM if co belongs to another thread that is not a pool thread. */
CORO_API int coro_cancel(coro_t *co);

/* ----------------------------------------------------------------- timers */
/* Deadlines are absolute nanoseconds on CLOCK_MONOTONIC, -1 meaning none,
 * and every call that can wait takes one as its last argument.  A deadline
 * that has already passed (0 included) means "try": the call completes at
 * once if it can, and otherwise returns ETIMEDOUT without waiting and
 * without letting another coroutine run.  Deadlines live in a heap per
 * scheduler: adding or removing one costs O(log n) with any number
 * pending; coroutines whose deadlines pass while they wait wake in
 * deadline order (equal deadlines in the order they were set). */

/* The current time: CLOCK_MONOTONIC in nanoseconds.  Any thread, any
 * context. */
CORO_API int64_t coro_now(void);

/* Blocks the calling spawned coroutine for ns nanoseconds: the relative
 * form of coro_sleep_until(coro_now() + ns).  0 or less returns at once
 * (use coro_yield to let the other ready coroutines run).
 * Returns 0 when the time has passed; ECANCELED if the coroutine was
 * cancelled (coro_cancel) before or while sleeping; EPERM if the caller is
 * not a spawned coroutine run by this thread's scheduler. */
CORO_API int coro_sleep(int64_t ns);

/* Blocks the calling spawned coroutine until deadline (see coro_now); -1
 * sleeps until cancelled; a deadline already passed returns at once.
 * Returns 0 when the deadline has passed; ECANCELED if the coroutine was
 * cancelled before or while sleeping; EPERM if the caller is not a spawned
 * coroutine run by this thread's scheduler; EINVAL if deadline is below -1. */
CORO_API int coro_sleep_until(int64_t deadline);

/* Ends this thread's coro_run as Go ends a program when main returns:
 * every spawned coroutine of the thread (the caller's waits included) is
 * cancelled, and from then on every wait but coro_join and coro_group_wait
 * returns ECANCELED at once, so they all unwind and finish; coro_run then
 * returns 0, with no deadlock report and nothing left allocated.  A
 * coroutine that ignores ECANCELED and loops keeps coro_run running.
 * Any code on the thread may call it.
 * Returns 0; EPERM if called from a plain (not spawned) coroutine. */
CORO_API int coro_shutdown(void);

/* ----------------------------------------------------------------- groups */
/* Structured concurrency, as libdill's bundles and Trio's nurseries: a
 * group is the set of coroutines spawned into it; coro_group_wait waits
 * until all of them have finished, coro_group_cancel cancels them all,
 * coro_group_destroy does both and frees the group.  A member's own
 * spawns are not members unless spawned into the group: a member that
 * runs a group of its own passes a cancel on by destroying that group as
 * it unwinds.
 * A group made by a coroutine of a pool thread is shared by the
 * coroutines of every thread: any of them may wait for it, cancel it or
 * destroy it, and coroutines of pool threads (whose coroutines any thread
 * can cancel) may spawn members into it, on their own thread with
 * coro_group_spawn or on any pool thread with coro_group_spawn_on.  Until
 * another thread uses it, its thread's calls take no lock.  A group made
 * on any other thread is that thread's alone (EPERM from another thread),
 * with or without a pool. */
typedef struct coro_group coro_group_t;

/* Returns 0 with a new empty group in *g; EINVAL if g is NULL; ENOMEM. */
CORO_API int coro_group_create(coro_group_t **g);

/* coro_spawn into g: co as for coro_spawn (NULL: a member nobody joins;
 * otherwise it must be joined as usual).
 * Returns as coro_spawn; EINVAL if g is NULL; EPERM from another thread
 * than g's, unless g is shared and the caller's thread a pool's. */
CORO_API int coro_group_spawn(coro_group_t *g, coro_t **co, coro_fn fn, void *arg,
                              const coro_attr_t *attr);

/* Waits until every member has finished, including those that
 * coro_group_spawn_on has sent and that have not started yet.  From a
 * spawned coroutine (of any thread, for a shared group) a blocking call
 * (deadline as everywhere); from the own flow of g's thread it runs the
 * scheduler until the group is empty (other coroutines run too,
 * and those left stay queued for the next coro_run; the deadline does not
 * apply there).
 * Returns 0; EINVAL if g is NULL or the deadline is below -1; EDEADLK if
 * the caller is a member, or (own flow) a deadlock was broken before the
 * members finished; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_group_wait(coro_group_t *g, int64_t deadline);

/* coro_cancel on every member that has not finished, on every thread; a
 * member that coro_group_spawn_on has sent and that has not started yet
 * is cancelled as it starts.
 * Returns 0; EINVAL if g is NULL; EPERM from another thread than that of
 * a group that is not shared; ENOMEM if a cancel could not be sent to a
 * member on another thread (the others were cancelled). */
CORO_API int coro_group_cancel(coro_group_t *g);

/* Cancels every member, waits until all have finished (as coro_group_wait
 * with no deadline; a cancel of the caller meanwhile is kept for its next
 * wait) and frees g.  A program's main can end everything it started in
 * a group with this one call.
 * Returns 0; EINVAL if g is NULL; EDEADLK if the caller is a member;
 * EBUSY if a coroutine waits in coro_group_wait on g; EPERM (also from
 * the own flow of another thread than g's, which cannot wait for it);
 * ENOMEM as coro_group_cancel, and then g is not freed (call again).
 * Members that join g while it is destroyed start cancelled. */
CORO_API int coro_group_destroy(coro_group_t *g);

/* -------------------------------------------------------- synchronisation */
/* Channels, select, mutex, condition variable, semaphore, wait group and
 * one-shot future, for the coroutines of one thread, or of every thread
 * for shared objects.
 *
 * Handles are opaque, made by coro_X_create and freed by coro_X_destroy.
 * An object made before the process's first coro_pool_create belongs to
 * the thread that made it: every call on it from another thread returns
 * EPERM.  One made after, on any thread, is shared: coroutines of any
 * threads may use it and any thread may destroy it, each call under the
 * object's lock.  One made by a coroutine of a pool thread takes no lock
 * while that thread alone uses it; the first call from another thread
 * waits while that thread makes it shared.  One made after elsewhere (by
 * main, say, for the pool's coroutines) goes the same way with the pool
 * thread whose coroutine calls on it first.  A woken coroutine resumes
 * on its own thread.
 *
 * Deadlines: every call that can wait takes its deadline as its last
 * argument, an absolute time in nanoseconds on CLOCK_MONOTONIC (compare
 * coro_now()), or -1 for none.  A deadline that has passed means "try": the
 * call completes at once if it can, otherwise it returns ETIMEDOUT without
 * waiting and without letting another coroutine run.
 *
 * Waiting: a call that can wait must be made by a coroutine run by this
 * thread's scheduler (coro_spawn); from anywhere else it returns EPERM, even
 * when it would not have had to wait.  Waiters are served in FIFO order.
 * A waiting call is a cancellation point: coro_cancel makes it return
 * ECANCELED (a call that completes without waiting does not consume a
 * pending cancel).  Calls that never wait (close, unlock, signal, release,
 * add, set, destroy) may be made from anywhere on the scheduler's thread,
 * and from anywhere on any thread for a shared object.
 *
 * Errors common to all: EINVAL for a NULL handle or bad argument (a
 * deadline below -1 included), ENOMEM when memory cannot be had, EBUSY to
 * destroy an object that coroutines are waiting on, EPERM from a thread
 * other than the object's for an object that is not shared. */

/* A channel of fixed-size elements, copied in and out by value. */
typedef struct coro_chan coro_chan_t;

/* Creates a channel carrying elements of elem_size bytes (0 is allowed: a
 * channel of signals) that buffers up to cap of them.  cap 0 makes an
 * unbuffered channel: a send waits for a receiver and hands its element
 * over directly.
 * Returns 0 and stores the handle in *ch; EINVAL if ch is NULL or
 * elem_size * cap overflows; ENOMEM. */
CORO_API int coro_chan_create(coro_chan_t **ch, size_t elem_size, size_t cap);

/* Frees a channel; elements still buffered are dropped.
 * Returns 0; EINVAL if ch is NULL; EBUSY if a coroutine waits on it (in a
 * send, a receive or a select). */
CORO_API int coro_chan_destroy(coro_chan_t *ch);

/* Sends a copy of the elem_size bytes at elem: to the first waiting
 * receiver if any, else into the buffer if it has room, else waits until
 * one of those happens, the deadline passes, the channel is closed or the
 * caller is cancelled.
 * Returns 0 once the element is delivered or buffered; EINVAL if ch is NULL,
 * or elem is NULL and elem_size is not 0; EPIPE if the channel is closed
 * (also when it is closed while the sender waits: the element is not
 * delivered); ETIMEDOUT; ECANCELED; EPERM (see above). */
CORO_API int coro_chan_send(coro_chan_t *ch, const void *elem, int64_t deadline);

/* Receives the next element into elem (elem_size bytes; elem may be NULL to
 * drop it): the oldest buffered one, else one from the first waiting
 * sender, else waits for a sender, the deadline, a close or a cancel.
 * Elements buffered before a close are still received.
 * Returns 0 with the element in *elem; EINVAL if ch is NULL; EPIPE if the
 * channel is closed and no element is left; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_chan_recv(coro_chan_t *ch, void *elem, int64_t deadline);

/* Closes a channel: later sends fail with EPIPE, receives drain what is
 * buffered and then fail with EPIPE.  Every waiting sender and receiver is
 * woken with EPIPE.  Any coroutine, or the thread itself, may close.
 * Returns 0; EINVAL if ch is NULL; EPIPE if it was already closed. */
CORO_API int coro_chan_close(coro_chan_t *ch);

/* The number of elements buffered in ch now (0 for an unbuffered channel:
 * a waiting sender's element is not buffered; still counted after a close
 * until received), and the capacity given to coro_chan_create.  For
 * metrics and batching; call them on the channel's thread.  0 if ch is
 * NULL. */
CORO_API size_t coro_chan_len(const coro_chan_t *ch);
CORO_API size_t coro_chan_cap(const coro_chan_t *ch);

/* Operations of a select clause. */
typedef enum coro_select_op {
    CORO_SELECT_SEND = 1,   /* send *elem on chan */
    CORO_SELECT_RECV = 2    /* receive from chan into elem (may be NULL) */
} coro_select_op_t;

/* One clause of coro_select.  A clause whose chan is NULL is never ready
 * (a way to switch one off). */
typedef struct coro_select_clause {
    coro_chan_t *chan;
    coro_select_op_t op;
    void *elem;
} coro_select_clause_t;

/* Waits until one of n clauses can proceed and performs it (exactly one).
 * If several are ready, each is picked with the same probability, so that
 * none starves.  A clause whose chan is NULL is never ready, as a nil
 * channel in Go: with every clause NULL (or n 0) only the deadline or a
 * cancel ends the wait.  A clause whose channel is closed is ready: it completes with
 * EPIPE (a receive first drains what is buffered).  If index is not NULL it
 * receives the number of the clause that completed.  n may be 0 (then only
 * the deadline or a cancel ends the wait).
 * Returns 0 when clause *index sent or received its element; EPIPE when
 * clause *index found its channel closed (drained, for a receive); EINVAL
 * if clauses is NULL and n is not 0, a clause's op is not one of the
 * above, or a send clause's elem is NULL with a non-zero elem_size;
 * ETIMEDOUT; ECANCELED (*index is not set for these); EPERM; ENOMEM (more
 * than 8 clauses need memory for their wait records). */
CORO_API int coro_select(const coro_select_clause_t *clauses, size_t n,
                         int64_t deadline, size_t *index);

/* A mutual exclusion lock owned by a coroutine.  Not recursive.  Unlock
 * hands it straight to the first waiter, so waiters get it in FIFO order. */
typedef struct coro_mutex coro_mutex_t;

/* Returns 0 and stores a new unlocked mutex in *m; EINVAL if m is NULL;
 * ENOMEM. */
CORO_API int coro_mutex_create(coro_mutex_t **m);

/* Returns 0; EINVAL if m is NULL; EBUSY if it is locked or waited on, a
 * coroutine in coro_cond_wait with it included (it will take m back). */
CORO_API int coro_mutex_destroy(coro_mutex_t *m);

/* Locks m, waiting while another coroutine holds it.
 * Returns 0 with m held; EINVAL if m is NULL; EDEADLK if the caller holds
 * it already; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_mutex_lock(coro_mutex_t *m, int64_t deadline);

/* Unlocks m; the first waiter, if any, now holds it.  The holder is known
 * by its coroutine id, never reused: a later coroutine made at a finished
 * holder's address does not hold m.
 * Returns 0; EINVAL if m is NULL; EPERM if the caller does not hold it. */
CORO_API int coro_mutex_unlock(coro_mutex_t *m);

/* A condition variable, used with a coro_mutex_t. */
typedef struct coro_cond coro_cond_t;

/* Returns 0 and stores a new condition variable in *c; EINVAL if c is
 * NULL; ENOMEM. */
CORO_API int coro_cond_create(coro_cond_t **c);

/* Returns 0; EINVAL if c is NULL; EBUSY if a coroutine waits on it. */
CORO_API int coro_cond_destroy(coro_cond_t *c);

/* Unlocks m, which the caller must hold, and waits until signalled, then
 * locks m again before returning: it returns with m held in every case
 * (musl's rule), whatever ended the wait.  Taking m back ignores the
 * deadline and cancels (a cancel that comes then stays pending for the
 * caller's next blocking call).  A deadline already passed or a pending
 * cancel returns at once, without unlocking m.  As with pthreads, recheck
 * the condition in a loop.  The one case without m: coro_run breaking a
 * deadlock in which m's owner can never unlock it (it finished holding m):
 * EDEADLK.
 * Returns 0 when signalled; EINVAL if c or m is NULL; EPERM if the caller
 * does not hold m (or is not a scheduled coroutine, or c or m is not
 * shared and belongs to another thread); ETIMEDOUT if the deadline passed
 * first; ECANCELED if the caller was cancelled first; EDEADLK as above (m
 * not held). */
CORO_API int coro_cond_wait(coro_cond_t *c, coro_mutex_t *m, int64_t deadline);

/* Wakes the first waiter (signal) or all of them (broadcast); no effect if
 * none waits.  The caller need not hold the mutex.
 * Returns 0; EINVAL if c is NULL. */
CORO_API int coro_cond_signal(coro_cond_t *c);
CORO_API int coro_cond_broadcast(coro_cond_t *c);

/* A counting semaphore.  Release hands a unit straight to the first
 * waiter, so waiters are served in FIFO order. */
typedef struct coro_sem coro_sem_t;

/* Returns 0 and stores a new semaphore holding value units in *s; EINVAL if
 * s is NULL; ENOMEM. */
CORO_API int coro_sem_create(coro_sem_t **s, unsigned value);

/* Returns 0; EINVAL if s is NULL; EBUSY if a coroutine waits on it. */
CORO_API int coro_sem_destroy(coro_sem_t *s);

/* Takes one unit, waiting while there is none.
 * Returns 0; EINVAL if s is NULL; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_sem_acquire(coro_sem_t *s, int64_t deadline);

/* Gives one unit back (to the first waiter, if any).
 * Returns 0; EINVAL if s is NULL; EOVERFLOW if the count is UINT_MAX. */
CORO_API int coro_sem_release(coro_sem_t *s);

/* The units available now; 0 for NULL.  Call it on s's thread unless s is
 * shared (another thread may then change it as soon as it is read). */
CORO_API unsigned coro_sem_value(const coro_sem_t *s);

/* A wait group: a counter of outstanding tasks and a wait for it to reach
 * zero. */
typedef struct coro_wg coro_wg_t;

/* Returns 0 and stores a new wait group with count 0 in *wg; EINVAL if wg
 * is NULL; ENOMEM. */
CORO_API int coro_wg_create(coro_wg_t **wg);

/* Returns 0; EINVAL if wg is NULL; EBUSY if a coroutine waits on it. */
CORO_API int coro_wg_destroy(coro_wg_t *wg);

/* Adds delta (which may be negative) to the count; when it reaches zero,
 * every waiter is woken.  coro_wg_done is coro_wg_add(wg, -1).
 * Returns 0; EINVAL if wg is NULL or the count would go below zero (it is
 * left unchanged); EOVERFLOW if it would pass LONG_MAX. */
CORO_API int coro_wg_add(coro_wg_t *wg, long delta);
CORO_API int coro_wg_done(coro_wg_t *wg);

/* Waits until the count is zero (returns at once if it is).
 * Returns 0; EINVAL if wg is NULL; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_wg_wait(coro_wg_t *wg, int64_t deadline);

/* A one-shot future: a value set once and awaited by any number of
 * coroutines. */
typedef struct coro_future coro_future_t;

/* Returns 0 and stores a new unset future in *f; EINVAL if f is NULL;
 * ENOMEM. */
CORO_API int coro_future_create(coro_future_t **f);

/* Frees f; allowed right after coro_future_set even though its waiters
 * have not run yet (each has the value already).
 * Returns 0; EINVAL if f is NULL; EBUSY if a coroutine waits on it. */
CORO_API int coro_future_destroy(coro_future_t *f);

/* Sets the value and wakes every waiter.  Only the first set counts.
 * Returns 0; EINVAL if f is NULL; EBUSY if it was set already (the value
 * is not changed). */
CORO_API int coro_future_set(coro_future_t *f, void *value);

/* Waits until f is set (returns at once if it is) and stores its value in
 * *value if value is not NULL.
 * Returns 0; EINVAL if f is NULL; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_future_wait(coro_future_t *f, void **value, int64_t deadline);

/* -------------------------------------------------------------------- io */
/* I/O that reads like blocking code: each call tries the system call
 * first and, only when it would block (EAGAIN), parks the calling
 * coroutine until the fd is ready, its deadline passes (ETIMEDOUT; a
 * deadline already passed only tries) or it is cancelled (ECANCELED).
 * Meanwhile the scheduler runs the other coroutines, and when none is
 * ready the thread sleeps in epoll until an fd, a deadline or a wakeup.
 * Each thread's scheduler has its own reactor (epoll), made on first use.
 *
 * Who may call: a coroutine run by this thread's scheduler (coro_spawn);
 * anywhere else these return EPERM.  The fds must be non-blocking
 * (O_NONBLOCK): a blocking fd never says EAGAIN, so the call blocks the
 * whole thread, as a plain system call would.  coro_accept, coro_tcp_listen
 * and coro_tcp_dial make non-blocking, close-on-exec fds.  Regular files
 * are always "ready" (epoll cannot watch them): reads and writes of them
 * block the thread while the disk works; use coro_offload for those.
 * An fd is registered with the reactor at its first EAGAIN and stays so
 * until coro_fd_close; close it with coro_fd_close (which wakes its
 * waiters with EBADF).  A plain close(2) of a registered fd is tolerated:
 * events of the old file are dropped, and a new fd with the same number
 * is found out at its next EAGAIN, or within about a second by a
 * coroutine already waiting on it.  Only stream sockets libcoro made
 * (coro_accept, coro_tcp_listen, an fd given to coro_connect) may park
 * without trying first, and only right after a short transfer; other fds
 * (message sockets, pipes, fds the user made) try the system call first,
 * except one that took the number of such a socket closed with close(2)
 * right after a short transfer: its first wait may take until that
 * second's recheck (close them with coro_fd_close).
 *
 * After fork(2) the child's thread gets a reactor of its own (the
 * parent's epoll set is not shared): its coroutines that were waiting on
 * an fd retry their calls there, and offloads in flight return ECANCELED.
 *
 * Byte counts: *n (never NULL) receives the bytes moved, also when the
 * call fails or times out part way.  EINTR is retried.  Other errors are
 * those of the system call (ECONNRESET, EPIPE, ...).  As with write(2),
 * writing to a socket whose peer has gone raises SIGPIPE unless it is
 * ignored or MSG_NOSIGNAL is given to coro_send. */

enum { CORO_IN = 1, CORO_OUT = 2 };           /* coro_wait_fd events */

/* Waits until fd is readable (CORO_IN) and/or writable (CORO_OUT), as
 * poll(2) would say; *revents (may be NULL) gets the CORO_IN/CORO_OUT bits
 * that are ready, with both set on an error or hang-up.  It moves no
 * data: as with poll(2), every coroutine waiting sees the readiness.
 * Returns 0; EINVAL if events has no known bit; EBADF if fd is negative or
 * not open, or is closed by coro_fd_close while waiting; ETIMEDOUT;
 * ECANCELED; EPERM; ENOMEM. */
CORO_API int coro_wait_fd(int fd, unsigned events, unsigned *revents, int64_t deadline);

/* read(2) that parks: at least one byte, or *n == 0 at end of file. */
CORO_API int coro_read(int fd, void *buf, size_t len, size_t *n, int64_t deadline);
/* write(2) that parks until all len bytes are written or it fails. */
CORO_API int coro_write(int fd, const void *buf, size_t len, size_t *n, int64_t deadline);
/* readv(2) once (at least one byte, or 0 at end of file) / writev(2) of
 * every byte. */
CORO_API int coro_readv(int fd, const struct iovec *iov, int iovcnt, size_t *n,
                        int64_t deadline);
CORO_API int coro_writev(int fd, const struct iovec *iov, int iovcnt, size_t *n,
                         int64_t deadline);
/* recv(2) once; send(2) of every byte (MSG_NOSIGNAL is a good flag). */
CORO_API int coro_recv(int fd, void *buf, size_t len, int flags, size_t *n,
                       int64_t deadline);
CORO_API int coro_send(int fd, const void *buf, size_t len, int flags, size_t *n,
                       int64_t deadline);
/* recvmsg(2) / sendmsg(2) once each: *n is what the call returned. */
CORO_API int coro_recvmsg(int fd, struct msghdr *msg, int flags, size_t *n,
                          int64_t deadline);
CORO_API int coro_sendmsg(int fd, const struct msghdr *msg, int flags, size_t *n,
                          int64_t deadline);

/* accept4(2) that parks; *fd gets the new connection, non-blocking and
 * close-on-exec.  addr and addrlen as for accept(2) (may be NULL).
 * Several coroutines may accept on one listener: served first come, first
 * served. */
CORO_API int coro_accept(int lfd, int *fd, struct sockaddr *addr, socklen_t *addrlen,
                         int64_t deadline);

/* connect(2) on a non-blocking socket, waiting for the handshake.
 * Returns 0 when connected; the socket's error (ECONNREFUSED,
 * ENETUNREACH, ...) when it failed; ETIMEDOUT when the deadline passed
 * first (the socket is then still connecting: close it). */
CORO_API int coro_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                          int64_t deadline);

/* poll(2) that parks: waits until one of fds is ready; *nready (may be
 * NULL) is the number with revents set.  nfds 0 waits for the deadline or
 * a cancel.  Entries with fd < 0 are ignored, as by poll(2); an entry
 * with events 0 waits for a hang-up or error (POLLHUP, POLLERR).  Like
 * coro_wait_fd, it moves no data: every waiter sees the readiness.
 * *nready is left alone when it fails. */
CORO_API int coro_poll(struct pollfd *fds, nfds_t nfds, int *nready, int64_t deadline);

/* Closes fd after waking every coroutine waiting on it with EBADF and
 * forgetting it in the reactor.  Any code on the thread may call it; call
 * it on the thread whose coroutines use fd (another thread's reactor is
 * not told, and finds out only as for a plain close(2)).
 * Returns 0, or close(2)'s error (EBADF). */
CORO_API int coro_fd_close(int fd);

/* A TCP listener on host:port with listen(2)'s backlog (negative:
 * SOMAXCONN) (host NULL: every address, IPv6 and IPv4 on one socket where
 * the machine has IPv6; names are
 * resolved with a blocking getaddrinfo: pass numeric addresses from a
 * coroutine that must not block), SO_REUSEADDR, non-blocking and
 * close-on-exec.  Any code may call it.
 * Returns 0 with *fd; EINVAL for a NULL fd or port; a getaddrinfo EAI_*
 * code (negative) when the name cannot be resolved (EAI_SYSTEM: the
 * errno value instead); else the error of
 * socket/bind/listen (EADDRINUSE, ...). */
CORO_API int coro_tcp_listen(const char *host, const char *port, int backlog, int *fd);

/* A TCP connection to host:port: resolves it (coro_getaddrinfo), then
 * tries each address in turn with coro_connect until one answers or the
 * deadline passes.  Returns 0 with *fd (non-blocking, close-on-exec);
 * EINVAL if host, port or fd is NULL; the last address's error; a getaddrinfo EAI_* code (negative); ETIMEDOUT;
 * ECANCELED; EPERM. */
CORO_API int coro_tcp_dial(const char *host, const char *port, int *fd, int64_t deadline);

/* Runs fn(arg) on one of a small pool of threads (started on first use;
 * CORO_OFFLOAD_THREADS in the environment sets how many, default 4) and
 * parks until it returns; *result (may be NULL) gets its return value.
 * For blocking work: regular-file I/O, DNS, a library without a
 * non-blocking interface.  On ETIMEDOUT or ECANCELED the coroutine goes
 * on at once while fn still runs (also when the deadline had passed or a
 * cancel was pending before the call: fn is always run): its result is
 * then dropped when it returns, so fn must own arg (or arg must outlive
 * it: e.g. free it in fn) and must not touch the caller's stack.
 * Returns 0; EINVAL if fn is NULL; ENOMEM / EAGAIN if no thread or memory
 * can be had; ETIMEDOUT; ECANCELED; EPERM. */
CORO_API int coro_offload(void *(*fn)(void *), void *arg, void **result, int64_t deadline);

/* netdb.h declares it only for POSIX builds (not strict -std=c11). */
struct addrinfo;

/* getaddrinfo(3) run by coro_offload.  Returns 0 with *res (free it with
 * freeaddrinfo), a positive errno (EINVAL if res is NULL or both node and
 * service are; ETIMEDOUT, ECANCELED, EPERM, ENOMEM; EAI_SYSTEM's errno),
 * or getaddrinfo's EAI_* code (negative). */
CORO_API int coro_getaddrinfo(const char *node, const char *service,
                              const struct addrinfo *hints, struct addrinfo **res,
                              int64_t deadline);

/* Waits for one of the signals in set, as sigwaitinfo(2): the caller
 * blocks them first (pthread_sigmask, in every thread), else they are
 * delivered as usual and never seen here.  *signo (may be NULL) gets the
 * signal.  Served through one signalfd per scheduler, which watches only
 * the signals its coroutines are waiting for: a process-directed signal
 * goes to a thread with a waiter for it, whichever threads waited before.
 * Returns 0; EINVAL if set is NULL or empty of catchable signals;
 * ETIMEDOUT; ECANCELED; EPERM; ENOMEM. */
CORO_API int coro_signal_wait(const sigset_t *set, int *signo, int64_t deadline);

/* ---------------------------------------------------------------- threads */
/* A pool of threads, each running its own scheduler (and reactor).  A
 * coroutine is placed on a thread when it is spawned and stays there: it
 * never migrates, so thread-local storage, errno included, stays its
 * thread's.  Channels, locks, wait groups and futures made once the
 * process has a pool are shared by coroutines of every thread (see
 * "synchronisation"), and so are groups made on a pool thread (see
 * "groups").  A coroutine of a pool thread can be joined by a coroutine of
 * any thread and cancelled from anywhere.  An idle thread takes CORO_ANY
 * spawns that have waited for a busy one (see coro_pool_spawn). */
typedef struct coro_pool coro_pool_t;

/* coro_pool_spawn's thread: the next thread, round robin. */
#define CORO_ANY (-1)

/* Starts nthreads threads (1..1024), each waiting for coroutines to run.
 * Returns 0; EINVAL if pool is NULL or nthreads is out of range; EAGAIN
 * if a thread cannot be started; EMFILE, ENOMEM (nothing is left
 * running). */
CORO_API int coro_pool_create(coro_pool_t **pool, unsigned nthreads);

/* Spawns fn(arg) on pool thread `thread` (0..size-1), or on the next one
 * round robin for CORO_ANY (without a handle, one that has waited 5 ms for
 * its busy thread is taken by an idle thread instead: it has not started,
 * and started coroutines never move), as coro_spawn does there; the
 * caller may be any thread or coroutine.  With co NULL the coroutine is
 * detached.
 * Otherwise co receives a handle, for any thread (CORO_ANY included): for
 * another thread than the caller's, the call waits until that thread has
 * made the coroutine (a spawned coroutine parks, not cancellable; any
 * other caller blocks its thread), which may have started by the time the
 * call returns.  The handle is joined once by a coroutine of any thread,
 * and may be cancelled from anywhere; one never joined is freed by
 * coro_pool_destroy.
 * Returns 0; EINVAL for a NULL pool or fn, or a thread out of range (with
 * co, also an attr not initialised by coro_attr_init); ECANCELED after
 * coro_pool_shutdown (or a coro_shutdown on that thread; with CORO_ANY,
 * on every thread, as closed threads are passed over); ENOMEM.  A
 * coroutine whose stack cannot be had on its thread never runs (and counts
 * as finished). */
CORO_API int coro_pool_spawn(coro_pool_t *pool, int thread, coro_t **co, coro_fn fn,
                             void *arg, const coro_attr_t *attr);

/* coro_pool_spawn into group g, which counts the member from this call
 * on (a coro_group_wait does not end before it has run), as
 * coro_group_spawn does on the caller's thread.  g must be a group made
 * on a pool thread (see "groups"): it is shared from then on.
 * Returns as coro_pool_spawn; EINVAL also for a NULL g; EPERM for a group
 * made on another thread than a pool's. */
CORO_API int coro_group_spawn_on(coro_group_t *g, coro_pool_t *pool, int thread, coro_t **co,
                                 coro_fn fn, void *arg, const coro_attr_t *attr);

/* Blocks the calling thread until every coroutine spawned on the pool has
 * finished, or until deadline (CLOCK_MONOTONIC ns, -1: none).
 * Returns 0; ETIMEDOUT; EINVAL for a NULL pool or a deadline below -1;
 * EDEADLK from a coroutine of the pool (it would wait for itself); EPERM
 * from any other coroutine (it would block its thread's scheduler). */
CORO_API int coro_pool_wait(coro_pool_t *pool, int64_t deadline);

/* Ends the pool's coroutines as coro_shutdown ends a thread's: each
 * thread's coroutines are cancelled and every later wait of theirs fails,
 * so they unwind; later spawns fail with ECANCELED.  Then waits as
 * coro_pool_wait, until deadline.  Returns as coro_pool_wait. */
CORO_API int coro_pool_shutdown(coro_pool_t *pool, int64_t deadline);

/* Shuts the pool down if it was not (waiting without a deadline), stops
 * its threads and frees it.  Returns 0; EINVAL, EDEADLK, EPERM as
 * coro_pool_wait. */
CORO_API int coro_pool_destroy(coro_pool_t *pool);

/* The number of threads of pool; 0 for NULL. */
CORO_API unsigned coro_pool_size(const coro_pool_t *pool);

/* The caller's thread index in its pool, or -1 on a thread of no pool. */
CORO_API int coro_pool_thread(void);

/* ------------------------------------------------------------ diagnostics */
/* (debug layer: coro_dump, coro_backtrace, registry root for debuggers) */

/* The root from which a debugger finds every live coroutine by reading
 * memory alone: in a live process without running code in it, or in a core
 * file, even when the library is stripped (this is a dynamic symbol, and
 * the layout of everything it leads to is given here as byte offsets, so
 * no debug information is needed).  Programs have no use for it; gdb's
 * extension (installed with the library, see coro_debug(7)) reads it.
 *
 * The walk: coroutine descriptors live in chunks.  The pointer at chunks
 * is the newest chunk; each chunk's older neighbour is the pointer at
 * chunk + chunk_next (a null pointer ends the list).  A chunk holds count
 * descriptors (the uint32_t at chunk + chunk_count), the i-th at
 * chunk + chunk_first + i * coro_size.  A descriptor is a live coroutine
 * when its uint32_t seq (at coro_seq) is 2 modulo 4 (odd while it is being
 * created or destroyed, a multiple of 4 while free; memory that reads as
 * zeros is free).  A coroutine's fields are at the coro_* offsets: id
 * (uint64_t), name (coro_name_size chars, NUL-terminated), state (int, a
 * coro_state_t), fn (its entry function), ctx, a ucontext_t holding its
 * saved registers while it is not running (uc_mcontext at ctx +
 * ctx_mcontext), stack (a pointer to its stack's descriptor, null while it
 * has no stack yet) and guard (size_t: bytes of guard below its stack).
 * In a stack's descriptor, [lo, hi) is the usable stack (pointers at
 * stack_lo and stack_hi); the guard is [lo - guard, lo).  Pointers and
 * size_t fields are ptr_size bytes.  Chunks are never unmapped and their
 * list only grows, and every store that publishes one is a release, so a
 * walk never meets a dangling pointer.
 *
 * Compatibility: magic is CORO_DEBUG_MAGIC; version is CORO_DEBUG_VERSION,
 * raised when a field changes meaning (version 2: the descriptor table
 * replaced version 1's walk of stack pools); new fields are only appended,
 * and size says how many there are. */
#define CORO_DEBUG_MAGIC 0xC0D3B6C0u
#define CORO_DEBUG_VERSION 2u

struct coro_debug_root {
    uint32_t magic;         /* CORO_DEBUG_MAGIC */
    uint32_t version;       /* CORO_DEBUG_VERSION */
    uint32_t size;          /* sizeof(struct coro_debug_root) */
    uint32_t ptr_size;      /* sizeof(void *), also sizeof(size_t) */
    const void *chunks;     /* where the pointer to the newest chunk is */
    const void *reserved_;  /* null */
    uint32_t chunk_next;    /* offsets in a chunk: older chunk (pointer), */
    uint32_t chunk_count;   /* descriptors in it (uint32_t), */
    uint32_t chunk_first;   /* the first descriptor */
    uint32_t coro_size;     /* distance between two descriptors */
    uint32_t coro_seq;      /* offsets in a descriptor */
    uint32_t coro_id;
    uint32_t coro_name;
    uint32_t coro_name_size;
    uint32_t coro_state;
    uint32_t coro_fn;
    uint32_t coro_ctx;
    uint32_t ctx_mcontext;  /* offset of uc_mcontext in a ucontext_t */
    uint32_t coro_stack;
    uint32_t coro_guard;
    uint32_t stack_lo;      /* offsets in a stack's descriptor */
    uint32_t stack_hi;
};

/* For debuggers only; see struct coro_debug_root.  Never changes. */
CORO_API extern const struct coro_debug_root coro_debug_root;

/* Stack overflow: every stack has a guard below it.  A coroutine that runs
 * into it is reported on stderr as
 *     coro: stack overflow in coroutine #ID "NAME" (stack SIZE bytes)
 * followed by a backtrace, and the process aborts (SIGABRT).  The SIGSEGV
 * and SIGBUS handler that does this is installed on the first create or
 * resume of the process; any other fault goes to the handler installed
 * before it (or kills the process as usual).  A program that installs its
 * own handler afterwards replaces it.  Each thread that runs coroutines
 * gets an alternate signal stack for it, unless it has one already. */

/* Stores in frames up to max return addresses of co's stack, innermost
 * first: for a suspended coroutine (or a normal one, waiting in the
 * coro_resume of another), walked from the registers saved at its last
 * switch, the first being where it will continue; for the coroutine
 * calling it, its own stack from the caller of coro_backtrace.  Symbolise
 * them with dladdr(3) or backtrace_symbols(3).  Needs libcoro built with
 * libunwind (meson option libunwind).  Call it only for coroutines of the
 * calling thread, or ones no thread resumes during the call.
 * Returns the number of addresses stored (0 to max); 0 for a coroutine
 * that never ran (CORO_READY) or has finished: there is nothing on its
 * stack.  Errors are negative: -EINVAL if co is NULL, max is negative, or
 * frames is NULL with max > 0; -EBUSY if co is running on another thread;
 * -ENOTSUP if libcoro was built without libunwind (after the checks
 * above). */
CORO_API int coro_backtrace(const coro_t *co, void **frames, int max);

/* Prints every live (created, not destroyed) coroutine of the process on
 * out, one line each: id, name, state, usable stack size and the bytes of
 * stack in use (the depth at its last switch: from the top of its stack to
 * the stack pointer saved then; not a high-water mark).  With libunwind,
 * each suspended or normal coroutine of the calling thread, and the
 * calling coroutine itself, is followed by its symbolised backtrace (up to
 * 64 frames).  A coroutine that never ran says so instead.  Coroutines of
 * other threads are listed but not unwound.  Needs a few KiB of stack: do
 * not call it on a coroutine created with the smallest stack.  Nothing
 * happens if out is NULL. */
CORO_API void coro_dump(FILE *out);

#ifdef __cplusplus
}
#endif
#endif /* CORO_H */

/* cxx: C++ exception state per coroutine.
 *
 * The C++ runtime keeps, per thread, the exceptions being handled (the
 * stack that `throw;` and std::current_exception read) and the count of
 * exceptions in flight (std::uncaught_exceptions), in the struct that
 * __cxa_get_globals returns (Itanium C++ ABI 2.2.2; libstdc++ and
 * libc++abi alike).  Coroutines share their thread, so without help a
 * coroutine that yields inside a catch block leaves its exception as its
 * resumer's.  Every switch saves the leaving flow's pair and puts back the
 * entering one's.
 *
 * Plain C: the runtime is reached through a weak reference, NULL in a
 * program without a C++ runtime, where a switch costs one load and one
 * branch on a field of the thread state.
 *
 * An exception that escapes a coroutine's function terminates the
 * program; lib/cxx.c's terminate handler first names the coroutine. */
#ifndef CORO_CXX_H
#define CORO_CXX_H

/* The ABI's __cxa_eh_globals, as far as it is per flow. */
struct coro__eh {
    void *caught;          /* __cxa_exception *caughtExceptions */
    unsigned int uncaught; /* uncaughtExceptions */
#if defined(__arm__)
    void *propagating;     /* ARM EHABI only: propagatingExceptions */
#endif
};

/* This thread's runtime globals, or NULL when no C++ runtime is linked
 * (or the runtime has none for this thread: out of memory).  The pointer
 * stays valid for the thread's life: look it up once per thread.  With a
 * C++ runtime, the first call in the process also installs the
 * std::terminate handler that names the running coroutine (lib/cxx.c). */
struct coro__eh *coro__eh_globals(void);

/* A switch: the flow leaving keeps the runtime's state in save, the flow
 * entering gets back what load holds.  g: the thread's coro__eh_globals. */
static inline void coro__eh_switch(struct coro__eh *g, struct coro__eh *save,
                                   const struct coro__eh *load)
{
    if (g) {
        *save = *g;
        *g = *load;
    }
}

#endif

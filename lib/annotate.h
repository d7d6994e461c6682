/* annotate: which checking tool the library is built for (ASan, TSan) or
 * may run under (valgrind), and the annotations that only such builds
 * make.  A leaf header: the stack and coro layers use it without knowing
 * the debug layer.  In a normal build everything here but the valgrind
 * client requests (a few no-op instructions, only on cold paths) compiles
 * to nothing. */
#ifndef CORO_ANNOTATE_H
#define CORO_ANNOTATE_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CORO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORO__ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define CORO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORO__TSAN 1
#endif
#endif

#if defined(CORO__ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
/* Memory of a reused stack may still carry the red zones of frames that
 * never returned (a coroutine destroyed while suspended). */
#define CORO__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define CORO__UNPOISON(p, n) ((void)0)
#endif

#if defined(CORO__TSAN)
#include <sanitizer/tsan_interface.h>
#endif

/* Valgrind cannot run sanitizer builds, so its requests are left out of
 * them. */
#if defined(CORO_HAVE_VALGRIND) && !defined(CORO__ASAN) && !defined(CORO__TSAN)
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
/* Tells valgrind that [lo, hi) is a stack, so a switch onto it is not
 * taken for a huge stack-pointer move within one stack, and that the
 * guard (guard bytes below lo; 0 where valgrind knows it, as with
 * mprotect) is not to be touched: valgrind does not know what
 * MADV_GUARD_INSTALL did, and its leak check would otherwise read every
 * guard, a fault per word.  Stacks live as long as the process (slabs are
 * never unmapped): never deregistered. */
#define CORO__VALGRIND_STACK(lo, hi, guard) \
    ((void)VALGRIND_MAKE_MEM_NOACCESS((char *)(lo) - (guard), (guard)), \
     (void)VALGRIND_STACK_REGISTER((lo), (hi)))
/* libunwind checks every stack page it reads during a step by handing the
 * page's first byte to write(2) on a pipe (its "conservative checks"):
 * memcheck reports those deliberate probes, of bytes below the stack
 * pointer or never written, as errors of the caller's.  A walk of ours
 * runs between these two; valgrind still checks everything else. */
#define CORO__VALGRIND_QUIET() VALGRIND_DISABLE_ERROR_REPORTING
#define CORO__VALGRIND_LOUD() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define CORO__VALGRIND_STACK(lo, hi, guard) ((void)0)
#define CORO__VALGRIND_QUIET() ((void)0)
#define CORO__VALGRIND_LOUD() ((void)0)
#endif

#endif

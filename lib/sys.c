/* sys: failure-injectable system call wrappers (see sys.h). */
#define _GNU_SOURCE
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

struct fault {
    atomic_long countdown; /* calls left before the failure; 0 = disarmed */
    int err;
    int sticky;
};

static struct fault faults[CORO__SYS_NOPS];

void coro__sys_fail(enum coro__sys_op op, long nth, int err, int sticky)
{
    faults[op].err = err;
    faults[op].sticky = sticky;
    atomic_store(&faults[op].countdown, nth);
}

/* True when this call of op is to fail; sets errno.  One relaxed load when
 * nothing is armed. */
static int injected(enum coro__sys_op op)
{
    struct fault *f = &faults[op];
    long left = atomic_load_explicit(&f->countdown, memory_order_relaxed);

    if (left == 0)
        return 0;
    if (left == 1 && f->sticky) {
        errno = f->err;
        return 1;
    }
    if (atomic_fetch_sub(&f->countdown, 1) != 1)
        return 0;
    errno = f->err;
    return 1;
}

void *coro__sys_mmap(void *addr, size_t len, int prot, int flags)
{
    if (injected(CORO__SYS_MMAP))
        return MAP_FAILED;
    return mmap(addr, len, prot, flags, -1, 0);
}

int coro__sys_munmap(void *addr, size_t len)
{
    if (injected(CORO__SYS_MUNMAP))
        return -1;
    return munmap(addr, len);
}

int coro__sys_madvise(void *addr, size_t len, int advice)
{
    if (injected(CORO__SYS_MADVISE))
        return -1;
    return madvise(addr, len, advice);
}

int coro__sys_mprotect(void *addr, size_t len, int prot)
{
    if (injected(CORO__SYS_MPROTECT))
        return -1;
    return mprotect(addr, len, prot);
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

/* Cleared once the kernel says it cannot do it (too old, or the advice is
 * not allowed through process_madvise). */
static atomic_int vec_ok = 1;

/* A pidfd for ourselves, opened once: three system calls fewer on every
 * call.  A child of fork() must not use its parent's (it would advise the
 * parent's memory): the child handler forgets it. */
static atomic_int self_fd = -1;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static void self_fork_child(void)
{
    int fd = atomic_exchange(&self_fd, -1);

    if (fd >= 0)
        close(fd);
}

static void self_init(void)
{
    if (pthread_atfork(NULL, NULL, self_fork_child) != 0)
        atomic_store(&vec_ok, 0); /* without it a child would advise its parent */
}

void coro__sys_atfork(void)
{
    pthread_once(&self_once, self_init);
}

static int self_pidfd(void)
{
    int fd = atomic_load_explicit(&self_fd, memory_order_acquire);

    if (fd >= 0)
        return fd;
    coro__sys_atfork();
    if (!atomic_load(&vec_ok))
        return -1;
    fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0)
        return -1;
    int none = -1;
    if (!atomic_compare_exchange_strong(&self_fd, &none, fd)) {
        close(fd);
        fd = none;
    }
    return fd;
}

void coro__sys_madvise_vec_enable(int on)
{
    atomic_store(&vec_ok, on);
}

int coro__sys_madvise_vec(const struct iovec *iov, size_t n, int advice)
{
    size_t total = 0;

    if (!atomic_load_explicit(&vec_ok, memory_order_relaxed) || n == 0 ||
        n > 1024 /* IOV_MAX */)
        return -1;
    if (injected(CORO__SYS_MADVISE))
        return -1;
    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    int fd = self_pidfd();
    if (fd < 0) {
        atomic_store(&vec_ok, 0);
        return -1;
    }
    long r = syscall(SYS_process_madvise, fd, iov, n, advice, 0);
    if (r == (long)total)
        return 0;
    if (r < 0 && (errno == EINVAL || errno == ENOSYS || errno == EPERM || errno == EBADF))
        atomic_store(&vec_ok, 0);
    return -1;
}

/* -1 until read; then 0 or 1. */
static atomic_int debug_env = -1;

int coro__debug_env(void)
{
    int v = atomic_load_explicit(&debug_env, memory_order_relaxed);

    if (__builtin_expect(v < 0, 0)) {
        const char *e = getenv("CORO_DEBUG");
        v = e && e[0] && strcmp(e, "0") != 0;
        atomic_store_explicit(&debug_env, v, memory_order_relaxed);
    }
    return v;
}

void coro__debug_env_reset(void)
{
    atomic_store(&debug_env, -1);
}

void coro__bell_ring(int fd)
{
    uint64_t one = 1;
    int saved = errno; /* rung from the user's flow, on any thread */

    while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
    errno = saved;
}

void coro__bell_drain(int fd)
{
    uint64_t n;

    while (read(fd, &n, sizeof n) < 0 && errno == EINTR) {
    }
}

/* saved is volatile: clang takes the allocation functions to leave errno
 * alone, and would drop the store below as one of the value already
 * there (clang 14 -O2: coro_chan_create's ENOMEM reached errno). */
void *coro__malloc(size_t size)
{
    volatile int saved = errno;
    void *p = malloc(size);

    errno = saved;
    return p;
}

void *coro__calloc(size_t n, size_t size)
{
    volatile int saved = errno;
    void *p = calloc(n, size);

    errno = saved;
    return p;
}

void *coro__realloc(void *old, size_t size)
{
    volatile int saved = errno;
    void *p = realloc(old, size);

    errno = saved;
    return p;
}

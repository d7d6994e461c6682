/* sys: the system calls that can fail, behind wrappers, so that a test can
 * make the Nth call of one fail and check that the error comes back and
 * nothing leaks. */
#ifndef CORO_SYS_H
#define CORO_SYS_H

#include <stddef.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

enum coro__sys_op {
    CORO__SYS_MMAP,
    CORO__SYS_MUNMAP,
    CORO__SYS_MADVISE,
    CORO__SYS_MPROTECT,
    CORO__SYS_NOPS
};

/* Each returns what the system call returns (MAP_FAILED or -1 with errno on
 * failure). */
void *coro__sys_mmap(void *addr, size_t len, int prot, int flags);
int coro__sys_munmap(void *addr, size_t len);
int coro__sys_madvise(void *addr, size_t len, int advice);

/* The same advice on n ranges with one system call (process_madvise on
 * ourselves, Linux 5.10+; most advice on self since 6.x).  0 when every
 * range was advised; -1 otherwise, and the caller advises range by range.
 * Counts as one madvise call for coro__sys_fail. */
struct iovec;
int coro__sys_madvise_vec(const struct iovec *iov, size_t n, int advice);

/* For tests: 0 makes coro__sys_madvise_vec refuse, as on an old kernel. */
void coro__sys_madvise_vec_enable(int on);
int coro__sys_mprotect(void *addr, size_t len, int prot);

/* malloc, calloc and realloc that leave errno alone: the public calls
 * report ENOMEM in their result, never in errno. */
void *coro__malloc(size_t size);
void *coro__calloc(size_t n, size_t size);
void *coro__realloc(void *p, size_t size);

/* For tests: the nth call of op from now (1 = the next one) on any thread
 * fails with err, and every later one too if sticky.  nth 0 disarms. */
void coro__sys_fail(enum coro__sys_op op, long nth, int err, int sticky);

/* An eventfd used as a doorbell: ring adds one to its counter (a full
 * counter, 2^64 - 2, is as good as a ring), drain reads it empty (it is
 * non-blocking: empty already is fine). */
void coro__bell_ring(int fd);
void coro__bell_drain(int fd);

/* fork(): each layer with a process-wide lock registers handlers (take
 * it before the fork, reset it in the child) on its first use.  These
 * register them at once; a pool calls them all before its threads exist,
 * since a handler registered while another thread forks misses that
 * fork, and the child would inherit the lock held. */
void coro__stack_atfork(void);
void coro__registry_atfork(void);
void coro__sys_atfork(void);
void coro__offload_atfork(void);

/* 1 when the environment variable CORO_DEBUG is set to a non-empty value
 * other than "0": diagnostics for the user go to stderr only then.  Read
 * once and cached. */
int coro__debug_env(void);

/* For tests: read CORO_DEBUG again at the next coro__debug_env. */
void coro__debug_env_reset(void);

#endif

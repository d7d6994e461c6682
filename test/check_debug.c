/* Check suite of the debug layer: the stack overflow report, chaining to
 * other SIGSEGV handlers, coro_backtrace and coro_dump.
 *
 * Crashes happen in a child forked by the test itself, whose stderr comes
 * back through a pipe; the test then checks how the child ended and what
 * it said.  A child that knows what its report must say (the id, name and
 * size of its coroutine) writes "expect: <line>" on stderr before.  Under
 * ASan the suite runs with ASAN_OPTIONS=handle_segv=0 (test/meson.build),
 * so that faults reach libcoro's handler and the default action. */
#define _GNU_SOURCE
#include <check.h>
#include <coro.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "lib/stack.h"
#include "lib/sys.h"
#include "test/bigframe.h"

#define ERR_MAX 65536
static char err[ERR_MAX]; /* the last child's stderr */

/* Runs fn in a forked child with its stderr in `err`; returns its wait
 * status.  The child exits 0 if fn returns. */
static int run_child(void (*fn)(void))
{
    int p[2];
    size_t n = 0;
    ssize_t r;
    char drop[4096];
    int status;

    ck_assert_int_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        close(p[1]);
        fn();
        _exit(0);
    }
    close(p[1]);
    while ((r = read(p[0], n < ERR_MAX - 1 ? err + n : drop,
                     n < ERR_MAX - 1 ? ERR_MAX - 1 - n : sizeof drop)) > 0)
        if (n < ERR_MAX - 1)
            n += (size_t)r;
    err[n] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* In the child: announces the report line co's overflow must print. */
static void expect_overflow_of(const coro_t *co)
{
    char line[256];
    int n = snprintf(line, sizeof line,
                     "expect: coro: stack overflow in coroutine #%" PRIu64
                     " \"%s\" (stack %zu bytes)\n",
                     coro_id(co), coro_name(co), coro_stack_size(co));
    if (write(STDERR_FILENO, line, (size_t)n) != n)
        _exit(3);
}

/* In the parent: the child died of SIGABRT after printing the line it
 * announced (after the announcement) and a backtrace. */
static void assert_report(int status, int with_backtrace)
{
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
                  "child status %#x, stderr:\n%s", status, err);
    const char *e = strstr(err, "expect: ");
    ck_assert_msg(e != NULL, "stderr:\n%s", err);
    const char *want = e + 8, *eol = strchr(want, '\n');
    ck_assert_ptr_nonnull(eol);
    char line[256];
    size_t len = (size_t)(eol - want) + 1;
    ck_assert_uint_lt(len, sizeof line);
    memcpy(line, want, len);
    line[len] = '\0';
    ck_assert_msg(strstr(eol + 1, line) != NULL, "no \"%s\" in:\n%s", line, err);
    ck_assert_msg(!with_backtrace || strstr(eol + 1, "coro: backtrace:") ||
                      strstr(eol + 1, "no backtrace under valgrind"),
                  "no backtrace in:\n%s", err);
}

static void assert_overflow_report(int status)
{
    assert_report(status, 1);
}

/* ---------------------------------------------------------------- bodies */

static volatile int never = -1; /* recursion ends never, unknown to gcc */

__attribute__((noinline)) int debug_recurse(int n)
{
    volatile char pad[128];

    pad[0] = (char)n;
    if (n == never)
        return 0;
    return debug_recurse(n + 1) + pad[0];
}

static void *overflow_body(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)debug_recurse(0);
}

static void *bigframe_body(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)bigframe_recurse(0);
}

static void *null_body(void *arg)
{
    volatile int *p = arg;
    *p = 1;
    return NULL;
}

static void *idle_body(void *arg)
{
    return arg;
}

/* Creates a coroutine running fn with the given name and stack size (0:
 * default), announces its overflow report and resumes it. */
static void overflow_in(coro_fn fn, const char *name, size_t stack)
{
    coro_attr_t a;
    coro_t *co;

    coro_attr_init(&a);
    coro_attr_set_name(&a, name);
    if (stack)
        coro_attr_set_stack_size(&a, stack);
    if (coro_create(&co, fn, NULL, &a) != 0)
        _exit(2);
    expect_overflow_of(co);
    coro_resume(co, NULL, NULL);
    _exit(4); /* not reached */
}

/* ------------------------------------------------------------- overflow */

static void child_named(void)
{
    overflow_in(overflow_body, "deep-diver", 0);
}

START_TEST(overflow_names_the_coroutine)
{
    assert_overflow_report(run_child(child_named));
    ck_assert_ptr_nonnull(strstr(err, "\"deep-diver\""));
    ck_assert_ptr_nonnull(strstr(err, "(stack "));
}
END_TEST

static void child_small_stack(void)
{
    overflow_in(overflow_body, "small", CORO_STACK_MIN);
}

START_TEST(overflow_of_smallest_stack)
{
    assert_overflow_report(run_child(child_small_stack));
}
END_TEST

/* A million coroutines created with small stacks; the last overflows.
 * How many stay alive at once: DEBUG_MILLION_ALIVE, a million in the
 * stress suite (4 GB of stack pages, see test/meson.build); else 100,000,
 * and 10,000 under valgrind (which needs some 20 KiB per stack).  The
 * others are destroyed as soon as created; the ids still count up. */
static void child_millionth(void)
{
    coro_attr_t a;
    coro_t *co;
    const char *env = getenv("DEBUG_MILLION_ALIVE");
    long keep = env ? atol(env) : RUNNING_ON_VALGRIND ? 10000 : 100000;

    coro_attr_init(&a);
    coro_attr_set_stack_size(&a, 16384);
    for (long i = 1; i < 1000000; i++) {
        if (coro_create(&co, idle_body, NULL, &a) != 0)
            _exit(2);
        if (i < 1000000 - keep)
            coro_destroy(co);
    }
    coro_attr_set_name(&a, "millionth");
    if (coro_create(&co, overflow_body, NULL, &a) != 0)
        _exit(2);
    if (coro_id(co) < 1000000)
        _exit(5);
    expect_overflow_of(co);
    coro_resume(co, NULL, NULL);
    _exit(4);
}

START_TEST(overflow_of_millionth_coroutine)
{
    assert_overflow_report(run_child(child_millionth));
    ck_assert_ptr_nonnull(strstr(err, "coroutine #1000000 \"millionth\""));
}
END_TEST

/* 16 KiB frames that touch their far end first, built without stack-clash
 * protection, still land in the 64 KiB guard. */
static void child_bigframe(void)
{
    overflow_in(bigframe_body, "bigframe", 16384);
}

START_TEST(overflow_by_big_frames)
{
    assert_overflow_report(run_child(child_bigframe));
}
END_TEST

static void *thread_overflow(void *arg)
{
    (void)arg;
    overflow_in(overflow_body, "in-thread", 0);
    return NULL;
}

static void child_thread(void)
{
    pthread_t t;

    if (pthread_create(&t, NULL, thread_overflow, NULL) != 0)
        _exit(2);
    pthread_join(t, NULL);
}

START_TEST(overflow_on_another_thread)
{
    assert_overflow_report(run_child(child_thread));
}
END_TEST

/* The program's own alternate signal stack, installed before libcoro's
 * first call, is kept (own_alternate_stack_is_kept): the report must not
 * need more than it has. */
static void overflow_on_own_altstack(size_t size)
{
    stack_t ss = {.ss_sp = malloc(size), .ss_size = size, .ss_flags = 0};

    if (!ss.ss_sp || sigaltstack(&ss, NULL) != 0)
        _exit(2);
    overflow_in(overflow_body, "small-altstack", 0);
}

static void child_altstack_16k(void)
{
    overflow_on_own_altstack(16384);
}

static void child_altstack_sigstksz(void)
{
    overflow_on_own_altstack(SIGSTKSZ);
}

START_TEST(overflow_on_a_16k_program_altstack)
{
    assert_overflow_report(run_child(child_altstack_16k));
}
END_TEST

START_TEST(overflow_on_a_sigstksz_program_altstack)
{
    assert_overflow_report(run_child(child_altstack_sigstksz));
}
END_TEST

/* A stack without a guard page (no MADV_GUARD_INSTALL, no mapping budget
 * left) has a canary: overwriting it is found at the next switch, a yield
 * or (with a bystander) a resume of another coroutine, found before that
 * one runs: its stack may be the one next door. */
static coro_t *bystander;

static void *bystander_body(void *arg)
{
    (void)arg;
    fputs("bystander ran\n", stderr);
    return NULL;
}

__attribute__((noinline)) int debug_dig(int n)
{
    volatile char pad[1024];

    for (size_t i = 0; i < sizeof pad; i++) /* every byte, as real frames do */
        pad[i] = (char)n;
    if (n == 0) {
        if (bystander)
            coro_resume(bystander, NULL, NULL); /* the canary check runs here */
        else
            coro_yield(NULL, NULL);             /* or here */
        return pad[0];
    }
    return debug_dig(n - 1) + pad[0];
}

static void *dig_body(void *arg)
{
    (void)arg;
    /* 40 KiB below the top of a 16 KiB stack: past the canary, and within
     * the 64 KiB that would have been the guard (mapped, here). */
    return (void *)(intptr_t)debug_dig(40);
}

static void child_canary(void)
{
    coro__stack_reset_probe(0);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    overflow_in(dig_body, "canary", 16384);
}

START_TEST(overflow_found_by_canary)
{
    assert_report(run_child(child_canary), 0);
    ck_assert_ptr_nonnull(strstr(err, "canary"));
}
END_TEST

static void child_canary_at_resume(void)
{
    coro__stack_reset_probe(0);
    coro__sys_fail(CORO__SYS_MADVISE, 1, EINVAL, 1);
    if (coro_create(&bystander, bystander_body, NULL, NULL) != 0)
        _exit(2);
    overflow_in(dig_body, "canary", 16384);
}

START_TEST(overflow_found_by_canary_at_a_resume)
{
    assert_report(run_child(child_canary_at_resume), 0);
    ck_assert_ptr_nonnull(strstr(err, "canary"));
    ck_assert_msg(strstr(err, "bystander ran") == NULL, "stderr:\n%s", err);
}
END_TEST

/* ----------------------------------------------------- other faults */

/* The fault is the point: valgrind must not turn the exit status of the
 * handlers that catch it into its error code. */
static void run_null_deref(void)
{
    coro_t *co;

    VALGRIND_DISABLE_ERROR_REPORTING;
    if (coro_create(&co, null_body, NULL, NULL) != 0)
        _exit(2);
    coro_resume(co, NULL, NULL);
    _exit(4);
}

START_TEST(null_deref_is_a_plain_segfault)
{
    int status = run_child(run_null_deref);

    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "child status %#x, stderr:\n%s", status, err);
    ck_assert_msg(strstr(err, "stack overflow") == NULL, "stderr:\n%s", err);
}
END_TEST

static void on_segv_info(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    _exit(si->si_addr == NULL && sig == SIGSEGV ? 42 : 41);
}

static void on_segv_plain(int sig)
{
    _exit(sig == SIGSEGV ? 43 : 41);
}

static void child_handler_before(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    run_null_deref();
}

START_TEST(handler_installed_before_gets_faults)
{
    int status = run_child(child_handler_before);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

static void child_plain_handler_before(void)
{
    signal(SIGSEGV, on_segv_plain);
    run_null_deref();
}

START_TEST(plain_handler_installed_before_gets_faults)
{
    int status = run_child(child_plain_handler_before);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 43,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

static void child_ignored_before(void)
{
    signal(SIGSEGV, SIG_IGN);
    run_null_deref();
}

START_TEST(ignored_segv_still_kills)
{
    int status = run_child(child_ignored_before);

    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

static void child_handler_after(void)
{
    struct sigaction sa;
    coro_t *co;

    VALGRIND_DISABLE_ERROR_REPORTING;
    if (coro_create(&co, null_body, NULL, NULL) != 0) /* installs libcoro's */
        _exit(2);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    coro_resume(co, NULL, NULL);
    _exit(4);
}

START_TEST(handler_installed_after_gets_faults)
{
    int status = run_child(child_handler_after);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 42,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

START_TEST(own_alternate_stack_is_kept)
{
    static char mine[1 << 16];
    stack_t ss = {.ss_sp = mine, .ss_size = sizeof mine, .ss_flags = 0}, cur;
    coro_t *co;

    ck_assert_int_eq(sigaltstack(&ss, NULL), 0);
    ck_assert_int_eq(coro_create(&co, idle_body, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(sigaltstack(NULL, &cur), 0);
    ck_assert_ptr_eq(cur.ss_sp, mine);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

/* ------------------------------------------------------------ backtrace */

__attribute__((noinline)) void debug_level3(void)
{
    coro_yield(NULL, NULL);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

__attribute__((noinline)) void debug_level2(void)
{
    debug_level3();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void debug_level1(void)
{
    debug_level2();
    __asm__ volatile("" ::: "memory");
}

static void *three_deep(void *arg)
{
    (void)arg;
    debug_level1();
    return NULL;
}

__attribute__((unused)) static const char *symbol(void *addr)
{
    Dl_info info;

    /* A return address may be just past its caller's last instruction. */
    if (dladdr((char *)addr - 1, &info) && info.dli_sname)
        return info.dli_sname;
    return "?";
}

START_TEST(backtrace_of_suspended_coroutine)
{
    coro_t *co;
    void *frames[64];

    ck_assert_int_eq(coro_create(&co, three_deep, NULL, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(co), CORO_SUSPENDED);
    int n = coro_backtrace(co, frames, 64);
#if defined(CORO_HAVE_LIBUNWIND)
    const char *want[] = {"debug_level3", "debug_level2", "debug_level1"};
    int k = 0;
    ck_assert_int_ge(n, 3);
    for (int i = 0; i < n && k < 3; i++)
        if (strcmp(symbol(frames[i]), want[k]) == 0)
            k++;
    ck_assert_msg(k == 3, "found %d of the 3 functions in order among %d frames", k, n);
    /* Fewer slots than frames: the innermost ones. */
    void *two[2];
    ck_assert_int_eq(coro_backtrace(co, two, 2), 2);
    ck_assert_ptr_eq(two[0], frames[0]);
    ck_assert_ptr_eq(two[1], frames[1]);
#else
    ck_assert_int_eq(n, -ENOTSUP);
#endif
#if defined(CORO_HAVE_LIBUNWIND)
    ck_assert_int_eq(coro_backtrace(co, NULL, 0), 0);
#endif
    ck_assert_int_eq(coro_resume(co, NULL, NULL), 0);
    ck_assert_int_eq(coro_state(co), CORO_FINISHED);
    ck_assert_int_eq(coro_backtrace(co, frames, 64), 0);
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

START_TEST(backtrace_errors_and_empty_stacks)
{
    coro_t *co;
    void *frames[8];

    ck_assert_int_eq(coro_backtrace(NULL, frames, 8), -EINVAL);
    ck_assert_int_eq(coro_create(&co, three_deep, NULL, NULL), 0);
    ck_assert_int_eq(coro_backtrace(co, frames, -1), -EINVAL);
    ck_assert_int_eq(coro_backtrace(co, NULL, 1), -EINVAL);
    ck_assert_int_eq(coro_backtrace(co, frames, 8), 0); /* never ran */
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

__attribute__((noinline)) int debug_self_trace(void **frames, int max)
{
    int n = coro_backtrace(coro_self(), frames, max);
    __asm__ volatile("" ::: "memory");
    return n;
}

static void *self_body(void *arg)
{
    void **frames = arg;
    return (void *)(intptr_t)debug_self_trace(frames, 16);
}

START_TEST(backtrace_of_running_self)
{
    coro_t *co;
    void *frames[16], *ret;

    ck_assert_int_eq(coro_create(&co, self_body, frames, NULL), 0);
    ck_assert_int_eq(coro_resume(co, NULL, &ret), 0);
#if defined(CORO_HAVE_LIBUNWIND)
    ck_assert_int_ge((int)(intptr_t)ret, 1);
    ck_assert_str_eq(symbol(frames[0]), "debug_self_trace");
#else
    ck_assert_int_eq((int)(intptr_t)ret, -ENOTSUP);
#endif
    ck_assert_int_eq(coro_destroy(co), 0);
}
END_TEST

static sem_t started, release;
static coro_t *busy;

static void *busy_body(void *arg)
{
    (void)arg;
    sem_post(&started);
    while (sem_wait(&release) != 0)
        ;
    return NULL;
}

static void *busy_thread(void *arg)
{
    (void)arg;
    coro_resume(busy, NULL, NULL);
    return NULL;
}

START_TEST(backtrace_of_coroutine_running_elsewhere)
{
    pthread_t t;
    void *frames[8];

    sem_init(&started, 0, 0);
    sem_init(&release, 0, 0);
    ck_assert_int_eq(coro_create(&busy, busy_body, NULL, NULL), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, busy_thread, NULL), 0);
    while (sem_wait(&started) != 0)
        ;
    ck_assert_int_eq(coro_backtrace(busy, frames, 8), -EBUSY);
    sem_post(&release);
    pthread_join(t, NULL);
    ck_assert_int_eq(coro_state(busy), CORO_FINISHED);
    ck_assert_int_eq(coro_destroy(busy), 0);
}
END_TEST

/* ----------------------------------------------------------------- dump */

/* coro_dump's output as a malloc'd string.  Through a temporary file
 * rather than open_memstream: the stream would keep the address of a local
 * pointer, and gcc 12 (-O2 and up, dump_text inlined) then takes every
 * string search in the caller for a use of that local out of scope
 * (-Wdangling-pointer). */
static char *dump_text(void)
{
    FILE *f = tmpfile();
    char *buf;
    long len;

    ck_assert_ptr_nonnull(f);
    coro_dump(f);
    ck_assert_int_eq(fflush(f), 0);
    len = ftell(f);
    ck_assert_int_ge(len, 0);
    buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    rewind(f);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static coro_t *named(coro_fn fn, const char *name)
{
    coro_attr_t a;
    coro_t *co;

    coro_attr_init(&a);
    coro_attr_set_name(&a, name);
    ck_assert_int_eq(coro_create(&co, fn, NULL, &a), 0);
    return co;
}

START_TEST(dump_lists_every_coroutine)
{
    coro_t *deep = named(three_deep, "dumpee");
    coro_t *fresh = named(idle_body, "fresh");
    char head[128];

    ck_assert_int_eq(coro_resume(deep, NULL, NULL), 0);
    char *out = dump_text();

    snprintf(head, sizeof head, "coroutine #%" PRIu64 " \"dumpee\" suspended, stack %zu bytes",
             coro_id(deep), coro_stack_size(deep));
    const char *at = strstr(out, head);
    ck_assert_msg(at != NULL, "no \"%s\" in:\n%s", head, out);
    ck_assert_msg(strstr(at, "in use ") != NULL, "%s", out);
#if defined(CORO_HAVE_LIBUNWIND)
    const char *l3 = strstr(at, "debug_level3");
    const char *l2 = l3 ? strstr(l3, "debug_level2") : NULL;
    const char *l1 = l2 ? strstr(l2, "debug_level1") : NULL;
    ck_assert_msg(l1 != NULL, "no backtrace through the three levels in:\n%s", out);
#else
    ck_assert_msg(strstr(out, "backtraces not built in") != NULL, "%s", out);
#endif
    snprintf(head, sizeof head, "coroutine #%" PRIu64 " \"fresh\" ready", coro_id(fresh));
    at = strstr(out, head);
    ck_assert_msg(at != NULL, "no \"%s\" in:\n%s", head, out);
    const char *eol = strchr(at, '\n');
    ck_assert_ptr_nonnull(eol);
    ck_assert_msg(memmem(at, (size_t)(eol - at), "never ran", 9) != NULL, "%s", out);
    ck_assert_msg(strstr(out, "coro_dump: 2 live coroutines") != NULL, "%s", out);
    free(out);

    ck_assert_int_eq(coro_destroy(fresh), 0);
    ck_assert_int_eq(coro_destroy(deep), 0);
    out = dump_text();
    ck_assert_msg(strstr(out, "coro_dump: 0 live coroutines") != NULL, "%s", out);
    free(out);
}
END_TEST

__attribute__((noinline)) void *debug_dumper(void *arg)
{
    (void)arg;
    char *out = dump_text();
    __asm__ volatile("" ::: "memory");
    return out;
}

START_TEST(dump_from_inside_a_coroutine)
{
    coro_t *outer = named(debug_dumper, "dumper");
    char *out;
    char head[128];

    ck_assert_int_eq(coro_resume(outer, NULL, (void **)&out), 0);
    snprintf(head, sizeof head, "coroutine #%" PRIu64 " \"dumper\" running", coro_id(outer));
    ck_assert_msg(strstr(out, head) != NULL, "no \"%s\" in:\n%s", head, out);
#if defined(CORO_HAVE_LIBUNWIND)
    ck_assert_msg(strstr(out, "debug_dumper") != NULL, "%s", out);
#endif
    free(out);
    ck_assert_int_eq(coro_destroy(outer), 0);
}
END_TEST

/* ------------------------------------------------------------- errno */

#define ERRNO_SENTINEL 0x5eed

static void *errno_body(void *arg)
{
    (void)arg;
    coro_yield(NULL, NULL);
    return NULL;
}

/* Fails the child (exit 10 + step) where a call changed errno. */
#define KEEPS_ERRNO(step, call) \
    do { \
        errno = ERRNO_SENTINEL; \
        call; \
        if (errno != ERRNO_SENTINEL) { \
            fprintf(stderr, "%s changed errno to %d\n", #call, errno); \
            _exit(10 + (step)); \
        } \
    } while (0)

/* The first calls of a fresh process, where libcoro sets itself up
 * (libunwind's warm-up, the signal handler, the first slab). */
static void child_first_calls_keep_errno(void)
{
    coro_t *co, *other;
    void *frames[16];
    FILE *null = fopen("/dev/null", "w");

    if (!null)
        _exit(2);
    KEEPS_ERRNO(0, coro_dump(null));
    KEEPS_ERRNO(1, coro_create(&co, errno_body, NULL, NULL));
    KEEPS_ERRNO(2, coro_resume(co, NULL, NULL));
    KEEPS_ERRNO(3, coro_backtrace(co, frames, 16));
    KEEPS_ERRNO(4, coro_dump(null));
    KEEPS_ERRNO(5, coro_resume(co, NULL, NULL));
    KEEPS_ERRNO(6, coro_destroy(co));
    /* A first resume on a thread that never created one. */
    KEEPS_ERRNO(7, coro_create(&other, errno_body, NULL, NULL));
    KEEPS_ERRNO(8, coro_destroy(other));
    fclose(null);
}

START_TEST(first_calls_keep_errno)
{
    int status = run_child(child_first_calls_keep_errno);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

static void *resume_in_thread(void *arg)
{
    coro_t *co = arg;

    KEEPS_ERRNO(20, coro_resume(co, NULL, NULL)); /* the thread's first call */
    KEEPS_ERRNO(21, coro_resume(co, NULL, NULL));
    return NULL;
}

static void child_thread_first_resume(void)
{
    coro_t *co;
    pthread_t t;

    if (coro_create(&co, errno_body, NULL, NULL) != 0 ||
        pthread_create(&t, NULL, resume_in_thread, co) != 0)
        _exit(2);
    pthread_join(t, NULL);
    KEEPS_ERRNO(22, coro_destroy(co));
}

START_TEST(first_resume_on_a_thread_keeps_errno)
{
    int status = run_child(child_thread_first_resume);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

/* ------------------------------------------------- set-up failures */

#define KEYS 4096 /* more than PTHREAD_KEYS_MAX (1024 on glibc) */

/* Every thread-specific key is taken (by "other libraries"), each holding
 * a value: libcoro's first calls must fail with an error, not store its
 * state under a key it never got (key 0, say). */
static void child_no_keys_left(void)
{
    static pthread_key_t mine[KEYS];
    static void *before[KEYS];
    int n = 0;
    coro_t *co;

    while (n < KEYS && pthread_key_create(&mine[n], NULL) == 0) {
        if (pthread_setspecific(mine[n], &mine[n]) != 0)
            _exit(2);
        n++;
    }
    if (n == 0 || n == KEYS)
        _exit(3); /* could not take them all */
    for (int k = 0; k < KEYS; k++)
        before[k] = pthread_getspecific((pthread_key_t)k);
    int r = coro_create(&co, idle_body, NULL, NULL);
    if (r == 0) {
        fprintf(stderr, "coro_create succeeded without a key\n");
        _exit(4);
    }
    if (r != EAGAIN)
        _exit(5);
    for (int k = 0; k < KEYS; k++)
        if (pthread_getspecific((pthread_key_t)k) != before[k]) {
            fprintf(stderr, "key %d overwritten\n", k);
            _exit(6);
        }
}

static const char *debug_env; /* CORO_DEBUG for the next child; NULL: unset */

static void child_no_keys_left_env(void)
{
    if (debug_env)
        setenv("CORO_DEBUG", debug_env, 1);
    else
        unsetenv("CORO_DEBUG");
    child_no_keys_left();
}

START_TEST(no_thread_key_is_an_error)
{
    debug_env = NULL;
    int status = run_child(child_no_keys_left_env);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
}
END_TEST

/* Nothing on stderr unless CORO_DEBUG asks (not empty, not "0"); then the
 * failure says why. */
START_TEST(setup_failure_is_said_only_when_asked)
{
    const char *quiet[] = {NULL, "", "0"};

    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        debug_env = quiet[i];
        int status = run_child(child_no_keys_left_env);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                      "child status %#x, stderr:\n%s", status, err);
        ck_assert_msg(err[0] == '\0', "CORO_DEBUG=%s, stderr:\n%s",
                      quiet[i] ? quiet[i] : "(unset)", err);
    }
    debug_env = "1";
    int status = run_child(child_no_keys_left_env);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
    ck_assert_msg(strstr(err, "coro: no thread-specific key left") != NULL,
                  "stderr:\n%s", err);
}
END_TEST

/* No address space left for the signal stacks (RLIMIT_AS just above what
 * the process has): the thread's set-up goes on without them, says so
 * only when asked, and the create fails with ENOMEM for want of a stack,
 * errno untouched. */
static void child_no_address_space(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long kb = 0;
    coro_t *co;

    if (!f)
        _exit(2);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lu kB", &kb) == 1)
            break;
    fclose(f);
    if (kb == 0)
        _exit(2);
    struct rlimit rl = {.rlim_cur = (kb + 32) * 1024, .rlim_max = RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(2);
    if (debug_env)
        setenv("CORO_DEBUG", debug_env, 1);
    else
        unsetenv("CORO_DEBUG");
    errno = ERRNO_SENTINEL;
    int r = coro_create(&co, idle_body, NULL, NULL);
    if (errno != ERRNO_SENTINEL)
        _exit(7);
    if (r != ENOMEM)
        _exit(r == 0 ? 8 : 9);
}

START_TEST(no_memory_for_signal_stacks)
{
    if (RUNNING_ON_VALGRIND || UNDER_ASAN || UNDER_TSAN)
        return; /* their own mappings need the address space */
    debug_env = NULL;
    int status = run_child(child_no_address_space);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
    /* The debug layer's notes; the stack layer's own ("cannot map
     * stacks") is gated by the stack layer. */
    ck_assert_msg(strstr(err, "signal stack") == NULL &&
                      strstr(err, "report's stack") == NULL,
                  "stderr:\n%s", err);
    debug_env = "1";
    status = run_child(child_no_address_space);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
    ck_assert_msg(strstr(err, "alternate signal stack") != NULL, "stderr:\n%s", err);
#if defined(CORO_HAVE_LIBUNWIND)
    ck_assert_msg(strstr(err, "overflow report's stack") != NULL, "stderr:\n%s", err);
#endif
}
END_TEST

/* What a program does every day says nothing on stderr, CORO_DEBUG unset:
 * set-up on two threads, switches, backtraces, a dump to a file, thread
 * exit. */
static void *quiet_thread(void *arg)
{
    coro_t *co;
    void *frames[8];

    (void)arg;
    if (coro_create(&co, errno_body, NULL, NULL) != 0 ||
        coro_resume(co, NULL, NULL) != 0)
        _exit(2);
    (void)coro_backtrace(co, frames, 8);
    if (coro_resume(co, NULL, NULL) != 0 || coro_destroy(co) != 0)
        _exit(3);
    return NULL;
}

static void child_quiet(void)
{
    pthread_t t;
    FILE *null = fopen("/dev/null", "w");

    unsetenv("CORO_DEBUG");
    if (!null)
        _exit(2);
    quiet_thread(NULL);
    if (pthread_create(&t, NULL, quiet_thread, NULL) != 0)
        _exit(2);
    pthread_join(t, NULL);
    coro_dump(null);
    fclose(null);
}

START_TEST(nothing_on_stderr_unasked)
{
    int status = run_child(child_quiet);

    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status %#x, stderr:\n%s", status, err);
    ck_assert_msg(err[0] == '\0', "stderr:\n%s", err);
}
END_TEST

START_TEST(dump_to_null_is_harmless)
{
    coro_dump(NULL);
}
END_TEST

static Suite *debug_suite(void)
{
    Suite *s = suite_create("debug");
    TCase *tc = tcase_create("overflow");
    tcase_add_test(tc, overflow_names_the_coroutine);
    tcase_add_test(tc, overflow_of_smallest_stack);
    tcase_add_test(tc, overflow_by_big_frames);
    tcase_add_test(tc, overflow_on_another_thread);
    tcase_add_test(tc, overflow_found_by_canary);
    tcase_add_test(tc, overflow_found_by_canary_at_a_resume);
    tcase_add_test(tc, overflow_on_a_16k_program_altstack);
    tcase_add_test(tc, overflow_on_a_sigstksz_program_altstack);
    suite_add_tcase(s, tc);

    tc = tcase_create("million");
    tcase_add_test(tc, overflow_of_millionth_coroutine);
    suite_add_tcase(s, tc);

    tc = tcase_create("faults");
    tcase_add_test(tc, null_deref_is_a_plain_segfault);
    tcase_add_test(tc, handler_installed_before_gets_faults);
    tcase_add_test(tc, plain_handler_installed_before_gets_faults);
    tcase_add_test(tc, ignored_segv_still_kills);
    tcase_add_test(tc, handler_installed_after_gets_faults);
    tcase_add_test(tc, own_alternate_stack_is_kept);
    suite_add_tcase(s, tc);

    tc = tcase_create("backtrace");
    tcase_add_test(tc, backtrace_of_suspended_coroutine);
    tcase_add_test(tc, backtrace_errors_and_empty_stacks);
    tcase_add_test(tc, backtrace_of_running_self);
    tcase_add_test(tc, backtrace_of_coroutine_running_elsewhere);
    suite_add_tcase(s, tc);

    tc = tcase_create("dump");
    tcase_add_test(tc, dump_lists_every_coroutine);
    tcase_add_test(tc, dump_from_inside_a_coroutine);
    tcase_add_test(tc, dump_to_null_is_harmless);
    suite_add_tcase(s, tc);

    tc = tcase_create("errno");
    tcase_add_test(tc, first_calls_keep_errno);
    tcase_add_test(tc, first_resume_on_a_thread_keeps_errno);
    suite_add_tcase(s, tc);

    tc = tcase_create("setup");
    tcase_add_test(tc, no_thread_key_is_an_error);
    tcase_add_test(tc, setup_failure_is_said_only_when_asked);
    tcase_add_test(tc, nothing_on_stderr_unasked);
    tcase_add_test(tc, no_memory_for_signal_stacks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(debug_suite());

    srunner_set_fork_status(sr, CK_FORK); /* every test in a fresh process */
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

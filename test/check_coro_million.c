/* One million suspended coroutines alive at once in one process, each on
 * its own default-size stack with a real guard below it (suite stress:
 * about 4 GB of stack pages).  Checks the memory each costs (at most
 * 8 KiB of RSS), that the mappings stay well under vm.max_map_count, that
 * sampled guards really fault, and that all run to completion.
 *
 * Links the static library to see each coroutine's stack descriptor
 * (lib/coroutine.h). */
#define _GNU_SOURCE
#include "lib/coroutine.h"

#include <check.h>
#include "testutil.h"
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MILLION 1000000L

static long max_map_count(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long n = 65530;

    if (f) {
        if (fscanf(f, "%ld", &n) != 1)
            n = 65530;
        fclose(f);
    }
    return n;
}

static void *yield_index(void *arg)
{
    void *in = NULL;

    coro_yield(arg, &in);
    return (void *)((intptr_t)in + (intptr_t)arg);
}

static sigjmp_buf probe_env;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(probe_env, 1);
}

/* 1 when a write to addr faults. */
static int faults(char *addr)
{
    if (sigsetjmp(probe_env, 1) == 0) {
        *(volatile char *)addr = 1;
        return 0;
    }
    return 1;
}

START_TEST(million_suspended)
{
    coro_t **co = malloc(MILLION * sizeof *co);
    void *out;

    ck_assert_ptr_nonnull(co);
    memset(co, 0, MILLION * sizeof *co); /* its pages are not the coroutines' */
    long maps0 = maps_lines();
    size_t rss0 = rss_bytes();

    for (long i = 0; i < MILLION; i++) {
        if (coro_create(&co[i], yield_index, (void *)i, NULL) != 0 ||
            coro_resume(co[i], NULL, &out) != 0 || out != (void *)i)
            ck_abort_msg("coroutine %ld: create or first resume failed", i);
    }
    size_t rss1 = rss_bytes();
    long maps1 = maps_lines(), limit = max_map_count();
    double per = (double)(rss1 - rss0) / MILLION;

    printf("1,000,000 suspended coroutines (%zu-byte stacks): RSS +%zu MiB, "
           "%.0f bytes per coroutine; /proc/self/maps %ld -> %ld lines "
           "(vm.max_map_count %ld)\n",
           coro_stack_size(co[0]), (rss1 - rss0) >> 20, per, maps0, maps1, limit);
    fflush(stdout);
    ck_assert_msg(per <= 8192, "%.0f bytes of RSS per coroutine", per);
    ck_assert_msg(maps1 < limit / 4, "%ld mappings, vm.max_map_count %ld", maps1,
                  limit);

    /* Every one has a real guard (not the canary fallback), and a sample
     * of them fault when written to. */
    long canaries = 0;
    for (long i = 0; i < MILLION; i++)
        canaries += co[i]->stack->guard == CORO__GUARD_CANARY;
    ck_assert_msg(canaries == 0,
                  "%ld of 1,000,000 stacks without a guard page (a million "
                  "guards need MADV_GUARD_INSTALL, Linux 6.13+)", canaries);
    struct sigaction sa = {.sa_handler = on_segv}, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGSEGV, &sa, &old), 0);
    long probed = 0, faulted = 0;
    for (long i = 0; i < MILLION; i += 997) {
        char *lo = co[i]->stack->lo;
        faulted += faults(lo - 1);
        faulted += faults(lo - CORO__GUARD_SIZE);
        probed += 2;
    }
    ck_assert_int_eq(sigaction(SIGSEGV, &old, NULL), 0);
    ck_assert_int_eq(faulted, probed);

    /* All of them still run, in another order than created. */
    for (long k = 0; k < MILLION; k++) {
        long i = (long)((k * 7919L) % MILLION);
        if (coro_resume(co[i], (void *)1, &out) != 0 || out != (void *)(i + 1) ||
            coro_state(co[i]) != CORO_FINISHED || coro_destroy(co[i]) != 0)
            ck_abort_msg("coroutine %ld: second resume or destroy failed", i);
    }
    free(co);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("coro_million");
    TCase *tc = tcase_create("million");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, million_suspended);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

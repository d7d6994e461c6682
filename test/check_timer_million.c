/* A million coroutines sleeping at once wake in deadline order (suite
 * stress: about 4 GB of stack pages are touched, 8 GB under ASan). */
#define _GNU_SOURCE
#include <check.h>
#include <coro.h>
#include <stdlib.h>

#define MS 1000000LL
#define MILLION 1000000L
#define STEP 7919L /* prime to 10^6: k -> k * STEP mod 10^6 is a permutation */

static int64_t base;
static coro_future_t *gate; /* every sleeper waits here first */
static long *woken;
static long nwoken, nfailed, nlate;
static unsigned char *late;

static int64_t deadline_of(long k)
{
    return base + (k * STEP % MILLION) * 100; /* 100 ns apart: 0.1 s in all */
}

/* Spawned last: runs once every sleeper waits at the gate. */
static void *opens_gate(void *arg)
{
    (void)arg;
    base = coro_now() + 3000 * MS; /* waking a million takes well under that,
                                    * even on a slow shared machine */
    if (coro_future_set(gate, NULL) != 0)
        nfailed++;
    return NULL;
}

static void *million_sleeper(void *arg)
{
    long k = (long)arg;

    /* No ck_assert here: each one sends a message to Check's parent.  All
     * wait at the gate first (their first runs, stacks and all, take
     * seconds for a million); the deadlines start after it opens.  A
     * deadline already passed returns at once (a "try"): such a sleeper is
     * left out of the order check. */
    if (coro_future_wait(gate, NULL, -1) != 0)
        nfailed++;
    if (coro_now() >= deadline_of(k)) {
        late[k] = 1;
        nlate++;
    }
    if (coro_sleep_until(deadline_of(k)) != 0)
        nfailed++;
    woken[nwoken++] = k;
    return NULL;
}

START_TEST(million_sleepers)
{
    coro_attr_t attr;

    coro_attr_init(&attr);
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 16384), 0);
    woken = malloc(MILLION * sizeof *woken);
    late = calloc(MILLION, 1);
    ck_assert_ptr_nonnull(woken);
    ck_assert_ptr_nonnull(late);
    for (long k = 0; k < MILLION; k++)
        if (coro_spawn(NULL, million_sleeper, (void *)k, &attr) != 0)
            ck_abort_msg("spawn %ld failed", k);
    ck_assert_int_eq(coro_future_create(&gate), 0);
    ck_assert_int_eq(coro_spawn(NULL, opens_gate, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(coro_future_destroy(gate), 0);
    ck_assert_int_eq(nwoken, MILLION);
    ck_assert_int_eq(nfailed, 0);
    ck_assert_int_lt(nlate, MILLION / 10);
    long prev = -1;
    for (long i = 0; i < MILLION; i++) {
        if (late[woken[i]])
            continue;
        if (prev >= 0 && deadline_of(prev) >= deadline_of(woken[i]))
            ck_abort_msg("sleeper %ld woke after %ld", woken[i], prev);
        prev = woken[i];
    }
    free(woken);
    free(late);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("timer_million");
    TCase *tc = tcase_create("million");

    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, million_sleepers);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Check suite of the schedulers' inboxes (mt layer): posts from other
 * threads, the doorbell rung only for a scheduler that sleeps, and wakes of
 * remote wait records racing their own deadlines; and the claim of sync
 * objects made outside the pool.  Links the static library: it looks at a
 * pool thread's scheduler and at objects' modes. */
#define _GNU_SOURCE
#include "lib/sync.h"
#include "lib/sys.h"
#include <coro.h>

#include <check.h>
#include "testutil.h"
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

static _Atomic(struct coro__sched *) pool_sched;

static void *note_sched(void *arg)
{
    (void)arg;
    atomic_store(&pool_sched, coro__sched_current());
    return NULL;
}

/* The scheduler of thread t of p, once that thread has run a coroutine. */
static struct coro__sched *sched_of(coro_pool_t *p, int t)
{
    atomic_store(&pool_sched, NULL);
    ck_assert_int_eq(coro_pool_spawn(p, t, NULL, note_sched, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    struct coro__sched *s = atomic_load(&pool_sched);
    ck_assert_ptr_nonnull(s);
    return s;
}

static void wait_asleep(struct coro__sched *s)
{
    while (atomic_load(&s->sleeping) == CORO__AWAKE)
        sched_yield();
}

static atomic_int counted;

static void *count(void *arg)
{
    (void)arg;
    atomic_fetch_add(&counted, 1);
    return NULL;
}

#define BURST 10000

/* A burst of posts to a sleeping thread rings its doorbell at most once
 * per time it went to sleep, not once per post. */
START_TEST(burst_to_a_sleeper_rings_once_per_sleep)
{
    coro_pool_t *p;
    unsigned long s0, r0, s1, r1;

    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    struct coro__sched *s = sched_of(p, 0);
    wait_asleep(s);
    coro__sched_bell_stats(s, &s0, &r0);
    atomic_store(&counted, 0);
    for (int i = 0; i < BURST; i++)
        ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, count, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&counted), BURST);
    wait_asleep(s);
    coro__sched_bell_stats(s, &s1, &r1);
    /* It was asleep when the burst began: that sleep, and each one since
     * (the last one, now, not rung yet), can take one ring. */
    ck_assert_uint_ge(r1 - r0, 1);
    ck_assert_uint_le(r1 - r0, s1 - s0);
    /* And the few microseconds it looks for more after a ring keep it
     * awake through most of the burst (not under valgrind, which runs one
     * thread at a time). */
    if (!RUNNING_ON_VALGRIND)
        ck_assert_uint_lt(r1 - r0, BURST / 10);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static atomic_int busy_stop;

static void *busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&busy_stop))
        coro_yield(NULL, NULL);
    return NULL;
}

/* Posts to a thread that never sleeps ring nothing: no system call. */
START_TEST(posts_to_an_awake_thread_ring_nothing)
{
    coro_pool_t *p;
    unsigned long s0, r0, s1, r1;

    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    struct coro__sched *s = sched_of(p, 0);
    atomic_store(&busy_stop, 0);
    atomic_store(&counted, 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, busy, NULL, NULL), 0);
    /* The spawn of busy itself may ring; once it runs, the thread never
     * sleeps. */
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, count, NULL, NULL), 0);
    while (atomic_load(&counted) < 1)
        sched_yield();
    coro__sched_bell_stats(s, &s0, &r0);
    for (int i = 0; i < BURST; i++)
        ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, count, NULL, NULL), 0);
    while (atomic_load(&counted) < BURST + 1)
        sched_yield();
    coro__sched_bell_stats(s, &s1, &r1);
    ck_assert_uint_eq(s1 - s0, 0);
    ck_assert_uint_eq(r1 - r0, 0);
    atomic_store(&busy_stop, 1);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* A remote record: a coroutine on a pool thread parks in it, another
 * thread ends it; its own deadline races that waker, and exactly one of
 * the two wins each time. */
#define ROUNDS (UNDER_TSAN || RUNNING_ON_VALGRIND ? 300 : 3000)

static _Atomic(struct coro__wait *) parked;
static atomic_int by_waker, by_deadline, bad;

static void *remote_waiter(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        struct coro__wait wait;
        coro__wait_init(&wait, coro_self());
        wait.remote = 1;
        atomic_store(&parked, &wait);
        /* Every few rounds a deadline passed already: the wait ends at once
         * unless the waker claimed it first, and then its wake is taken. */
        int64_t deadline = i % 3 == 0 ? -1 : i % 3 == 1 ? 0 : coro_now() + 20000;
        int r = coro__wait_park(&wait, deadline, CORO__WAIT_PLAIN, "test");
        if (r == 42)
            atomic_fetch_add(&by_waker, 1);
        else if (r == ETIMEDOUT)
            atomic_fetch_add(&by_deadline, 1);
        else
            atomic_fetch_add(&bad, 1);
        /* The waker is done with the record before it goes. */
        while (atomic_load(&parked) == &wait)
            sched_yield();
    }
    return NULL;
}

START_TEST(remote_wake_races_the_deadline)
{
    coro_pool_t *p;

    atomic_store(&by_waker, 0);
    atomic_store(&by_deadline, 0);
    atomic_store(&bad, 0);
    atomic_store(&parked, NULL);
    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, remote_waiter, NULL, NULL), 0);
    for (int i = 0; i < ROUNDS; i++) {
        struct coro__wait *w;
        while (!(w = atomic_load(&parked)))
            sched_yield();
        if (coro__wait_claim(w))
            coro__wait_done(w, 42, 0);
        atomic_store(&parked, NULL);
    }
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&bad), 0);
    ck_assert_int_eq(atomic_load(&by_waker) + atomic_load(&by_deadline), ROUNDS);
    /* The rounds without a deadline can only be ended by the waker. */
    ck_assert_int_ge(atomic_load(&by_waker), ROUNDS / 3);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* -------------------------------------------------------------- claims */

/* Every sync object starts with its struct coro__sync. */
static struct coro__sync *sync_of(void *object)
{
    return object;
}

static int mode_of(void *object)
{
    return coro__sync_mode(sync_of(object));
}

/* Whether object is biased to the calling coroutine's thread. */
static int mine(void *object)
{
    return mode_of(object) == CORO__SYNC_BIASED &&
           coro__sync_home_of(sync_of(object)) == coro__sched_current();
}

static coro_chan_t *unbound;
static atomic_int claim_bad, first_parked;

static void *first_user(void *arg)
{
    int v = 1;

    (void)arg;
    if (mode_of(unbound) != CORO__SYNC_UNBOUND || coro_chan_send(unbound, &v, 0) || !mine(unbound))
        atomic_fetch_add(&claim_bad, 1);
    if (coro_chan_recv(unbound, &v, 0) || v != 1 || !mine(unbound))
        atomic_fetch_add(&claim_bad, 1);
    atomic_store(&first_parked, 1);
    if (coro_chan_recv(unbound, &v, -1) || v != 2) /* a waiter when it is shared */
        atomic_fetch_add(&claim_bad, 1);
    if (mode_of(unbound) != CORO__SYNC_SHARED)
        atomic_fetch_add(&claim_bad, 1);
    return NULL;
}

static void *second_user(void *arg)
{
    int v = 2;

    (void)arg;
    while (!atomic_load(&first_parked))
        coro_sleep(100000);
    coro_sleep(2000000);
    if (coro_chan_send(unbound, &v, -1) || mode_of(unbound) != CORO__SYNC_SHARED)
        atomic_fetch_add(&claim_bad, 1);
    return NULL;
}

/* A channel main makes after the pool is nobody's until a call: the first
 * pool thread's coroutine to call has it biased (no lock), and another
 * thread's first call has it shared, with the first one's waiter on it. */
START_TEST(unbound_channel_goes_to_its_first_pool_thread)
{
    coro_pool_t *p;

    atomic_store(&claim_bad, 0);
    atomic_store(&first_parked, 0);
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    ck_assert_int_eq(coro_chan_create(&unbound, sizeof(int), 1), 0);
    ck_assert_int_eq(mode_of(unbound), CORO__SYNC_UNBOUND);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, first_user, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 1, NULL, second_user, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&claim_bad), 0);
    ck_assert_int_eq(coro_chan_destroy(unbound), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static void *uses_alone(void *arg)
{
    int v = 5;

    (void)arg;
    for (int i = 0; i < 3; i++)
        if (coro_chan_send(unbound, &v, 0) || coro_chan_recv(unbound, &v, 0) || !mine(unbound))
            atomic_fetch_add(&claim_bad, 1);
    return NULL;
}

/* Main may destroy a channel a pool thread has claimed: the destroy has
 * that thread share it first. */
START_TEST(main_destroys_a_claimed_channel)
{
    coro_pool_t *p;

    atomic_store(&claim_bad, 0);
    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    ck_assert_int_eq(coro_chan_create(&unbound, sizeof(int), 1), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, uses_alone, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&claim_bad), 0);
    ck_assert_int_eq(mode_of(unbound), CORO__SYNC_BIASED);
    ck_assert_int_eq(coro_chan_destroy(unbound), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static atomic_int got_sum;

static void *drains(void *arg)
{
    int v, sum = 0;

    (void)arg;
    while (coro_chan_recv(unbound, &v, -1) == 0)
        sum += v;
    atomic_store(&got_sum, sum);
    return NULL;
}

static void *fills_from_main(void *arg)
{
    (void)arg;
    for (int i = 1; i <= 5; i++)
        if (coro_chan_send(unbound, &i, -1))
            atomic_fetch_add(&claim_bad, 1);
    if (mode_of(unbound) != CORO__SYNC_SHARED)
        atomic_fetch_add(&claim_bad, 1);
    return NULL;
}

/* A first call from outside the pool (main's own coroutine) has the object
 * shared, since main may not be running its scheduler to answer a share;
 * a group main makes stays main's. */
START_TEST(first_call_from_main_shares)
{
    coro_pool_t *p;
    coro_group_t *g;

    atomic_store(&claim_bad, 0);
    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    ck_assert_int_eq(coro_chan_create(&unbound, sizeof(int), 8), 0);
    ck_assert_int_eq(coro_spawn(NULL, fills_from_main, NULL, NULL), 0);
    ck_assert_int_eq(coro_run(), 0);
    ck_assert_int_eq(mode_of(unbound), CORO__SYNC_SHARED);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, drains, NULL, NULL), 0);
    ck_assert_int_eq(coro_chan_close(unbound), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&got_sum), 15);
    ck_assert_int_eq(atomic_load(&claim_bad), 0);
    ck_assert_int_eq(coro_chan_destroy(unbound), 0);
    ck_assert_int_eq(coro_group_create(&g), 0);
    ck_assert_int_eq(mode_of(g), CORO__SYNC_LOCAL);
    ck_assert_ptr_eq(coro__sync_home_of(sync_of(g)), coro__sched_current());
    ck_assert_int_eq(coro_group_destroy(g), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static coro_mutex_t *unbound_m;
static coro_cond_t *unbound_c;
static atomic_int in_cond_wait;
static int ready; /* under unbound_m */

static void *cond_waiter(void *arg)
{
    (void)arg;
    if (coro_mutex_lock(unbound_m, -1) || !mine(unbound_m))
        atomic_fetch_add(&claim_bad, 1);
    atomic_store(&in_cond_wait, 1);
    while (!ready)
        if (coro_cond_wait(unbound_c, unbound_m, -1))
            atomic_fetch_add(&claim_bad, 1);
    if (mode_of(unbound_m) != CORO__SYNC_SHARED || mode_of(unbound_c) != CORO__SYNC_SHARED)
        atomic_fetch_add(&claim_bad, 1);
    coro_mutex_unlock(unbound_m);
    return NULL;
}

static void *cond_signaller(void *arg)
{
    (void)arg;
    while (!atomic_load(&in_cond_wait))
        coro_sleep(100000);
    /* The waiter is queued on unbound_c before it lets unbound_m go. */
    if (coro_mutex_lock(unbound_m, -1))
        atomic_fetch_add(&claim_bad, 1);
    ready = 1;
    coro_cond_signal(unbound_c);
    coro_mutex_unlock(unbound_m);
    return NULL;
}

/* A mutex and a condition variable main makes go to the thread that waits
 * on them first (a coro_cond_wait claims the condition variable), and a
 * signal from another thread has them shared, the waiter's record with
 * them. */
START_TEST(unbound_mutex_and_cond_go_to_the_waiter)
{
    coro_pool_t *p;

    atomic_store(&claim_bad, 0);
    atomic_store(&in_cond_wait, 0);
    ready = 0;
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    ck_assert_int_eq(coro_mutex_create(&unbound_m), 0);
    ck_assert_int_eq(coro_cond_create(&unbound_c), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, cond_waiter, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 1, NULL, cond_signaller, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&claim_bad), 0);
    ck_assert_int_eq(coro_cond_destroy(unbound_c), 0);
    ck_assert_int_eq(coro_mutex_destroy(unbound_m), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

#define CLAIM_ROUNDS 100
#define CLAIM_ITEMS 50

static coro_chan_t *race_ch[CLAIM_ROUNDS];
static atomic_long race_sum;

static void *race_sender(void *arg)
{
    coro_chan_t *ch = race_ch[(intptr_t)arg];

    for (int i = 1; i <= CLAIM_ITEMS; i++)
        if (coro_chan_send(ch, &i, -1))
            atomic_fetch_add(&claim_bad, 1);
    return NULL;
}

static void *race_receiver(void *arg)
{
    coro_chan_t *ch = race_ch[(intptr_t)arg];
    int v;

    for (int i = 1; i <= CLAIM_ITEMS; i++)
        if (coro_chan_recv(ch, &v, -1) || v != i)
            atomic_fetch_add(&claim_bad, 1);
        else
            atomic_fetch_add(&race_sum, v);
    return NULL;
}

/* Two threads' first calls on unbound channels race for the claim: one
 * wins it, the other has the channel shared, and no element is lost. */
START_TEST(first_calls_race_for_the_claim)
{
    coro_pool_t *p;

    atomic_store(&claim_bad, 0);
    atomic_store(&race_sum, 0);
    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    for (intptr_t r = 0; r < CLAIM_ROUNDS; r++) {
        ck_assert_int_eq(coro_chan_create(&race_ch[r], sizeof(int), (size_t)r % 3), 0);
        ck_assert_int_eq(coro_pool_spawn(p, (int)(r & 1), NULL, race_sender, (void *)r, NULL), 0);
        ck_assert_int_eq(coro_pool_spawn(p, (int)(~r & 1), NULL, race_receiver, (void *)r, NULL),
                         0);
    }
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&claim_bad), 0);
    ck_assert_int_eq(atomic_load(&race_sum),
                     (long)CLAIM_ROUNDS * CLAIM_ITEMS * (CLAIM_ITEMS + 1) / 2);
    for (int r = 0; r < CLAIM_ROUNDS; r++) {
        ck_assert_int_eq(mode_of(race_ch[r]), CORO__SYNC_SHARED);
        ck_assert_int_eq(coro_chan_destroy(race_ch[r]), 0);
    }
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* A shared group outlives its pool thread; a plain thread made later may
 * have a scheduler at the address the group's home had, and is no more
 * its home for that: it may not spawn into it. */
static coro_group_t *orphan;
static atomic_int orphan_made;

static void *makes_orphan(void *arg)
{
    if (coro_group_create(&orphan) == 0 &&
        coro_group_spawn_on(orphan, arg, 0, NULL, count, NULL, NULL) == 0)
        atomic_store(&orphan_made, 1);
    return NULL;
}

static int orphan_spawn;

static void *plain_thread(void *arg)
{
    (void)arg;
    coro__sched_here(); /* often where the group's home was */
    orphan_spawn = coro_group_spawn(orphan, NULL, count, NULL, NULL);
    return NULL;
}

/* glibc gives the plain thread the gone thread's arena, and with it the
 * old scheduler's address, in most of the rounds (16 of 20 here). */
START_TEST(group_home_is_not_an_address)
{
    for (int i = 0; i < 20; i++) {
        coro_pool_t *p;
        pthread_t t;

        atomic_store(&orphan_made, 0);
        ck_assert_int_eq(coro_pool_create(&p, 1), 0);
        ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, makes_orphan, p, NULL), 0);
        ck_assert_int_eq(coro_pool_wait(p, -1), 0);
        ck_assert_int_eq(atomic_load(&orphan_made), 1);
        ck_assert_int_eq(mode_of(orphan), CORO__SYNC_SHARED);
        ck_assert_int_eq(coro_pool_destroy(p), 0);
        ck_assert_int_eq(pthread_create(&t, NULL, plain_thread, NULL), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_eq(orphan_spawn, EPERM);
        ck_assert_int_eq(coro_group_destroy(orphan), 0);
    }
}
END_TEST

/* ---------------------------------------------------------------- edges */

static atomic_int ran_at_all;

static void *marks_ran_at_all(void *arg)
{
    (void)arg;
    atomic_store(&ran_at_all, 1);
    return NULL;
}

static void *returns_arg(void *arg)
{
    return arg;
}

/* A pool coroutine whose stack cannot be had never runs and counts as
 * finished: the pool's wait and destroy do not wait for it. */
START_TEST(pool_coroutine_without_a_stack)
{
    coro_pool_t *p;
    coro_attr_t attr;

    ck_assert_int_eq(coro_pool_create(&p, 1), 0);
    /* A first coroutine there maps what every spawn needs (descriptors),
     * so that the failure below hits the stack at the first run. */
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, returns_arg, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    coro_attr_init(&attr);
    /* A size no cache holds, so its first run must map a new slab. */
    ck_assert_int_eq(coro_attr_set_stack_size(&attr, 48u << 20), 0);
    coro__sys_fail(CORO__SYS_MMAP, 1, ENOMEM, 1);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, marks_ran_at_all, NULL, &attr), 0);
    int err = coro_pool_wait(p, coro_now() + 5000000000LL);
    coro__sys_fail(CORO__SYS_MMAP, 0, 0, 0);
    ck_assert_int_eq(err, 0);
    ck_assert_int_eq(atomic_load(&ran_at_all), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

/* A spawn with a handle from main waits for the pool thread's reply on a
 * futex, which says EAGAIN when the reply came first: errno stays. */
START_TEST(far_spawns_leave_errno_alone)
{
    coro_pool_t *p;

    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    for (int i = 0; i < 200; i++) {
        coro_t *co;
        errno = 12345;
        ck_assert_int_eq(coro_pool_spawn(p, i % 2, &co, returns_arg, NULL, NULL), 0);
        ck_assert_int_eq(errno, 12345);
    }
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

static void *shuts_its_thread(void *arg)
{
    (void)arg;
    coro_shutdown();
    return NULL;
}

static atomic_int any_ran;

static void *counts_any(void *arg)
{
    (void)arg;
    atomic_fetch_add(&any_ran, 1);
    return NULL;
}

/* CORO_ANY passes over a thread that ended its own coroutines: only when
 * every thread is closed does it say ECANCELED. */
START_TEST(any_passes_over_closed_threads)
{
    coro_pool_t *p;

    ck_assert_int_eq(coro_pool_create(&p, 2), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, shuts_its_thread, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    /* The next spawn onto thread 0 finds it stopping and closes it. */
    coro_pool_spawn(p, 0, NULL, counts_any, NULL, NULL);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(coro_pool_spawn(p, 0, NULL, counts_any, NULL, NULL), ECANCELED);
    atomic_store(&any_ran, 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(coro_pool_spawn(p, CORO_ANY, NULL, counts_any, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(atomic_load(&any_ran), 10);
    /* Thread 1 closed too: nowhere to go. */
    ck_assert_int_eq(coro_pool_spawn(p, 1, NULL, shuts_its_thread, NULL, NULL), 0);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    coro_pool_spawn(p, 1, NULL, counts_any, NULL, NULL);
    ck_assert_int_eq(coro_pool_wait(p, -1), 0);
    ck_assert_int_eq(coro_pool_spawn(p, CORO_ANY, NULL, counts_any, NULL, NULL), ECANCELED);
    ck_assert_int_eq(coro_pool_destroy(p), 0);
}
END_TEST

int main(void)
{

    Suite *su = suite_create("mt");
    TCase *tc = tcase_create("inbox");
    tcase_add_test(tc, burst_to_a_sleeper_rings_once_per_sleep);
    tcase_add_test(tc, posts_to_an_awake_thread_ring_nothing);
    tcase_add_test(tc, remote_wake_races_the_deadline);
    suite_add_tcase(su, tc);
    tc = tcase_create("claim");
    tcase_add_test(tc, unbound_channel_goes_to_its_first_pool_thread);
    tcase_add_test(tc, main_destroys_a_claimed_channel);
    tcase_add_test(tc, first_call_from_main_shares);
    tcase_add_test(tc, unbound_mutex_and_cond_go_to_the_waiter);
    tcase_add_test(tc, first_calls_race_for_the_claim);
    tcase_add_test(tc, group_home_is_not_an_address);
    suite_add_tcase(su, tc);
    tc = tcase_create("edges");
    tcase_add_test(tc, pool_coroutine_without_a_stack);
    tcase_add_test(tc, far_spawns_leave_errno_alone);
    tcase_add_test(tc, any_passes_over_closed_threads);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* prodcons: a producer and a consumer, each written as a plain loop, that
 * pass values to each other through coro_resume and coro_yield.
 *
 * The consumer runs as a coroutine.  main is the producer: it makes an
 * item and resumes the consumer with it (the in argument of coro_resume);
 * the consumer handles it and yields back a receipt (the out argument of
 * coro_yield), which main receives in the out argument of its coro_resume.
 * When main is out of items it resumes the consumer with NULL, and the
 * consumer returns its total.
 *
 * Build: cc prodcons.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item {
    int id;
    const char *what;
    int quantity;
};

/* The consumer: receives items until it gets NULL.  Its state (the total)
 * lives in ordinary local variables across the switches. */
static void *consumer(void *arg)
{
    const char *name = arg;
    struct item *it = NULL;
    intptr_t total = 0;

    coro_yield(NULL, (void **)&it);     /* ready: wait for the first item */
    while (it != NULL) {
        total += it->quantity;
        printf("%s: got #%d, %d x %s (total %ld)\n", name, it->id, it->quantity,
               it->what, (long)total);
        /* Hand back a receipt, and wait for the next item. */
        coro_yield((void *)(intptr_t)it->id, (void **)&it);
    }
    return (void *)total;               /* the last resume receives this */
}

static void check(int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "prodcons: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

int main(void)
{
    struct item items[] = {
        {1, "apple", 3}, {2, "pear", 5}, {3, "plum", 2}, {4, "fig", 7},
    };
    coro_attr_t attr;
    coro_t *co;
    void *receipt;

    /* A name shows up in stack overflow reports, coro_dump and gdb. */
    coro_attr_init(&attr);
    check(coro_attr_set_name(&attr, "consumer"), "coro_attr_set_name");
    check(coro_create(&co, consumer, "consumer", &attr), "coro_create");

    /* The first resume starts it; it stops at its first coro_yield. */
    check(coro_resume(co, NULL, NULL), "coro_resume");

    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        printf("producer: sending #%d\n", items[i].id);
        check(coro_resume(co, &items[i], &receipt), "coro_resume");
        printf("producer: receipt for #%ld\n", (long)(intptr_t)receipt);
    }

    /* No more items: the consumer leaves its loop and returns. */
    void *total;
    check(coro_resume(co, NULL, &total), "coro_resume");
    printf("producer: done, consumer counted %ld (state %s)\n", (long)(intptr_t)total,
           coro_state(co) == CORO_FINISHED ? "finished" : "not finished");
    check(coro_destroy(co), "coro_destroy");
    return 0;
}

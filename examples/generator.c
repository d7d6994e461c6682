/* generator: a coroutine that produces the Fibonacci numbers one at a
 * time.  Each coro_yield hands the next number to whoever resumed the
 * generator and suspends it right there, in the middle of its loop, with
 * its local variables intact; the next coro_resume continues after the
 * yield.  The caller decides how many numbers it wants and then simply
 * destroys the generator.
 *
 * Build: cc generator.c $(pkg-config --cflags --libs coro) */
#include <coro.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values travel as void *: a pointer to the generator's own variable is
 * valid until the generator is resumed again, which is all the caller
 * needs to read it. */
static void *fibonacci(void *arg)
{
    uint64_t limit = *(uint64_t *)arg;
    uint64_t a = 0, b = 1;

    while (a <= limit) {
        coro_yield(&a, NULL);       /* hand out a, wait to be resumed */
        uint64_t next = a + b;
        a = b;
        b = next;
    }
    return NULL;                    /* finished: the caller sees NULL */
}

static void check(int err, const char *what)
{
    if (err != 0) {
        fprintf(stderr, "generator: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

int main(void)
{
    uint64_t limit = 1000;
    coro_t *gen;
    void *value;

    /* NULL attributes: the default stack size and no name. */
    check(coro_create(&gen, fibonacci, &limit, NULL), "coro_create");

    /* Every resume runs the generator up to its next yield (or its end). */
    printf("Fibonacci numbers up to %" PRIu64 ":", limit);
    for (;;) {
        check(coro_resume(gen, NULL, &value), "coro_resume");
        if (coro_state(gen) == CORO_FINISHED)
            break;                  /* value is fibonacci's return value */
        printf(" %" PRIu64, *(uint64_t *)value);
    }
    printf("\n");
    check(coro_destroy(gen), "coro_destroy");

    /* A generator need not be run to its end: take the first ten of a long
     * sequence and destroy it while it is suspended. */
    limit = UINT64_C(1000000000000000000);
    check(coro_create(&gen, fibonacci, &limit, NULL), "coro_create");
    printf("the first ten:");
    for (int i = 0; i < 10; i++) {
        check(coro_resume(gen, NULL, &value), "coro_resume");
        printf(" %" PRIu64, *(uint64_t *)value);
    }
    printf("\n");
    check(coro_destroy(gen), "coro_destroy");
    return 0;
}

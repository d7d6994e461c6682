/* The public header compiles in a strict ISO C11 program (no POSIX or GNU
 * feature macros, -pedantic): the build fails here if it does not. */
#include <coro.h>

int main(void)
{
    coro_key_t key = 0;

    return coro_getspecific(key) == NULL && coro_self() == NULL ? 0 : 1;
}

/* test/bigframe.c: a 16 KiB stack frame built without stack-clash
 * protection. */
#ifndef CORO_TEST_BIGFRAME_H
#define CORO_TEST_BIGFRAME_H

/* Recurses without end, 16 KiB a call, writing each frame's far end first. */
int bigframe_recurse(int depth);

#endif

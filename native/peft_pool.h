#ifndef PEFT_POOL_H
#define PEFT_POOL_H
#include <stdint.h>

/*
 * The native kernels' threads: the calling thread and up to POOL_MAX_THREADS - 1 helpers, kept for the
 * life of the process. A kernel splits its work into contiguous ranges of [0, n) and every thread
 * runs one; the call returns when all are done, so callers see an ordinary synchronous function.
 *
 * Why a pool of our own instead of OpenBLAS's threads: OpenBLAS parallelises only its own products,
 * and its idle workers spin on the second core while the elementwise kernels (GELU, LayerNorm,
 * softmax, dropout, sums) run on one. Here OpenBLAS runs single-threaded inside each range, products
 * are split like everything else, and between kernels the helpers spin briefly (a step issues
 * hundreds of kernels a few microseconds apart) and then sleep.
 */

#define POOL_MAX_THREADS 64

/* Work on [lo, hi) of a kernel's range; `part` is the thread's index in the call (0 = the caller). */
typedef void (*pool_fn)(void *ctx, int64_t lo, int64_t hi, int part);

/* Threads used from now on (clamped to [1, POOL_MAX_THREADS]); returns the count in force. */
int pool_set_threads(int threads);
int pool_threads(void);

/* How many parts pool_run splits n into with at least `grain` items each (1 .. pool_threads()). */
int pool_parts(int64_t n, int64_t grain);

/*
 * Runs fn over [0, n) in pool_parts(n, grain) contiguous ranges, in this thread and the helpers, and
 * returns when every range is done. Ranges are a pure function of n and the part count, so results
 * do not depend on timing. Calls from different threads are serialised.
 */
void pool_run(pool_fn fn, void *ctx, int64_t n, int64_t grain);

/* The range of part `part` of `parts` over [0, n). */
void pool_range(int64_t n, int parts, int part, int64_t *lo, int64_t *hi);

#endif

/* adamw and sumSquares: a whole AdamW step in place, and the global gradient norm's sum of squares. */
#include <stdlib.h>
#include "peft_kernels.h"
#include "peft_pool.h"
#include "peft_napi.h"

/* One parameter of an AdamW step: its operands and its own step's scalars. */
typedef struct {
  float *p, *m, *v;
  const float *g;
  int64_t n, first_block;
  pk_adamw_scalars s;
} adamw_param;

typedef struct {
  const adamw_param *params;
  int64_t count;
} adamw_job;

/* Blocks [lo, hi) of the parameters laid end to end (each starts on a block of its own). */
static void adamw_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const adamw_job *j = ctx;
  int64_t i = 0;
  while (i + 1 < j->count && j->params[i + 1].first_block <= lo) i++;
  for (; i < j->count && j->params[i].first_block < hi; i++) {
    const adamw_param *q = &j->params[i];
    const int64_t from = (lo > q->first_block ? lo - q->first_block : 0) * BLOCK;
    int64_t to = (hi - q->first_block) * BLOCK;
    if (to > q->n) to = q->n;
    if (to > from) pk_adamw(q->p + from, q->g + from, q->m + from, q->v + from, to - from, &q->s);
  }
}

/*
 * adamw(heap, table, beta1, 1 - beta1, beta2, 1 - beta2, eps, gradScale): one AdamW step of many
 * parameters in one call. Each table row is (pOff, gOff, mOff, vOff, n, sqrt(1 - beta2^t),
 * 1 - lr * decay, lr / (1 - beta1^t)), the last three from that parameter's own step count.
 */
#define ADAMW_ROW 8
napi_value adamw(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  const double *t;
  int64_t count;
  double a[6];
  if (!table_args(env, info, "adamw", ADAMW_ROW, 6, &heap, &len, &t, &count, a)) return NULL;
  adamw_param *params = malloc((size_t)(count > 0 ? count : 1) * sizeof *params);
  if (!params) return throw_error(env, "peft_native.adamw: out of memory");
  int bad = 0;
  int64_t blocks = 0;
  for (int64_t i = 0; i < count && !bad; i++) {
    const double *r = t + i * ADAMW_ROW;
    const int64_t n = count_of(r[4]);
    bad = n < 0;
    adamw_param *q = &params[i];
    q->p = operand(heap, len, r[0], n, 0, &bad), q->g = operand(heap, len, r[1], n, 0, &bad);
    q->m = operand(heap, len, r[2], n, 0, &bad), q->v = operand(heap, len, r[3], n, 0, &bad);
    q->n = n;
    q->first_block = blocks;
    blocks += blocks_of(n);
    q->s = (pk_adamw_scalars){(float)a[0], (float)a[1], (float)a[2], (float)a[3], (float)r[5], (float)a[4], (float)r[6], (float)r[7], (float)a[5]};
  }
  if (!bad) {
    adamw_job job = {params, count};
    pool_run(adamw_part, &job, blocks, MIN_PART_ELEMENTS / BLOCK);
  }
  free(params);
  return bad ? bad_operand(env, "adamw") : NULL;
}

/* sumSquares(heap, table): the sum of squares of every element of every (off, n) row, in double. */
napi_value sum_squares(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  const double *t;
  int64_t count;
  if (!table_args(env, info, "sumSquares", 2, 0, &heap, &len, &t, &count, NULL)) return NULL;
  double sum = 0.0;
  for (int64_t i = 0; i < count; i++) {
    const int64_t n = count_of(t[2 * i + 1]);
    int bad = n < 0;
    const float *x = operand(heap, len, t[2 * i], n, 0, &bad);
    if (bad) return bad_operand(env, "sumSquares");
    sum += pk_sum_squares(x, n);
  }
  napi_value result;
  CHECK(env, napi_create_double(env, sum, &result));
  return result;
}

/* unary (exp, erf) and the fused GELU with its bias, forward and backward. */
#include "peft_math.h"
#include "peft_pool.h"
#include "peft_napi.h"

/* Each of these runs units [lo, hi) of one kernel: rows, or elements for the flat ones. */
static void gelu_bias_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_gelu_bias(j->x + lo * j->cols, j->b, j->y + lo * j->cols, hi - lo, j->cols);
}
static void gelu_bias_grad_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_gelu_bias_grad(j->dy + lo * j->cols, j->x + lo * j->cols, j->b, j->dx + lo * j->cols, hi - lo, j->cols);
}
static void unary_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  int64_t i, n;
  block_range(j, lo, hi, &i, &n);
  pm_unary(j->op, j->x + i, j->y + i, n);
}

napi_value unary(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[4];
  if (!heap_args(env, info, "unary", 4, &heap, &len, a)) return NULL;
  const int64_t n = count_of(a[3]);
  int bad = n < 0;
  if (bad) return bad_operand(env, "unary");
  const float *x = operand(heap, len, a[1], n, 0, &bad);
  float *y = operand(heap, len, a[2], n, 0, &bad);
  if (bad) return bad_operand(env, "unary");
  if (a[0] != PM_EXP && a[0] != PM_ERF) return throw_error(env, "peft_native.unary: unknown op");
  span_job job = {.x = x, .y = y, .op = (int)a[0], .rows = n};
  pool_run(unary_part, &job, blocks_of(n), MIN_PART_ELEMENTS / BLOCK);
  return NULL;
}

napi_value gelu_bias(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[5];
  if (!heap_args(env, info, "geluBias", 5, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[3]), cols = count_of(a[4]);
  int bad = rows < 0 || cols < 0;
  if (bad) return bad_operand(env, "geluBias");
  const float *x = operand(heap, len, a[0], rows * cols, 0, &bad), *b = operand(heap, len, a[1], cols, 1, &bad);
  float *y = operand(heap, len, a[2], rows * cols, 0, &bad);
  if (bad) return bad_operand(env, "geluBias");
  span_job job = {.x = x, .b = b, .y = y, .cols = cols};
  if (cols > 0) pool_run(gelu_bias_part, &job, rows, grain_of(cols));
  return NULL;
}

napi_value gelu_bias_grad(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[6];
  if (!heap_args(env, info, "geluBiasGrad", 6, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[4]), cols = count_of(a[5]);
  int bad = rows < 0 || cols < 0;
  if (bad) return bad_operand(env, "geluBiasGrad");
  const float *dy = operand(heap, len, a[0], rows * cols, 0, &bad), *x = operand(heap, len, a[1], rows * cols, 0, &bad);
  const float *b = operand(heap, len, a[2], cols, 1, &bad);
  float *dx = operand(heap, len, a[3], rows * cols, 0, &bad);
  if (bad) return bad_operand(env, "geluBiasGrad");
  span_job job = {.dy = dy, .x = x, .b = b, .dx = dx, .cols = cols};
  if (cols > 0) pool_run(gelu_bias_grad_part, &job, rows, grain_of(cols));
  return NULL;
}

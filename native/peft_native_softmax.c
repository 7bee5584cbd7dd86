/* softmax and softmaxGrad (the attention's masked, scaled softmax); xent and xentGrad (softmax cross-entropy). */
#include "peft_math.h"
#include "peft_pool.h"
#include "peft_napi.h"

/* Units of `group` rows, which share one mask row. */
static void softmax_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  const int64_t first = lo * j->group;
  pm_softmax(j->x + first * j->cols, j->mask ? j->mask + lo * j->cols : NULL, j->y + first * j->cols, (hi - lo) * j->group, j->cols, j->group,
             j->scale);
}
static void softmax_grad_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_softmax_grad(j->dy + lo * j->cols, j->x + lo * j->cols, j->dx + lo * j->cols, hi - lo, j->cols, j->scale);
}
static void xent_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_xent(j->x + lo * j->cols, j->idx + lo, j->y + lo, j->rstd + lo, hi - lo, j->cols);
}
static void xent_grad_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_xent_grad(j->x + lo * j->cols, j->mean_in + lo, j->idx + lo, j->dx + lo * j->cols, hi - lo, j->cols, j->scale);
}

napi_value softmax(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[7];
  if (!heap_args(env, info, "softmax", 7, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[3]), cols = count_of(a[4]), group = count_of(a[5]);
  int bad = rows < 0 || cols < 0 || group < 1 || rows % group != 0;
  if (bad) return bad_operand(env, "softmax");
  const float *x = operand(heap, len, a[0], rows * cols, 0, &bad), *mask = operand(heap, len, a[1], rows / group * cols, 1, &bad);
  float *y = operand(heap, len, a[2], rows * cols, 0, &bad);
  if (bad) return bad_operand(env, "softmax");
  /* Without a mask every row is a unit of its own. */
  span_job job = {.x = x, .mask = mask, .y = y, .cols = cols, .group = mask ? group : 1, .scale = (float)a[6]};
  if (cols > 0) pool_run(softmax_part, &job, rows / job.group, grain_of(job.group * cols));
  return NULL;
}

napi_value softmax_grad(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[6];
  if (!heap_args(env, info, "softmaxGrad", 6, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[3]), cols = count_of(a[4]);
  int bad = rows < 0 || cols < 0;
  if (bad) return bad_operand(env, "softmaxGrad");
  const float *dy = operand(heap, len, a[0], rows * cols, 0, &bad), *y = operand(heap, len, a[1], rows * cols, 0, &bad);
  float *dx = operand(heap, len, a[2], rows * cols, 0, &bad);
  if (bad) return bad_operand(env, "softmaxGrad");
  span_job job = {.dy = dy, .x = y, .dx = dx, .cols = cols, .scale = (float)a[5]};
  if (cols > 0) pool_run(softmax_grad_part, &job, rows, grain_of(cols));
  return NULL;
}

/* The int32 targets at byte offset `off` of the heap, each checked to be in [0, cols); NULL with *bad set otherwise. */
static const int32_t *class_targets(float *heap, size_t len, double off, int64_t rows, int64_t cols, int *bad) {
  const int32_t *t = (const int32_t *)operand(heap, len, off, rows, 0, bad);
  for (int64_t r = 0; t && r < rows; r++) {
    if (t[r] < 0 || t[r] >= cols) {
      *bad = 1;
      return NULL;
    }
  }
  return t;
}

/* xent(heap, xOff, targetOff, lossOff, lseOff, rows, cols): per-row softmax cross-entropy and log-sum-exp. */
napi_value xent(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[6];
  if (!heap_args(env, info, "xent", 6, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[4]), cols = count_of(a[5]);
  int bad = rows < 0 || cols < 1;
  if (bad) return bad_operand(env, "xent");
  span_job job = {.x = operand(heap, len, a[0], rows * cols, 0, &bad), .idx = class_targets(heap, len, a[1], rows, cols, &bad),
                  .y = operand(heap, len, a[2], rows, 0, &bad), .rstd = operand(heap, len, a[3], rows, 0, &bad), .cols = cols};
  if (bad) return throw_error(env, "peft_native.xent: bad dimensions, operand outside the heap, or a target outside [0, cols)");
  pool_run(xent_part, &job, rows, grain_of(cols));
  return NULL;
}

/* xentGrad(heap, xOff, lseOff, targetOff, dxOff, rows, cols, scale): dx = scale * (softmax(x) - onehot(target)). */
napi_value xent_grad(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[7];
  if (!heap_args(env, info, "xentGrad", 7, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[4]), cols = count_of(a[5]);
  int bad = rows < 0 || cols < 1;
  if (bad) return bad_operand(env, "xentGrad");
  span_job job = {.x = operand(heap, len, a[0], rows * cols, 0, &bad), .mean_in = operand(heap, len, a[1], rows, 0, &bad),
                  .idx = class_targets(heap, len, a[2], rows, cols, &bad), .dx = operand(heap, len, a[3], rows * cols, 0, &bad),
                  .cols = cols, .scale = (float)a[6]};
  if (bad) return throw_error(env, "peft_native.xentGrad: bad dimensions, operand outside the heap, or a target outside [0, cols)");
  pool_run(xent_grad_part, &job, rows, grain_of(cols));
  return NULL;
}

/* layerNorm and layerNormGrad: LayerNorm forward (y, mean, rstd) and backward (dx, dgain, dbias). */
#include <stdlib.h>
#include "peft_kernels.h"
#include "peft_pool.h"
#include "peft_napi.h"

static void layer_norm_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pk_layer_norm(j->x + lo * j->cols, j->g, j->b, j->y + lo * j->cols, j->mean + lo, j->rstd + lo, hi - lo, j->cols, j->eps);
}
static void layer_norm_grad_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  double *acc = j->acc + (int64_t)part * 2 * j->cols;
  pk_layer_norm_grad(j->dy + lo * j->cols, j->x + lo * j->cols, j->mean_in + lo, j->rstd_in + lo, j->g, j->dx + lo * j->cols, acc,
                     acc + j->cols, hi - lo, j->cols);
}

napi_value layer_norm(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[9];
  if (!heap_args(env, info, "layerNorm", 9, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[6]), cols = count_of(a[7]);
  int bad = rows < 0 || cols < 0;
  if (bad) return bad_operand(env, "layerNorm");
  const float *x = operand(heap, len, a[0], rows * cols, 0, &bad), *g = operand(heap, len, a[1], cols, 0, &bad);
  const float *b = operand(heap, len, a[2], cols, 0, &bad);
  float *y = operand(heap, len, a[3], rows * cols, 0, &bad), *mean = operand(heap, len, a[4], rows, 0, &bad);
  float *rstd = operand(heap, len, a[5], rows, 0, &bad);
  if (bad) return bad_operand(env, "layerNorm");
  span_job job = {.x = x, .g = g, .b = b, .y = y, .mean = mean, .rstd = rstd, .cols = cols, .eps = (float)a[8]};
  if (cols > 0) pool_run(layer_norm_part, &job, rows, grain_of(cols));
  return NULL;
}

napi_value layer_norm_grad(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[10];
  if (!heap_args(env, info, "layerNormGrad", 10, &heap, &len, a)) return NULL;
  const int64_t rows = count_of(a[8]), cols = count_of(a[9]);
  int bad = rows < 0 || cols < 0;
  if (bad) return bad_operand(env, "layerNormGrad");
  const int64_t n = rows * cols;
  const float *dy = operand(heap, len, a[0], n, 0, &bad), *x = operand(heap, len, a[1], n, 0, &bad);
  const float *mean = operand(heap, len, a[2], rows, 0, &bad), *rstd = operand(heap, len, a[3], rows, 0, &bad);
  const float *g = operand(heap, len, a[4], cols, 0, &bad);
  float *dx = operand(heap, len, a[5], n, 0, &bad), *dg = operand(heap, len, a[6], cols, 0, &bad), *db = operand(heap, len, a[7], cols, 0, &bad);
  if (bad) return bad_operand(env, "layerNormGrad");
  if (cols == 0) return NULL;
  const int parts = pool_parts(rows, grain_of(cols));
  double *acc = (double *)calloc((size_t)(parts * 2 * cols), sizeof(double));
  if (!acc) return throw_error(env, "peft_native.layerNormGrad: out of memory");
  span_job job = {.dy = dy, .x = x, .mean_in = mean, .rstd_in = rstd, .g = g, .dx = dx, .acc = acc, .cols = cols};
  pool_run(layer_norm_grad_part, &job, rows, grain_of(cols));
  /* The parts' column sums, added in part order: the same split gives the same result every time. */
  for (int64_t c = 0; c < cols; c++) {
    double sum_g = 0, sum_b = 0;
    for (int p = 0; p < parts; p++) {
      sum_g += acc[(int64_t)p * 2 * cols + c];
      sum_b += acc[(int64_t)p * 2 * cols + cols + c];
    }
    dg[c] = (float)sum_g;
    db[c] = (float)sum_b;
  }
  free(acc);
  return NULL;
}

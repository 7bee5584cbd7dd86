/* sumRows and sumCols: sums and means over leading or trailing axes, accumulated in double. */
#include <stdio.h>
#include <stdlib.h>
#include "peft_pool.h"
#include "peft_napi.h"

/* Reads (heap, xOff, yOff, rows, cols[, scale]) for sumRows and sumCols; 0 after throwing. */
static int reduce_args(napi_env env, napi_callback_info info, const char *name, float **x, float **y, int64_t *rows, int64_t *cols,
                       double *scale, int64_t out_count_is_rows) {
  size_t argc = 6;
  napi_value argv[6];
  char message[128];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    snprintf(message, sizeof message, "peft_native.%s: expected 5 or 6 arguments", name);
    napi_throw_error(env, NULL, message);
    return 0;
  }
  float *heap = NULL;
  size_t heap_len = 0;
  int64_t x_off, y_off;
  *scale = 1.0;
  if (!get_heap(env, argv[0], &heap, &heap_len) || !get_int64(env, argv[1], &x_off) || !get_int64(env, argv[2], &y_off) ||
      !get_int64(env, argv[3], rows) || !get_int64(env, argv[4], cols) ||
      (argc > 5 && napi_get_value_double(env, argv[5], scale) != napi_ok)) {
    snprintf(message, sizeof message, "peft_native.%s: bad argument types", name);
    napi_throw_error(env, NULL, message);
    return 0;
  }
  if (*rows < 0 || *cols < 0 || !in_heap(x_off, *rows * *cols, heap_len) || !in_heap(y_off, out_count_is_rows ? *rows : *cols, heap_len)) {
    snprintf(message, sizeof message, "peft_native.%s: bad dimensions or operand outside the heap", name);
    napi_throw_error(env, NULL, message);
    return 0;
  }
  *x = heap + x_off / 4;
  *y = heap + y_off / 4;
  return 1;
}

typedef struct {
  const float *x;
  float *y;
  double *acc;
  int64_t rows, cols;
  double scale;
} reduce_job;

/* Pool parts: rows [lo, hi) of sumCols. */
static void sum_cols_range(void *ctx, int64_t lo, int64_t hi, int part) {
  const reduce_job *j = (const reduce_job *)ctx;
  for (int64_t r = lo; r < hi; r++) {
    const float *row = j->x + r * j->cols;
    double acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
    int64_t c = 0;
    for (; c + 4 <= j->cols; c += 4) {
      acc0 += row[c];
      acc1 += row[c + 1];
      acc2 += row[c + 2];
      acc3 += row[c + 3];
    }
    for (; c < j->cols; c++) acc0 += row[c];
    j->y[r] = (float)(j->scale * ((acc0 + acc1) + (acc2 + acc3)));
  }
}

/* Pool parts: columns [lo, hi) of sumRows (each column's sum stays in one thread, in row order). */
static void sum_rows_range(void *ctx, int64_t lo, int64_t hi, int part) {
  const reduce_job *j = (const reduce_job *)ctx;
  for (int64_t r = 0; r < j->rows; r++) {
    const float *row = j->x + r * j->cols;
    for (int64_t c = lo; c < hi; c++) j->acc[c] += row[c];
  }
  for (int64_t c = lo; c < hi; c++) j->y[c] = (float)(j->scale * j->acc[c]);
}

/* y[r] = scale * sum over c of x[r, c]: sums and means over trailing axes (softmax gradient, LayerNorm
 * moments). Accumulated in double. */
napi_value sum_cols(napi_env env, napi_callback_info info) {
  reduce_job j;
  if (!reduce_args(env, info, "sumCols", (float **)&j.x, &j.y, &j.rows, &j.cols, &j.scale, 1)) return NULL;
  pool_run(sum_cols_range, &j, j.rows, grain_of(j.cols));
  return NULL;
}

/* y[c] = scale * sum over r of x[r, c], x [rows, cols] row-major: the bias gradient. Accumulated in double. */
napi_value sum_rows(napi_env env, napi_callback_info info) {
  reduce_job j;
  if (!reduce_args(env, info, "sumRows", (float **)&j.x, &j.y, &j.rows, &j.cols, &j.scale, 0)) return NULL;
  if (j.cols == 0) return NULL;
  j.acc = (double *)calloc((size_t)j.cols, sizeof(double));
  if (!j.acc) return throw_error(env, "peft_native.sumRows: out of memory");
  /* Parts of at least 16 columns (a cache line of doubles each side of a boundary). */
  int64_t grain = grain_of(j.rows);
  pool_run(sum_rows_range, &j, j.cols, grain < 16 ? 16 : grain);
  free(j.acc);
  return NULL;
}

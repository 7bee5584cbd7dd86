/* transpose: any rank and permutation of 4-byte elements, tiled. */
#include <string.h>
#include "peft_napi.h"

#define MAX_RANK 16
#define TILE 32

/*
 * y = transpose(x, perm) for x of `rank` dims `shape`, 4-byte elements. Dims of size 1 are dropped
 * and input dims that stay adjacent and in order are merged first, so the common cases become
 * small ranks. Then either whole contiguous rows are copied (the last dim stays last), or a blocked
 * 2-D transpose runs between the input's last dim and the input dim that becomes the output's last,
 * for every index of the remaining dims.
 */
static void transpose_u32(const uint32_t *x, uint32_t *y, int rank, const int64_t *shape, const int *perm) {
  /* 1. Drop size-1 dims. */
  int64_t s[MAX_RANK];
  int p[MAX_RANK], keep[MAX_RANK], r = 0;
  int64_t total = 1;
  for (int i = 0; i < rank; i++) total *= shape[i];
  if (total == 0) return;
  for (int i = 0; i < rank; i++) keep[i] = -1;
  for (int i = 0; i < rank; i++) {
    if (shape[i] != 1) keep[i] = r++;
  }
  {
    int j = 0;
    for (int i = 0; i < rank; i++) {
      if (shape[perm[i]] != 1) p[j++] = keep[perm[i]];
    }
    for (int i = 0; i < rank; i++) {
      if (keep[i] >= 0) s[keep[i]] = shape[i];
    }
  }
  if (r == 0) {
    y[0] = x[0];
    return;
  }
  /* 2. Merge input dims d, d+1 that are output-adjacent in the same order. */
  for (;;) {
    int merged = 0;
    for (int i = 0; i + 1 < r; i++) {
      if (p[i + 1] == p[i] + 1) {
        const int d = p[i];
        s[d] *= s[d + 1];
        for (int k = d + 1; k + 1 < r; k++) s[k] = s[k + 1];
        for (int k = i + 1; k + 1 < r; k++) p[k] = p[k + 1];
        r--;
        for (int k = 0; k < r; k++) {
          if (p[k] > d) p[k]--;
        }
        merged = 1;
        break;
      }
    }
    if (!merged) break;
  }
  if (r == 1) {
    memcpy(y, x, (size_t)total * sizeof(uint32_t));
    return;
  }
  /* Strides: input in its own order, output in output order; in_of_out[i] = input stride of output dim i. */
  int64_t in_stride[MAX_RANK], out_shape[MAX_RANK], out_stride[MAX_RANK], in_of_out[MAX_RANK];
  in_stride[r - 1] = 1;
  for (int i = r - 2; i >= 0; i--) in_stride[i] = in_stride[i + 1] * s[i + 1];
  for (int i = 0; i < r; i++) out_shape[i] = s[p[i]];
  out_stride[r - 1] = 1;
  for (int i = r - 2; i >= 0; i--) out_stride[i] = out_stride[i + 1] * out_shape[i + 1];
  for (int i = 0; i < r; i++) in_of_out[i] = in_stride[p[i]];

  int64_t idx[MAX_RANK];
  for (int i = 0; i < r; i++) idx[i] = 0;
  int64_t in_base = 0, out_base = 0;
  if (p[r - 1] == r - 1) {
    /* The last dim stays last: copy contiguous runs, odometer over output dims 0..r-2. */
    const int64_t run = s[r - 1];
    for (;;) {
      memcpy(y + out_base, x + in_base, (size_t)run * sizeof(uint32_t));
      int d = r - 2;
      for (; d >= 0; d--) {
        idx[d]++;
        in_base += in_of_out[d];
        out_base += out_stride[d];
        if (idx[d] < out_shape[d]) break;
        in_base -= in_of_out[d] * out_shape[d];
        out_base -= out_stride[d] * out_shape[d];
        idx[d] = 0;
      }
      if (d < 0) return;
    }
  }
  /* Output dim b holds the input's last dim; output dim r-1 holds input dim p[r-1] != r-1. */
  int b = 0;
  for (int i = 0; i < r; i++) {
    if (p[i] == r - 1) b = i;
  }
  const int64_t rows = out_shape[r - 1]; /* along output's last dim: input stride in_of_out[r-1] */
  const int64_t cols = out_shape[b];     /* along input's last dim: output stride out_stride[b] */
  const int64_t in_row_stride = in_of_out[r - 1], out_col_stride = out_stride[b];
  /* Odometer over the other output dims. */
  for (;;) {
    for (int64_t c0 = 0; c0 < cols; c0 += TILE) {
      const int64_t c1 = c0 + TILE < cols ? c0 + TILE : cols;
      for (int64_t r0 = 0; r0 < rows; r0 += TILE) {
        const int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows;
        for (int64_t c = c0; c < c1; c++) {
          const uint32_t *src = x + in_base + c;
          uint32_t *dst = y + out_base + c * out_col_stride;
          for (int64_t q = r0; q < r1; q++) dst[q] = src[q * in_row_stride];
        }
      }
    }
    /* Next index of the dims other than b and r-1. */
    int d = r - 2;
    for (; d >= 0; d--) {
      if (d == b) continue;
      idx[d]++;
      in_base += in_of_out[d];
      out_base += out_stride[d];
      if (idx[d] < out_shape[d]) break;
      in_base -= in_of_out[d] * out_shape[d];
      out_base -= out_stride[d] * out_shape[d];
      idx[d] = 0;
    }
    if (d < 0) break;
  }
}

/* An Int32Array argument: its data and length in elements. 0 if `value` is not one. */
static int get_int32_array(napi_env env, napi_value value, const int32_t **out, size_t *length) {
  void *ptr = NULL;
  if (!typed_array(env, value, napi_int32_array, &ptr, length)) return 0;
  *out = (const int32_t *)ptr;
  return 1;
}

napi_value transpose(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_error(env, "peft_native.transpose: expected 5 arguments");
  float *heap = NULL;
  size_t heap_len = 0;
  if (!get_heap(env, argv[0], &heap, &heap_len)) return throw_error(env, "peft_native.transpose: heap must be a Float32Array");
  int64_t x_off, y_off;
  const int32_t *shape32 = NULL, *perm32 = NULL;
  size_t rank = 0, perm_len = 0;
  if (!get_int64(env, argv[1], &x_off) || !get_int64(env, argv[2], &y_off) || !get_int32_array(env, argv[3], &shape32, &rank) ||
      !get_int32_array(env, argv[4], &perm32, &perm_len)) {
    return throw_error(env, "peft_native.transpose: bad argument types");
  }
  if (rank != perm_len || rank > MAX_RANK) return throw_error(env, "peft_native.transpose: shape and perm must have the same rank, at most 16");
  int64_t shape[MAX_RANK];
  int perm[MAX_RANK], seen[MAX_RANK] = {0};
  int64_t total = 1;
  for (size_t i = 0; i < rank; i++) {
    if (shape32[i] < 0) return throw_error(env, "peft_native.transpose: negative dimension");
    if (perm32[i] < 0 || (size_t)perm32[i] >= rank || seen[perm32[i]]) return throw_error(env, "peft_native.transpose: perm is not a permutation");
    seen[perm32[i]] = 1;
    shape[i] = shape32[i];
    perm[i] = perm32[i];
    total *= shape[i];
  }
  if (!in_heap(x_off, total, heap_len) || !in_heap(y_off, total, heap_len)) {
    return throw_error(env, "peft_native.transpose: operand outside the heap");
  }
  if (total == 0) return NULL;
  transpose_u32((const uint32_t *)(heap + x_off / 4), (uint32_t *)(heap + y_off / 4), (int)rank, shape, perm);
  return NULL;
}

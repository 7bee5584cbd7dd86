/* gatherRows and copyBlocks: the embedding lookups and the block copies of Unpack, Slice, SplitV and Concat. */
#include <string.h>
#include "peft_pool.h"
#include "peft_napi.h"

/* Rows [lo, hi) of the index list, for every outer block (4-byte elements moved as bits). */
static void gather_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  const uint32_t *x = (const uint32_t *)j->x;
  uint32_t *y = (uint32_t *)j->y;
  const size_t bytes = (size_t)j->inner * sizeof(uint32_t);
  for (int64_t o = 0; o < j->group; o++) {
    const uint32_t *xo = x + o * j->dim * j->inner;
    uint32_t *yo = y + o * j->rows * j->inner;
    for (int64_t r = lo; r < hi; r++) memcpy(yo + r * j->inner, xo + (int64_t)j->idx[r] * j->inner, bytes);
  }
}

napi_value gather_rows(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[7];
  if (!heap_args(env, info, "gatherRows", 7, &heap, &len, a)) return NULL;
  const int64_t outer = count_of(a[3]), dim = count_of(a[4]), inner = count_of(a[5]), n = count_of(a[6]);
  int bad = outer < 0 || dim < 0 || inner < 0 || n < 0;
  if (bad) return bad_operand(env, "gatherRows");
  const uint32_t *x = (const uint32_t *)operand(heap, len, a[0], outer * dim * inner, 0, &bad);
  const int32_t *idx = (const int32_t *)operand(heap, len, a[1], n, 0, &bad);
  uint32_t *y = (uint32_t *)operand(heap, len, a[2], outer * n * inner, 0, &bad);
  if (bad) return bad_operand(env, "gatherRows");
  for (int64_t j = 0; j < n; j++) {
    if (idx[j] < 0 || idx[j] >= dim) {
      napi_value index; // returned, not thrown: the caller names the op and the valid range
      CHECK(env, napi_create_int32(env, idx[j], &index));
      return index;
    }
  }
  span_job job = {.x = (const float *)x, .y = (float *)y, .idx = idx, .group = outer, .dim = dim, .inner = inner, .rows = n};
  pool_run(gather_part, &job, n, grain_of(outer * inner));
  return NULL;
}

napi_value copy_blocks(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[6];
  if (!heap_args(env, info, "copyBlocks", 6, &heap, &len, a)) return NULL;
  const int64_t count = count_of(a[2]), block = count_of(a[3]), src_stride = count_of(a[4]), dst_stride = count_of(a[5]);
  int bad = count < 0 || block < 0 || src_stride < block || dst_stride < block;
  if (bad) return bad_operand(env, "copyBlocks");
  if (count == 0 || block == 0) return NULL;
  const uint32_t *src = (const uint32_t *)operand(heap, len, a[0], (count - 1) * src_stride + block, 0, &bad);
  uint32_t *dst = (uint32_t *)operand(heap, len, a[1], (count - 1) * dst_stride + block, 0, &bad);
  if (bad) return bad_operand(env, "copyBlocks");
  const size_t bytes = (size_t)block * sizeof(uint32_t);
  for (int64_t i = 0; i < count; i++) memcpy(dst + i * dst_stride, src + i * src_stride, bytes);
  return NULL;
}

/* sgemm and sgemmStrided: batches of products on OpenBLAS, split over the pool (OpenBLAS single-threaded in each part). */
#include <cblas.h>
#include <string.h>
#include "peft_pool.h"
#include "peft_napi.h"

/*
 * A batch of products C[i] = alpha op(A[i]) . op(B[i]) + beta C[i], each matrix at its own leading
 * dimension (lda, ldb, ldc: row strides in elements, so a matrix may be a strided view), i < batch.
 * Batch index i = o * inner + r places A[i] at a + o * a_outer + r * a_inner (B and C likewise), or,
 * with an index array, at a + a_index[i] * a_outer. With `bias` (N floats), every row of C starts as
 * the bias and the product is added to it (beta = 1).
 */
typedef struct {
  const float *a, *b;
  float *c;
  const float *bias;
  int64_t m, n, k;
  int trans_a, trans_b;
  int64_t lda, ldb, ldc;
  float alpha, beta;
  int64_t batch, inner, a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  const int32_t *a_index, *b_index;
} gemm_batch;

/* Rows [r0, r1) and columns [c0, c1) of C[i]: one single-threaded sgemm on the matching blocks of A and B. */
static void gemm_block(const gemm_batch *j, int64_t i, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  const int64_t o = i / j->inner, r = i % j->inner;
  const float *a = j->a + (j->a_index ? j->a_index[i] * j->a_outer : o * j->a_outer + r * j->a_inner);
  const float *b = j->b + (j->b_index ? j->b_index[i] * j->b_outer : o * j->b_outer + r * j->b_inner);
  float *c = j->c + o * j->c_outer + r * j->c_inner + r0 * j->ldc + c0;
  a += j->trans_a ? r0 : r0 * j->lda; /* A is [M, K] (or [K, M] transposed): rows r0.. of op(A) */
  b += j->trans_b ? c0 * j->ldb : c0; /* B is [K, N] (or [N, K]): columns c0.. of op(B) */
  if (j->bias) {
    for (int64_t q = 0; q < r1 - r0; q++) memcpy(c + q * j->ldc, j->bias + c0, (size_t)(c1 - c0) * sizeof(float));
  }
  cblas_sgemm(CblasRowMajor, j->trans_a ? CblasTrans : CblasNoTrans, j->trans_b ? CblasTrans : CblasNoTrans, (int)(r1 - r0), (int)(c1 - c0),
              (int)j->k, j->alpha, a, (int)j->lda, b, (int)j->ldb, j->bias ? 1.0f : j->beta, c, (int)j->ldc);
}

/* Pool parts: whole products i in [lo, hi). */
static void gemm_products(void *ctx, int64_t lo, int64_t hi, int part) {
  const gemm_batch *j = (const gemm_batch *)ctx;
  for (int64_t i = lo; i < hi; i++) gemm_block(j, i, 0, j->m, 0, j->n);
}

/* Pool parts: rows [lo, hi) of every product. */
static void gemm_rows(void *ctx, int64_t lo, int64_t hi, int part) {
  const gemm_batch *j = (const gemm_batch *)ctx;
  for (int64_t i = 0; i < j->batch; i++) gemm_block(j, i, lo, hi, 0, j->n);
}

/* Pool parts: columns [lo, hi) of every product. */
static void gemm_cols(void *ctx, int64_t lo, int64_t hi, int part) {
  const gemm_batch *j = (const gemm_batch *)ctx;
  for (int64_t i = 0; i < j->batch; i++) gemm_block(j, i, 0, j->m, lo, hi);
}

/* Least multiply-adds worth a part of their own (waking a helper and splitting cost a few microseconds). */
#define MIN_PART_WORK (1 << 20)
/* Least rows or columns of a product block (narrower blocks run below OpenBLAS's full speed). */
#define MIN_BLOCK 32

/*
 * Runs a batch of products on the pool, OpenBLAS single-threaded in each part. A batch of several
 * products per thread (the attention's per-head products) is split by product; otherwise every product
 * is split by rows or columns, whichever is longer. Measured on 2 cores: the attention's 128 products
 * of 128 x 128 x 64 took 6 ms on one thread, 8-11 ms with OpenBLAS's two threads on each, 4 ms as two
 * halves of the batch.
 */
static void run_batches(gemm_batch *job) {
  const int64_t each = job->m * job->n * job->k;
  if (job->batch == 0 || each == 0) return;
  const int threads = pool_threads();
  if (job->batch >= 2 * (int64_t)threads || (job->batch >= threads && each < (1 << 22))) {
    pool_run(gemm_products, job, job->batch, (MIN_PART_WORK + each - 1) / each);
    return;
  }
  const int by_rows = job->m >= job->n;
  const int64_t per_line = job->batch * (by_rows ? job->n : job->m) * job->k;
  int64_t grain = (MIN_PART_WORK + per_line - 1) / per_line;
  if (grain < MIN_BLOCK) grain = MIN_BLOCK;
  pool_run(by_rows ? gemm_rows : gemm_cols, job, by_rows ? job->m : job->n, grain);
}

napi_value sgemm(napi_env env, napi_callback_info info) {
  size_t argc = 15;
  napi_value argv[15];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 12) return throw_error(env, "peft_native.sgemm: expected at least 12 arguments");
  float *heap = NULL;
  size_t heap_len = 0;
  if (!get_heap(env, argv[0], &heap, &heap_len)) return throw_error(env, "peft_native.sgemm: heap must be a Float32Array");
  int64_t a_off, b_off, c_off, m, n, k, batch, a_batches, b_batches;
  int trans_a, trans_b;
  if (!get_int64(env, argv[1], &a_off) || !get_int64(env, argv[2], &b_off) || !get_int64(env, argv[3], &c_off) ||
      !get_int64(env, argv[4], &m) || !get_int64(env, argv[5], &n) || !get_int64(env, argv[6], &k) ||
      !get_bool(env, argv[7], &trans_a) || !get_bool(env, argv[8], &trans_b) || !get_int64(env, argv[9], &batch) ||
      !get_int64(env, argv[10], &a_batches) || !get_int64(env, argv[11], &b_batches)) {
    return throw_error(env, "peft_native.sgemm: bad argument types");
  }
  if (m < 0 || n < 0 || k < 0 || batch < 0 || a_batches < 1 || b_batches < 1 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX) {
    return throw_error(env, "peft_native.sgemm: bad dimensions");
  }
  const int32_t *a_index = NULL, *b_index = NULL;
  if (argc > 12 && !get_index(env, argv[12], batch, a_batches, &a_index)) {
    return throw_error(env, "peft_native.sgemm: aIndex must be null or an Int32Array of batch indices below aBatches");
  }
  if (argc > 13 && !get_index(env, argv[13], batch, b_batches, &b_index)) {
    return throw_error(env, "peft_native.sgemm: bIndex must be null or an Int32Array of batch indices below bBatches");
  }
  if (!a_index && a_batches != 1 && a_batches != batch) return throw_error(env, "peft_native.sgemm: aBatches must be 1 or batch without aIndex");
  if (!b_index && b_batches != 1 && b_batches != batch) return throw_error(env, "peft_native.sgemm: bBatches must be 1 or batch without bIndex");
  int64_t bias_off = -1;
  if (argc > 14 && !get_int64(env, argv[14], &bias_off)) return throw_error(env, "peft_native.sgemm: biasOff must be a number");
  const int64_t a_size = m * k, b_size = k * n, c_size = m * n;
  if (!in_heap(a_off, a_size * a_batches, heap_len) || !in_heap(b_off, b_size * b_batches, heap_len) ||
      !in_heap(c_off, c_size * batch, heap_len) || (bias_off != -1 && !in_heap(bias_off, n, heap_len))) {
    return throw_error(env, "peft_native.sgemm: operand outside the heap");
  }
  float *a = heap + a_off / 4, *b = heap + b_off / 4, *c = heap + c_off / 4;
  const float *bias = bias_off == -1 ? NULL : heap + bias_off / 4;
  if (c_size == 0 || batch == 0) return NULL;
  if (k == 0) {
    for (int64_t r = 0; bias && r < batch * m; r++) memcpy(c + r * n, bias, (size_t)n * sizeof(float));
    if (!bias) memset(c, 0, (size_t)(c_size * batch) * sizeof(float));
    return NULL;
  }
  gemm_batch job = {
      .a = a, .b = b, .c = c, .m = m, .n = n, .k = k, .trans_a = trans_a, .trans_b = trans_b,
      .lda = trans_a ? m : k, .ldb = trans_b ? k : n, .ldc = n, .alpha = 1.0f, .beta = 0.0f, .bias = bias,
      .batch = batch, .inner = 1, .a_outer = a_index || a_batches > 1 ? a_size : 0, .b_outer = b_index || b_batches > 1 ? b_size : 0, .c_outer = c_size,
      .a_index = a_index, .b_index = b_index,
  };
  run_batches(&job);
  return NULL;
}

/* Elements spanned by outer x inner [rows, cols] matrices with row stride ld, from the first one's first element. */
static int64_t strided_extent(int64_t rows, int64_t cols, int64_t ld, int64_t outer, int64_t s_outer, int64_t inner, int64_t s_inner) {
  if (rows == 0 || cols == 0 || outer == 0 || inner == 0) return 0;
  return (outer - 1) * s_outer + (inner - 1) * s_inner + (rows - 1) * ld + cols;
}

/*
 * sgemmStrided(heap, aOff, bOff, cOff, M, N, K, transA, transB, lda, ldb, ldc, alpha, beta,
 *              outer, aOuter, bOuter, cOuter, inner, aInner, bInner, cInner)
 * C[o, r] = alpha op(A[o, r]) . op(B[o, r]) + beta C[o, r] for o < outer, r < inner, every matrix a
 * strided view (offsets and strides in elements from aOff, bOff, cOff; the C views must not overlap):
 * the attention's per-head products straight from the fused [B, T, 3, H, dh] projection and into
 * [B, T, H, dh], without transposing either.
 */
napi_value sgemm_strided(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double v[21];
  if (!heap_args(env, info, "sgemmStrided", 21, &heap, &len, v)) return NULL;
  /* Everything but the three offsets (0-2) and alpha, beta (11, 12) is a count or a stride. */
  int64_t d[21];
  for (int i = 3; i < 21; i++) {
    if (i == 11 || i == 12) continue;
    d[i] = count_of(v[i]);
    if (d[i] < 0) return bad_operand(env, "sgemmStrided");
  }
  const int64_t m = d[3], n = d[4], k = d[5], lda = d[8], ldb = d[9], ldc = d[10];
  const int ta = d[6] != 0, tb = d[7] != 0;
  const int64_t outer = d[13], a_outer = d[14], b_outer = d[15], c_outer = d[16];
  const int64_t inner = d[17], a_inner = d[18], b_inner = d[19], c_inner = d[20];
  const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  if (lda < a_cols || ldb < b_cols || ldc < n || lda < 1 || ldb < 1 || ldc < 1 || inner < 1) return bad_operand(env, "sgemmStrided");
  int bad = 0;
  float *a = operand(heap, len, v[0], strided_extent(a_rows, a_cols, lda, outer, a_outer, inner, a_inner), 0, &bad);
  float *b = operand(heap, len, v[1], strided_extent(b_rows, b_cols, ldb, outer, b_outer, inner, b_inner), 0, &bad);
  float *c = operand(heap, len, v[2], strided_extent(m, n, ldc, outer, c_outer, inner, c_inner), 0, &bad);
  if (bad) return bad_operand(env, "sgemmStrided");
  if (m == 0 || n == 0 || outer == 0) return NULL;
  if (k == 0) return throw_error(env, "peft_native.sgemmStrided: K must be positive");
  gemm_batch job = {
      .a = a, .b = b, .c = c, .m = m, .n = n, .k = k, .trans_a = ta, .trans_b = tb, .lda = lda, .ldb = ldb, .ldc = ldc,
      .alpha = (float)v[11], .beta = (float)v[12], .inner = inner, .a_outer = a_outer, .a_inner = a_inner, .b_outer = b_outer,
      .b_inner = b_inner, .c_outer = c_outer, .c_inner = c_inner, .batch = outer * inner,
  };
  run_batches(&job);
  return NULL;
}

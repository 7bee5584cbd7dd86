/*
 * peft_native: CPU kernels for PEFT Lab's TensorFlow.js wasm backend, on OpenBLAS.
 *
 * Plain N-API (node_api.h, NAPI_VERSION 8), so the same binary loads in Node and in Electron.
 * Every kernel works in place on the wasm backend's heap: the caller passes the heap itself (a
 * Float32Array over the whole WebAssembly.Memory, re-read on every call because the heap can grow)
 * and byte offsets of the tensors in it (`backend.dataIdMap.get(dataId).memoryOffset`). Nothing is
 * copied; each offset and extent is checked against the heap's length before any access.
 *
 * Exports:
 *   sgemm(heap, aOff, bOff, cOff, M, N, K, transA, transB,
 *         batch, aBatches, bBatches, aIndex, bIndex[, biasOff])
 *                                                         C[i] = op(A[ai]) . op(B[bi]) (+ bias), i < batch
 *       A[j] is op(A)'s j-th [M, K] (or [K, M] if transA) row-major matrix, B[j] likewise [K, N]
 *       (or [N, K]), C[i] is [M, N]. ai = aIndex[i] if aIndex is an Int32Array, else
 *       (aBatches == 1 ? 0 : i); bi likewise. This covers every batch form of BatchMatMul:
 *       equal batches, a batch of 1 broadcast, and general broadcasting through index arrays.
 *       biasOff (optional, -1 for none): N floats added to every row of every C (_FusedMatMul's bias:
 *       C starts as the bias rows and sgemm adds the product with beta = 1).
 *   sgemmStrided(heap, aOff, bOff, cOff, M, N, K, transA, transB, lda, ldb, ldc, alpha, beta,
 *                outer, aOuter, bOuter, cOuter, inner, aInner, bInner, cInner)
 *                                                         batched products of strided views (see below)
 *   sumRows(heap, xOff, yOff, rows, cols[, scale])        y[c] = scale * sum_r x[r, c] (leading axes)
 *   sumCols(heap, xOff, yOff, rows, cols[, scale])        y[r] = scale * sum_c x[r, c] (trailing axes)
 *   transpose(heap, xOff, yOff, shape, perm)              y = x permuted (Int32Array shape and perm,
 *                                                         any 4-byte element type: bits are copied)
 *   gatherRows(heap, xOff, idxOff, yOff, outer, dim, inner, n)
 *                                                         y[o, j, :] = x[o, idx[j], :] (int32 idx on the
 *                                                         heap); returns undefined, or the first index
 *                                                         outside [0, dim) without writing anything
 *   copyBlocks(heap, srcOff, dstOff, count, block, srcStride, dstStride)
 *                                                         count blocks of `block` elements, strides in
 *                                                         elements (Unpack, slices along any axis)
 *   unary(heap, op, xOff, yOff, n)                        y = exp(x) (op 0) or erf(x) (op 1), float32
 *
 * Fused training kernels (float32; an optional operand's offset is -1 when absent; see peft_math.h
 * and peft_kernels.h for the formulas):
 *   geluBias(heap, xOff, bOff, yOff, rows, cols)           y = gelu(x + b), exact erf
 *   geluBiasGrad(heap, dyOff, xOff, bOff, dxOff, rows, cols)  dx = dy * gelu'(x + b)
 *   softmax(heap, xOff, maskOff, yOff, rows, cols, group, scale)
 *                                                         y = softmax(x * scale + mask[r / group]) per row
 *   softmaxGrad(heap, dyOff, yOff, dxOff, rows, cols, scale)  dx = scale * y * (dy - sum(dy * y)) per row
 *   xent(heap, xOff, targetOff, lossOff, lseOff, rows, cols)   loss[r] = logsumexp(x[r]) - x[r, target[r]], lse[r] = logsumexp(x[r])
 *   xentGrad(heap, xOff, lseOff, targetOff, dxOff, rows, cols, scale)
 *                                                         dx = scale * (softmax(x[r]) - onehot(target[r])) (int32 targets on the heap)
 *   layerNorm(heap, xOff, gOff, bOff, yOff, meanOff, rstdOff, rows, cols, eps)
 *   layerNormGrad(heap, dyOff, xOff, meanOff, rstdOff, gOff, dxOff, dgOff, dbOff, rows, cols)
 *   dropout(heap, xOff, yOff, maskOff, n, keep, s0, s1, s2, c)
 *                                                         tf.dropout bit for bit from Alea state (s0, s1, s2, c)
 *   adamw(heap, table, beta1, 1 - beta1, beta2, 1 - beta2, eps, gradScale)
 *                                                         one AdamW step of every parameter in the
 *                                                         table, p, m, v in place (rows: pOff, gOff,
 *                                                         mOff, vOff, n, sqrt(1 - beta2^t),
 *                                                         1 - lr * decay, lr / (1 - beta1^t))
 *   sumSquares(heap, table)                               sum of x^2 over the table's (off, n) rows
 *   setThreads(n), getThreads()                           threads of the kernels (peft_pool.h; OpenBLAS runs single-threaded in each)
 *   info()                                                { config, corename, parallel, threads }
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <cblas.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include "peft_math.h"
#include "peft_kernels.h"
#include "peft_pool.h"

/* OpenBLAS extensions (declared by Debian's cblas.h too; repeated so other cblas.h builds work). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_parallel(void);

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), NULL, "peft_native: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* A typed array of type `want`: its data pointer and length in elements. 0 if `value` is not one. */
static int typed_array(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, &buffer, &byte_offset) != napi_ok) return 0;
  return type == want;
}

/* A Float32Array over the heap: its data pointer and length in elements. */
static int get_heap(napi_env env, napi_value value, float **data, size_t *length) {
  void *ptr = NULL;
  if (!typed_array(env, value, napi_float32_array, &ptr, length)) return 0;
  *data = (float *)ptr;
  return 1;
}

static int get_int64(napi_env env, napi_value value, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int64(env, value, out) == napi_ok;
}

static int get_bool(napi_env env, napi_value value, int *out) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok) return 0;
  if (t == napi_boolean) {
    bool b;
    if (napi_get_value_bool(env, value, &b) != napi_ok) return 0;
    *out = b ? 1 : 0;
    return 1;
  }
  if (t == napi_number) {
    int64_t v;
    if (napi_get_value_int64(env, value, &v) != napi_ok) return 0;
    *out = v != 0;
    return 1;
  }
  return 0;
}

/* An optional Int32Array of `length` batch indices, each in [0, limit); NULL when null/undefined. */
static int get_index(napi_env env, napi_value value, int64_t length, int64_t limit, const int32_t **out) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok) return 0;
  if (t == napi_null || t == napi_undefined) {
    *out = NULL;
    return 1;
  }
  size_t n = 0;
  void *ptr = NULL;
  if (!typed_array(env, value, napi_int32_array, &ptr, &n) || (int64_t)n != length) return 0;
  const int32_t *idx = (const int32_t *)ptr;
  for (int64_t i = 0; i < length; i++) {
    if (idx[i] < 0 || idx[i] >= limit) return 0;
  }
  *out = idx;
  return 1;
}

/* Byte offset `off` of `count` floats lies inside a heap of `length` floats and is 4-byte aligned. */
static int in_heap(int64_t off, int64_t count, size_t length) {
  if (off < 0 || (off & 3) != 0 || count < 0) return 0;
  int64_t first = off / 4;
  return first <= (int64_t)length && count <= (int64_t)length - first;
}

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

static int heap_args(napi_env env, napi_callback_info info, const char *name, size_t n, float **heap, size_t *heap_len, double *num);
static int64_t count_of(double v);
static float *operand(float *heap, size_t heap_len, double off, int64_t count, int optional, int *bad);
static napi_value bad_operand(napi_env env, const char *name);

static napi_value sgemm(napi_env env, napi_callback_info info) {
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
static napi_value sgemm_strided(napi_env env, napi_callback_info info) {
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

/* Least elements a pool part of an elementwise or reduction kernel gets. */
#define MIN_PART_ELEMENTS 32768

/* Rows (or other units of `per_unit` elements) per part, so that a part has at least MIN_PART_ELEMENTS. */
static int64_t grain_of(int64_t per_unit) { return per_unit >= MIN_PART_ELEMENTS ? 1 : (MIN_PART_ELEMENTS + per_unit - 1) / (per_unit > 0 ? per_unit : 1); }

/* y[r] = scale * sum over c of x[r, c]: sums and means over trailing axes (softmax gradient, LayerNorm
 * moments). Accumulated in double. */
static napi_value sum_cols(napi_env env, napi_callback_info info) {
  reduce_job j;
  if (!reduce_args(env, info, "sumCols", (float **)&j.x, &j.y, &j.rows, &j.cols, &j.scale, 1)) return NULL;
  pool_run(sum_cols_range, &j, j.rows, grain_of(j.cols));
  return NULL;
}

/* y[c] = scale * sum over r of x[r, c], x [rows, cols] row-major: the bias gradient. Accumulated in double. */
static napi_value sum_rows(napi_env env, napi_callback_info info) {
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

/* ---------------------------------------------------------------- transpose */

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

static int get_int32_array(napi_env env, napi_value value, const int32_t **out, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  void *ptr = NULL;
  napi_value buffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, value, &type, length, &ptr, &buffer, &byte_offset) != napi_ok) return 0;
  if (type != napi_int32_array) return 0;
  *out = (const int32_t *)ptr;
  return 1;
}

static napi_value transpose(napi_env env, napi_callback_info info) {
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

#define MAX_ARGS 24

/*
 * Reads (heap, n numbers) for a kernel: offsets, sizes and scalars, all as doubles (exact
 * for offsets and sizes below 2^53, and the Alea state needs doubles). 0 after throwing.
 */
static int heap_args(napi_env env, napi_callback_info info, const char *name, size_t n, float **heap, size_t *heap_len, double *num) {
  size_t argc = MAX_ARGS;
  napi_value argv[MAX_ARGS];
  char message[128];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != n + 1 || !get_heap(env, argv[0], heap, heap_len)) {
    snprintf(message, sizeof message, "peft_native.%s: expected a Float32Array heap and %zu numbers", name, n);
    napi_throw_error(env, NULL, message);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    napi_valuetype t;
    if (napi_typeof(env, argv[i + 1], &t) != napi_ok || t != napi_number || napi_get_value_double(env, argv[i + 1], &num[i]) != napi_ok) {
      snprintf(message, sizeof message, "peft_native.%s: argument %zu is not a number", name, i + 1);
      napi_throw_error(env, NULL, message);
      return 0;
    }
  }
  return 1;
}

/* A whole count in [0, 2^31) (a size); -1 if `v` is not one. */
static int64_t count_of(double v) { return v >= 0 && v < 2147483648.0 && v == (double)(int64_t)v ? (int64_t)v : -1; }

/*
 * The operand at byte offset `off` with `count` floats, checked against the heap; NULL when absent
 * (off == -1 and `optional`). Sets *bad for an offset that is not whole, aligned and inside the heap.
 */
static float *operand(float *heap, size_t heap_len, double off, int64_t count, int optional, int *bad) {
  if (optional && off == -1) return NULL;
  if (!(off >= 0 && off < 9007199254740992.0) || off != (double)(int64_t)off || !in_heap((int64_t)off, count, heap_len)) {
    *bad = 1;
    return NULL;
  }
  return heap + (int64_t)off / 4;
}

static napi_value bad_operand(napi_env env, const char *name) {
  char message[128];
  snprintf(message, sizeof message, "peft_native.%s: bad dimensions or operand outside the heap", name);
  return throw_error(env, message);
}

/* ---------------------------------------------------------------- pool parts of the elementwise kernels */

/* One kernel call's operands, for the pool's parts; each kernel uses the fields it names. */
typedef struct {
  const float *x, *b, *dy, *g, *mean_in, *rstd_in, *mask;
  float *y, *dx, *mean, *rstd;
  double *acc; /* layerNormGrad: 2 * cols doubles per part */
  const int32_t *idx;
  int64_t rows, cols, group, inner, dim;
  float scale, eps;
  int op;
} span_job;

/* Each of these runs units [lo, hi) of one kernel: rows, or elements for the flat ones. */
static void gelu_bias_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_gelu_bias(j->x + lo * j->cols, j->b, j->y + lo * j->cols, hi - lo, j->cols);
}
static void gelu_bias_grad_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  pm_gelu_bias_grad(j->dy + lo * j->cols, j->x + lo * j->cols, j->b, j->dx + lo * j->cols, hi - lo, j->cols);
}
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
/*
 * The flat kernels split [0, n) in blocks of BLOCK elements (j->rows holds n): a part then starts on a
 * vector boundary, so the same elements go through the vectorised loop and the scalar tail whatever
 * the thread count (libmvec's vector expf and erff can differ from the scalar ones in the last bit).
 */
#define BLOCK 64
static void block_range(const span_job *j, int64_t lo, int64_t hi, int64_t *first, int64_t *count) {
  *first = lo * BLOCK;
  const int64_t end = hi * BLOCK < j->rows ? hi * BLOCK : j->rows;
  *count = end - *first;
}
static int64_t blocks_of(int64_t n) { return (n + BLOCK - 1) / BLOCK; }
static void unary_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  int64_t i, n;
  block_range(j, lo, hi, &i, &n);
  pm_unary(j->op, j->x + i, j->y + i, n);
}
static void dropout_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  int64_t i, n;
  block_range(j, lo, hi, &i, &n);
  pk_dropout_apply(j->x + i, j->y + i, j->dx + i, n, j->scale);
}
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

/* ---------------------------------------------------------------- gather and block copies */

static napi_value gather_rows(napi_env env, napi_callback_info info) {
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

static napi_value copy_blocks(napi_env env, napi_callback_info info) {
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

/* ---------------------------------------------------------------- elementwise */

static napi_value unary(napi_env env, napi_callback_info info) {
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

/* ---------------------------------------------------------------- fused training kernels */

static napi_value gelu_bias(napi_env env, napi_callback_info info) {
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

static napi_value gelu_bias_grad(napi_env env, napi_callback_info info) {
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

static napi_value softmax(napi_env env, napi_callback_info info) {
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

static napi_value softmax_grad(napi_env env, napi_callback_info info) {
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
static napi_value xent(napi_env env, napi_callback_info info) {
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
static napi_value xent_grad(napi_env env, napi_callback_info info) {
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

static napi_value layer_norm(napi_env env, napi_callback_info info) {
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

static napi_value layer_norm_grad(napi_env env, napi_callback_info info) {
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

/* Alea's doubles (s0, s1, s2, c) as integers; 0 if they are not a state the generator can reach. */
static int alea_state(const double *v, pk_alea *st) {
  uint32_t k[3];
  for (int i = 0; i < 3; i++) {
    const double scaled = v[i] * 4294967296.0; /* exact: a power of two */
    if (!(scaled >= 0 && scaled < 4294967296.0) || scaled != (double)(uint32_t)scaled) return 0;
    k[i] = (uint32_t)scaled;
  }
  if (!(v[3] >= 0 && v[3] < 2091640.0) || v[3] != (double)(uint32_t)v[3]) return 0;
  st->k0 = k[0];
  st->k1 = k[1];
  st->k2 = k[2];
  st->c = (uint32_t)v[3];
  return 1;
}

static napi_value dropout(napi_env env, napi_callback_info info) {
  float *heap;
  size_t len;
  double a[9];
  if (!heap_args(env, info, "dropout", 9, &heap, &len, a)) return NULL;
  const int64_t n = count_of(a[3]);
  int bad = n < 0 || !(a[4] > 0 && a[4] <= 1);
  if (bad) return bad_operand(env, "dropout");
  const float *x = operand(heap, len, a[0], n, 0, &bad);
  float *y = operand(heap, len, a[1], n, 0, &bad), *mask = operand(heap, len, a[2], n, 0, &bad);
  if (bad) return bad_operand(env, "dropout");
  pk_alea state;
  if (!alea_state(a + 5, &state)) return throw_error(env, "peft_native.dropout: not an Alea state (s0, s1, s2 multiples of 2^-32 in [0, 1), c < 2091640)");
  pk_alea_fill(&state, mask, n);
  span_job job = {.x = x, .y = y, .dx = mask, .scale = (float)a[4], .rows = n};
  pool_run(dropout_part, &job, blocks_of(n), MIN_PART_ELEMENTS / BLOCK);
  return NULL;
}

/* A Float64Array argument of `width` numbers per row; its row count in *rows. 0 if it is not one. */
static int get_table(napi_env env, napi_value value, int64_t width, const double **table, int64_t *rows) {
  size_t n = 0;
  void *ptr = NULL;
  if (!typed_array(env, value, napi_float64_array, &ptr, &n) || (int64_t)n % width != 0) return 0;
  *table = (const double *)ptr;
  *rows = (int64_t)n / width;
  return 1;
}

/* The heap, a table and `n` numbers; 0 after throwing. */
static int table_args(napi_env env, napi_callback_info info, const char *name, int64_t width, size_t n, float **heap, size_t *heap_len,
                      const double **table, int64_t *rows, double *num) {
  size_t argc = MAX_ARGS;
  napi_value argv[MAX_ARGS];
  char message[160];
  int ok = napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc == n + 2 && get_heap(env, argv[0], heap, heap_len) &&
           get_table(env, argv[1], width, table, rows);
  for (size_t i = 0; ok && i < n; i++) {
    napi_valuetype t;
    ok = napi_typeof(env, argv[i + 2], &t) == napi_ok && t == napi_number && napi_get_value_double(env, argv[i + 2], &num[i]) == napi_ok;
  }
  if (!ok) {
    snprintf(message, sizeof message, "peft_native.%s: expected a Float32Array heap, a Float64Array of %lld numbers per row and %zu numbers", name,
             (long long)width, n);
    napi_throw_error(env, NULL, message);
  }
  return ok;
}

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
static napi_value adamw(napi_env env, napi_callback_info info) {
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
static napi_value sum_squares(napi_env env, napi_callback_info info) {
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

static napi_value set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t n;
  if (argc < 1 || !get_int64(env, argv[0], &n) || n < 1 || n > 1024) {
    return throw_error(env, "peft_native.setThreads: expected a thread count from 1 to 1024");
  }
  /* The pool splits the products too: OpenBLAS computes each part on the thread that asks. */
  openblas_set_num_threads(1);
  napi_value result;
  CHECK(env, napi_create_int32(env, pool_set_threads((int)n), &result));
  return result;
}

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK(env, napi_create_int32(env, pool_threads(), &result));
  return result;
}

static napi_value set_string(napi_env env, napi_value obj, const char *key, const char *value) {
  napi_value v;
  if (napi_create_string_utf8(env, value ? value : "", NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  if (napi_set_named_property(env, obj, key, v) != napi_ok) return NULL;
  return obj;
}

static napi_value get_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v;
  CHECK(env, napi_create_object(env, &obj));
  if (!set_string(env, obj, "config", openblas_get_config())) return throw_error(env, "peft_native.info failed");
  if (!set_string(env, obj, "corename", openblas_get_corename())) return throw_error(env, "peft_native.info failed");
  CHECK(env, napi_create_int32(env, openblas_get_parallel(), &v));
  CHECK(env, napi_set_named_property(env, obj, "parallel", v));
  CHECK(env, napi_create_int32(env, pool_threads(), &v));
  CHECK(env, napi_set_named_property(env, obj, "threads", v));
  CHECK(env, napi_create_int32(env, NAPI_VERSION, &v));
  CHECK(env, napi_set_named_property(env, obj, "napiVersion", v));
  return obj;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sgemmStrided", NULL, sgemm_strided, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumRows", NULL, sum_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumCols", NULL, sum_cols, NULL, NULL, NULL, napi_enumerable, NULL},
      {"transpose", NULL, transpose, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gatherRows", NULL, gather_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyBlocks", NULL, copy_blocks, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unary", NULL, unary, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geluBias", NULL, gelu_bias, NULL, NULL, NULL, napi_enumerable, NULL},
      {"geluBiasGrad", NULL, gelu_bias_grad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmax", NULL, softmax, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxGrad", NULL, softmax_grad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xent", NULL, xent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xentGrad", NULL, xent_grad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNorm", NULL, layer_norm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormGrad", NULL, layer_norm_grad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropout", NULL, dropout, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adamw", NULL, adamw, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumSquares", NULL, sum_squares, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreads", NULL, get_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"info", NULL, get_info, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props));
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }

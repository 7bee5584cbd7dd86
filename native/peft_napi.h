#ifndef PEFT_NAPI_H
#define PEFT_NAPI_H
/*
 * What peft_native's entry points share: reading their N-API arguments (each offset and extent
 * checked against the heap), the pool's part sizes, and every entry point's declaration, one .c file
 * per kernel family (peft_native_<family>.c); peft_native.c exports them. See peft_native.c for the
 * JavaScript signatures.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error((env), NULL, "peft_native: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

/* Most arguments an entry point takes (heap_args, table_args). */
#define MAX_ARGS 24

/* ---------------------------------------------------------------- arguments (peft_napi.c) */

napi_value throw_error(napi_env env, const char *message);
/* A typed array of type `want`: its data pointer and length in elements. 0 if `value` is not one. */
int typed_array(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length);
/* A Float32Array over the heap: its data pointer and length in elements. */
int get_heap(napi_env env, napi_value value, float **data, size_t *length);
int get_int64(napi_env env, napi_value value, int64_t *out);
int get_bool(napi_env env, napi_value value, int *out);
/* An optional Int32Array of `length` batch indices, each in [0, limit); NULL when null/undefined. */
int get_index(napi_env env, napi_value value, int64_t length, int64_t limit, const int32_t **out);
/* Byte offset `off` of `count` floats lies inside a heap of `length` floats and is 4-byte aligned. */
int in_heap(int64_t off, int64_t count, size_t length);
/*
 * Reads (heap, n numbers) for a kernel: offsets, sizes and scalars, all as doubles (exact
 * for offsets and sizes below 2^53, and the Alea state needs doubles). 0 after throwing.
 */
int heap_args(napi_env env, napi_callback_info info, const char *name, size_t n, float **heap, size_t *heap_len, double *num);
/* A whole count in [0, 2^31) (a size); -1 if `v` is not one. */
int64_t count_of(double v);
/*
 * The operand at byte offset `off` with `count` floats, checked against the heap; NULL when absent
 * (off == -1 and `optional`). Sets *bad for an offset that is not whole, aligned and inside the heap.
 */
float *operand(float *heap, size_t heap_len, double off, int64_t count, int optional, int *bad);
napi_value bad_operand(napi_env env, const char *name);
/* The heap, a Float64Array table of `width` numbers per row and `n` numbers; 0 after throwing. */
int table_args(napi_env env, napi_callback_info info, const char *name, int64_t width, size_t n, float **heap, size_t *heap_len,
               const double **table, int64_t *rows, double *num);

/* ---------------------------------------------------------------- pool parts */

/* Least elements a pool part of an elementwise or reduction kernel gets. */
#define MIN_PART_ELEMENTS 32768

/* Rows (or other units of `per_unit` elements) per part, so that a part has at least MIN_PART_ELEMENTS. */
static inline int64_t grain_of(int64_t per_unit) { return per_unit >= MIN_PART_ELEMENTS ? 1 : (MIN_PART_ELEMENTS + per_unit - 1) / (per_unit > 0 ? per_unit : 1); }

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

/*
 * The flat kernels split [0, n) in blocks of BLOCK elements (j->rows holds n): a part then starts on a
 * vector boundary, so the same elements go through the vectorised loop and the scalar tail whatever
 * the thread count (libmvec's vector expf and erff can differ from the scalar ones in the last bit).
 */
#define BLOCK 64
static inline void block_range(const span_job *j, int64_t lo, int64_t hi, int64_t *first, int64_t *count) {
  *first = lo * BLOCK;
  const int64_t end = hi * BLOCK < j->rows ? hi * BLOCK : j->rows;
  *count = end - *first;
}
static inline int64_t blocks_of(int64_t n) { return (n + BLOCK - 1) / BLOCK; }

/* ---------------------------------------------------------------- entry points, by family */

/* peft_native_matmul.c */
napi_value sgemm(napi_env env, napi_callback_info info);
napi_value sgemm_strided(napi_env env, napi_callback_info info);
/* peft_native_reduce.c */
napi_value sum_rows(napi_env env, napi_callback_info info);
napi_value sum_cols(napi_env env, napi_callback_info info);
/* peft_native_transpose.c */
napi_value transpose(napi_env env, napi_callback_info info);
/* peft_native_copy.c */
napi_value gather_rows(napi_env env, napi_callback_info info);
napi_value copy_blocks(napi_env env, napi_callback_info info);
/* peft_native_elementwise.c */
napi_value unary(napi_env env, napi_callback_info info);
napi_value gelu_bias(napi_env env, napi_callback_info info);
napi_value gelu_bias_grad(napi_env env, napi_callback_info info);
/* peft_native_softmax.c */
napi_value softmax(napi_env env, napi_callback_info info);
napi_value softmax_grad(napi_env env, napi_callback_info info);
napi_value xent(napi_env env, napi_callback_info info);
napi_value xent_grad(napi_env env, napi_callback_info info);
/* peft_native_norm.c */
napi_value layer_norm(napi_env env, napi_callback_info info);
napi_value layer_norm_grad(napi_env env, napi_callback_info info);
/* peft_native_dropout.c */
napi_value dropout(napi_env env, napi_callback_info info);
/* peft_native_optimizer.c */
napi_value adamw(napi_env env, napi_callback_info info);
napi_value sum_squares(napi_env env, napi_callback_info info);

#endif

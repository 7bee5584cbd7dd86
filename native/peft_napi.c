/* Reading peft_native's N-API arguments: typed arrays, numbers, and operands checked against the heap. */
#include <stdio.h>
#include "peft_napi.h"

napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* A typed array of type `want`: its data pointer and length in elements. 0 if `value` is not one. */
int typed_array(napi_env env, napi_value value, napi_typedarray_type want, void **data, size_t *length) {
  bool is_typed = false;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value buffer;
  size_t byte_offset = 0;
  if (napi_get_typedarray_info(env, value, &type, length, data, &buffer, &byte_offset) != napi_ok) return 0;
  return type == want;
}

/* A Float32Array over the heap: its data pointer and length in elements. */
int get_heap(napi_env env, napi_value value, float **data, size_t *length) {
  void *ptr = NULL;
  if (!typed_array(env, value, napi_float32_array, &ptr, length)) return 0;
  *data = (float *)ptr;
  return 1;
}

int get_int64(napi_env env, napi_value value, int64_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, value, &t) != napi_ok || t != napi_number) return 0;
  return napi_get_value_int64(env, value, out) == napi_ok;
}

int get_bool(napi_env env, napi_value value, int *out) {
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
int get_index(napi_env env, napi_value value, int64_t length, int64_t limit, const int32_t **out) {
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
int in_heap(int64_t off, int64_t count, size_t length) {
  if (off < 0 || (off & 3) != 0 || count < 0) return 0;
  int64_t first = off / 4;
  return first <= (int64_t)length && count <= (int64_t)length - first;
}

/*
 * Reads (heap, n numbers) for a kernel: offsets, sizes and scalars, all as doubles (exact
 * for offsets and sizes below 2^53, and the Alea state needs doubles). 0 after throwing.
 */
int heap_args(napi_env env, napi_callback_info info, const char *name, size_t n, float **heap, size_t *heap_len, double *num) {
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
int64_t count_of(double v) { return v >= 0 && v < 2147483648.0 && v == (double)(int64_t)v ? (int64_t)v : -1; }

/*
 * The operand at byte offset `off` with `count` floats, checked against the heap; NULL when absent
 * (off == -1 and `optional`). Sets *bad for an offset that is not whole, aligned and inside the heap.
 */
float *operand(float *heap, size_t heap_len, double off, int64_t count, int optional, int *bad) {
  if (optional && off == -1) return NULL;
  if (!(off >= 0 && off < 9007199254740992.0) || off != (double)(int64_t)off || !in_heap((int64_t)off, count, heap_len)) {
    *bad = 1;
    return NULL;
  }
  return heap + (int64_t)off / 4;
}

napi_value bad_operand(napi_env env, const char *name) {
  char message[128];
  snprintf(message, sizeof message, "peft_native.%s: bad dimensions or operand outside the heap", name);
  return throw_error(env, message);
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
int table_args(napi_env env, napi_callback_info info, const char *name, int64_t width, size_t n, float **heap, size_t *heap_len,
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

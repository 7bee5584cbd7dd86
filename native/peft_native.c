/*
 * peft_native: CPU kernels for PEFT Lab's TensorFlow.js wasm backend, on OpenBLAS.
 *
 * Plain N-API (node_api.h, NAPI_VERSION 8), so the same binary loads in Node and in Electron.
 * This file registers the exports; each kernel family's entry points are in peft_native_<family>.c
 * (matmul, reduce, transpose, copy, elementwise, softmax, norm, dropout, optimizer), their argument
 * checks in peft_napi.c, declared together in peft_napi.h.
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
#include <stdio.h>
#include "peft_pool.h"
#include "peft_napi.h"

/* OpenBLAS extensions (declared by Debian's cblas.h too; repeated so other cblas.h builds work). */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
int openblas_get_parallel(void);

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

/*
 * Kernels with transcendental functions for peft_native, compiled on their own with -ffast-math so
 * that glibc's vector math library (libmvec: expf, erff) vectorises the loops, and cloned for
 * AVX-512, AVX2 and baseline x86-64 (picked at load time by the CPU, so the same build runs on any
 * x86-64 machine). -ffast-math changes nothing here but speed and the order of a few sums:
 * libmvec's accuracy is a few ulp. Kernels without transcendentals live in peft_kernels.c, compiled
 * without it. All functions are pure (no globals), so any thread may call them.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "peft_math.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

#define SQRT_HALF 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f

CLONES static void exp_loop(const float *restrict x, float *restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}

CLONES static void erf_loop(const float *restrict x, float *restrict y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = erff(x[i]);
}

int pm_unary(int op, const float *x, float *y, int64_t n) {
  switch (op) {
    case PM_EXP:
      exp_loop(x, y, n);
      return 1;
    case PM_ERF:
      erf_loop(x, y, n);
      return 1;
    default:
      return 0;
  }
}

/* ---------------------------------------------------------------- GELU */

/* The same operations in the same order as ops.ts's composition: cdf = 0.5 (1 + erf(u / sqrt 2)). */
static inline float gelu_cdf(float u) { return 0.5f * (1.0f + erff(u * SQRT_HALF)); }

/* gelu'(u) = cdf(u) + u * pdf(u), pdf the standard normal density. */
static inline float gelu_slope(float u) { return gelu_cdf(u) + u * (INV_SQRT_2PI * expf(-0.5f * (u * u))); }

CLONES void pm_gelu_bias(const float *restrict x, const float *restrict b, float *restrict y, int64_t rows, int64_t cols) {
  if (!b) {
    for (int64_t i = 0; i < rows * cols; i++) y[i] = x[i] * gelu_cdf(x[i]);
    return;
  }
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    for (int64_t c = 0; c < cols; c++) {
      const float u = xr[c] + b[c];
      yr[c] = u * gelu_cdf(u);
    }
  }
}

CLONES void pm_gelu_bias_grad(const float *restrict dy, const float *restrict x, const float *restrict b, float *restrict dx, int64_t rows,
                              int64_t cols) {
  if (!b) {
    for (int64_t i = 0; i < rows * cols; i++) dx[i] = dy[i] * gelu_slope(x[i]);
    return;
  }
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    for (int64_t c = 0; c < cols; c++) dx[o + c] = dy[o + c] * gelu_slope(x[o + c] + b[c]);
  }
}

/* ---------------------------------------------------------------- softmax */

/*
 * One row (cols >= 1): y = exp(v - max) / sum with v = x * scale + m. Three passes over cols (max,
 * exp and sum, normalise), each vectorised. The max starts from the first element, not -INFINITY:
 * -ffast-math assumes no infinities.
 */
static inline void softmax_row(const float *restrict x, const float *restrict m, float *restrict y, int64_t cols, float scale) {
  float top = m ? x[0] * scale + m[0] : x[0] * scale;
  for (int64_t c = 0; c < cols; c++) {
    const float v = m ? x[c] * scale + m[c] : x[c] * scale;
    y[c] = v;
    top = v > top ? v : top;
  }
  float sum = 0.0f;
  for (int64_t c = 0; c < cols; c++) {
    y[c] = expf(y[c] - top);
    sum += y[c];
  }
  const float inv = 1.0f / sum;
  for (int64_t c = 0; c < cols; c++) y[c] *= inv;
}

CLONES void pm_softmax(const float *restrict x, const float *restrict mask, float *restrict y, int64_t rows, int64_t cols, int64_t group,
                       float scale) {
  for (int64_t r = 0; r < rows; r++) softmax_row(x + r * cols, mask ? mask + (r / group) * cols : NULL, y + r * cols, cols, scale);
}

CLONES void pm_softmax_grad(const float *restrict dy, const float *restrict y, float *restrict dx, int64_t rows, int64_t cols, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    float dot = 0.0f;
    for (int64_t c = 0; c < cols; c++) dot += dy[o + c] * y[o + c];
    for (int64_t c = 0; c < cols; c++) dx[o + c] = scale * (y[o + c] * (dy[o + c] - dot));
  }
}

/* ---------------------------------------------------------------- softmax cross-entropy */

CLONES void pm_xent(const float *restrict x, const int32_t *restrict target, float *restrict loss, float *restrict lse, int64_t rows,
                    int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float top = xr[0];
    for (int64_t c = 1; c < cols; c++) top = xr[c] > top ? xr[c] : top;
    float sum = 0.0f;
    for (int64_t c = 0; c < cols; c++) sum += expf(xr[c] - top);
    const float l = top + logf(sum);
    lse[r] = l;
    loss[r] = l - xr[target[r]];
  }
}

CLONES void pm_xent_grad(const float *restrict x, const float *restrict lse, const int32_t *restrict target, float *restrict dx, int64_t rows,
                         int64_t cols, float scale) {
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    const float l = lse[r];
    for (int64_t c = 0; c < cols; c++) dx[o + c] = scale * expf(x[o + c] - l);
    dx[o + target[r]] -= scale;
  }
}

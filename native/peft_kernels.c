/*
 * Training kernels without transcendentals (see peft_kernels.h). Compiled with -ffp-contract=off
 * (no fused multiply-add: each operation rounds as the wasm backend's does), -fno-math-errno
 * (sqrtf becomes one instruction and vectorises) and -fno-trapping-math (so does floorf; nothing
 * here reads the floating-point exception flags); reductions are vectorised explicitly with
 * `omp simd` (-fopenmp-simd: the pragmas only, no OpenMP runtime). Cloned for AVX-512, AVX2 and
 * baseline x86-64 like peft_math.c. No globals: any thread may call them.
 */
#include <math.h>
#include <stdint.h>
#include "peft_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* ---------------------------------------------------------------- LayerNorm */

/* Row moments as tf.moments computes them: the mean, then the mean of squared deviations (both summed in double). */
__attribute__((always_inline)) static inline void row_moments(const float *restrict x, int64_t cols, float *mean, float *variance) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t c = 0; c < cols; c++) sum += x[c];
  const float mu = (float)(sum / (double)cols);
  double squares = 0.0;
#pragma omp simd reduction(+ : squares)
  for (int64_t c = 0; c < cols; c++) {
    const float d = x[c] - mu;
    squares += d * d;
  }
  *mean = mu;
  *variance = (float)(squares / (double)cols);
}

CLONES void pk_layer_norm(const float *restrict x, const float *restrict g, const float *restrict b, float *restrict y, float *restrict mean,
                          float *restrict rstd, int64_t rows, int64_t cols, float eps) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *yr = y + r * cols;
    float mu, variance;
    row_moments(xr, cols, &mu, &variance);
    const float rs = 1.0f / sqrtf(variance + eps);
    for (int64_t c = 0; c < cols; c++) yr[c] = (xr[c] - mu) * rs * g[c] + b[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

/*
 * dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = dy * g, row by row;
 * adds each column's sums over these rows of dy * xhat and of dy to acc_g and acc_b.
 */
CLONES void pk_layer_norm_grad(const float *restrict dy, const float *restrict x, const float *restrict mean, const float *restrict rstd,
                               const float *restrict g, float *restrict dx, double *restrict acc_g, double *restrict acc_b, int64_t rows,
                               int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r * cols;
    const float mu = mean[r], rs = rstd[r];
    double sum_d = 0.0, sum_dx = 0.0;
#pragma omp simd reduction(+ : sum_d, sum_dx)
    for (int64_t c = 0; c < cols; c++) {
      const float xhat = (x[o + c] - mu) * rs;
      const float d = dy[o + c] * g[c];
      sum_d += d;
      sum_dx += d * xhat;
      acc_g[c] += dy[o + c] * xhat;
      acc_b[c] += dy[o + c];
    }
    const float mean_d = (float)(sum_d / (double)cols), mean_dx = (float)(sum_dx / (double)cols);
    for (int64_t c = 0; c < cols; c++) {
      const float xhat = (x[o + c] - mu) * rs;
      dx[o + c] = rs * ((dy[o + c] * g[c] - mean_d) - xhat * mean_dx);
    }
  }
}

/* ---------------------------------------------------------------- dropout */

/*
 * seedrandom's Alea step is, in doubles, t = 2091639 s0 + c 2^-32, c' = floor(t), s' = t - c'. Every
 * state is a multiple of 2^-32 (the seeding hashes to 32-bit fractions) and 2091639 k + c < 2^53, so
 * each of those double operations is exact, and with s = k / 2^32 the step is the integer
 * multiply-with-carry x = 2091639 k + c, c' = x >> 32, k' = x mod 2^32: the same numbers bit for
 * bit, with a dependency chain of an add and a shift instead of a float multiply, add and floor.
 * Sequential by nature; the mask pass after it vectorises.
 */
static void alea_fill(pk_alea *restrict st, float *restrict out, int64_t n) {
  uint64_t k0 = st->k0, k1 = st->k1, k2 = st->k2, c = st->c;
  for (int64_t i = 0; i < n; i++) {
    const uint64_t x = 2091639u * k0 + c;
    k0 = k1;
    k1 = k2;
    c = x >> 32;
    k2 = x & 0xffffffffu;
    out[i] = (float)(uint32_t)k2 * 0x1p-32f; /* the double k2 / 2^32 rounded to float32, exactly as Float32Array stores it */
  }
  st->k0 = (uint32_t)k0;
  st->k1 = (uint32_t)k1;
  st->k2 = (uint32_t)k2;
  st->c = (uint32_t)c;
}

void pk_alea_fill(pk_alea *state, float *out, int64_t n) { alea_fill(state, out, n); }

CLONES void pk_dropout_apply(const float *restrict x, float *restrict y, float *restrict mask, int64_t n, float keep) {
  for (int64_t i = 0; i < n; i++) {
    mask[i] = floorf(mask[i] + keep) / keep;
    y[i] = x[i] * mask[i];
  }
}

/* ---------------------------------------------------------------- AdamW */

CLONES void pk_adamw(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n, const pk_adamw_scalars *s) {
  const pk_adamw_scalars k = *s;
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i] * k.grad_scale;
    const float mi = m[i] * k.beta1 + gi * k.one_minus_beta1;
    const float vi = v[i] * k.beta2 + (gi * gi) * k.one_minus_beta2;
    const float denom = sqrtf(vi) / k.sqrt_correction2 + k.epsilon;
    p[i] = p[i] * k.keep - (mi / denom) * k.step_size;
    m[i] = mi;
    v[i] = vi;
  }
}

CLONES double pk_sum_squares(const float *restrict x, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; i++) sum += (double)x[i] * (double)x[i];
  return sum;
}

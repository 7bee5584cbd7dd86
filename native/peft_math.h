#ifndef PEFT_MATH_H
#define PEFT_MATH_H
#include <stdint.h>

/*
 * Kernels with transcendental functions (expf, erff), compiled with -ffast-math so that glibc's
 * libmvec vectorises them. Arrays are row-major float32 and must not overlap unless said otherwise.
 */

enum { PM_EXP = 0, PM_ERF = 1 };

/* y[i] = op(x[i]) for i < n. Returns 0 for an unknown op. */
int pm_unary(int op, const float *x, float *y, int64_t n);

/* y = gelu(x + b) for x [rows, cols], b [cols] or NULL; gelu(u) = u * 0.5 * (1 + erf(u / sqrt 2)). */
void pm_gelu_bias(const float *x, const float *b, float *y, int64_t rows, int64_t cols);

/* dx = dy * gelu'(x + b), the gradient with respect to x (and to b, summed over rows by the caller). */
void pm_gelu_bias_grad(const float *dy, const float *x, const float *b, float *dx, int64_t rows, int64_t cols);

/*
 * y = softmax(x * scale + mask) over each row of x [rows, cols]. mask is NULL or [rows / group, cols]:
 * row r adds mask row r / group (the attention's [B, 1, 1, T] key mask over B * H * T score rows).
 */
void pm_softmax(const float *x, const float *mask, float *y, int64_t rows, int64_t cols, int64_t group, float scale);

/* dx = scale * y * (dy - sum(dy * y)) per row: that softmax's gradient from its output y. */
void pm_softmax_grad(const float *dy, const float *y, float *dx, int64_t rows, int64_t cols, float scale);

/*
 * Softmax cross-entropy of each row of x [rows, cols] against target[r] (0 <= target[r] < cols, cols >= 1):
 * lse[r] = log(sum_c exp(x[r, c])), loss[r] = lse[r] - x[r, target[r]].
 */
void pm_xent(const float *x, const int32_t *target, float *loss, float *lse, int64_t rows, int64_t cols);

/* Its gradient, dx = scale * (softmax(x[r]) - onehot(target[r])), from x and lse. */
void pm_xent_grad(const float *x, const float *lse, const int32_t *target, float *dx, int64_t rows, int64_t cols, float scale);

#endif

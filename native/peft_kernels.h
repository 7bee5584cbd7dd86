#ifndef PEFT_KERNELS_H
#define PEFT_KERNELS_H
#include <stdint.h>

/*
 * Training kernels without transcendental functions, compiled with IEEE semantics (no -ffast-math,
 * no fused multiply-add), so that dropout and AdamW give the wasm backend's float32 results bit for
 * bit. Arrays are row-major float32 and must not overlap unless said otherwise.
 */

/*
 * LayerNorm over each row of x [rows, cols]: y = (x - mean) * rstd * g + b, rstd = 1 / sqrt(var + eps);
 * also writes mean [rows] and rstd [rows] for the backward pass.
 */
void pk_layer_norm(const float *x, const float *g, const float *b, float *y, float *mean, float *rstd, int64_t rows, int64_t cols,
                   float eps);

/*
 * Its gradient from dy, x, mean, rstd and g over these rows: dx [rows, cols]; adds the column sums
 * of the gain's and the bias's gradients over these rows to acc_g and acc_b [cols] (doubles, so that
 * rows split among threads sum to the same values in any split up to rounding of the double sums).
 */
void pk_layer_norm_grad(const float *dy, const float *x, const float *mean, const float *rstd, const float *g, float *dx, double *acc_g,
                        double *acc_b, int64_t rows, int64_t cols);

/*
 * The state of seedrandom's Alea generator (the one tf.randomUniform uses): its doubles s0, s1, s2
 * are always multiples of 2^-32 in [0, 1), held here as k = s * 2^32, and its carry c < 2091640.
 */
typedef struct {
  uint32_t k0, k1, k2, c;
} pk_alea;

/*
 * tf.dropout(x, 1 - keep, seed), bit for bit, in two passes: pk_alea_fill writes the generator's next
 * n numbers r[i] (rounded to float32) into mask and advances `state` (sequential by nature); then
 * pk_dropout_apply, on any split of [0, n), turns them into mask[i] = floor(r[i] + keep) / keep and
 * writes y[i] = x[i] * mask[i].
 */
void pk_alea_fill(pk_alea *state, float *mask, int64_t n);
void pk_dropout_apply(const float *x, float *y, float *mask, int64_t n, float keep);

/* AdamW's scalars, each rounded to float32 exactly as TensorFlow.js rounds a scalar operand. */
typedef struct {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float sqrt_correction2; /* sqrt(1 - beta2^t) */
  float epsilon;
  float keep;      /* 1 - lr * weight decay (1 without decay) */
  float step_size; /* lr / (1 - beta1^t) */
  float grad_scale; /* the gradient's factor (global-norm clipping; 1 without) */
} pk_adamw_scalars;

/*
 * One AdamW update in place, in optimizer.ts's order: g = grad * grad_scale; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p = p keep - m / (sqrt(v) / sqrt_correction2 + eps) * step_size.
 */
void pk_adamw(float *p, const float *g, float *m, float *v, int64_t n, const pk_adamw_scalars *s);

/* The sum of x[i]^2, accumulated in double. */
double pk_sum_squares(const float *x, int64_t n);

#endif

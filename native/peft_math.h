#ifndef PEFT_MATH_H
#define PEFT_MATH_H
#include <stdint.h>

enum { PM_EXP = 0, PM_ERF = 1 };

/* y[i] = op(x[i]) for i < n; x and y may not overlap. Returns 0 for an unknown op. */
int pm_unary(int op, const float *x, float *y, int64_t n);

#endif

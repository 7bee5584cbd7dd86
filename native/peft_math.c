/*
 * Elementwise math for peft_native, compiled on its own with -ffast-math so that glibc's vector math
 * library (libmvec: expf, erff) vectorises the loops, and cloned for AVX-512, AVX2 and baseline x86-64
 * (picked at load time by the CPU, so the same build runs on any x86-64 machine). Only the unary
 * transcendental kernels live here, where -ffast-math changes nothing but speed (libmvec's
 * accuracy, a few ulp); everything else is compiled without it.
 */
#include <math.h>
#include <stdint.h>
#include "peft_math.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

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

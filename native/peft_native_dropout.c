/* dropout: tf.dropout bit for bit from seedrandom's Alea state. */
#include "peft_kernels.h"
#include "peft_pool.h"
#include "peft_napi.h"

static void dropout_part(void *ctx, int64_t lo, int64_t hi, int part) {
  const span_job *j = ctx;
  int64_t i, n;
  block_range(j, lo, hi, &i, &n);
  pk_dropout_apply(j->x + i, j->y + i, j->dx + i, n, j->scale);
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

napi_value dropout(napi_env env, napi_callback_info info) {
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

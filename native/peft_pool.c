/*
 * peft_pool: the native kernels' thread pool (see peft_pool.h).
 *
 * One job at a time: the caller writes the job, bumps `generation`, runs part 0 itself and spins until
 * every helper has acknowledged the job (helpers whose index is past the job's part count only
 * acknowledge). A helper spins on `generation` for SPIN_NS after its last job, then sleeps on a
 * condition variable; the caller only takes the mutex to wake it when one is asleep. `generation`
 * and `sleepers` are sequentially consistent so that a helper going to sleep and a caller publishing
 * a job cannot miss each other (each writes its own variable, then reads the other's).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include "peft_pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RELAX() _mm_pause()
#else
#define RELAX() ((void)0)
#endif

/*
 * An idle helper spins this long before it sleeps. A training step issues its kernels a few to a few
 * hundred microseconds apart (TensorFlow.js's bookkeeping in between), so the helpers stay awake
 * through a step and cost nothing between steps; waking a sleeping thread takes ~50 us here.
 */
#define SPIN_NS 300000
/* A caller waiting this long for its helpers yields the CPU between checks (an oversubscribed machine). */
#define YIELD_AFTER_NS 1000000

static struct {
  pthread_mutex_t run_lock; /* one pool_run at a time */
  pthread_mutex_t sleep_lock;
  pthread_cond_t wake;
  atomic_ulong generation;
  atomic_int sleepers;
  atomic_int pending; /* helpers that have not yet acknowledged the current job */
  int helpers;        /* helper threads started */
  int threads;        /* threads in force, the caller included */
  /* The current job: written before `generation` is bumped, read by helpers after they see the bump. */
  pool_fn fn;
  void *ctx;
  int64_t n;
  int parts;
} pool = {
    .run_lock = PTHREAD_MUTEX_INITIALIZER,
    .sleep_lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .threads = 1,
};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void pool_range(int64_t n, int parts, int part, int64_t *lo, int64_t *hi) {
  *lo = n * part / parts;
  *hi = n * (part + 1) / parts;
}

/* Waits until `generation` differs from `seen`: spinning first, then asleep. */
static unsigned long await_job(unsigned long seen) {
  const int64_t until = now_ns() + SPIN_NS;
  for (int i = 0;; i++) {
    const unsigned long g = atomic_load(&pool.generation);
    if (g != seen) return g;
    RELAX();
    if ((i & 255) == 255 && now_ns() > until) break;
  }
  pthread_mutex_lock(&pool.sleep_lock);
  atomic_fetch_add(&pool.sleepers, 1);
  unsigned long g;
  while ((g = atomic_load(&pool.generation)) == seen) pthread_cond_wait(&pool.wake, &pool.sleep_lock);
  atomic_fetch_sub(&pool.sleepers, 1);
  pthread_mutex_unlock(&pool.sleep_lock);
  return g;
}

/* The generation each helper was started at: jobs after it are its to take (a job may be published before the thread runs). */
static unsigned long started_at[POOL_MAX_THREADS];

static void *helper_main(void *arg) {
  const int index = (int)(intptr_t)arg;
  unsigned long seen = started_at[index];
  for (;;) {
    seen = await_job(seen);
    if (index < pool.parts) {
      int64_t lo, hi;
      pool_range(pool.n, pool.parts, index, &lo, &hi);
      pool.fn(pool.ctx, lo, hi, index);
    }
    atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
  }
  return NULL;
}

int pool_set_threads(int threads) {
  if (threads < 1) threads = 1;
  if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
  pthread_mutex_lock(&pool.run_lock);
  pool.threads = threads;
  pthread_mutex_unlock(&pool.run_lock);
  return threads;
}

int pool_threads(void) { return pool.threads; }

int pool_parts(int64_t n, int64_t grain) {
  if (grain < 1) grain = 1;
  const int64_t most = n / grain;
  return most < 1 ? 1 : most < pool.threads ? (int)most : pool.threads;
}

/* Starts helpers up to threads - 1; fewer when the system refuses (the pool then uses what it has). */
static void start_helpers(void) {
  while (pool.helpers < pool.threads - 1) {
    pthread_t t;
    started_at[pool.helpers + 1] = atomic_load(&pool.generation);
    if (pthread_create(&t, NULL, helper_main, (void *)(intptr_t)(pool.helpers + 1)) != 0) {
      pool.threads = pool.helpers + 1;
      return;
    }
    pthread_detach(t);
    pool.helpers++;
  }
}

void pool_run(pool_fn fn, void *ctx, int64_t n, int64_t grain) {
  if (n <= 0) return;
  if (pool_parts(n, grain) < 2) {
    fn(ctx, 0, n, 0);
    return;
  }
  pthread_mutex_lock(&pool.run_lock);
  start_helpers();
  const int parts = pool_parts(n, grain);
  if (parts < 2) {
    pthread_mutex_unlock(&pool.run_lock);
    fn(ctx, 0, n, 0);
    return;
  }
  pool.fn = fn;
  pool.ctx = ctx;
  pool.n = n;
  pool.parts = parts;
  atomic_store(&pool.pending, pool.helpers);
  atomic_fetch_add(&pool.generation, 1);
  if (atomic_load(&pool.sleepers) > 0) {
    pthread_mutex_lock(&pool.sleep_lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.sleep_lock);
  }
  int64_t lo, hi;
  pool_range(n, parts, 0, &lo, &hi);
  fn(ctx, lo, hi, 0);
  const int64_t start = now_ns();
  for (int i = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; i++) {
    RELAX();
    if ((i & 255) == 255 && now_ns() - start > YIELD_AFTER_NS) sched_yield();
  }
  pthread_mutex_unlock(&pool.run_lock);
}

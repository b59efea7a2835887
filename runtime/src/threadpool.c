/* Kiln runtime: the worker threads a model runs its kernels on.
 *
 * A model owns a pool made by kiln_model_set_threads (threads are created there, never
 * in kiln_model_run). kiln_model_run makes the pool current for the calling thread;
 * kernels split their work with kiln_parallel_for, the caller taking the first share.
 * A model issues dozens of parallel loops per inference, each a fraction of a
 * millisecond, so workers spin for a while on the job counter before sleeping: a
 * condition-variable wake-up per loop costs more than many of the loops. */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define KILN_SPIN_ROUNDS 200000 /* ~ a few hundred microseconds before a worker sleeps */

struct kiln_threadpool_t {
  size_t threads; /* including the caller */
  pthread_t *workers;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  atomic_uint_fast64_t generation; /* bumped once per job */
  atomic_size_t pending;           /* workers still running the current job */
  atomic_int stop;
  /* The job being run; written before `generation` is bumped. */
  kiln_range_fn fn;
  void *ctx;
  int64_t count;
};

static _Thread_local kiln_threadpool_t *current_pool;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

static void run_share(kiln_threadpool_t *pool, size_t share) {
  int64_t per = (pool->count + (int64_t)pool->threads - 1) / (int64_t)pool->threads;
  int64_t begin = (int64_t)share * per, end = begin + per < pool->count ? begin + per : pool->count;
  if (begin < end) pool->fn(pool->ctx, begin, end);
}

struct worker_arg {
  kiln_threadpool_t *pool;
  size_t index;
};

static void *worker_main(void *p) {
  struct worker_arg arg = *(struct worker_arg *)p;
  free(p);
  kiln_threadpool_t *pool = arg.pool;
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
    for (int spin = 0; gen == seen && spin < KILN_SPIN_ROUNDS && !atomic_load(&pool->stop); ++spin) {
      cpu_relax();
      gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
    }
    if (gen == seen) {
      pthread_mutex_lock(&pool->lock);
      while (!atomic_load(&pool->stop) &&
             (gen = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen)
        pthread_cond_wait(&pool->wake, &pool->lock);
      pthread_mutex_unlock(&pool->lock);
    }
    if (atomic_load(&pool->stop)) break;
    seen = gen;
    run_share(pool, arg.index);
    atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel);
  }
  return NULL;
}

kiln_status_t kiln_threadpool_create(size_t threads, kiln_threadpool_t **out_pool) {
  *out_pool = NULL;
  kiln_threadpool_t *pool = calloc(1, sizeof *pool);
  if (!pool) return KILN_ERROR_OUT_OF_MEMORY;
  pool->threads = threads ? threads : 1;
  pool->workers = calloc(pool->threads, sizeof(pthread_t));
  if (!pool->workers) {
    free(pool);
    return KILN_ERROR_OUT_OF_MEMORY;
  }
  pthread_mutex_init(&pool->lock, NULL);
  pthread_cond_init(&pool->wake, NULL);
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->pending, 0);
  atomic_init(&pool->stop, 0);
  for (size_t i = 1; i < pool->threads; ++i) {
    struct worker_arg *arg = malloc(sizeof *arg);
    if (arg) {
      arg->pool = pool;
      arg->index = i;
    }
    if (!arg || pthread_create(&pool->workers[i], NULL, worker_main, arg)) {
      free(arg);
      pool->threads = i; /* only the started workers are joined */
      kiln_threadpool_destroy(pool);
      return KILN_ERROR_OUT_OF_MEMORY;
    }
  }
  *out_pool = pool;
  return KILN_OK;
}

void kiln_threadpool_destroy(kiln_threadpool_t *pool) {
  if (!pool) return;
  pthread_mutex_lock(&pool->lock);
  atomic_store(&pool->stop, 1);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (size_t i = 1; i < pool->threads; ++i) pthread_join(pool->workers[i], NULL);
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->wake);
  free(pool->workers);
  free(pool);
}

kiln_threadpool_t *kiln_threadpool_swap_current(kiln_threadpool_t *pool) {
  kiln_threadpool_t *old = current_pool;
  current_pool = pool;
  return old;
}

void kiln_parallel_for(int64_t count, kiln_range_fn fn, void *ctx) {
  kiln_threadpool_t *pool = current_pool;
  if (count <= 0) return;
  if (!pool || pool->threads == 1 || count == 1) {
    fn(ctx, 0, count);
    return;
  }
  pool->fn = fn;
  pool->ctx = ctx;
  pool->count = count;
  atomic_store_explicit(&pool->pending, pool->threads - 1, memory_order_relaxed);
  /* Release: the job fields above are visible to a worker that sees the new generation. */
  pthread_mutex_lock(&pool->lock);
  atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  run_share(pool, 0);
  while (atomic_load_explicit(&pool->pending, memory_order_acquire) != 0) cpu_relax();
}

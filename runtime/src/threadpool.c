/* Kiln runtime: the worker threads a model runs its kernels on.
 *
 * A model owns a pool made by kiln_model_set_threads (threads are created there, never
 * in kiln_model_run). kiln_model_run makes the pool current for the calling thread;
 * kernels split their work with kiln_parallel_for, the caller taking the first share. */
#include "threadpool.h"

#include <pthread.h>
#include <stdlib.h>

struct kiln_threadpool_t {
  size_t threads; /* including the caller */
  pthread_t *workers;
  pthread_mutex_t lock;
  pthread_cond_t wake, done;
  uint64_t generation;
  size_t pending;
  int stop;
  /* The job being run. */
  kiln_range_fn fn;
  void *ctx;
  int64_t count;
};

static _Thread_local kiln_threadpool_t *current_pool;

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
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    while (!pool->stop && pool->generation == seen) pthread_cond_wait(&pool->wake, &pool->lock);
    if (pool->stop) break;
    seen = pool->generation;
    pthread_mutex_unlock(&pool->lock);
    run_share(pool, arg.index);
    pthread_mutex_lock(&pool->lock);
    if (--pool->pending == 0) pthread_cond_signal(&pool->done);
  }
  pthread_mutex_unlock(&pool->lock);
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
  pthread_cond_init(&pool->done, NULL);
  for (size_t i = 1; i < pool->threads; ++i) {
    struct worker_arg *arg = malloc(sizeof *arg);
    if (!arg || pthread_create(&pool->workers[i], NULL, worker_main, arg ? (arg->pool = pool, arg->index = i, arg) : NULL)) {
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
  pool->stop = 1;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  for (size_t i = 1; i < pool->threads; ++i) pthread_join(pool->workers[i], NULL);
  pthread_mutex_destroy(&pool->lock);
  pthread_cond_destroy(&pool->wake);
  pthread_cond_destroy(&pool->done);
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
  pthread_mutex_lock(&pool->lock);
  pool->fn = fn;
  pool->ctx = ctx;
  pool->count = count;
  pool->pending = pool->threads - 1;
  pool->generation++;
  pthread_cond_broadcast(&pool->wake);
  pthread_mutex_unlock(&pool->lock);
  run_share(pool, 0);
  pthread_mutex_lock(&pool->lock);
  while (pool->pending) pthread_cond_wait(&pool->done, &pool->lock);
  pthread_mutex_unlock(&pool->lock);
}

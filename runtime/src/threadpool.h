/* Kiln runtime: worker threads for kernels (internal). */
#ifndef KILN_THREADPOOL_H
#define KILN_THREADPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kernels.h"
#include "kiln/kiln.h"

typedef struct kiln_threadpool_t kiln_threadpool_t;


kiln_status_t kiln_threadpool_create(size_t threads, kiln_threadpool_t **out_pool);
void kiln_threadpool_destroy(kiln_threadpool_t *pool);
/* Makes `pool` (may be NULL) the calling thread's pool; returns the previous one. */
kiln_threadpool_t *kiln_threadpool_swap_current(kiln_threadpool_t *pool);

#endif

/* Kiln runtime: helper symbols that MLIR-compiled model code calls (memrefCopy). */
#include <stdint.h>
#include <string.h>

/* MLIR's ranked memref descriptor: allocated, aligned, offset, then sizes[rank] and
 * strides[rank] (in elements), all passed through UnrankedMemRefType. */
typedef struct kiln_memref_desc_t {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes_and_strides[];
} kiln_memref_desc_t;

typedef struct kiln_unranked_memref_t {
  int64_t rank;
  kiln_memref_desc_t *descriptor;
} kiln_unranked_memref_t;

void memrefCopy(int64_t elemSize, void *src, void *dst);

typedef struct copy_plan_t {
  int64_t rank;
  const int64_t *sizes;
  const int64_t *src_strides;
  const int64_t *dst_strides;
  int64_t elem_size;
  int64_t block_dim;   /* dims [block_dim, rank) are one contiguous block in src and dst */
  size_t block_bytes;
} copy_plan_t;

/* Recursion depth is the rank, so no index array (and no allocation) is needed. */
static void copy_level(const copy_plan_t *plan, int64_t dim, const char *src, char *dst) {
  if (dim == plan->block_dim) {
    memmove(dst, src, plan->block_bytes);
    return;
  }
  int64_t src_step = plan->src_strides[dim] * plan->elem_size;
  int64_t dst_step = plan->dst_strides[dim] * plan->elem_size;
  for (int64_t i = 0; i < plan->sizes[dim]; ++i)
    copy_level(plan, dim + 1, src + i * src_step, dst + i * dst_step);
}

void memrefCopy(int64_t elemSize, void *src, void *dst) {
  const kiln_unranked_memref_t *s = (const kiln_unranked_memref_t *)src;
  const kiln_unranked_memref_t *d = (const kiln_unranked_memref_t *)dst;
  /* No status can be returned here, so malformed calls are ignored rather than crashing. */
  if (!s || !d || !s->descriptor || !d->descriptor || s->rank != d->rank || s->rank < 0 ||
      elemSize <= 0)
    return;

  int64_t rank = s->rank;
  const int64_t *sizes = s->descriptor->sizes_and_strides;
  for (int64_t i = 0; i < rank; ++i)
    if (sizes[i] <= 0) return; /* empty: nothing to copy */

  const char *src_ptr = (const char *)s->descriptor->aligned + s->descriptor->offset * elemSize;
  char *dst_ptr = (char *)d->descriptor->aligned + d->descriptor->offset * elemSize;

  copy_plan_t plan;
  plan.rank = rank;
  plan.sizes = sizes;
  plan.src_strides = s->descriptor->sizes_and_strides + rank;
  plan.dst_strides = d->descriptor->sizes_and_strides + rank;
  plan.elem_size = elemSize;

  /* Find the largest suffix of dims that is row-major dense in both memrefs, so it moves
   * with one memmove; size-1 dims are dense whatever their stride says. */
  int64_t expected = 1;
  plan.block_dim = rank;
  while (plan.block_dim > 0) {
    int64_t dim = plan.block_dim - 1;
    if (sizes[dim] != 1 &&
        (plan.src_strides[dim] != expected || plan.dst_strides[dim] != expected))
      break;
    expected *= sizes[dim];
    plan.block_dim = dim;
  }
  plan.block_bytes = (size_t)(expected * elemSize);
  copy_level(&plan, 0, src_ptr, dst_ptr);
}

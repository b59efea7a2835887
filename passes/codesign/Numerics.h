//===- Numerics.h - Dense linear algebra the co-design numerics share -*- C++ -*-===//
//
// Plain C++17 (no MLIR), header-only, so the passes, benches and unit tests that
// compile ButterflyFit.cpp, SmartDeal.cpp or SparsifyNM.cpp all see one copy.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_NUMERICS_H
#define KILN_PASSES_CODESIGN_NUMERICS_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::codesign {

/// In-place lower Cholesky factor of the symmetric positive definite a[k][k]
/// (row-major; the upper triangle is zeroed); false when a pivot is not positive.
inline bool cholesky(std::vector<double> &a, int64_t k) {
  for (int64_t j = 0; j < k; ++j) {
    double *rj = &a[size_t(j * k)];
    double d = rj[j];
    for (int64_t p = 0; p < j; ++p) d -= rj[p] * rj[p];
    if (!(d > 0)) return false;
    d = std::sqrt(d);
    rj[j] = d;
    for (int64_t i = j + 1; i < k; ++i) {
      double *ri = &a[size_t(i * k)];
      double s = ri[j];
      for (int64_t p = 0; p < j; ++p) s -= ri[p] * rj[p];
      ri[j] = s / d;
    }
    for (int64_t p = j + 1; p < k; ++p) rj[p] = 0;
  }
  return true;
}

/// sum over the m rows of d^T H d, d = a - b (b null: d = a), rows of k values; H the
/// k x k Gram matrix (null: the identity, i.e. the squared Frobenius norm). With a
/// calibration Gram this is the energy of the layer's output difference on that data.
inline double gramEnergy(const std::vector<float> &a, const std::vector<float> *b, int64_t m, int64_t k,
                         const std::vector<double> *gram) {
  double total = 0;
  std::vector<double> d(static_cast<size_t>(k));
  for (int64_t o = 0; o < m; ++o) {
    for (int64_t i = 0; i < k; ++i)
      d[size_t(i)] = double(a[size_t(o * k + i)]) - (b ? double((*b)[size_t(o * k + i)]) : 0.0);
    if (!gram) {
      for (double v : d) total += v * v;
      continue;
    }
    for (int64_t i = 0; i < k; ++i) {
      if (d[size_t(i)] == 0) continue;
      const double *hr = &(*gram)[size_t(i * k)];
      double s = 0;
      for (int64_t j = 0; j < k; ++j) s += hr[j] * d[size_t(j)];
      total += d[size_t(i)] * s;
    }
  }
  return total;
}

} // namespace kiln::codesign

#endif // KILN_PASSES_CODESIGN_NUMERICS_H

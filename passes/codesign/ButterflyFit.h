//===- ButterflyFit.h - Fit butterfly factors to a dense weight -------------===//
//
// Post-training fit of the butterfly format of kiln/butterfly.h to a trained K x N
// weight (y = x W): minimises the relative output error
//   tr((W - B)^T H (W - B)) / tr(W^T H W)
// over the factors, H the K x K input Gram X^T X from calibration (identity without
// one), B the top-left K x N block of F_0 F_1 ... F_{L-1}. Plain C++17 (no MLIR) so the
// pass, tools and tests can share it. docs/BUTTERFLY.md describes the method.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_BUTTERFLYFIT_H
#define KILN_PASSES_CODESIGN_BUTTERFLYFIT_H

#include <cstdint>
#include <vector>

namespace kiln {

struct ButterflyFitOptions {
  // L-BFGS iterations (each one gradient, plus more function values when the line
  // search backtracks). The fit also stops when the loss improves by less than
  // `tolerance` (relative) over 10 iterations.
  int maxIterations = 300;
  double tolerance = 1e-6;
  // Seeds the symmetry-breaking noise (and the power iteration's start): same seed,
  // same factors.
  uint64_t seed = 1;
  // Start from the best rank-1 approximation of W in the H metric (which a butterfly
  // holds exactly), its middle stages perturbed by this relative noise. false: random
  // start (kept for comparison; worse on trained weights).
  bool rank1Init = true;
  double initNoise = 0.1;
  int lbfgsMemory = 12;
  // Added to H's diagonal, relative to its mean diagonal, before the Cholesky factor
  // the optimiser works with (a Gram from few samples is singular). Errors are reported
  // with H itself.
  double gramRidge = 1e-6;
};

struct ButterflyFitResult {
  int64_t n = 1;                // power of two >= max(K, N, 2)
  std::vector<float> factors;   // 2 n log2(n) floats, the layout of kiln/butterfly.h
  double weightError = 0;       // ||W - B||_F / ||W||_F
  double outputError = 0;       // sqrt(tr(R^T H R) / tr(W^T H W)), R = W - B; = weightError without H
  double initialOutputError = 0; // the same at the starting point
  std::vector<double> history;  // relative output error after each iteration (non-increasing)
  int iterations = 0;
  bool usedGram = false;        // false with a gram that did not factor (fitted to the weights instead)
};

// W: K x N row-major (y = x W). gram: K x K row-major, symmetric positive semidefinite,
// or nullptr. n is at least 2 so that a 1 x 1 weight (a scale) is representable.
ButterflyFitResult fitButterfly(const std::vector<float> &W, int64_t K, int64_t N, const std::vector<double> *gram,
                                const ButterflyFitOptions &options = {});

// The top-left K x N block of the butterfly product (row-major), in double.
std::vector<double> butterflyDense(const std::vector<float> &factors, int64_t n, int64_t K, int64_t N);

// sqrt(tr(R^T H R) / tr(W^T H W)) with R = W - B (H = identity when gram is nullptr).
double butterflyRelativeError(const std::vector<float> &W, const std::vector<double> &B, int64_t K, int64_t N,
                              const std::vector<double> *gram);

} // namespace kiln

#endif // KILN_PASSES_CODESIGN_BUTTERFLYFIT_H

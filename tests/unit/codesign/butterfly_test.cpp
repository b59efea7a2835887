// Butterfly tests: the kernel against the reference loops on shapes named for the edge
// they probe, and the fit (exact recovery, monotone progress, the Gram-weighted error).
#include <gtest/gtest.h>

extern "C" {
#include "kiln/butterfly.h"
#include "threadpool.h"
}

#include "passes/codesign/ButterflyFit.h"

#include <cmath>
#include <ostream>
#include <random>
#include <vector>

namespace {

std::vector<float> random(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(gen);
  return v;
}

int64_t stagesOf(int64_t n) {
  int64_t l = 0;
  while ((int64_t(1) << l) < n) ++l;
  return l;
}

// ---- kernel ----

struct KernelCase {
  const char *name;
  int64_t rows, k, nOut, n;
  int64_t xPad = 0, yPad = 0; // extra floats per row beyond k / nOut (strided rows)
  int32_t flags = 0;
  bool bias = false;
  int threads = 1;
};
void PrintTo(const KernelCase &c, std::ostream *os) { *os << c.name; }

class ButterflyKernelTest : public ::testing::TestWithParam<KernelCase> {};

TEST_P(ButterflyKernelTest, MatchesReference) {
  const KernelCase &p = GetParam();
  const int64_t xs = p.k + p.xPad, ys = p.nOut + p.yPad, L = stagesOf(p.n);
  // Factors near +-0.7 keep the product's scale near 1 whatever the depth.
  auto factors = random(size_t(2 * p.n * L), 11, 0.45f, 0.95f);
  auto sign = random(factors.size(), 12);
  for (size_t i = 0; i < factors.size(); ++i) factors[i] *= sign[i] < 0 ? -1.f : 1.f;
  auto x = random(size_t(p.rows * xs), 13);
  auto bias = random(size_t(p.nOut), 14);
  auto init = random(size_t(p.rows * ys), 15); // also checks that the row padding is not written
  std::vector<float> got = init, want = init;
  std::vector<float> scratch(size_t(kiln_butterfly_scratch_floats(p.rows, p.n)));
  const float lo = -0.5f, hi = 0.75f;

  kiln_threadpool_t *pool = nullptr, *prev = nullptr;
  if (p.threads > 1) {
    ASSERT_EQ(kiln_threadpool_create(size_t(p.threads), &pool), KILN_OK);
    prev = kiln_threadpool_swap_current(pool);
  }
  kiln_butterfly_f32(x.data(), p.rows, xs, p.k, factors.data(), p.n, p.bias ? bias.data() : nullptr, got.data(), ys,
                     p.nOut, scratch.data(), p.flags, lo, hi);
  if (pool) {
    kiln_threadpool_swap_current(prev);
    kiln_threadpool_destroy(pool);
  }
  kiln_ref_butterfly_f32(x.data(), p.rows, xs, p.k, factors.data(), p.n, p.bias ? bias.data() : nullptr,
                         want.data(), ys, p.nOut, p.flags, lo, hi);
  // Each output sums k paths of L factors below 1 in magnitude, in f32.
  const float tol = 2e-6f * float(p.k) * float(L + 1) + 1e-6f;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t j = 0; j < ys; ++j) {
      size_t i = size_t(r * ys + j);
      if (j >= p.nOut)
        ASSERT_EQ(got[i], init[i]) << "padding written at row " << r << " column " << j;
      else
        ASSERT_NEAR(got[i], want[i], tol) << "row " << r << " column " << j;
    }
}

constexpr int32_t kAcc = KILN_BUTTERFLY_ACCUMULATE, kClamp = KILN_BUTTERFLY_CLAMP;

INSTANTIATE_TEST_SUITE_P(
    Shapes, ButterflyKernelTest,
    ::testing::Values(KernelCase{"n_eq_1", 3, 1, 1, 1},
                      KernelCase{"n_eq_2", 5, 2, 2, 2},
                      KernelCase{"n_eq_8_scalar_path", 7, 5, 8, 8},
                      KernelCase{"n_eq_16_in_vector_stages_only", 9, 16, 16, 16},
                      KernelCase{"n_eq_32_one_cross_stage", 9, 32, 32, 32},
                      KernelCase{"n_eq_64_two_cross_stages", 4, 64, 64, 64},
                      KernelCase{"k_ne_n_non_power_of_two", 6, 100, 37, 128},
                      KernelCase{"n_out_gt_k", 6, 20, 60, 64},
                      KernelCase{"rows_eq_1", 1, 64, 192, 256},
                      KernelCase{"rows_odd", 13, 48, 48, 64},
                      KernelCase{"rows_many_uneven_blocks", 301, 24, 30, 32},
                      KernelCase{"strided_input_and_output", 11, 40, 50, 64, 7, 5},
                      KernelCase{"accumulate", 10, 64, 64, 64, 0, 0, kAcc},
                      KernelCase{"bias", 10, 64, 64, 64, 0, 0, 0, true},
                      KernelCase{"bias_accumulate_clamp", 10, 64, 64, 64, 3, 2, kAcc | kClamp, true},
                      KernelCase{"clamp_only_scalar_path", 10, 3, 4, 4, 0, 0, kClamp},
                      KernelCase{"n_eq_1024", 9, 1000, 1024, 1024, 0, 0, kAcc},
                      KernelCase{"n_eq_1024_threads", 33, 1024, 700, 1024, 1, 0, kClamp, true, 3},
                      KernelCase{"many_rows_threads_more_blocks_than_slots", 1500, 32, 32, 32, 0, 0, kAcc, true, 4}));

// ---- fit ----

// A butterfly with every coefficient drawn from +-[0.5, 1.5]: the exact target.
std::vector<float> randomFactors(int64_t n, uint32_t seed) {
  auto f = random(size_t(2 * n * stagesOf(n)), seed, 0.5f, 1.5f);
  auto sign = random(f.size(), seed + 1);
  for (size_t i = 0; i < f.size(); ++i) f[i] *= sign[i] < 0 ? -1.f : 1.f;
  return f;
}

// kiln_butterfly_decode_f32 (weights no kernel took, decoded at run time) is the
// product butterflyDense computes, in both layouts, with K and N padded.
TEST(ButterflyDecode, MatchesTheDenseProduct) {
  struct Shape { int64_t n, k, nOut; };
  for (Shape s : {Shape{2, 2, 2}, Shape{8, 5, 7}, Shape{16, 16, 3}}) {
    auto factors = randomFactors(s.n, 5);
    std::vector<double> B = kiln::butterflyDense(factors, s.n, s.k, s.nOut);
    std::vector<float> kn(size_t(s.k * s.nOut)), nk(kn.size());
    kiln_butterfly_decode_f32(factors.data(), s.n, s.k, s.nOut, 1, kn.data());
    kiln_butterfly_decode_f32(factors.data(), s.n, s.k, s.nOut, 0, nk.data());
    for (int64_t i = 0; i < s.k; ++i)
      for (int64_t j = 0; j < s.nOut; ++j) {
        double want = B[size_t(i * s.nOut + j)], tol = 1e-5 * (1 + std::fabs(want));
        EXPECT_NEAR(kn[size_t(i * s.nOut + j)], want, tol) << "n = " << s.n << ", rows last, " << i << "," << j;
        EXPECT_NEAR(nk[size_t(j * s.k + i)], want, tol) << "n = " << s.n << ", rows first, " << i << "," << j;
      }
  }
}

TEST(ButterflyFit, RecoversAnExactButterfly) {
  for (int64_t n : {2, 8, 64}) {
    auto factors = randomFactors(n, 21);
    std::vector<double> B = kiln::butterflyDense(factors, n, n, n);
    std::vector<float> W(B.begin(), B.end());
    kiln::ButterflyFitOptions opt;
    opt.maxIterations = 2000;
    opt.tolerance = 1e-9;
    kiln::ButterflyFitResult r = kiln::fitButterfly(W, n, n, nullptr, opt);
    EXPECT_EQ(r.n, n);
    EXPECT_LT(r.weightError, 1e-3) << "n = " << n;
    EXPECT_EQ(r.outputError, r.weightError);
  }
}

TEST(ButterflyFit, ImprovesMonotonicallyOnARandomMatrix) {
  const int64_t K = 48, N = 80; // n = 128: both sides padded
  auto W = random(size_t(K * N), 31);
  kiln::ButterflyFitOptions opt;
  opt.maxIterations = 150;
  kiln::ButterflyFitResult r = kiln::fitButterfly(W, K, N, nullptr, opt);
  ASSERT_EQ(r.n, 128);
  ASSERT_EQ(int64_t(r.factors.size()), 2 * 128 * 7);
  ASSERT_FALSE(r.history.empty());
  double prev = r.initialOutputError;
  for (double e : r.history) {
    EXPECT_LE(e, prev);
    prev = e;
  }
  EXPECT_LT(r.weightError, r.initialOutputError);
  EXPECT_NEAR(r.weightError, r.history.back(), 1e-5); // the reported error is the optimiser's
  // A 1792-parameter butterfly cannot hold a random 48 x 80 matrix: only a little fits.
  EXPECT_LT(r.weightError, 0.97);
}

TEST(ButterflyFit, SameSeedSameFactors) {
  auto W = random(32 * 32, 41);
  kiln::ButterflyFitOptions opt;
  opt.maxIterations = 30;
  auto a = kiln::fitButterfly(W, 32, 32, nullptr, opt), b = kiln::fitButterfly(W, 32, 32, nullptr, opt);
  EXPECT_EQ(a.factors, b.factors);
}

TEST(ButterflyFit, OneByOneIsAScale) {
  std::vector<float> W = {-2.5f};
  auto r = kiln::fitButterfly(W, 1, 1, nullptr);
  EXPECT_EQ(r.n, 2);
  EXPECT_LT(r.weightError, 1e-6);
}

// The Gram-weighted error is the relative error of the layer's outputs on the inputs X
// the Gram came from, computed here with the kernel itself.
TEST(ButterflyFit, GramWeightedErrorIsTheOutputError) {
  const int64_t K = 40, N = 24, P = 30; // fewer samples than inputs: a singular Gram
  auto W = random(size_t(K * N), 51);
  // Inputs with a dominant direction, so the weighting matters.
  auto X = random(size_t(P * K), 52);
  auto dir = random(size_t(K), 53);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < K; ++i) X[size_t(p * K + i)] += 4.f * dir[size_t(i)] * float(p % 5);
  std::vector<double> H(size_t(K * K), 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) H[size_t(i * K + j)] += double(X[size_t(p * K + i)]) * X[size_t(p * K + j)];

  kiln::ButterflyFitOptions opt;
  opt.maxIterations = 200;
  auto r = kiln::fitButterfly(W, K, N, &H, opt);
  std::vector<float> Y(size_t(P * N)), scratch(size_t(kiln_butterfly_scratch_floats(P, r.n)));
  kiln_butterfly_f32(X.data(), P, K, K, r.factors.data(), r.n, nullptr, Y.data(), N, N, scratch.data(), 0, 0.f, 0.f);
  double num = 0, den = 0;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t j = 0; j < N; ++j) {
      double want = 0;
      for (int64_t i = 0; i < K; ++i) want += double(X[size_t(p * K + i)]) * W[size_t(i * N + j)];
      double e = want - Y[size_t(p * N + j)];
      num += e * e;
      den += want * want;
    }
  EXPECT_NEAR(r.outputError, std::sqrt(num / den), 1e-4);
  EXPECT_NEAR(r.weightError, kiln::butterflyRelativeError(W, kiln::butterflyDense(r.factors, r.n, K, N), K, N, nullptr),
              1e-9);
  // Fitting to the data's subspace beats fitting the weight blindly, on that data.
  auto blind = kiln::fitButterfly(W, K, N, nullptr, opt);
  double blindOut =
      kiln::butterflyRelativeError(W, kiln::butterflyDense(blind.factors, blind.n, K, N), K, N, &H);
  EXPECT_LT(r.outputError, blindOut);
  EXPECT_LT(r.outputError, r.initialOutputError);
}

} // namespace

// SmartDeal tests: the format's bit packing, the decomposition (exact inputs recovered,
// error falling over rounds, the Gram's effect) and the kernel against its reference and
// against the dense fp32 kernel on the decoded weights, on shapes named for their edge.
#include <gtest/gtest.h>

extern "C" {
#include "kiln/kernels.h"
#include "kiln/smartdeal.h"
#include "threadpool.h"
}

#include "SmartDeal.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <vector>

using kiln::codesign::decomposeSmartDeal;
using kiln::codesign::packSmartDeal;
using kiln::codesign::SmartDealFormat;
using kiln::codesign::SmartDealOptions;
using kiln::codesign::SmartDealResult;
using kiln::codesign::smartDealHeader;

namespace {

constexpr uint32_t kSeed = 20261207; // every random input derives from this; change to replay others

std::vector<float> uniform(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(gen);
  return v;
}

// Random levels (a chunk kept with probability `density`, then each coefficient non-zero
// with probability 3/4) and random bases: a format with every code in use.
SmartDealFormat randomFormat(int64_t m, int64_t kh, int64_t kw, int64_t c, int32_t layout, int bits, int64_t group,
                             double density, uint32_t seed) {
  const kiln_smartdeal_t hd = smartDealHeader(m, kh, kw, c, layout, bits, 1, group);
  const int64_t positions = kiln_smartdeal_positions(&hd), groups = kiln_smartdeal_groups(&hd);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<int8_t> levels(size_t(m * positions * 3), 0);
  for (int64_t i = 0; i < m * positions; ++i) {
    if (u(gen) >= density) continue;
    for (int j = 0; j < 3; ++j)
      if (u(gen) < 0.75) {
        int t = 1 + int(gen() % uint32_t((1 << bits) - 1));
        levels[size_t(i * 3 + j)] = int8_t(gen() & 1 ? -t : t);
      }
  }
  return packSmartDeal(m, kh, kw, c, layout, bits, /*exponentOffset=*/1, group, levels,
                       uniform(size_t(groups * 9), seed + 1));
}

float bf16(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// ---- Format ----

// The documented bit layout, decoded independently of the runtime: every weight of
// decode() must be what the codes and bases say, bit for bit.
TEST(SmartDealFormatTest, BitPackingRoundTrip) {
  struct Case { int64_t m, kh, kw, c; int32_t layout; int bits; int64_t group; };
  for (Case p : {Case{5, 3, 3, 7, KILN_SMARTDEAL_TAPS3, 3, 2}, Case{4, 1, 1, 23, KILN_SMARTDEAL_FLAT, 1, 3},
                 Case{3, 1, 1, 200, KILN_SMARTDEAL_FLAT, 7, 5}, Case{2, 2, 3, 40, KILN_SMARTDEAL_TAPS3, 2, 40},
                 Case{6, 5, 5, 3, KILN_SMARTDEAL_FLAT, 4, 1}}) {
    SCOPED_TRACE(testing::Message() << "m=" << p.m << " c=" << p.c << " bits=" << p.bits);
    const kiln_smartdeal_t hd = smartDealHeader(p.m, p.kh, p.kw, p.c, p.layout, p.bits, -2, p.group);
    const int64_t positions = kiln_smartdeal_positions(&hd), groups = kiln_smartdeal_groups(&hd);
    const int64_t k = p.kh * p.kw * p.c;
    std::mt19937 gen(kSeed);
    std::vector<int8_t> levels(size_t(p.m * positions * 3));
    const int top = (1 << p.bits) - 1;
    for (auto &l : levels) l = int8_t(int(gen() % uint32_t(2 * top + 1)) - top);
    for (int64_t i = 0; i < p.m * positions; i += 3) levels[size_t(i * 3)] = levels[size_t(i * 3 + 1)] = levels[size_t(i * 3 + 2)] = 0;
    auto bases = uniform(size_t(groups * 9), kSeed + 1);
    SmartDealFormat f = packSmartDeal(p.m, p.kh, p.kw, p.c, p.layout, p.bits, -2, p.group, levels, bases);
    kiln_smartdeal_t v = f.view();
    std::vector<float> rows(size_t(p.m * k), NAN);
    kiln_smartdeal_decode(&v, rows.data());
    int64_t kept = 0;
    for (int64_t o = 0; o < p.m; ++o)
      for (int64_t pos = 0; pos < positions; ++pos) {
        const int8_t *lv = &levels[size_t((o * positions + pos) * 3)];
        bool isKept = lv[0] || lv[1] || lv[2];
        kept += isKept;
        ASSERT_EQ(bool(v.mask[(o * positions + pos) / 64] >> ((o * positions + pos) % 64) & 1), isKept);
        int64_t g = p.layout == KILN_SMARTDEAL_TAPS3 ? (pos % p.c) / p.group : pos / p.group;
        float coef[3];
        for (int i = 0; i < 3; ++i)
          coef[i] = lv[i] == 0 ? 0.f : std::ldexp(lv[i] < 0 ? -1.f : 1.f, -2 - (std::abs(lv[i]) - 1));
        for (int j = 0; j < 3; ++j) {
          int64_t idx = p.layout == KILN_SMARTDEAL_TAPS3 ? ((pos / p.c) * 3 + j) * p.c + pos % p.c : pos * 3 + j;
          if (idx >= k) continue;
          float want = (coef[0] * bf16(f.bases[size_t(g * 9 + j)]) + coef[1] * bf16(f.bases[size_t(g * 9 + 3 + j)])) +
                       coef[2] * bf16(f.bases[size_t(g * 9 + 6 + j)]);
          ASSERT_EQ(rows[size_t(o * k + idx)], want) << "row " << o << " chunk " << pos << " tap " << j;
        }
      }
    EXPECT_EQ(int64_t(v.row_start[p.m]), kept);
    int64_t codeBytes = (kept * 3 * (p.bits + 1) + 7) / 8;
    EXPECT_EQ(f.bytes(), 32 + (p.m * positions + 63) / 64 * 8 + (p.m + 1) * 4 + codeBytes + 8 + groups * 18);
    EXPECT_EQ(int64_t(f.codes.size()), codeBytes + 8);
  }
}

// decode_slice is the packed layout of decode's rows, for any slice.
TEST(SmartDealFormatTest, SliceMatchesPackedRows) {
  for (int32_t layout : {KILN_SMARTDEAL_TAPS3, KILN_SMARTDEAL_FLAT}) {
    const int64_t m = 37, kh = 3, kw = 3, c = 29, k = kh * kw * c;
    SmartDealFormat f = randomFormat(m, kh, kw, c, layout, 3, 4, 0.6, kSeed);
    kiln_smartdeal_t v = f.view();
    std::vector<float> rows(size_t(m * k)), packed(size_t(64 * k));
    kiln_smartdeal_decode(&v, rows.data());
    kiln_pack_panels_f32(rows.data(), packed.data(), m, k);
    for (int64_t k0 : {int64_t(0), int64_t(1), int64_t(86), int64_t(200)}) {
      int64_t kc = std::min<int64_t>(k - k0, 57);
      std::vector<float> slice(size_t(64 * kc), NAN);
      kiln_smartdeal_decode_slice(&v, k0, kc, slice.data());
      for (int64_t p = 0; p < 2; ++p)
        for (int64_t i = 0; i < kc; ++i)
          for (int64_t j = 0; j < KILN_PANEL; ++j)
            ASSERT_EQ(slice[size_t((p * kc + i) * KILN_PANEL + j)], packed[size_t((p * k + k0 + i) * KILN_PANEL + j)])
                << "layout " << layout << " k0 " << k0 << " panel " << p << " i " << i << " lane " << j;
    }
  }
}

// ---- Decomposition ----

// A correlated input (x = z A) gives the Gram an eigen-spread like real activations.
std::vector<double> randomGram(int64_t k, uint32_t seed) {
  const int64_t samples = 4 * k;
  auto z = uniform(size_t(samples * k), seed);
  auto a = uniform(size_t(k * k), seed + 1);
  for (int64_t i = 0; i < k; ++i) a[size_t(i * k + i)] += 2.f;
  std::vector<double> x(size_t(samples * k), 0), h(size_t(k * k), 0);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < k; ++i) {
      double zi = z[size_t(s * k + i)];
      for (int64_t j = 0; j < k; ++j) x[size_t(s * k + j)] += zi * a[size_t(i * k + j)];
    }
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) h[size_t(i * k + j)] += x[size_t(s * k + i)] * x[size_t(s * k + j)];
  return h;
}

double outputError(const std::vector<float> &w, const std::vector<float> &r, int64_t m, int64_t k,
                   const std::vector<double> &h) {
  double num = 0, den = 0;
  for (int64_t o = 0; o < m; ++o)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double hv = h[size_t(i * k + j)];
        num += (w[size_t(o * k + i)] - r[size_t(o * k + i)]) * hv * (w[size_t(o * k + j)] - r[size_t(o * k + j)]);
        den += double(w[size_t(o * k + i)]) * hv * w[size_t(o * k + j)];
      }
  return std::sqrt(num / den);
}

// W = C B with C already sparse signed powers of two: started from the true bases, the
// decomposition gives W back bit for bit in the same bytes (an exact input is a fixed
// point); from bases 1% off it gets close; from its own start (principal axes) it
// reaches a local optimum (alternating projection does not promise the global one).
TEST(SmartDealDecomposeTest, RecoversExactProduct) {
  struct Case { int64_t m, kh, kw, c; int32_t layout; int64_t group; };
  for (Case p : {Case{24, 3, 3, 8, KILN_SMARTDEAL_TAPS3, 2}, Case{16, 1, 1, 60, KILN_SMARTDEAL_FLAT, 4}}) {
    SCOPED_TRACE(testing::Message() << "layout " << p.layout);
    SmartDealFormat truth = randomFormat(p.m, p.kh, p.kw, p.c, p.layout, 3, p.group, 0.5, kSeed + 7);
    kiln_smartdeal_t v = truth.view();
    const int64_t k = p.kh * p.kw * p.c;
    std::vector<float> w(size_t(p.m * k));
    kiln_smartdeal_decode(&v, w.data());
    SmartDealOptions opt;
    opt.exponentBits = 3;
    opt.rowDensity = double(v.row_start[p.m]) / double(p.m * kiln_smartdeal_positions(&v));
    opt.group = p.group;
    opt.iterations = 4;
    opt.forceFlat = p.layout == KILN_SMARTDEAL_FLAT;
    std::vector<float> start(truth.bases.size());
    for (size_t i = 0; i < start.size(); ++i) start[i] = bf16(truth.bases[i]);
    opt.initialBases = &start;
    SmartDealResult exact = decomposeSmartDeal(w, p.m, p.kh, p.kw, p.c, nullptr, opt);
    EXPECT_EQ(exact.weightError, 0.0);
    EXPECT_EQ(exact.rebuilt, w);
    EXPECT_EQ(exact.bytes, truth.bytes());

    std::mt19937 gen(kSeed + 8);
    std::uniform_real_distribution<float> jitter(0.99f, 1.01f);
    for (float &x : start) x *= jitter(gen);
    opt.iterations = 10;
    SmartDealResult near = decomposeSmartDeal(w, p.m, p.kh, p.kw, p.c, nullptr, opt);
    EXPECT_LT(near.weightError, 1e-2);

    opt.initialBases = nullptr;
    opt.iterations = 20;
    SmartDealResult cold = decomposeSmartDeal(w, p.m, p.kh, p.kw, p.c, nullptr, opt);
    EXPECT_LT(cold.weightError, 0.15);
  }
}

// Rounds of alternating projection lower the error; with the Gram the output error is
// what falls, and it ends lower than a fit that ignores the Gram.
TEST(SmartDealDecomposeTest, ErrorFallsOverIterationsAndGramHelps) {
  const int64_t m = 32, c = 8, k = 9 * c;
  auto w = uniform(size_t(m * k), kSeed + 11);
  auto h = randomGram(k, kSeed + 12);
  SmartDealOptions opt;
  opt.rowDensity = 0.5;
  opt.iterations = 0;
  SmartDealResult r0 = decomposeSmartDeal(w, m, 3, 3, c, &h, opt);
  opt.iterations = 12;
  SmartDealResult r = decomposeSmartDeal(w, m, 3, 3, c, &h, opt);
  ASSERT_EQ(r.history.size(), 13u);
  EXPECT_EQ(r.history[0], r0.outputError);
  EXPECT_LT(r.outputError, 0.95 * r0.outputError);
  // Each round is a B step (exact least squares, then bf16 bases) and a C step that
  // never raises the error: the history falls but for the bases' rounding.
  for (size_t i = 1; i < r.history.size(); ++i) EXPECT_LE(r.history[i], r.history[i - 1] * (1 + 1e-3));
  EXPECT_EQ(r.outputError, *std::min_element(r.history.begin(), r.history.end()));
  EXPECT_NEAR(r.outputError, outputError(w, r.rebuilt, m, k, h), 1e-9);

  SmartDealResult plain = decomposeSmartDeal(w, m, 3, 3, c, nullptr, opt);
  EXPECT_LT(r.outputError, outputError(w, plain.rebuilt, m, k, h));
  EXPECT_LT(plain.weightError, r.weightError); // each minimises its own metric
  for (size_t i = 1; i < plain.history.size(); ++i) EXPECT_LE(plain.history[i], plain.history[i - 1] * (1 + 1e-3));
}

// More chunks or more exponents: less error, more bytes. And the same input gives the
// same bytes (deterministic).
TEST(SmartDealDecomposeTest, TradeOffAndDeterminism) {
  const int64_t m = 16, k = 90;
  auto w = uniform(size_t(m * k), kSeed + 21);
  SmartDealOptions opt;
  opt.iterations = 6;
  double lastErr = 2;
  int64_t lastBytes = 0;
  for (double d : {0.25, 0.5, 1.0}) {
    opt.rowDensity = d;
    SmartDealResult r = decomposeSmartDeal(w, m, 1, 1, k, nullptr, opt);
    EXPECT_LT(r.weightError, lastErr) << "density " << d;
    EXPECT_GT(r.bytes, lastBytes) << "density " << d;
    lastErr = r.weightError;
    lastBytes = r.bytes;
  }
  opt.rowDensity = 1.0;
  opt.exponentBits = 1;
  SmartDealResult b1 = decomposeSmartDeal(w, m, 1, 1, k, nullptr, opt);
  EXPECT_GT(b1.weightError, lastErr);
  SmartDealResult again = decomposeSmartDeal(w, m, 1, 1, k, nullptr, opt);
  EXPECT_EQ(b1.format.codes, again.format.codes);
  EXPECT_EQ(b1.format.bases, again.format.bases);
  EXPECT_EQ(b1.rebuilt, again.rebuilt);
}

// The decomposition's rebuilt weights are what the runtime decodes from its format.
TEST(SmartDealDecomposeTest, RebuiltIsWhatTheFormatDecodes) {
  const int64_t m = 10, c = 5;
  auto w = uniform(size_t(m * 9 * c), kSeed + 31);
  SmartDealResult r = decomposeSmartDeal(w, m, 3, 3, c, nullptr, SmartDealOptions{});
  kiln_smartdeal_t v = r.format.view();
  std::vector<float> rows(w.size());
  kiln_smartdeal_decode(&v, rows.data());
  EXPECT_EQ(rows, r.rebuilt);
  EXPECT_EQ(r.bytes, kiln_smartdeal_bytes(&v));
  EXPECT_EQ(r.int8Bytes, m * 9 * c + 4 * m);
}

// ---- Kernel ----

struct KernelCase {
  const char *name;
  int64_t n, h, w, c, m, kh, kw, sh, sw, dh, dw;
  int32_t layout;
  int64_t padW = 0;   // extra input columns beyond what the view reads
  bool bias = false;  // fused: out = bias + conv; else accumulate into out
  bool clamp = false;
};

void PrintTo(const KernelCase &c, std::ostream *os) { *os << c.name; }

class SmartDealKernelTest : public ::testing::TestWithParam<KernelCase> {};

TEST_P(SmartDealKernelTest, MatchesReferenceAndDenseKernel) {
  const KernelCase &p = GetParam();
  const int64_t wBuf = p.w + p.padW;
  const int64_t oh = (p.h - (p.kh - 1) * p.dh - 1) / p.sh + 1, ow = (p.w - (p.kw - 1) * p.dw - 1) / p.sw + 1;
  const int64_t k = p.kh * p.kw * p.c, panels = (p.m + KILN_PANEL - 1) / KILN_PANEL;
  SmartDealFormat f = randomFormat(p.m, p.kh, p.kw, p.c, p.layout, 3, 2, 0.6, kSeed + uint32_t(k + p.m));
  kiln_smartdeal_t v = f.view();
  auto in = uniform(size_t(p.n * p.h * wBuf * p.c), kSeed + 1);
  auto bias = uniform(size_t(p.m), kSeed + 2);
  auto init = uniform(size_t(p.n * oh * ow * p.m), kSeed + 3);
  kiln_conv_geometry_t g = {p.n, p.c, p.m, p.kh, p.kw, oh, ow, p.sh, p.sw, p.dh, p.dw,
                            p.h * wBuf * p.c, wBuf * p.c, p.c, 0, 0, 0, 0};
  const float *b = p.bias ? bias.data() : nullptr;
  const float lo = -0.5f, hi = 0.75f;

  std::vector<float> scratch(size_t(kiln_conv2d_smartdeal_scratch_bytes(&v)) / sizeof(float));
  std::vector<float> got = init, want = init, dense = init;
  kiln_conv2d_nhwc_smartdeal_f32(in.data(), &v, scratch.data(), got.data(), &g, b, p.clamp, lo, hi);
  kiln_ref_conv2d_nhwc_smartdeal_f32(in.data(), &v, want.data(), &g, b, p.clamp, lo, hi);
  std::vector<float> rows(size_t(p.m * k)), packed(size_t(panels * KILN_PANEL * k));
  kiln_smartdeal_decode(&v, rows.data());
  kiln_pack_panels_f32(rows.data(), packed.data(), p.m, k);
  if (p.bias || p.clamp)
    kiln_conv2d_nhwc_f32_packed_fused(in.data(), packed.data(), dense.data(), &g, b, p.clamp, lo, hi);
  else
    kiln_conv2d_nhwc_f32_packed(in.data(), packed.data(), dense.data(), &g);

  float wmax = 0;
  for (float x : rows) wmax = std::max(wmax, std::fabs(x));
  const float tol = 2e-6f * float(k) * wmax + 1e-6f;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol) << "element " << i;
    ASSERT_EQ(got[i], dense[i]) << "element " << i << " (the same tiles on the same weights)";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SmartDealKernelTest,
    ::testing::Values(
        KernelCase{"odd_channels", 1, 6, 6, 5, 7, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"one_channel", 2, 5, 5, 1, 16, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"m_not_multiple_of_panel", 1, 6, 6, 8, 45, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"strided", 1, 11, 9, 6, 24, 3, 3, 2, 2, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"dilated", 1, 10, 10, 4, 16, 3, 3, 1, 1, 2, 2, KILN_SMARTDEAL_TAPS3},
        KernelCase{"strided_input_view", 1, 8, 7, 16, 32, 3, 3, 2, 2, 1, 1, KILN_SMARTDEAL_TAPS3, 3},
        KernelCase{"direct_path_few_panels", 2, 7, 7, 32, 48, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"packed_path_many_panels", 1, 6, 6, 16, 160, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"chunks_cross_reduction_slices", 1, 5, 5, 64, 40, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3},
        KernelCase{"three_wide_kernel_flat", 1, 6, 6, 5, 9, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT},
        KernelCase{"one_by_one", 1, 5, 5, 40, 17, 1, 1, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT},
        KernelCase{"one_by_one_k_not_multiple_of_3", 1, 4, 3, 7, 5, 1, 1, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT},
        KernelCase{"flat_chunks_cross_slices", 1, 4, 4, 300, 40, 1, 1, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT},
        KernelCase{"matmul_fc", 1, 13, 1, 100, 33, 1, 1, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT},
        KernelCase{"five_by_five_flat", 1, 9, 9, 3, 12, 5, 5, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT},
        KernelCase{"bias", 1, 6, 6, 8, 21, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3, 0, true},
        KernelCase{"bias_and_clamp", 1, 6, 6, 20, 70, 3, 3, 1, 1, 1, 1, KILN_SMARTDEAL_TAPS3, 0, true, true},
        KernelCase{"clamp_accumulate", 1, 5, 5, 300, 40, 1, 1, 1, 1, 1, 1, KILN_SMARTDEAL_FLAT, 0, false, true}),
    [](const ::testing::TestParamInfo<KernelCase> &info) { return std::string(info.param.name); });

// With worker threads the slices are decoded and consumed in parallel: same bits.
TEST(SmartDealKernelThreadsTest, SameResultWithThreads) {
  const int64_t n = 1, h = 12, w = 12, c = 48, m = 72;
  SmartDealFormat f = randomFormat(m, 3, 3, c, KILN_SMARTDEAL_TAPS3, 3, 4, 0.5, kSeed + 41);
  kiln_smartdeal_t v = f.view();
  auto in = uniform(size_t(n * h * w * c), kSeed + 42);
  auto bias = uniform(size_t(m), kSeed + 43);
  kiln_conv_geometry_t g = {n, c, m, 3, 3, h - 2, w - 2, 1, 1, 1, 1, h * w * c, w * c, c, 0, 0, 0, 0};
  std::vector<float> scratch(size_t(kiln_conv2d_smartdeal_scratch_bytes(&v)) / sizeof(float));
  std::vector<float> one(size_t(n * (h - 2) * (w - 2) * m)), many(one.size());
  kiln_conv2d_nhwc_smartdeal_f32(in.data(), &v, scratch.data(), one.data(), &g, bias.data(), 1, 0.f, 6.f);
  kiln_threadpool_t *pool = nullptr;
  ASSERT_EQ(kiln_threadpool_create(3, &pool), KILN_OK);
  kiln_threadpool_t *prev = kiln_threadpool_swap_current(pool);
  kiln_conv2d_nhwc_smartdeal_f32(in.data(), &v, scratch.data(), many.data(), &g, bias.data(), 1, 0.f, 6.f);
  kiln_threadpool_swap_current(prev);
  kiln_threadpool_destroy(pool);
  EXPECT_EQ(one, many);
}

} // namespace

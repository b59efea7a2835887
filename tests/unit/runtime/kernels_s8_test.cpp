// int8 kernel tests: the u8 x s8 convolution/matmul kernel against the reference loops
// (bit for bit, on shapes named for the edge they probe), and both against the
// arithmetic they stand for (dequantised sums, from unpacked weights).
#include <gtest/gtest.h>

extern "C" {
#include "kiln/kernels.h"
#include "threadpool.h"
#ifdef KILN_TEST_NATIVE_S8
/* The same kernel sources built for this machine (-march=native: VNNI, BF16 where present). */
void kiln_native_conv2d_nhwc_bf16_packed(const float *in, uint16_t *scratch, const uint16_t *packed,
                                         const float *bias, float *out, const kiln_conv_geometry_t *g, int32_t flags,
                                         float lo, float hi);
void kiln_native_conv2d_nhwc_u8s8_packed(const float *in, uint8_t *scratch, const int8_t *packed,
                                         const float *requant, float *out, const kiln_conv_geometry_t *g,
                                         float inv_scale, int32_t zero_point, int32_t flags, float lo, float hi);
#endif
}

#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <vector>

namespace {

struct S8Case {
  const char *name;
  int64_t n, h, w, c, m, kh, kw, sh, sw, dh, dw;
  int64_t padW = 0; // extra input columns beyond the view
  int32_t flags = 0;
};

void PrintTo(const S8Case &c, std::ostream *os) { *os << c.name; }

std::vector<float> uniform(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto &x : v) x = d(gen);
  return v;
}

struct Prepared {
  kiln_conv_geometry_t g;
  std::vector<float> in, requant, init;
  std::vector<int8_t> q, packed; // packed: s8 panels, or s4 panels (as bytes) with KILN_S8_INT4
  std::vector<float> wscale;
  float scale;
  int32_t zp;
};

Prepared prepare(const S8Case &p) {
  Prepared r;
  int64_t wBuf = p.w + p.padW;
  int64_t oh = (p.h - (p.kh - 1) * p.dh - 1) / p.sh + 1, ow = (p.w - (p.kw - 1) * p.dw - 1) / p.sw + 1;
  int64_t taps = p.kh * p.kw, k = taps * p.c, c4 = (p.c + 3) / 4 * 4;
  r.g = {p.n, p.c, p.m, p.kh, p.kw, oh, ow, p.sh, p.sw, p.dh, p.dw, p.h * wBuf * p.c, wBuf * p.c, p.c, 0, 0, 0, 0};
  r.in = uniform(size_t(p.n * p.h * wBuf * p.c), 1, -0.7f, 2.3f);
  r.scale = 3.0f / 255.f;
  r.zp = 60; // -0.7 / scale, rounded
  auto w = uniform(size_t(p.m * k), 2, -1.f, 1.f);
  const bool int4 = (p.flags & KILN_S8_INT4) != 0;
  const float qmax = int4 ? 7.f : 127.f;
  r.q.resize(w.size());
  r.wscale.resize(size_t(p.m));
  for (int64_t o = 0; o < p.m; ++o) {
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[o * k + i]));
    r.wscale[o] = amax / qmax;
    for (int64_t i = 0; i < k; ++i) r.q[o * k + i] = int8_t(std::nearbyint(w[o * k + i] / r.wscale[o]));
  }
  if (int4) r.q[0] = -8; // the one value only int4's low end has
  size_t s8bytes = size_t((p.m + KILN_PANEL_S8 - 1) / KILN_PANEL_S8 * KILN_PANEL_S8 * taps * c4);
  r.packed.assign(int4 ? s8bytes / 2 : s8bytes, 99);
  if (int4)
    kiln_pack_panels_s4(r.q.data(), reinterpret_cast<uint8_t *>(r.packed.data()), p.m, taps, p.c);
  else
    kiln_pack_panels_s8(r.q.data(), r.packed.data(), p.m, taps, p.c);
  auto bias = uniform(size_t(p.m), 3, -0.5f, 0.5f);
  r.requant.resize(size_t(2 * p.m));
  for (int64_t o = 0; o < p.m; ++o) {
    int64_t sum = 0;
    for (int64_t i = 0; i < k; ++i) sum += r.q[o * k + i];
    r.requant[o] = r.scale * r.wscale[o];
    r.requant[p.m + o] = bias[o] - r.requant[o] * float(r.zp) * float(sum);
  }
  r.init = uniform(size_t(p.n * oh * ow * p.m), 4, -1.f, 1.f);
  return r;
}

class S8KernelTest : public ::testing::TestWithParam<S8Case> {};

TEST_P(S8KernelTest, BitExactWithReferenceAndCloseToDequantisedSum) {
  const S8Case &p = GetParam();
  Prepared r = prepare(p);
  const kiln_conv_geometry_t &g = r.g;
  std::vector<uint8_t> scratch(size_t(kiln_conv2d_u8s8_scratch_bytes(&g)));
  std::vector<float> got = r.init, want = r.init;
  float lo = -0.25f, hi = 0.75f;
  kiln_conv2d_nhwc_u8s8_packed(r.in.data(), scratch.data(), r.packed.data(), r.requant.data(), got.data(), &g,
                               1.f / r.scale, r.zp, p.flags, lo, hi);
  kiln_ref_conv2d_nhwc_u8s8_packed(r.in.data(), scratch.data(), r.packed.data(), r.requant.data(), want.data(), &g,
                                   1.f / r.scale, r.zp, p.flags, lo, hi);
  ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << "kernel != reference";
#ifdef KILN_TEST_NATIVE_S8
  std::vector<float> native = r.init;
  kiln_native_conv2d_nhwc_u8s8_packed(r.in.data(), scratch.data(), r.packed.data(), r.requant.data(), native.data(),
                                      &g, 1.f / r.scale, r.zp, p.flags, lo, hi);
  ASSERT_EQ(0, std::memcmp(native.data(), want.data(), got.size() * sizeof(float))) << "native kernel != reference";
#endif
  // What the numbers mean: bias + sum of (q_in - zp) * q_w * scale_in * scale_w, from
  // the unpacked weights and an independent quantisation of the input.
  int64_t k = p.kh * p.kw * p.c;
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t y = 0; y < g.oh; ++y)
      for (int64_t x = 0; x < g.ow; ++x)
        for (int64_t o = 0; o < p.m; ++o) {
          double acc = 0;
          for (int64_t fy = 0; fy < p.kh; ++fy)
            for (int64_t fx = 0; fx < p.kw; ++fx)
              for (int64_t ch = 0; ch < p.c; ++ch) {
                float v = r.in[size_t(b * g.in_sn + (y * p.sh + fy * p.dh) * g.in_sh + (x * p.sw + fx * p.dw) * g.in_sw + ch)];
                double qa = std::min(255.0, std::max(0.0, double(std::nearbyint(v / r.scale)) + r.zp));
                acc += (qa - r.zp) * r.q[size_t(o * k + (fy * p.kw + fx) * p.c + ch)];
              }
          size_t at = size_t(((b * g.oh + y) * g.ow + x) * p.m + o);
          double bias = r.requant[size_t(p.m + o)];
          int64_t sum = 0;
          for (int64_t i = 0; i < k; ++i) sum += r.q[size_t(o * k + i)];
          bias += double(r.requant[size_t(o)]) * r.zp * double(sum);
          double v = bias + acc * r.scale * r.wscale[size_t(o)];
          if (p.flags & KILN_S8_ACCUMULATE) v += r.init[at];
          if (p.flags & KILN_S8_CLAMP) v = std::min(double(hi), std::max(double(lo), v));
          ASSERT_NEAR(got[at], v, 1e-4 * (1 + std::fabs(v))) << "element " << at;
        }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, S8KernelTest,
    ::testing::Values(S8Case{"one_input_channel", 1, 6, 6, 1, 16, 3, 3, 1, 1, 1, 1},
                      S8Case{"odd_channels", 1, 6, 6, 5, 7, 3, 3, 1, 1, 1, 1},
                      S8Case{"m_not_multiple_of_panel", 1, 6, 6, 8, 45, 3, 3, 1, 1, 1, 1},
                      S8Case{"rows_not_multiple_of_tile", 2, 7, 5, 16, 32, 1, 1, 1, 1, 1, 1},
                      S8Case{"strided", 1, 11, 11, 3, 24, 7, 7, 2, 2, 1, 1},
                      S8Case{"dilated", 1, 10, 10, 4, 16, 3, 3, 1, 1, 2, 2},
                      S8Case{"strided_input_view", 1, 8, 7, 16, 32, 3, 3, 2, 2, 1, 1, 3},
                      S8Case{"one_by_one_spatial", 3, 1, 1, 40, 17, 1, 1, 1, 1, 1, 1},
                      S8Case{"long_reduction", 1, 4, 4, 300, 40, 1, 1, 1, 1, 1, 1},
                      S8Case{"accumulate", 1, 5, 5, 12, 33, 3, 3, 1, 1, 1, 1, 0, KILN_S8_ACCUMULATE},
                      S8Case{"clamp", 1, 5, 5, 12, 33, 3, 3, 1, 1, 1, 1, 0, KILN_S8_CLAMP},
                      S8Case{"accumulate_and_clamp", 1, 5, 5, 12, 70, 3, 3, 1, 1, 1, 1, 1,
                             KILN_S8_ACCUMULATE | KILN_S8_CLAMP},
                      S8Case{"int4_odd_channels", 1, 6, 6, 5, 7, 3, 3, 1, 1, 1, 1, 0, KILN_S8_INT4},
                      S8Case{"int4_m_not_multiple_of_panel", 1, 6, 6, 8, 45, 3, 3, 1, 1, 1, 1, 0, KILN_S8_INT4},
                      S8Case{"int4_strided_view", 1, 8, 7, 16, 32, 3, 3, 2, 2, 1, 1, 3, KILN_S8_INT4},
                      S8Case{"int4_long_reduction", 2, 4, 4, 300, 70, 1, 1, 1, 1, 1, 1, 0, KILN_S8_INT4},
                      S8Case{"int4_accumulate_and_clamp", 1, 5, 5, 12, 33, 3, 3, 1, 1, 1, 1, 1,
                             KILN_S8_INT4 | KILN_S8_ACCUMULATE | KILN_S8_CLAMP}),
    [](const ::testing::TestParamInfo<S8Case> &info) { return std::string(info.param.name); });

// Rows split over 3 threads (more than some shapes have) give the same bits.
TEST(S8ThreadedKernelTest, SameBitsOnThreeThreads) {
  kiln_threadpool_t *pool = nullptr;
  ASSERT_EQ(kiln_threadpool_create(3, &pool), KILN_OK);
  for (int64_t rows : {1, 7, 50}) {
    Prepared r = prepare(S8Case{"rows", 1, rows, 1, 24, 40, 1, 1, 1, 1, 1, 1});
    std::vector<uint8_t> scratch(size_t(kiln_conv2d_u8s8_scratch_bytes(&r.g)));
    std::vector<float> one = r.init, three = r.init;
    kiln_conv2d_nhwc_u8s8_packed(r.in.data(), scratch.data(), r.packed.data(), r.requant.data(), one.data(), &r.g,
                                 1.f / r.scale, r.zp, 0, 0.f, 0.f);
    kiln_threadpool_t *previous = kiln_threadpool_swap_current(pool);
    kiln_conv2d_nhwc_u8s8_packed(r.in.data(), scratch.data(), r.packed.data(), r.requant.data(), three.data(), &r.g,
                                 1.f / r.scale, r.zp, 0, 0.f, 0.f);
    kiln_threadpool_swap_current(previous);
    ASSERT_EQ(0, std::memcmp(one.data(), three.data(), one.size() * sizeof(float))) << "rows=" << rows;
  }
  kiln_threadpool_destroy(pool);
}

// Implicit zero padding (in_h > 0) gives the bits of an explicitly padded copy: the
// padding quantises to the zero point either way.
TEST(S8PaddingTest, ImplicitPaddingMatchesAPaddedCopy) {
  for (int64_t pad : {1, 2}) {
    S8Case p{"padded", 2, 9, 7, 5, 33, 3, 3, 2, 1, 1, 1, 0, KILN_S8_CLAMP};
    int64_t hp = p.h + 2 * pad, wp = p.w + 2 * pad;
    S8Case big = p;
    big.h = hp;
    big.w = wp;
    Prepared r = prepare(big); // geometry, weights and requantisation for the padded image
    auto src = uniform(size_t(p.n * p.h * p.w * p.c), 21, -0.7f, 2.3f);
    std::vector<float> padded(size_t(p.n * hp * wp * p.c), 0.f);
    for (int64_t b = 0; b < p.n; ++b)
      for (int64_t y = 0; y < p.h; ++y)
        for (int64_t x = 0; x < p.w; ++x)
          for (int64_t ch = 0; ch < p.c; ++ch)
            padded[size_t(((b * hp + y + pad) * wp + x + pad) * p.c + ch)] = src[size_t(((b * p.h + y) * p.w + x) * p.c + ch)];
    kiln_conv_geometry_t implicit = r.g;
    implicit.in_sn = p.h * p.w * p.c;
    implicit.in_sh = p.w * p.c;
    implicit.in_sw = p.c;
    implicit.pad_h = implicit.pad_w = pad;
    implicit.in_h = p.h;
    implicit.in_w = p.w;
    std::vector<uint8_t> scratch(size_t(kiln_conv2d_u8s8_scratch_bytes(&r.g)));
    std::vector<float> want(r.init.size()), got(r.init.size());
    kiln_ref_conv2d_nhwc_u8s8_packed(padded.data(), scratch.data(), r.packed.data(), r.requant.data(), want.data(),
                                     &r.g, 1.f / r.scale, r.zp, p.flags, 0.f, 1.f);
    kiln_conv2d_nhwc_u8s8_packed(src.data(), scratch.data(), r.packed.data(), r.requant.data(), got.data(),
                                 &implicit, 1.f / r.scale, r.zp, p.flags, 0.f, 1.f);
    ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * sizeof(float))) << "pad " << pad;
  }
}

// bf16: the kernel (portable, and native with AVX-512 BF16 where present) against the
// reference (double sums of the same bf16 values), on edge shapes and flags.
TEST(Bf16KernelTest, MatchesReferenceOnEdgeShapes) {
  struct Case { int64_t n, h, w, c, m, k, s, pad; int32_t flags; };
  for (Case p : {Case{1, 6, 6, 1, 16, 3, 1, 0, 0}, Case{1, 6, 6, 5, 7, 3, 1, 1, KILN_S8_CLAMP},
                 Case{2, 7, 5, 16, 45, 1, 1, 0, KILN_S8_ACCUMULATE}, Case{1, 11, 11, 3, 24, 7, 2, 3, 0},
                 Case{1, 4, 4, 300, 40, 1, 1, 0, KILN_S8_ACCUMULATE | KILN_S8_CLAMP}}) {
    int64_t hp = p.h + 2 * p.pad, wp = p.w + 2 * p.pad;
    int64_t oh = (hp - p.k) / p.s + 1, ow = (wp - p.k) / p.s + 1, kk = p.k * p.k * p.c, c2 = (p.c + 1) / 2 * 2;
    auto in = uniform(size_t(p.n * p.h * p.w * p.c), 31, -1.f, 1.f);
    auto filter = uniform(size_t(p.m * kk), 32, -1.f, 1.f), bias = uniform(size_t(p.m), 33, -0.5f, 0.5f);
    std::vector<uint16_t> packed(size_t((p.m + KILN_PANEL_BF16 - 1) / KILN_PANEL_BF16 * KILN_PANEL_BF16 * p.k * p.k * c2));
    kiln_pack_panels_bf16(filter.data(), packed.data(), p.m, p.k * p.k, p.c);
    kiln_conv_geometry_t g = {p.n, p.c, p.m, p.k, p.k, oh, ow, p.s, p.s, 1, 1, p.h * p.w * p.c, p.w * p.c, p.c,
                              p.pad, p.pad, p.pad ? p.h : 0, p.pad ? p.w : 0};
    std::vector<uint16_t> scratch(size_t(kiln_conv2d_bf16_scratch_bytes(&g) / 2 + 1));
    auto init = uniform(size_t(p.n * oh * ow * p.m), 34, -1.f, 1.f);
    std::vector<float> got = init, want = init;
    kiln_ref_conv2d_nhwc_bf16_packed(in.data(), scratch.data(), packed.data(), bias.data(), want.data(), &g, p.flags,
                                     -0.3f, 0.3f);
    kiln_conv2d_nhwc_bf16_packed(in.data(), scratch.data(), packed.data(), bias.data(), got.data(), &g, p.flags,
                                 -0.3f, 0.3f);
    float tol = 1e-6f * float(kk) + 1e-6f;
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << "c=" << p.c << " element " << i;
#ifdef KILN_TEST_NATIVE_S8
    std::vector<float> native = init;
    kiln_native_conv2d_nhwc_bf16_packed(in.data(), scratch.data(), packed.data(), bias.data(), native.data(), &g,
                                        p.flags, -0.3f, 0.3f);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(native[i], want[i], tol) << "native, c=" << p.c << " element " << i;
#endif
  }
}

TEST(Bf16Test, RoundsToNearestEven) {
  EXPECT_EQ(kiln_f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(kiln_f32_to_bf16(1.00390625f), 0x3F80); // 1 + 2^-8: a tie, to even
  EXPECT_EQ(kiln_f32_to_bf16(1.01171875f), 0x3F82); // 1 + 3 * 2^-8: a tie, to even (up)
  EXPECT_EQ(kiln_f32_to_bf16(-2.0f), 0xC000);
}

TEST(S8QuantizeTest, RoundsToNearestEvenAndSaturates) {
  // One pixel of 6 channels (C4 = 8): the two padding channels hold the zero point.
  float in[6] = {-100.f, 0.f, 0.5f, 1.5f, 2.5f, 1000.f};
  kiln_conv_geometry_t g = {1, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 6, 6, 6, 0, 0, 0, 0};
  uint8_t out[8];
  kiln_quantize_view_u8(in, out, &g, 1.f, 10);
  uint8_t want[8] = {0, 10, 10, 12, 12, 255, 10, 10};
  for (int k = 0; k < 8; ++k) EXPECT_EQ(out[k], want[k]) << "channel " << k;
}

TEST(S4PackTest, TwoWeightsPerByteLowNibblesFirst) {
  // m = 20 rows, 1 tap, c = 4: row r holds (r % 15) - 7 (in [-7, 7]) at every channel.
  std::vector<int8_t> w;
  for (int r = 0; r < 20; ++r)
    for (int ch = 0; ch < 4; ++ch) w.push_back(int8_t(r % 15 - 7));
  std::vector<uint8_t> packed(size_t(KILN_PANEL_S8 * 2), 0xAA);
  kiln_pack_panels_s4(w.data(), packed.data(), 20, 1, 4);
  // Row 0 (-7 = 0x9) in the low nibble, row 16 (16 % 15 - 7 = -6 = 0xA) in the high one.
  EXPECT_EQ(packed[0], 0xA9);
  // Row 3 (-4 = 0xC) low, row 19 (19 % 15 - 7 = -3 = 0xD) high.
  EXPECT_EQ(packed[3 * 4 + 1], 0xDC);
  // Row 15 (-7 = 0x9) low; row 31 does not exist: 0 high.
  EXPECT_EQ(packed[15 * 4], 0x09);
}

TEST(S8PackTest, PadsChannelsToFourAndRowsToThePanel) {
  // m = 2 rows, 2 taps, c = 3 (C4 = 4): row r, tap t, channel ch = 10r + 3t + ch + 1.
  std::vector<int8_t> w;
  for (int r = 0; r < 2; ++r)
    for (int t = 0; t < 2; ++t)
      for (int ch = 0; ch < 3; ++ch) w.push_back(int8_t(10 * r + 3 * t + ch + 1));
  std::vector<int8_t> packed(size_t(KILN_PANEL_S8 * 2 * 4), 99);
  kiln_pack_panels_s8(w.data(), packed.data(), 2, 2, 3);
  // group 0 = tap 0, channels 0..3 (3 = padding); lane j = row j.
  EXPECT_EQ(packed[0 * 4 + 0], 1);
  EXPECT_EQ(packed[0 * 4 + 2], 3);
  EXPECT_EQ(packed[0 * 4 + 3], 0);
  EXPECT_EQ(packed[1 * 4 + 0], 11);
  EXPECT_EQ(packed[2 * 4 + 0], 0); // past the last row
  // group 1 = tap 1
  EXPECT_EQ(packed[(KILN_PANEL_S8 + 0) * 4 + 0], 4);
  EXPECT_EQ(packed[(KILN_PANEL_S8 + 1) * 4 + 1], 15);
}

} // namespace

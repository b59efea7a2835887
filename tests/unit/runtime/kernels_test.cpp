// Kernel tests: the register-tiled conv/matmul and depthwise kernels against the
// reference loops, on shapes named for the edge they probe.
#include <gtest/gtest.h>

extern "C" {
#include "kiln/kernels.h"
#include "threadpool.h"
}

#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <vector>

namespace {

struct ConvCase {
  const char *name;
  int64_t n, h, w, c, m, kh, kw, sh, sw, dh, dw;
  int64_t padW = 0; // extra columns in the input buffer beyond what the view reads
};

// gtest prints a failing case by its name, not as bytes.
void PrintTo(const ConvCase &c, std::ostream *os) { *os << c.name; }

std::vector<float> random(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto &x : v) x = d(gen);
  return v;
}

class ConvKernelTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvKernelTest, MatchesReference) {
  const ConvCase &p = GetParam();
  int64_t wBuf = p.w + p.padW;
  int64_t oh = (p.h - (p.kh - 1) * p.dh - 1) / p.sh + 1, ow = (p.w - (p.kw - 1) * p.dw - 1) / p.sw + 1;
  int64_t k = p.kh * p.kw * p.c, panels = (p.m + KILN_PANEL - 1) / KILN_PANEL;
  auto in = random(size_t(p.n * p.h * wBuf * p.c), 1);
  auto filter = random(size_t(p.m * k), 2);
  std::vector<float> packed(size_t(panels * KILN_PANEL * k));
  kiln_pack_panels_f32(filter.data(), packed.data(), p.m, k);
  auto init = random(size_t(p.n * oh * ow * p.m), 3); // kernels accumulate into the output
  std::vector<float> got = init, want = init;
  kiln_conv_geometry_t g = {p.n, p.c, p.m, p.kh, p.kw, oh, ow, p.sh, p.sw, p.dh, p.dw,
                            p.h * wBuf * p.c, wBuf * p.c, p.c, 0, 0, 0, 0};
  kiln_conv2d_nhwc_f32_packed(in.data(), packed.data(), got.data(), &g);
  kiln_ref_conv2d_nhwc_f32_packed(in.data(), packed.data(), want.data(), &g);
  float tol = 1e-5f * float(k);
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << "element " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvKernelTest,
    ::testing::Values(ConvCase{"k_eq_1", 1, 5, 5, 1, 16, 1, 1, 1, 1, 1, 1},
                      ConvCase{"m_not_multiple_of_panel", 1, 6, 6, 8, 21, 3, 3, 1, 1, 1, 1},
                      ConvCase{"rows_not_multiple_of_tile", 1, 7, 5, 16, 32, 1, 1, 1, 1, 1, 1},
                      ConvCase{"direct_path_few_panels", 2, 9, 9, 32, 48, 3, 3, 1, 1, 1, 1},
                      ConvCase{"packed_path_many_panels", 1, 6, 6, 32, 96, 3, 3, 1, 1, 1, 1},
                      ConvCase{"k_crosses_reduction_slices", 1, 4, 4, 300, 40, 1, 1, 1, 1, 1, 1},
                      ConvCase{"k_crosses_slices_3x3", 1, 5, 5, 64, 80, 3, 3, 1, 1, 1, 1},
                      ConvCase{"strided", 1, 11, 11, 3, 24, 7, 7, 2, 2, 1, 1},
                      ConvCase{"dilated", 1, 10, 10, 4, 16, 3, 3, 1, 1, 2, 2},
                      ConvCase{"strided_input_view", 1, 8, 7, 16, 32, 3, 3, 2, 2, 1, 1, 3},
                      ConvCase{"one_by_one_spatial", 3, 1, 1, 40, 17, 1, 1, 1, 1, 1, 1},
                      ConvCase{"odd_channels", 1, 6, 6, 5, 7, 3, 3, 1, 1, 1, 1}),
    [](const ::testing::TestParamInfo<ConvCase> &info) { return std::string(info.param.name); });

TEST(DepthwiseKernelTest, MatchesReferenceOnEdgeShapes) {
  struct Case { int64_t n, h, w, c, kh, kw, s, d, padW; };
  for (Case p : {Case{1, 6, 6, 1, 3, 3, 1, 1, 0}, Case{2, 9, 7, 19, 3, 3, 2, 1, 0}, Case{1, 8, 8, 33, 5, 5, 1, 1, 2},
                 Case{1, 9, 9, 16, 3, 3, 1, 2, 1}}) {
    int64_t wBuf = p.w + p.padW;
    int64_t oh = (p.h - (p.kh - 1) * p.d - 1) / p.s + 1, ow = (p.w - (p.kw - 1) * p.d - 1) / p.s + 1;
    auto in = random(size_t(p.n * p.h * wBuf * p.c), 4);
    auto filter = random(size_t(p.kh * p.kw * p.c), 5);
    auto init = random(size_t(p.n * oh * ow * p.c), 6);
    std::vector<float> got = init, want = init;
    kiln_conv_geometry_t g = {p.n, p.c, p.c, p.kh, p.kw, oh, ow, p.s, p.s, p.d, p.d, p.h * wBuf * p.c, wBuf * p.c, p.c, 0, 0, 0, 0};
    kiln_dwconv2d_nhwc_f32(in.data(), filter.data(), got.data(), &g);
    kiln_ref_dwconv2d_nhwc_f32(in.data(), filter.data(), want.data(), &g);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << "c=" << p.c << " element " << i;
  }
}

// Implicit zero padding: the kernel and the reference on the unpadded image agree with
// the reference on an explicitly padded copy.
TEST(DepthwiseKernelTest, ImplicitPaddingMatchesAPaddedCopy) {
  struct Case { int64_t n, h, w, c, k, s, d, pad; };
  for (Case p : {Case{1, 7, 7, 19, 3, 3 - 2, 1, 1}, Case{2, 9, 8, 33, 3, 2, 1, 1}, Case{1, 8, 8, 16, 5, 1, 1, 2},
                 Case{1, 9, 9, 8, 3, 1, 2, 2}}) {
    int64_t hp = p.h + 2 * p.pad, wp = p.w + 2 * p.pad;
    int64_t oh = (hp - (p.k - 1) * p.d - 1) / p.s + 1, ow = (wp - (p.k - 1) * p.d - 1) / p.s + 1;
    auto src = random(size_t(p.n * p.h * p.w * p.c), 22);
    std::vector<float> padded(size_t(p.n * hp * wp * p.c), 0.f);
    for (int64_t b = 0; b < p.n; ++b)
      for (int64_t y = 0; y < p.h; ++y)
        for (int64_t x = 0; x < p.w; ++x)
          for (int64_t ch = 0; ch < p.c; ++ch)
            padded[size_t(((b * hp + y + p.pad) * wp + x + p.pad) * p.c + ch)] =
                src[size_t(((b * p.h + y) * p.w + x) * p.c + ch)];
    auto filter = random(size_t(p.k * p.k * p.c), 23);
    auto init = random(size_t(p.n * oh * ow * p.c), 24);
    kiln_conv_geometry_t g = {p.n, p.c, p.c, p.k, p.k, oh, ow, p.s, p.s, p.d, p.d, hp * wp * p.c, wp * p.c, p.c,
                              0, 0, 0, 0};
    kiln_conv_geometry_t implicit = {p.n, p.c, p.c, p.k, p.k, oh, ow, p.s, p.s, p.d, p.d, p.h * p.w * p.c,
                                     p.w * p.c, p.c, p.pad, p.pad, p.h, p.w};
    std::vector<float> want = init, got = init, ref = init;
    kiln_ref_dwconv2d_nhwc_f32(padded.data(), filter.data(), want.data(), &g);
    kiln_dwconv2d_nhwc_f32(src.data(), filter.data(), got.data(), &implicit);
    kiln_ref_dwconv2d_nhwc_f32(src.data(), filter.data(), ref.data(), &implicit);
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4f) << "c=" << p.c << " element " << i;
      ASSERT_NEAR(ref[i], want[i], 1e-5f) << "c=" << p.c << " element " << i;
    }
  }
}

// The fused entry point: out = clamp(bias + depthwise conv) without reading the old
// output; channel counts around the 16-wide blocks, and a 9x9 kernel with more than
// 64 taps (the tap-by-tap path).
TEST(DepthwiseKernelTest, FusedBiasAndClampMatchReference) {
  struct Case { int64_t h, c, k; };
  for (Case p : {Case{8, 15, 3}, Case{8, 16, 3}, Case{9, 37, 3}, Case{12, 20, 9}}) {
    int64_t oh = p.h - p.k + 1;
    auto in = random(size_t(p.h * p.h * p.c), 25), filter = random(size_t(p.k * p.k * p.c), 26);
    auto bias = random(size_t(p.c), 27);
    kiln_conv_geometry_t g = {1, p.c, p.c, p.k, p.k, oh, oh, 1, 1, 1, 1, p.h * p.h * p.c, p.h * p.c, p.c, 0, 0, 0, 0};
    std::vector<float> want(size_t(oh * oh * p.c));
    for (size_t i = 0; i < want.size(); ++i) want[i] = bias[i % size_t(p.c)];
    kiln_ref_dwconv2d_nhwc_f32(in.data(), filter.data(), want.data(), &g);
    for (float &v : want) v = std::min(std::max(v, -0.5f), 0.5f);
    std::vector<float> got(want.size(), 1e30f); // garbage: the fused kernel must not read it
    kiln_dwconv2d_nhwc_f32_fused(in.data(), filter.data(), got.data(), &g, bias.data(), 1, -0.5f, 0.5f);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << "c=" << p.c << " element " << i;
  }
}

TEST(BatchMatmulKernelTest, MatchesReferenceOnEdgeShapes) {
  struct Case { int64_t batch, m, n, k; };
  for (Case p : {Case{1, 1, 1, 1}, Case{2, 5, 32, 7}, Case{3, 17, 70, 33}, Case{4, 128, 128, 64}, Case{1, 9, 31, 300}}) {
    auto a = random(size_t(p.batch * p.m * p.k), 7), b = random(size_t(p.batch * p.k * p.n), 8);
    auto init = random(size_t(p.batch * p.m * p.n), 9);
    std::vector<float> got = init, want = init;
    kiln_batch_matmul_f32(a.data(), b.data(), got.data(), p.batch, p.m, p.n, p.k);
    kiln_ref_batch_matmul_f32(a.data(), b.data(), want.data(), p.batch, p.m, p.n, p.k);
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-5f * float(p.k)) << "m=" << p.m << " n=" << p.n << " element " << i;
  }
}

// The kernels split their rows over the current pool: with 3 threads (more than the
// rows of some shapes) every output must still be written exactly once.
TEST(ThreadedKernelTest, ConvAndMatmulMatchReferenceOnThreeThreads) {
  kiln_threadpool_t *pool = nullptr;
  ASSERT_EQ(kiln_threadpool_create(3, &pool), KILN_OK);
  kiln_threadpool_t *previous = kiln_threadpool_swap_current(pool);
  for (int64_t rows : {1, 7, 50}) {
    int64_t c = 24, m = 40, k = c, panels = (m + KILN_PANEL - 1) / KILN_PANEL;
    auto in = random(size_t(rows * c), 10), filter = random(size_t(m * k), 11);
    std::vector<float> packed(size_t(panels * KILN_PANEL * k));
    kiln_pack_panels_f32(filter.data(), packed.data(), m, k);
    auto init = random(size_t(rows * m), 12);
    std::vector<float> got = init, want = init;
    kiln_conv_geometry_t g = {1, c, m, 1, 1, rows, 1, 1, 1, 1, 1, rows * c, c, c, 0, 0, 0, 0};
    kiln_conv2d_nhwc_f32_packed(in.data(), packed.data(), got.data(), &g);
    kiln_ref_conv2d_nhwc_f32_packed(in.data(), packed.data(), want.data(), &g);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << "rows=" << rows;
    auto b = random(size_t(2 * k * m), 13), a = random(size_t(2 * rows * k), 14);
    auto c0 = random(size_t(2 * rows * m), 15);
    std::vector<float> got2 = c0, want2 = c0;
    kiln_batch_matmul_f32(a.data(), b.data(), got2.data(), 2, rows, m, k);
    kiln_ref_batch_matmul_f32(a.data(), b.data(), want2.data(), 2, rows, m, k);
    for (size_t i = 0; i < got2.size(); ++i) ASSERT_NEAR(got2[i], want2[i], 1e-4f) << "rows=" << rows;
  }
  kiln_threadpool_swap_current(previous);
  kiln_threadpool_destroy(pool);
}

// The fused entry point: out = clamp(bias + conv) without reading the old output.
TEST(FusedConvKernelTest, BiasAndClampMatchReference) {
  for (int64_t m : {5, 32, 70}) {
    int64_t h = 6, c = 20, k = 9 * c, oh = 4, panels = (m + KILN_PANEL - 1) / KILN_PANEL;
    auto in = random(size_t(h * h * c), 16), filter = random(size_t(m * k), 17), bias = random(size_t(m), 18);
    std::vector<float> packed(size_t(panels * KILN_PANEL * k));
    kiln_pack_panels_f32(filter.data(), packed.data(), m, k);
    kiln_conv_geometry_t g = {1, c, m, 3, 3, oh, oh, 1, 1, 1, 1, h * h * c, h * c, c, 0, 0, 0, 0};
    std::vector<float> want(size_t(oh * oh * m));
    for (size_t i = 0; i < want.size(); ++i) want[i] = bias[i % size_t(m)];
    kiln_ref_conv2d_nhwc_f32_packed(in.data(), packed.data(), want.data(), &g);
    for (float &v : want) v = std::min(std::max(v, 0.f), 0.5f);
    std::vector<float> got(want.size(), 1e30f); // garbage: the fused kernel must not read it
    kiln_conv2d_nhwc_f32_packed_fused(in.data(), packed.data(), got.data(), &g, bias.data(), 1, 0.f, 0.5f);
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4f) << "m=" << m << " element " << i;
  }
}

TEST(PackPanelsTest, ZeroFillsPastTheLastRow) {
  std::vector<float> filter = {1, 2, 3, 4, 5, 6}; // m = 3 rows of k = 2
  std::vector<float> packed(KILN_PANEL * 2, -1.f);
  kiln_pack_panels_f32(filter.data(), packed.data(), 3, 2);
  EXPECT_EQ(packed[0], 1.f);            // row 0, k 0
  EXPECT_EQ(packed[1], 3.f);            // row 1, k 0
  EXPECT_EQ(packed[KILN_PANEL], 2.f);   // row 0, k 1
  EXPECT_EQ(packed[3], 0.f);            // past the last row
}

} // namespace

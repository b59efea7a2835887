// N:M sparse kernel tests: the fp32 kernel against its reference loops and both against
// a dense convolution of the decoded weights, on shapes named for the edge they probe.
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

struct NMCase {
  const char *name;
  int64_t n, h, w, c, m, kh, kw, sh, sw;
  int32_t keep, group; // N:M
  int64_t pad = 0;     // implicit zero padding on each side
  int32_t flags = 0;
  bool bias = false;
};

void PrintTo(const NMCase &c, std::ostream *os) { *os << c.name; }

struct Sparse {
  std::vector<float> values, dense; // dense[m][k]
  std::vector<uint8_t> indices;
};

/// Random N:M weights: per group, `keep` distinct positions (the short last group keeps fewer).
Sparse randomSparse(int64_t rows, int64_t k, int32_t n, int32_t m, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  int64_t groups = (k + m - 1) / m, per = groups * n;
  Sparse s{std::vector<float>(size_t(rows * per)), std::vector<float>(size_t(rows * k), 0.f),
           std::vector<uint8_t>(size_t(rows * per))};
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      // The last group may reach past K: positions there carry zeros.
      std::vector<int> pos(static_cast<size_t>(m));
      for (int i = 0; i < m; ++i) pos[size_t(i)] = i;
      std::shuffle(pos.begin(), pos.end(), gen);
      std::vector<int> chosen(pos.begin(), pos.begin() + n);
      std::sort(chosen.begin(), chosen.end());
      for (int j = 0; j < n; ++j) {
        size_t e = size_t(o * per + g * n + j);
        int64_t at = g * m + chosen[size_t(j)];
        s.indices[e] = uint8_t(chosen[size_t(j)]);
        s.values[e] = at < k ? d(gen) : 0.f;
        if (at < k) s.dense[size_t(o * k + at)] = s.values[e];
      }
    }
  return s;
}

class NMKernel : public ::testing::TestWithParam<NMCase> {};

TEST_P(NMKernel, MatchesReferenceAndDense) {
  const NMCase p = GetParam();
  int64_t ih = p.h + 2 * p.pad, iw = p.w + 2 * p.pad;
  int64_t oh = (ih - p.kh) / p.sh + 1, ow = (iw - p.kw) / p.sw + 1, k = p.kh * p.kw * p.c;
  kiln_conv_geometry_t g{p.n, p.c, p.m, p.kh, p.kw, oh, ow, p.sh, p.sw, 1, 1, p.h * p.w * p.c, p.w * p.c, p.c,
                         p.pad, p.pad, p.pad ? p.h : 0, p.pad ? p.w : 0};
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> in(size_t(p.n * p.h * p.w * p.c)), bias(size_t(p.m)), init(size_t(p.n * oh * ow * p.m));
  for (auto *v : {&in, &bias, &init})
    for (float &x : *v) x = d(gen);
  Sparse s = randomSparse(p.m, k, p.keep, p.group, 11);

  // Decoding gives the dense weights the values and indices stand for.
  std::vector<float> decoded(size_t(p.m * k));
  kiln_nm_decode_f32(s.values.data(), s.indices.data(), decoded.data(), p.m, k, p.keep, p.group, 0);
  ASSERT_EQ(decoded, s.dense);

  // Dense expectation: the same convolution by plain loops over the decoded weights.
  std::vector<float> want = init;
  for (int64_t b = 0; b < p.n; ++b)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t x = 0; x < ow; ++x)
        for (int64_t o = 0; o < p.m; ++o) {
          double acc = 0;
          for (int64_t ty = 0; ty < p.kh; ++ty)
            for (int64_t tx = 0; tx < p.kw; ++tx) {
              int64_t iy = y * p.sh + ty - p.pad, ix = x * p.sw + tx - p.pad;
              if (iy < 0 || iy >= p.h || ix < 0 || ix >= p.w) continue;
              for (int64_t c = 0; c < p.c; ++c)
                acc += double(in[size_t(((b * p.h + iy) * p.w + ix) * p.c + c)]) *
                       s.dense[size_t(o * k + (ty * p.kw + tx) * p.c + c)];
            }
          float &dst = want[size_t(((b * oh + y) * ow + x) * p.m + o)];
          float v = float(acc) + ((p.flags & KILN_S8_ACCUMULATE) ? dst : p.bias ? bias[size_t(o)] : 0.f);
          if (p.flags & KILN_S8_CLAMP) v = std::clamp(v, -0.25f, 0.5f);
          dst = v;
        }
  const float *biasPtr = p.bias ? bias.data() : nullptr;
  std::vector<float> ref = init, got = init;
  kiln_ref_conv2d_nhwc_f32_nm(in.data(), s.values.data(), s.indices.data(), ref.data(), &g, p.keep, p.group, biasPtr,
                              p.flags, -0.25f, 0.5f);
  std::vector<float> scratch(size_t(kiln_conv2d_nm_scratch_bytes(&g, p.group) / 4 + 16));
  int64_t per = (k + p.group - 1) / p.group * p.keep, panels = (p.m + KILN_PANEL_NM - 1) / KILN_PANEL_NM;
  std::vector<float> packed(size_t(panels * per * KILN_PANEL_NM));
  std::vector<uint8_t> positions(packed.size());
  kiln_pack_nm_f32(s.values.data(), s.indices.data(), p.m, k, p.keep, p.group, packed.data(), positions.data());
  for (int threads : {1, 3}) {
    kiln_threadpool_t *pool = nullptr;
    ASSERT_EQ(kiln_threadpool_create(size_t(threads), &pool), KILN_OK);
    kiln_threadpool_t *old = kiln_threadpool_swap_current(pool);
    got = init;
    kiln_conv2d_nhwc_f32_nm(in.data(), packed.data(), positions.data(), got.data(), &g, p.keep, p.group,
                            scratch.data(), biasPtr, p.flags, -0.25f, 0.5f);
    kiln_threadpool_swap_current(old);
    kiln_threadpool_destroy(pool);
    for (size_t i = 0; i < want.size(); ++i) {
      float tol = 1e-4f * (1.f + std::fabs(want[i]));
      ASSERT_NEAR(ref[i], want[i], tol) << "reference, element " << i;
      ASSERT_NEAR(got[i], want[i], tol) << "kernel with " << threads << " threads, element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, NMKernel,
    ::testing::Values(NMCase{"conv3x3_2of4", 1, 9, 9, 16, 32, 3, 3, 1, 1, 2, 4},
                      NMCase{"odd_channels_short_group", 1, 7, 6, 5, 13, 3, 3, 1, 1, 2, 4},
                      NMCase{"pointwise_1of4_bias", 2, 5, 5, 24, 9, 1, 1, 1, 1, 1, 4, 0, 0, true},
                      NMCase{"stride2_padded_clamp", 1, 10, 11, 8, 16, 3, 3, 2, 2, 2, 4, 1, KILN_S8_CLAMP, true},
                      NMCase{"accumulate_4of8", 1, 6, 6, 16, 17, 3, 3, 1, 1, 4, 8, 0, KILN_S8_ACCUMULATE},
                      NMCase{"matmul_2of8_many_rows", 1, 70, 1, 40, 24, 1, 1, 1, 1, 2, 8},
                      NMCase{"m16_one_pixel", 1, 1, 1, 33, 8, 1, 1, 1, 1, 3, 16},
                      NMCase{"rows_last_decode_k1", 1, 3, 3, 1, 4, 1, 1, 1, 1, 1, 2}),
    [](const ::testing::TestParamInfo<NMCase> &i) { return std::string(i.param.name); });

TEST(NMDecode, RowsLastIsTheTranspose) {
  Sparse s = randomSparse(5, 12, 2, 4, 3);
  std::vector<float> rowsFirst(60), rowsLast(60);
  kiln_nm_decode_f32(s.values.data(), s.indices.data(), rowsFirst.data(), 5, 12, 2, 4, 0);
  kiln_nm_decode_f32(s.values.data(), s.indices.data(), rowsLast.data(), 5, 12, 2, 4, 1);
  for (int o = 0; o < 5; ++o)
    for (int k = 0; k < 12; ++k) EXPECT_EQ(rowsFirst[size_t(o * 12 + k)], rowsLast[size_t(k * 5 + o)]);
}

} // namespace

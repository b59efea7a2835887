// The compiler's SmartDeal encoding for the accelerator (passes/accel/SmartDealEncode)
// against the reference model's REBUILD: for random SmartDeal weights (both layouts,
// 1..4 exponent bits, sparse and full masks), the int8 weights the compiler computes
// (and folds into the bias and scales) must be exactly what the instruction rebuilds.
// The rebuilt weights are read back by GEMMs with an identity activation block.
#include "passes/accel/SmartDealEncode.h"

#include "kiln/accel.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

namespace {

kiln_accel_config_t config() {
  kiln_accel_config_t c{};
  c.rows = 16, c.cols = 16, c.nm_m = 4, c.bus_bytes = 16;
  c.wbuf_bytes = 65536, c.ibuf_bytes = 8192, c.abuf_bytes = 32768, c.pbuf_bytes = 3072, c.config_id = 1;
  return c;
}

struct Program {
  std::vector<uint64_t> w;
  void set(uint32_t r, uint64_t v) { w.push_back(kiln_accel_insn(KILN_ACCEL_OP_SET, r, uint32_t(v))); }
  void op(uint32_t o, uint32_t a = 0) { w.push_back(kiln_accel_insn(o, a, 0)); }
};

void check(int64_t m, int64_t kh, int64_t c, int layout, int bits, int64_t group, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  kiln_smartdeal_t w{};
  w.m = m, w.kh = kh, w.kw = layout == KILN_SMARTDEAL_FLAT ? 1 : 3, w.c = c, w.layout = layout;
  w.exponent_bits = bits, w.exponent_offset = -2, w.group = group;
  const int64_t P = kiln_smartdeal_positions(&w), G = kiln_smartdeal_groups(&w);
  std::vector<uint64_t> mask(size_t((m * P + 63) / 64), 0);
  std::vector<uint32_t> rowStart(size_t(m + 1), 0);
  std::uniform_real_distribution<double> u(0, 1);
  for (int64_t o = 0; o < m; ++o) {
    rowStart[size_t(o + 1)] = rowStart[size_t(o)];
    for (int64_t p = 0; p < P; ++p)
      if (u(rng) < density) {
        mask[size_t((o * P + p) / 64)] |= uint64_t(1) << ((o * P + p) % 64);
        ++rowStart[size_t(o + 1)];
      }
  }
  std::vector<uint8_t> codes(size_t((rowStart[size_t(m)] * 3 * (bits + 1) + 7) / 8 + 8), 0);
  for (size_t i = 0; i + 8 < codes.size(); ++i) codes[i] = uint8_t(rng());
  std::vector<uint16_t> bases(size_t(G * 9));
  for (auto &b : bases) {
    float f = float(u(rng) * 2 - 1);
    uint32_t x;
    std::memcpy(&x, &f, 4);
    b = uint16_t(x >> 16);
  }
  w.mask = mask.data(), w.row_start = rowStart.data(), w.codes = codes.data(), w.bases = bases.data();
  std::string why;
  auto t = kiln::accel::encodeSmartDeal(w, 16, why);
  ASSERT_TRUE(t) << why;

  const kiln_accel_config_t cfg = config();
  kiln_accel_device_t dev;
  ASSERT_EQ(kiln_accel_ref_open(&cfg, 1 << 20, &dev), KILN_OK);
  const int64_t K = 3 * P, tiles = (m + 15) / 16;
  // Identity activations: ABUF[k][c] = (k == c) for k < 16.
  std::vector<uint8_t> eye(256, 0);
  for (int i = 0; i < 16; ++i) eye[size_t(i * 16 + i)] = 1;
  const uint64_t kProg = 0, kEye = 0x10000, kStream = 0x20000, kBases = 0x30000, kOut = 0x40000;
  ASSERT_EQ(dev.mem_write(dev.ctx, kEye, eye.data(), eye.size()), KILN_OK);
  std::vector<int8_t> bytesBases(t->bases);
  ASSERT_EQ(dev.mem_write(dev.ctx, kBases, bytesBases.data(), bytesBases.size()), KILN_OK);
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const auto &st = t->streams[size_t(tile)];
    ASSERT_EQ(dev.mem_write(dev.ctx, kStream, st.data(), st.size()), KILN_OK);
    const uint64_t sdb = (st.size() + 15) / 16 * 16;
    Program pr;
    pr.set(KILN_ACCEL_R_SRC, kStream), pr.set(KILN_ACCEL_R_LEN, st.size()), pr.op(KILN_ACCEL_OP_LOAD, KILN_ACCEL_BUF_I);
    pr.set(KILN_ACCEL_R_SRC, kBases), pr.set(KILN_ACCEL_R_LEN, bytesBases.size()), pr.set(KILN_ACCEL_R_BOFF, sdb);
    pr.op(KILN_ACCEL_OP_LOAD, KILN_ACCEL_BUF_I);
    pr.set(KILN_ACCEL_R_SRC, kEye), pr.set(KILN_ACCEL_R_LEN, 256), pr.set(KILN_ACCEL_R_BOFF, 0);
    pr.op(KILN_ACCEL_OP_LOAD, KILN_ACCEL_BUF_A);
    pr.set(KILN_ACCEL_R_K, K), pr.set(KILN_ACCEL_R_LEN, st.size()), pr.set(KILN_ACCEL_R_C, c);
    pr.set(KILN_ACCEL_R_SD_CFG, uint32_t(t->flat) | uint32_t(bits) << 1 | uint32_t(group) << 16);
    pr.set(KILN_ACCEL_R_SDB, sdb);
    pr.op(KILN_ACCEL_OP_REBUILD);
    // acc[r][c] = W[k0 + c][r]; RAW requant (PBUF zero: bias 0) and store as int32.
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      pr.set(KILN_ACCEL_R_K, 16), pr.set(KILN_ACCEL_R_WOFF, k0 * 16), pr.op(KILN_ACCEL_OP_GEMM);
      pr.op(KILN_ACCEL_OP_REQUANT, KILN_ACCEL_RAW32);
      pr.set(KILN_ACCEL_R_DST, kOut + uint64_t(k0) * 64), pr.set(KILN_ACCEL_R_DSTRIDE, 64);
      pr.set(KILN_ACCEL_R_NPIX, 16), pr.set(KILN_ACCEL_R_NROWS, 16), pr.op(KILN_ACCEL_OP_STORE, KILN_ACCEL_RAW32);
    }
    pr.op(KILN_ACCEL_OP_END);
    ASSERT_EQ(dev.mem_write(dev.ctx, kProg, pr.w.data(), 8 * pr.w.size()), KILN_OK);
    char err[128] = "";
    ASSERT_EQ(kiln_accel_run_program(&dev, kProg, 0, nullptr, err, sizeof err), KILN_OK) << err;
    std::vector<int32_t> got(size_t((K + 15) / 16 * 16 * 16));
    ASSERT_EQ(dev.mem_read(dev.ctx, kOut, got.data(), 4 * got.size()), KILN_OK);
    for (int64_t r = 0; r < 16 && tile * 16 + r < m; ++r)
      for (int64_t k = 0; k < K; ++k)
        ASSERT_EQ(got[size_t(k * 16 + r)], t->w8[size_t((tile * 16 + r) * K + k)])
            << "row " << tile * 16 + r << ", k " << k << ", seed " << seed;
  }
  dev.close(dev.ctx);
}

TEST(AccelSmartDeal, Taps3) {
  for (int bits = 1; bits <= 4; ++bits) check(32, 3, 16, KILN_SMARTDEAL_TAPS3, bits, 4, 0.6, 10 + bits);
  check(20, 3, 5, KILN_SMARTDEAL_TAPS3, 3, 2, 1.0, 7); // every chunk kept, a partial tile
  check(16, 3, 8, KILN_SMARTDEAL_TAPS3, 3, 8, 0.0, 8); // nothing kept
}

TEST(AccelSmartDeal, Flat) {
  for (int bits = 1; bits <= 4; ++bits) check(24, 1, 100, KILN_SMARTDEAL_FLAT, bits, 5, 0.35, 20 + bits);
}

TEST(AccelSmartDeal, TooManyExponentBits) {
  kiln_smartdeal_t w{};
  w.m = 1, w.kh = 1, w.kw = 1, w.c = 3, w.layout = KILN_SMARTDEAL_FLAT, w.exponent_bits = 5, w.group = 1;
  std::string why;
  EXPECT_FALSE(kiln::accel::encodeSmartDeal(w, 16, why));
  EXPECT_NE(why.find("exponent bits"), std::string::npos);
}

} // namespace

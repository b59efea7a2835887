//===- SmartDealEncode.cpp - SmartDeal weights for the accelerator's REBUILD ---===//
#include "passes/accel/SmartDealEncode.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace kiln::accel {


std::optional<SmartDealTiles> encodeSmartDeal(const kiln_smartdeal_t &w, int64_t rowsPerTile, std::string &why) {
  const int64_t m = w.m, P = kiln_smartdeal_positions(&w), groups = kiln_smartdeal_groups(&w), b = w.exponent_bits;
  if (b > 4) {
    why = "exponent bits above 4 (the REBUILD unit takes 1..4)";
    return std::nullopt;
  }
  const uint64_t *mask = w.mask;
  const uint32_t *rowStart = w.row_start;
  const uint8_t *codes = w.codes;
  std::vector<uint16_t> bf(w.bases, w.bases + groups * 9);
  SmartDealTiles t;
  t.positions = P, t.bits = b, t.group = w.group, t.flat = w.layout == KILN_SMARTDEAL_FLAT;
  // One scale for every basis, so that each row's weights share a scale.
  std::vector<float> B(bf.size());
  float amax = 0;
  for (size_t i = 0; i < bf.size(); ++i) {
    uint32_t u = uint32_t(bf[i]) << 16;
    std::memcpy(&B[i], &u, 4);
    amax = std::max(amax, std::fabs(B[i]));
  }
  const float sB = amax > 0 ? amax / 127.f : 1.f;
  t.bases.resize(B.size());
  for (size_t i = 0; i < B.size(); ++i) t.bases[i] = int8_t(std::clamp(std::nearbyint(B[i] / sB), -127.f, 127.f));
  const int64_t emax = (int64_t(1) << b) - 1, C = w.c;
  auto codeBit = [&](int64_t bit) { return (codes[size_t(bit / 8)] >> (bit % 8)) & 1; };
  // The hardware's W (before the row shift) for every row and weight.
  std::vector<int32_t> wide(size_t(m * 3 * P), 0);
  std::vector<std::array<uint32_t, 3>> chunkCodes(size_t(m * P));
  std::vector<bool> kept(size_t(m * P), false);
  for (int64_t o = 0; o < m; ++o) {
    int64_t q = rowStart[size_t(o)];
    for (int64_t p = 0; p < P; ++p) {
      int64_t bitIndex = o * P + p;
      if (!((mask[size_t(bitIndex / 64)] >> (bitIndex % 64)) & 1)) continue;
      kept[size_t(o * P + p)] = true;
      const int64_t g = t.flat ? p / t.group : (p % C) / t.group;
      for (int i = 0; i < 3; ++i) {
        uint32_t code = 0;
        for (int64_t k = 0; k <= b; ++k) code |= uint32_t(codeBit((q * 3 + i) * (b + 1) + k)) << k;
        chunkCodes[size_t(o * P + p)][size_t(i)] = code;
        const uint32_t e = code & ((1u << b) - 1), neg = (code >> b) & 1;
        if (!e) continue;
        for (int j = 0; j < 3; ++j) {
          int32_t term = int32_t(t.bases[size_t(g * 9 + i * 3 + j)]) * (1 << (emax - int64_t(e)));
          // The weight's place in the reduction (the layer's (kh, kw, c) order).
          const int64_t k = t.flat ? 3 * p + j : ((p / C) * 3 + j) * C + p % C;
          wide[size_t(o * 3 * P + k)] += neg ? -term : term;
        }
      }
      ++q;
    }
  }
  // Per row the smallest shift that brings its weights into int8.
  auto shifted = [](int32_t w, int sh) {
    return sh ? int32_t((int64_t(w) + (int64_t(1) << (sh - 1))) >> sh) : w;
  };
  std::vector<int> shift(size_t(m), 0);
  t.w8.assign(size_t(m * 3 * P), 0);
  t.scale.assign(size_t(m), 0.f);
  for (int64_t o = 0; o < m; ++o) {
    int sh = 0;
    for (;; ++sh) {
      bool fits = true;
      for (int64_t k = 0; k < 3 * P && fits; ++k) fits = std::abs(shifted(wide[size_t(o * 3 * P + k)], sh)) <= 127;
      if (fits || sh == 31) break;
    }
    shift[size_t(o)] = sh;
    for (int64_t k = 0; k < 3 * P; ++k)
      t.w8[size_t(o * 3 * P + k)] = int8_t(std::clamp(shifted(wide[size_t(o * 3 * P + k)], sh), -127, 127));
    t.scale[size_t(o)] = float(double(sB) * std::ldexp(1.0, int(w.exponent_offset) + 1 - int(emax) + sh));
  }
  // The streams: shifts, then per position the row mask and the kept rows' codes.
  const int64_t tiles = (m + rowsPerTile - 1) / rowsPerTile, maskBytes = (rowsPerTile + 7) / 8;
  for (int64_t tile = 0; tile < tiles; ++tile) {
    std::vector<int8_t> st(size_t(rowsPerTile), 0);
    for (int64_t r = 0; r < rowsPerTile && tile * rowsPerTile + r < m; ++r) st[size_t(r)] = int8_t(shift[size_t(tile * rowsPerTile + r)]);
    for (int64_t p = 0; p < P; ++p) {
      size_t at = st.size();
      st.resize(at + size_t(maskBytes), 0);
      int64_t bit = 0;
      std::vector<uint8_t> bitsOut;
      for (int64_t r = 0; r < rowsPerTile; ++r) {
        int64_t o = tile * rowsPerTile + r;
        if (o >= m || !kept[size_t(o * P + p)]) continue;
        st[at + size_t(r / 8)] = int8_t(uint8_t(st[at + size_t(r / 8)]) | uint8_t(1 << (r % 8)));
        for (int i = 0; i < 3; ++i)
          for (int64_t k = 0; k <= b; ++k, ++bit) {
            if (size_t(bit / 8) >= bitsOut.size()) bitsOut.push_back(0);
            if ((chunkCodes[size_t(o * P + p)][size_t(i)] >> k) & 1) bitsOut[size_t(bit / 8)] |= uint8_t(1 << (bit % 8));
          }
      }
      for (uint8_t v : bitsOut) st.push_back(int8_t(v));
    }
    t.streams.push_back(std::move(st));
  }
  return t;
}


} // namespace kiln::accel

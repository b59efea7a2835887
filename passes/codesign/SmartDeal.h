//===- SmartDeal.h - SmartDeal weight decomposition (W ~ C x B) ---------*- C++ -*-===//
//
// The numerics of SmartDeal / SmartExchange for one layer, without MLIR: a layer's
// rows[m][K] (K = KH*KW*C in (kh, kw, c) order, as PackedLayer holds them) are cut into
// 3-weight chunks, each approximated as coeffs(1x3) x B (3x3, one basis per group of
// chunks) with the coefficients 0 or signed powers of two and only a fraction of the
// chunks kept. The result is the compressed format the runtime's
// kiln_conv2d_nhwc_smartdeal_f32 reads (runtime/include/kiln/smartdeal.h documents it
// bit by bit; docs/SMARTDEAL.md the algorithm and figures).
//
//===----------------------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_SMARTDEAL_H
#define KILN_PASSES_CODESIGN_SMARTDEAL_H

#include <cstdint>
#include <vector>

#include "kiln/smartdeal.h"

namespace kiln::codesign {

struct SmartDealOptions {
  /// b: each coefficient is 0 or +-2^e with e one of 2^b - 1 consecutive exponents
  /// below the layer's maximum (1..7; 3 gives a nibble per coefficient).
  int exponentBits = 3;
  /// Fraction of the chunks (coefficient row-vectors) kept; the others are zero.
  double rowDensity = 0.5;
  /// Alternating-projection rounds (C step, then B step). 0 keeps the initial basis.
  int iterations = 10;
  /// Chunks per basis: input channels per basis for 3-wide kernels, consecutive chunk
  /// positions per basis otherwise. 0 picks the smallest group whose bases cost at most
  /// ~10% of the coefficients.
  int64_t group = 0;
  /// Cut every row into consecutive 3-weight chunks even when taps_w == 3.
  bool forceFlat = false;
  /// [groups][3][3] (row i = basis vector i): start from these bases instead of the
  /// principal axes of each group's chunks (a warm start, e.g. after fine-tuning).
  const std::vector<float> *initialBases = nullptr;
};

/// The compressed layer: owns the arrays a kiln_smartdeal_t points to.
struct SmartDealFormat {
  kiln_smartdeal_t header{}; ///< scalar fields; pointers are filled by view()
  std::vector<uint64_t> mask;
  std::vector<uint32_t> rowStart;
  std::vector<uint8_t> codes; ///< bit stream + 8 bytes of padding
  std::vector<uint16_t> bases;

  kiln_smartdeal_t view() const;
  int64_t bytes() const;
};

struct SmartDealResult {
  SmartDealFormat format;
  std::vector<float> rebuilt; ///< rows[m][K] the format decodes to (bit-identical to the runtime)
  double weightError = 0;     ///< ||dW||_F / ||W||_F
  /// sqrt(tr(dW H dW^T) / tr(W H W^T)) with the Gram H; equals weightError without one.
  double outputError = 0;
  int64_t bytes = 0;     ///< the format, all of it (kiln_smartdeal_bytes)
  int64_t int8Bytes = 0; ///< dense int8: m*K weights + an f32 scale per row
  /// The objective (outputError) after each round; [0] is before the first B step.
  std::vector<double> history;
};

/// Decomposes rows[m][taps_h*taps_w*c]. `gram` (K x K, row-major, X^T X of the layer's
/// inputs in the same (kh, kw, c) order) makes the sparsification, the rounding and the
/// basis fit minimise the output error instead of the weight error. Deterministic.
SmartDealResult decomposeSmartDeal(const std::vector<float> &rows, int64_t m, int64_t tapsH, int64_t tapsW,
                                   int64_t c, const std::vector<double> *gram, const SmartDealOptions &options);

/// The scalar fields of a format (pointers null): what kiln_smartdeal_positions and
/// kiln_smartdeal_groups need before any arrays exist. TAPS3 forces kw = 3.
kiln_smartdeal_t smartDealHeader(int64_t m, int64_t tapsH, int64_t tapsW, int64_t c, int32_t layout,
                                 int32_t exponentBits, int32_t exponentOffset, int64_t group);

/// Builds the format from explicit parts (tests, and hand-made layers): codes[m][P][3]
/// as signed levels (0: zero; +-t: +-2^(exponentOffset - (t - 1)), 1 <= t < 2^b), a chunk
/// is kept when any of its levels is non-zero; bases[groups][3][3] are rounded to bf16.
SmartDealFormat packSmartDeal(int64_t m, int64_t tapsH, int64_t tapsW, int64_t c, int32_t layout,
                              int32_t exponentBits, int32_t exponentOffset, int64_t group,
                              const std::vector<int8_t> &levels, const std::vector<float> &bases);

} // namespace kiln::codesign

#endif // KILN_PASSES_CODESIGN_SMARTDEAL_H

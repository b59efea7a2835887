//===- SmartDealEncode.h - SmartDeal weights for the accelerator's REBUILD -*- C++ -*-===//
//
// Kiln's SmartDeal format (kiln/smartdeal.h) re-encoded for the accelerator's REBUILD
// instruction (docs/ACCELERATOR.md). No MLIR: the unit tests build it from source.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_ACCEL_SMARTDEALENCODE_H
#define KILN_PASSES_ACCEL_SMARTDEALENCODE_H

#include "kiln/smartdeal.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kiln::accel {

/// A SmartDeal layer re-encoded for the accelerator's REBUILD (docs/ACCELERATOR.md):
/// bases as int8 at one scale per layer, per tile of `rows` output channels a stream of
/// per-row shifts and one record (row mask, kept rows' codes) per chunk position, and
/// the int8 weights the hardware will rebuild from it (computed here exactly as the
/// instruction does, for the bias and the scales).
struct SmartDealTiles {
  std::vector<int8_t> bases;             ///< [groups][3][3]
  std::vector<std::vector<int8_t>> streams; ///< per tile
  std::vector<int8_t> w8;                ///< [m][3P] rebuilt weights, in reduction order
  std::vector<float> scale;              ///< per row: real weight = scale x w8
  int64_t positions = 0, bits = 0, group = 0;
  bool flat = false;
};

/// Encodes `w` for tiles of `rowsPerTile` output channels; null with `why` when the
/// format is outside what REBUILD takes (exponent bits above 4).
std::optional<SmartDealTiles> encodeSmartDeal(const kiln_smartdeal_t &w, int64_t rowsPerTile, std::string &why);

} // namespace kiln::accel

#endif

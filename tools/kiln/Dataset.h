//===- Dataset.h - Labelled data for kiln eval (.npy and IDX files) ---------===//
#ifndef KILN_TOOLS_DATASET_H
#define KILN_TOOLS_DATASET_H

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::tools {

/// Samples as f32, [N, ...]; or labels as int64, [N].
struct Array {
  std::vector<int64_t> dims;
  std::vector<float> f;
  std::vector<int64_t> i;
};

/// Reads samples: a float32 .npy, or an IDX file of unsigned bytes (optionally
/// gzipped, as Fashion-MNIST ships), scaled to [0, 1].
bool readSamples(const std::string &path, Array &out, std::string &err);
/// Reads labels: an integer .npy or an IDX label file (optionally gzipped).
bool readLabels(const std::string &path, Array &out, std::string &err);

} // namespace kiln::tools

#endif

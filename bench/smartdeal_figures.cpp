// SmartDeal on real layers: weight and output error against size, next to per-row int8
// and int4. Reads what `bench/smartdeal_layers.py extract DIR` writes; writes the rebuilt
// weights of a few whole-model settings for `smartdeal_layers.py accuracy DIR`.
// Run: build/bin/kiln-smartdeal-figures DIR
#include "SmartDeal.h"

#include "kiln/npy.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

using namespace kiln::codesign;

namespace {

struct Layer {
  const char *name;
  int64_t m, kh, kw, c;
  std::vector<float> rows;
  std::vector<double> gram;
};

bool load(const std::string &dir, Layer &l) {
  kiln_npy_t r{}, g{};
  std::string base = dir + "/" + l.name;
  if (kiln_npy_read((base + ".rows.npy").c_str(), &r) != KILN_OK ||
      kiln_npy_read((base + ".gram.npy").c_str(), &g) != KILN_OK) {
    kiln_npy_free(&r);
    kiln_npy_free(&g);
    return false;
  }
  const int64_t k = l.kh * l.kw * l.c;
  bool ok = r.num_elements == size_t(l.m * k) && r.elem_size == 4 && g.num_elements == size_t(k * k) && g.elem_size == 8;
  if (ok) {
    l.rows.assign(static_cast<float *>(r.data), static_cast<float *>(r.data) + r.num_elements);
    l.gram.assign(static_cast<double *>(g.data), static_cast<double *>(g.data) + g.num_elements);
  }
  kiln_npy_free(&r);
  kiln_npy_free(&g);
  return ok;
}

// Relative output error sqrt(tr(dW H dW^T) / tr(W H W^T)), or the weight error (gram null).
double relError(const Layer &l, const std::vector<float> &r, const std::vector<double> *gram) {
  const int64_t k = l.kh * l.kw * l.c;
  double num = 0, den = 0;
  std::vector<double> d(static_cast<size_t>(k)), w(static_cast<size_t>(k));
  for (int64_t o = 0; o < l.m; ++o) {
    for (int64_t i = 0; i < k; ++i) {
      w[size_t(i)] = l.rows[size_t(o * k + i)];
      d[size_t(i)] = w[size_t(i)] - r[size_t(o * k + i)];
    }
    for (int64_t i = 0; i < k; ++i) {
      if (!gram) {
        num += d[size_t(i)] * d[size_t(i)];
        den += w[size_t(i)] * w[size_t(i)];
        continue;
      }
      double hd = 0, hw = 0;
      for (int64_t j = 0; j < k; ++j) {
        hd += (*gram)[size_t(i * k + j)] * d[size_t(j)];
        hw += (*gram)[size_t(i * k + j)] * w[size_t(j)];
      }
      num += d[size_t(i)] * hd;
      den += w[size_t(i)] * hw;
    }
  }
  return std::sqrt(num / den);
}

// Symmetric per-row quantisation to `bits` (the dense int8/int4 baselines).
std::vector<float> perRow(const Layer &l, int bits) {
  const int64_t k = l.kh * l.kw * l.c;
  const float qmax = float((1 << (bits - 1)) - 1);
  std::vector<float> r(l.rows.size());
  for (int64_t o = 0; o < l.m; ++o) {
    float mx = 0;
    for (int64_t i = 0; i < k; ++i) mx = std::fmax(mx, std::fabs(l.rows[size_t(o * k + i)]));
    float s = mx > 0 ? mx / qmax : 1;
    for (int64_t i = 0; i < k; ++i) r[size_t(o * k + i)] = std::nearbyint(l.rows[size_t(o * k + i)] / s) * s;
  }
  return r;
}

} // namespace

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR   (DIR from bench/smartdeal_layers.py extract DIR)\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<Layer> layers = {{"conv1", 16, 3, 3, 1, {}, {}}, {"conv2", 32, 3, 3, 16, {}, {}},
                               {"fc1", 64, 1, 1, 1568, {}, {}}, {"fc2", 10, 1, 1, 64, {}, {}}};
  for (Layer &l : layers)
    if (!load(dir, l)) {
      std::fprintf(stderr, "cannot read %s/%s.{rows,gram}.npy\n", dir.c_str(), l.name);
      return 1;
    }

  struct Setting { int bits; double density; bool gram; int64_t group; const char *tag; };
  const std::vector<Setting> grid = {{3, 1.0, true, 0, "b3d100"}, {3, 0.75, true, 0, "b3d75"},
                                     {3, 0.5, true, 0, "b3d50"},  {3, 0.35, true, 0, "b3d35"},
                                     {2, 0.5, true, 0, "b2d50"},  {2, 0.35, true, 0, "b2d35"},
                                     {4, 0.5, true, 0, "b4d50"},  {3, 1.0, false, 0, "b3d100nogram"},
                                     {3, 0.5, false, 0, "b3d50nogram"},
                                     {3, 0.5, true, 1, "b3d50g1"}};
  // Whole-model settings: per layer a grid tag, or "" to keep the layer dense (int8 bytes).
  struct Preset { const char *tag; const char *layer[4]; };
  const std::vector<Preset> presets = {{"all-b3d100", {"b3d100", "b3d100", "b3d100", "b3d100"}},
                                       {"all-b3d75", {"b3d75", "b3d75", "b3d75", "b3d75"}},
                                       {"all-b3d50", {"b3d50", "b3d50", "b3d50", "b3d50"}},
                                       {"all-b3d50nogram", {"b3d50nogram", "b3d50nogram", "b3d50nogram", "b3d50nogram"}},
                                       {"fc1-b3d50", {"", "", "b3d50", ""}},
                                       {"fc1-b3d35", {"", "", "b3d35", ""}},
                                       {"mix-b3", {"", "b3d75", "b3d35", "b3d100"}},
                                       {"mix-b2", {"", "b3d75", "b2d35", "b3d100"}}};
  std::printf("%-6s %-12s %5s %6s %7s %8s %8s %8s %8s %7s %7s\n", "layer", "setting", "bits", "dens", "group",
              "w.err", "out.err", "bytes", "int8", "x int8", "b/w");
  std::vector<std::vector<SmartDealResult>> results(layers.size());
  for (size_t li = 0; li < layers.size(); ++li) {
    const Layer &l = layers[li];
    const int64_t k = l.kh * l.kw * l.c, int8Bytes = l.m * k + 4 * l.m;
    for (int bits : {8, 4}) {
      auto q = perRow(l, bits);
      int64_t bytes = bits == 8 ? int8Bytes : (l.m * k + 1) / 2 + 4 * l.m;
      std::printf("%-6s %-12s %5d %6s %7s %8.4f %8.4f %8lld %8lld %7.2f %7.2f\n", l.name, bits == 8 ? "int8/row" : "int4/row",
                  bits, "-", "-", relError(l, q, nullptr), relError(l, q, &l.gram), (long long)bytes,
                  (long long)int8Bytes, double(int8Bytes) / double(bytes), 8.0 * double(bytes) / double(l.m * k));
    }
    for (const Setting &st : grid) {
      SmartDealOptions opt;
      opt.exponentBits = st.bits;
      opt.rowDensity = st.density;
      opt.iterations = 8;
      opt.group = st.group;
      auto t0 = std::chrono::steady_clock::now();
      SmartDealResult r = decomposeSmartDeal(l.rows, l.m, l.kh, l.kw, l.c, st.gram ? &l.gram : nullptr, opt);
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%-6s %-12s %5d %6.2f %7lld %8.4f %8.4f %8lld %8lld %7.2f %7.2f  (%.2f s)\n", l.name, st.tag,
                  st.bits, st.density, (long long)r.format.header.group, r.weightError, relError(l, r.rebuilt, &l.gram),
                  (long long)r.bytes, (long long)r.int8Bytes, double(r.int8Bytes) / double(r.bytes),
                  8.0 * double(r.bytes) / double(l.m * k), secs);
      results[li].push_back(std::move(r));
    }
  }
  std::printf("\nwhole model (layers left dense count as int8); accuracy: bench/smartdeal_layers.py accuracy DIR\n");
  for (const Preset &pr : presets) {
    int64_t bytes = 0, int8 = 0;
    for (size_t li = 0; li < layers.size(); ++li) {
      const Layer &l = layers[li];
      const int64_t k = l.kh * l.kw * l.c;
      int8 += l.m * k + 4 * l.m;
      size_t si = 0;
      while (si < grid.size() && std::string(grid[si].tag) != pr.layer[li]) ++si;
      if (si == grid.size()) {
        bytes += l.m * k + 4 * l.m;
        continue;
      }
      const SmartDealResult &r = results[li][si];
      bytes += r.bytes;
      int64_t dims[2] = {l.m, k};
      std::string path = dir + "/" + l.name + "." + pr.tag + ".rebuilt.npy";
      if (kiln_npy_write(path.c_str(), KILN_DTYPE_F32, 2, dims, r.rebuilt.data()) != KILN_OK) return 1;
    }
    std::printf("  %-16s %8lld bytes vs int8 %8lld: %.2fx smaller\n", pr.tag, (long long)bytes, (long long)int8,
                double(int8) / double(bytes));
  }
  return 0;
}

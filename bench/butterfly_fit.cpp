// Kiln butterfly fit benchmark: fits the butterfly format to weights read from .npy files
// (K x N float32, y = x W) and prints the fit's errors and time; with no file, a seeded
// random matrix of each size given by --random K N. Optional K x K float64/float32 Gram
// (X^T X) per weight: --gram FILE applies to the weight files that follow it.
// Run: build/bin/kiln-bench-butterfly-fit [--iters N] [--seed S] [--random-init]
//        [--gram G.npy] W.npy... | --random K N
#include "passes/codesign/ButterflyFit.h"

extern "C" {
#include "kiln/npy.h"
}

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

bool readMatrix(const char *path, std::vector<double> &out, int64_t &rows, int64_t &cols) {
  kiln_npy_t npy;
  memset(&npy, 0, sizeof npy);
  if (kiln_npy_read(path, &npy) != KILN_OK || npy.rank != 2) {
    fprintf(stderr, "cannot read a 2-D array from %s\n", path);
    kiln_npy_free(&npy);
    return false;
  }
  rows = npy.dims[0], cols = npy.dims[1];
  out.resize(npy.num_elements);
  for (size_t i = 0; i < npy.num_elements; ++i)
    out[i] = strcmp(npy.descr, "<f8") == 0 ? static_cast<const double *>(npy.data)[i]
                                            : double(static_cast<const float *>(npy.data)[i]);
  kiln_npy_free(&npy);
  return true;
}

void fitAndPrint(const std::string &name, const std::vector<float> &W, int64_t K, int64_t N,
                 const std::vector<double> *gram, const kiln::ButterflyFitOptions &opt) {
  auto t0 = std::chrono::steady_clock::now();
  kiln::ButterflyFitResult r = kiln::fitButterfly(W, K, N, gram, opt);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  printf("%-28s %5lld x %-5lld n=%-5lld params %6zu/%-7lld  init %.4f  weight err %.4f  output err %.4f  "
         "%4d iters %8.1f ms\n",
         name.c_str(), (long long)K, (long long)N, (long long)r.n, r.factors.size(), (long long)(K * N),
         r.initialOutputError, r.weightError, r.outputError, r.iterations, ms);
}

} // namespace

int main(int argc, char **argv) {
  kiln::ButterflyFitOptions opt;
  std::vector<double> gram;
  bool haveGram = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--iters" && i + 1 < argc) {
      opt.maxIterations = atoi(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      opt.seed = strtoull(argv[++i], nullptr, 10);
    } else if (a == "--random-init") {
      opt.rank1Init = false;
    } else if (a == "--noise" && i + 1 < argc) {
      opt.initNoise = atof(argv[++i]);
    } else if (a == "--gram" && i + 1 < argc) {
      int64_t r, c;
      if (!readMatrix(argv[++i], gram, r, c) || r != c) return 1;
      haveGram = true;
    } else if (a == "--random" && i + 2 < argc) {
      int64_t K = atoll(argv[i + 1]), N = atoll(argv[i + 2]);
      i += 2;
      std::mt19937 gen(7);
      std::normal_distribution<float> d(0.f, 1.f);
      std::vector<float> W(size_t(K * N));
      for (float &w : W) w = d(gen);
      fitAndPrint("random", W, K, N, nullptr, opt);
    } else {
      std::vector<double> Wd;
      int64_t K, N;
      if (!readMatrix(argv[i], Wd, K, N)) return 1;
      if (haveGram && int64_t(gram.size()) != K * K) {
        fprintf(stderr, "%s: the Gram is not %lld x %lld\n", argv[i], (long long)K, (long long)K);
        return 1;
      }
      std::vector<float> W(Wd.begin(), Wd.end());
      std::string name = a.substr(a.find_last_of('/') + 1);
      fitAndPrint(name, W, K, N, haveGram ? &gram : nullptr, opt);
    }
  }
  return 0;
}

//===- ButterflyFit.cpp - Fit butterfly factors to a dense weight -----------===//
//
// With H = C C^T (Cholesky, after a small ridge), the output error is ||C^T (W - B)||_F,
// i.e. the error of a butterfly layer on the K "inputs" given by the rows of C^T. The
// fit therefore trains a butterfly layer on those K rows (targets C^T W) with L-BFGS,
// backpropagating through the stages; every stage costs K n per row batch, never the
// K^2 N of forming H (W - B).
//
//===----------------------------------------------------------------------===//
#include "passes/codesign/ButterflyFit.h"
#include "Numerics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <deque>
#include <random>

namespace kiln {
namespace {

int64_t log2Ceil(int64_t n) {
  int64_t l = 0;
  while ((int64_t(1) << l) < n) ++l;
  return l;
}

double dot(const std::vector<double> &a, const std::vector<double> &b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// dst = src . F_s for `rows` rows of n values; a, b the stage's coefficients.
// With `unitRows`, row r is known to be zero outside the aligned block of d values that
// holds r (it started as e_r), so only that row's block of 2 d values is computed; the
// rest of dst must already be zero.
template <typename Coef>
void stageForward(const double *src, double *dst, int64_t rows, int64_t n, int64_t d, const Coef *a,
                  const Coef *b, bool unitRows) {
  for (int64_t r = 0; r < rows; ++r, src += n, dst += n)
    for (int64_t j0 = unitRows ? r & ~(2 * d - 1) : 0, j1 = unitRows ? j0 + 2 * d : n; j0 < j1; j0 += 2 * d)
      for (int64_t lo = j0; lo < j0 + d; ++lo) {
        int64_t hi = lo + d;
        double x0 = src[lo], x1 = src[hi];
        dst[lo] = double(a[lo]) * x0 + double(b[lo]) * x1;
        dst[hi] = double(a[hi]) * x1 + double(b[hi]) * x0;
      }
}

// A butterfly layer trained on fixed input rows P against targets T (first N outputs).
class Problem {
public:
  // unitRows: P is [I 0] (no Gram), which makes the early stages sparse (stageForward).
  Problem(int64_t rows, int64_t n, int64_t N, std::vector<double> P, std::vector<double> T, bool unitRows)
      : rows_(rows), n_(n), L_(log2Ceil(n)), N_(N), unitRows_(unitRows), T_(std::move(T)),
        X_(size_t((L_ + 1) * rows * n)), G_(size_t(rows * n)), G2_(size_t(rows * n)) {
    std::copy(P.begin(), P.end(), X_.begin());
    double t2 = 0;
    for (double v : T_) t2 += v * v;
    scale_ = t2 > 0 ? 1.0 / t2 : 1.0;
  }

  const std::vector<double> &targets() const { return T_; }

  // Loss (relative output error squared) at theta; its gradient into grad when non-null.
  double eval(const std::vector<double> &theta, std::vector<double> *grad) {
    const int64_t n = n_, rows = rows_;
    for (int64_t s = 0; s < L_; ++s) {
      const double *a = theta.data() + 2 * n * s;
      stageForward(&X_[size_t(s * rows * n)], &X_[size_t((s + 1) * rows * n)], rows, n, int64_t(1) << s, a, a + n,
                   unitRows_);
    }
    const double *out = &X_[size_t(L_ * rows * n)];
    double loss = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) {
        double e = j < N_ ? out[r * n + j] - T_[size_t(r * N_ + j)] : 0.0;
        loss += e * e;
        G_[size_t(r * n + j)] = 2 * scale_ * e;
      }
    if (!grad) return loss * scale_;
    std::fill(grad->begin(), grad->end(), 0.0);
    for (int64_t s = L_ - 1; s >= 0; --s) {
      const int64_t d = int64_t(1) << s;
      const double *a = theta.data() + 2 * n * s, *b = a + n;
      double *ga = grad->data() + 2 * n * s, *gb = ga + n;
      const double *x = &X_[size_t(s * rows * n)];
      for (int64_t r = 0; r < rows; ++r) {
        const double *xr = x + r * n, *g = &G_[size_t(r * n)];
        double *gin = &G2_[size_t(r * n)];
        // With unit rows, x is zero outside r's block of d values and the stage below
        // reads gin only inside it, so only r's block of 2 d values matters.
        for (int64_t j0 = unitRows_ ? r & ~(2 * d - 1) : 0, j1 = unitRows_ ? j0 + 2 * d : n; j0 < j1; j0 += 2 * d)
          for (int64_t lo = j0; lo < j0 + d; ++lo) {
            int64_t hi = lo + d;
            ga[lo] += g[lo] * xr[lo];
            gb[lo] += g[lo] * xr[hi];
            ga[hi] += g[hi] * xr[hi];
            gb[hi] += g[hi] * xr[lo];
            gin[lo] = a[lo] * g[lo] + b[hi] * g[hi];
            gin[hi] = a[hi] * g[hi] + b[lo] * g[lo];
          }
      }
      G_.swap(G2_);
    }
    return loss * scale_;
  }

private:
  int64_t rows_, n_, L_, N_;
  bool unitRows_;
  std::vector<double> T_;
  double scale_ = 1;
  std::vector<double> X_;     // activations after each stage, (L + 1) x rows x n
  std::vector<double> G_, G2_; // loss gradient wrt the current stage's output / input
};

// Unconstrained L-BFGS with an Armijo backtracking line search: every accepted step
// lowers the loss, so the history is non-increasing.
void lbfgs(Problem &problem, std::vector<double> &x, const ButterflyFitOptions &opt, ButterflyFitResult &result) {
  const size_t dim = x.size();
  std::vector<double> g(dim), gn(dim), xn(dim), dir(dim), alpha;
  double f = problem.eval(x, &g);
  result.initialOutputError = std::sqrt(f);
  std::deque<std::vector<double>> S, Y;
  std::deque<double> rho;
  for (int it = 0; it < opt.maxIterations && f > 1e-20; ++it) {
    // Two-loop recursion: dir = -H_k g.
    dir = g;
    alpha.assign(S.size(), 0.0);
    for (size_t i = S.size(); i-- > 0;) {
      alpha[i] = rho[i] * dot(S[i], dir);
      for (size_t j = 0; j < dim; ++j) dir[j] -= alpha[i] * Y[i][j];
    }
    double gamma = S.empty() ? 1.0 / std::max(std::sqrt(dot(g, g)), 1e-300) : dot(S.back(), Y.back()) / dot(Y.back(), Y.back());
    for (double &v : dir) v *= gamma;
    for (size_t i = 0; i < S.size(); ++i) {
      double beta = rho[i] * dot(Y[i], dir);
      for (size_t j = 0; j < dim; ++j) dir[j] += (alpha[i] - beta) * S[i][j];
    }
    for (double &v : dir) v = -v;
    double gd = dot(g, dir);
    if (!(gd < 0)) { // not a descent direction: restart from steepest descent
      S.clear(), Y.clear(), rho.clear();
      double gg = dot(g, g);
      for (size_t j = 0; j < dim; ++j) dir[j] = -g[j] / std::max(std::sqrt(gg), 1e-300);
      gd = -std::sqrt(gg);
    }
    double step = 1, fn = f;
    bool accepted = false;
    for (int tries = 0; tries < 40; ++tries, step *= 0.5) {
      for (size_t j = 0; j < dim; ++j) xn[j] = x[j] + step * dir[j];
      fn = problem.eval(xn, &gn);
      if (fn <= f + 1e-4 * step * gd && fn < f) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      if (S.empty()) break; // no progress even along the gradient
      S.clear(), Y.clear(), rho.clear();
      continue;
    }
    std::vector<double> s(dim), y(dim);
    for (size_t j = 0; j < dim; ++j) s[j] = xn[j] - x[j], y[j] = gn[j] - g[j];
    double sy = dot(s, y);
    if (sy > 1e-12 * std::sqrt(dot(s, s) * dot(y, y))) {
      if (int(S.size()) == opt.lbfgsMemory) S.pop_front(), Y.pop_front(), rho.pop_front();
      S.push_back(std::move(s)), Y.push_back(std::move(y)), rho.push_back(1.0 / sy);
    }
    x.swap(xn), g.swap(gn);
    f = fn;
    result.history.push_back(std::sqrt(f));
    result.iterations = it + 1;
    size_t h = result.history.size();
    if (h > 10 && result.history[h - 11] - result.history[h - 1] < opt.tolerance * result.history[h - 11]) break;
  }
}

} // namespace

std::vector<double> butterflyDense(const std::vector<float> &factors, int64_t n, int64_t K, int64_t N) {
  // Row i of B is e_i pushed through the stages.
  std::vector<double> cur(size_t(K * n), 0.0), next(size_t(K * n));
  for (int64_t i = 0; i < K; ++i) cur[size_t(i * n + i)] = 1;
  int64_t s = 0;
  for (int64_t d = 1; d < n; d *= 2, ++s) {
    const float *a = factors.data() + 2 * n * s;
    stageForward(cur.data(), next.data(), K, n, d, a, a + n, false);
    cur.swap(next);
  }
  std::vector<double> B(size_t(K * N));
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < N; ++j) B[size_t(i * N + j)] = cur[size_t(i * n + j)];
  return B;
}

double butterflyRelativeError(const std::vector<float> &W, const std::vector<double> &B, int64_t K, int64_t N,
                              const std::vector<double> *gram) {
  double num = 0, den = 0;
  if (!gram) {
    for (size_t i = 0; i < size_t(K * N); ++i) {
      double r = double(W[i]) - B[i];
      num += r * r;
      den += double(W[i]) * W[i];
    }
  } else {
    // tr(R^T H R) = sum_i R[i] . (H R)[i], one row of H R at a time.
    std::vector<double> hr(static_cast<size_t>(N)), hw(static_cast<size_t>(N));
    for (int64_t i = 0; i < K; ++i) {
      std::fill(hr.begin(), hr.end(), 0.0);
      std::fill(hw.begin(), hw.end(), 0.0);
      for (int64_t k = 0; k < K; ++k) {
        double h = (*gram)[size_t(i * K + k)];
        if (h == 0) continue;
        const float *w = &W[size_t(k * N)];
        const double *b = &B[size_t(k * N)];
        for (int64_t c = 0; c < N; ++c) {
          hr[size_t(c)] += h * (double(w[c]) - b[c]);
          hw[size_t(c)] += h * double(w[c]);
        }
      }
      for (int64_t c = 0; c < N; ++c) {
        num += (double(W[size_t(i * N + c)]) - B[size_t(i * N + c)]) * hr[size_t(c)];
        den += double(W[size_t(i * N + c)]) * hw[size_t(c)];
      }
    }
  }
  if (den <= 0) return num > 0 ? INFINITY : 0.0;
  return std::sqrt(std::max(num, 0.0) / den);
}

ButterflyFitResult fitButterfly(const std::vector<float> &W, int64_t K, int64_t N, const std::vector<double> *gram,
                                const ButterflyFitOptions &options) {
  assert(K > 0 && N > 0 && int64_t(W.size()) == K * N);
  assert(!gram || int64_t(gram->size()) == K * K);
  ButterflyFitResult result;
  const int64_t n = int64_t(1) << std::max<int64_t>(1, log2Ceil(std::max(K, N)));
  const int64_t L = log2Ceil(n);
  result.n = n;

  // The rows the layer is trained on (C^T, padded to n) and their targets C^T W.
  std::vector<double> P(size_t(K * n), 0.0), T(size_t(K * N), 0.0);
  std::vector<double> C;
  if (gram) {
    double meanDiag = 0;
    for (int64_t i = 0; i < K; ++i) meanDiag += (*gram)[size_t(i * K + i)] / double(K);
    if (!(meanDiag > 0)) meanDiag = 1;
    // A Gram matrix (symmetric, |g_ij| <= sqrt(g_ii g_jj): readGrams checks) factors once
    // the ridge passes K times its largest entry; one that does not is fitted as weights.
    bool factored = false;
    for (double ridge = options.gramRidge; !factored && ridge < 1e12; ridge *= 100) {
      C = *gram;
      for (int64_t i = 0; i < K; ++i) C[size_t(i * K + i)] += std::max(ridge, 1e-300) * meanDiag;
      factored = codesign::cholesky(C, K);
    }
    if (!factored) gram = nullptr;
  }
  result.usedGram = gram != nullptr;
  if (!gram) {
    for (int64_t i = 0; i < K; ++i) P[size_t(i * n + i)] = 1;
    for (size_t i = 0; i < T.size(); ++i) T[i] = W[i];
  } else {
    for (int64_t r = 0; r < K; ++r)
      for (int64_t i = r; i < K; ++i) {
        double c = C[size_t(i * K + r)];
        P[size_t(r * n + i)] = c;
        if (c == 0) continue;
        for (int64_t j = 0; j < N; ++j) T[size_t(r * N + j)] += c * W[size_t(i * N + j)];
      }
  }
  Problem problem(K, n, N, std::move(P), std::move(T), gram == nullptr);
  const std::vector<double> &Tm = problem.targets();

  std::mt19937_64 rng(options.seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> theta(size_t(2 * n * L));
  double wNorm2 = 0;
  for (float w : W) wNorm2 += double(w) * w;
  if (options.rank1Init && wNorm2 > 0) {
    // v: top right singular vector of C^T W (power iteration); u = W v is then the best
    // left factor in the H metric. A butterfly holds u v^T exactly: u in stage 0, v in
    // the last stage, ones between, each stage carrying an equal share of the scale.
    std::vector<double> v(static_cast<size_t>(N)), t(static_cast<size_t>(K));
    for (double &e : v) e = normal(rng);
    for (int iter = 0; iter < 60; ++iter) {
      std::fill(t.begin(), t.end(), 0.0);
      for (int64_t r = 0; r < K; ++r)
        for (int64_t j = 0; j < N; ++j) t[size_t(r)] += Tm[size_t(r * N + j)] * v[size_t(j)];
      std::fill(v.begin(), v.end(), 0.0);
      for (int64_t r = 0; r < K; ++r)
        for (int64_t j = 0; j < N; ++j) v[size_t(j)] += Tm[size_t(r * N + j)] * t[size_t(r)];
      double nv = std::sqrt(dot(v, v));
      if (!(nv > 0)) break;
      for (double &e : v) e /= nv;
    }
    std::vector<double> u(size_t(n), 0.0), vp(size_t(n), 0.0);
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < N; ++j) u[size_t(i)] += double(W[size_t(i * N + j)]) * v[size_t(j)];
    double nu = std::sqrt(dot(u, u));
    if (!(nu > 0)) nu = 1;
    for (int64_t i = 0; i < K; ++i) u[size_t(i)] *= std::sqrt(double(K)) / nu;
    for (int64_t j = 0; j < N; ++j) vp[size_t(j)] = v[size_t(j)] * std::sqrt(double(N));
    double c = std::pow(nu / std::sqrt(double(K * N)), 1.0 / double(L));
    for (int64_t s = 0; s < L; ++s) {
      double *a = &theta[size_t(2 * n * s)], *b = a + n;
      for (int64_t i = 0; i < n; ++i) {
        double ea = 1, eb = 1;
        if (s == 0) ea *= u[size_t(i)], eb *= u[size_t(i ^ 1)];
        if (s == L - 1) ea *= vp[size_t(i)], eb *= vp[size_t(i)];
        // With no middle stage (n <= 4) the outer ones take the noise: the rank-1 point
        // alone can be stationary (a 4 x 4 scaled permutation stopped there at once).
        if ((s != 0 && s != L - 1) || L < 3)
          ea += options.initNoise * normal(rng), eb += options.initNoise * normal(rng);
        a[i] = c * ea;
        b[i] = c * eb;
      }
    }
  } else {
    // Random start with B's entries at W's RMS scale.
    double c = std::pow(std::max(wNorm2, 1e-30) / double(K * N), 0.5 / double(L));
    for (double &e : theta) e = c * normal(rng);
  }

  lbfgs(problem, theta, options, result);

  result.factors.assign(theta.begin(), theta.end());
  std::vector<double> B = butterflyDense(result.factors, n, K, N);
  result.weightError = butterflyRelativeError(W, B, K, N, nullptr);
  result.outputError = gram ? butterflyRelativeError(W, B, K, N, gram) : result.weightError;
  return result;
}

} // namespace kiln

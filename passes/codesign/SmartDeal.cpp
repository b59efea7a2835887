//===- SmartDeal.cpp - SmartDeal weight decomposition (W ~ C x B) ------------------===//
//
// Alternating projection as in SmartExchange, with the layer's input Gram H = X^T X as
// the metric when calibration gave one (so what is minimised is the output error
// tr(dW H dW^T), not the weight error):
//   mask  keep the chunks with the largest w H_pp w^T (fixed: it does not depend on B)
//   C     per chunk, c = w B^-1, rounded to signed powers of two one coefficient at a
//         time, the later ones re-fitted to the earlier ones' rounding error in the
//         chunk's metric B H_pp B^T (OBQ-style); kept only if better than last round's
//   B     exact least squares over all bases given C: block Gauss-Seidel, one 9x9
//         solve per basis, the cross-basis coupling through H carried in Z = dW H
// Every round is evaluated on the weights the format decodes to (bases in bf16), and
// the best round is returned.
//
//===----------------------------------------------------------------------------------===//
#include "SmartDeal.h"
#include "Numerics.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cmath>
#include <cstring>
#include <numeric>

namespace kiln::codesign {
namespace {

using Mat3 = std::array<double, 9>;

// Where chunk positions live: the kernel rows' runs along kw (TAPS3) or 3 consecutive
// weights (FLAT); and which basis each uses.
struct Chunks {
  int64_t m, k, tapsH, tapsW, c, positions, group, groups;
  bool taps3;
  // Reduction index of weight j of chunk p, or -1 past K.
  int64_t index(int64_t p, int j) const {
    if (taps3) return ((p / c) * 3 + j) * c + p % c;
    int64_t i = p * 3 + j;
    return i < k ? i : -1;
  }
  int64_t groupOf(int64_t p) const { return taps3 ? (p % c) / group : p / group; }
};

uint16_t toBf16(float x) { // round to nearest even (finite inputs)
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float fromBf16(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Solves (A + ridge I) x = b for a small dense SPD-ish A (n <= 9), Gaussian elimination
// with partial pivoting; A and b are copied.
template <int N> std::array<double, N> solve(std::array<double, N * N> a, std::array<double, N> b, int n = N) {
  double tr = 0;
  for (int i = 0; i < n; ++i) tr += std::fabs(a[i * N + i]);
  double ridge = 1e-10 * (tr / n) + 1e-300;
  for (int i = 0; i < n; ++i) a[i * N + i] += ridge;
  for (int col = 0; col < n; ++col) {
    int piv = col;
    for (int r = col + 1; r < n; ++r)
      if (std::fabs(a[r * N + col]) > std::fabs(a[piv * N + col])) piv = r;
    if (piv != col) {
      for (int j = 0; j < n; ++j) std::swap(a[col * N + j], a[piv * N + j]);
      std::swap(b[col], b[piv]);
    }
    double d = a[col * N + col];
    if (d == 0) continue;
    for (int r = col + 1; r < n; ++r) {
      double f = a[r * N + col] / d;
      if (f == 0) continue;
      for (int j = col; j < n; ++j) a[r * N + j] -= f * a[col * N + j];
      b[r] -= f * b[col];
    }
  }
  std::array<double, N> x{};
  for (int i = n - 1; i >= 0; --i) {
    double s = b[i];
    for (int j = i + 1; j < n; ++j) s -= a[i * N + j] * x[j];
    x[i] = a[i * N + i] == 0 ? 0 : s / a[i * N + i];
  }
  return x;
}

// Eigenvectors of a symmetric 3x3 (Jacobi), as rows, by decreasing eigenvalue; each
// with its largest component positive so the result does not depend on rounding luck.
Mat3 eigenRows(Mat3 s) {
  Mat3 v = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  for (int sweep = 0; sweep < 50; ++sweep) {
    double off = std::fabs(s[1]) + std::fabs(s[2]) + std::fabs(s[5]);
    if (off < 1e-300) break;
    for (int p = 0; p < 2; ++p)
      for (int q = p + 1; q < 3; ++q) {
        double apq = s[p * 3 + q];
        if (std::fabs(apq) < 1e-300) continue;
        double theta = (s[q * 3 + q] - s[p * 3 + p]) / (2 * apq);
        double t = (theta >= 0 ? 1 : -1) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        double cs = 1 / std::sqrt(t * t + 1), sn = t * cs;
        for (int k = 0; k < 3; ++k) { // s = J^T s J
          double a = s[k * 3 + p], b = s[k * 3 + q];
          s[k * 3 + p] = cs * a - sn * b;
          s[k * 3 + q] = sn * a + cs * b;
        }
        for (int k = 0; k < 3; ++k) {
          double a = s[p * 3 + k], b = s[q * 3 + k];
          s[p * 3 + k] = cs * a - sn * b;
          s[q * 3 + k] = sn * a + cs * b;
        }
        for (int k = 0; k < 3; ++k) { // columns of v are the eigenvectors
          double a = v[k * 3 + p], b = v[k * 3 + q];
          v[k * 3 + p] = cs * a - sn * b;
          v[k * 3 + q] = sn * a + cs * b;
        }
      }
  }
  std::array<int, 3> order = {0, 1, 2};
  std::sort(order.begin(), order.end(), [&](int a, int b) { return s[a * 4] != s[b * 4] ? s[a * 4] > s[b * 4] : a < b; });
  Mat3 rows{};
  for (int r = 0; r < 3; ++r) {
    int e = order[r], big = 0;
    for (int k = 1; k < 3; ++k)
      if (std::fabs(v[k * 3 + e]) > std::fabs(v[big * 3 + e]) + 1e-12) big = k;
    double sign = v[big * 3 + e] < 0 ? -1 : 1;
    for (int k = 0; k < 3; ++k) rows[r * 3 + k] = sign * v[k * 3 + e];
  }
  return rows;
}

// The signed level (0, or +-t for +-2^(-(t - 1)), 1 <= t <= magnitudes) nearest to x.
int nearestLevel(double x, int magnitudes) {
  double a = std::fabs(x), best = a;
  int level = 0;
  for (int t = 1; t <= magnitudes; ++t) {
    double d = std::fabs(a - std::ldexp(1.0, -(t - 1)));
    if (d < best) {
      best = d;
      level = t;
    }
  }
  return x < 0 ? -level : level;
}

double levelValue(int level) { return level == 0 ? 0 : std::copysign(std::ldexp(1.0, -(std::abs(level) - 1)), level); }

struct Decomposer {
  const std::vector<float> &w;
  const std::vector<double> *gram;
  Chunks ch;
  int bits, magnitudes;
  std::vector<char> kept;         // [m][P]
  std::vector<double> bases;      // [groups][9], always bf16-representable between steps
  std::vector<int8_t> levels;     // [m][P][3]
  std::vector<std::vector<int64_t>> members; // positions of each group

  double h(int64_t a, int64_t b) const {
    if (a < 0 || b < 0) return 0;
    return gram ? (*gram)[size_t(a * ch.k + b)] : double(a == b);
  }
  double weight(int64_t o, int64_t p, int j) const {
    int64_t i = ch.index(p, j);
    return i < 0 ? 0 : double(w[size_t(o * ch.k + i)]);
  }
  Mat3 blockH(int64_t p) const { // H restricted to chunk p's three weights
    Mat3 b{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) b[i * 3 + j] = h(ch.index(p, i), ch.index(p, j));
    return b;
  }

  void chooseMask(double density) {
    const int64_t n = ch.m * ch.positions;
    std::vector<double> importance(static_cast<size_t>(n));
    for (int64_t o = 0; o < ch.m; ++o)
      for (int64_t p = 0; p < ch.positions; ++p) {
        Mat3 hb = blockH(p);
        double s = 0;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) s += weight(o, p, i) * hb[i * 3 + j] * weight(o, p, j);
        importance[size_t(o * ch.positions + p)] = s;
      }
    int64_t keep = std::clamp<int64_t>(int64_t(std::llround(density * double(n))), 0, n);
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      double ia = importance[size_t(a)], ib = importance[size_t(b)];
      return ia != ib ? ia > ib : a < b;
    });
    kept.assign(size_t(n), 0);
    for (int64_t i = 0; i < keep; ++i)
      if (importance[size_t(order[size_t(i)])] > 0) kept[size_t(order[size_t(i)])] = 1;
  }

  // Principal axes of each group's chunks: an orthonormal basis to start from.
  void initBases() {
    bases.assign(size_t(ch.groups * 9), 0);
    for (int64_t g = 0; g < ch.groups; ++g) {
      Mat3 s{};
      for (int64_t p : members[size_t(g)])
        for (int64_t o = 0; o < ch.m; ++o)
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) s[i * 3 + j] += weight(o, p, i) * weight(o, p, j);
      Mat3 b = eigenRows(s);
      std::copy(b.begin(), b.end(), bases.begin() + g * 9);
    }
  }

  // Real coefficients c = w B^+ of every chunk, per group B^+ = B^T (B B^T + ridge)^-1.
  std::vector<double> leastSquaresCoeffs() const {
    std::vector<double> c(size_t(ch.m * ch.positions * 3), 0);
    for (int64_t g = 0; g < ch.groups; ++g) {
      const double *b = &bases[size_t(g * 9)];
      std::array<double, 9> bbt{};
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          for (int k = 0; k < 3; ++k) bbt[i * 3 + j] += b[i * 3 + k] * b[j * 3 + k];
      for (int64_t p : members[size_t(g)])
        for (int64_t o = 0; o < ch.m; ++o) {
          if (!kept[size_t(o * ch.positions + p)]) continue;
          std::array<double, 3> wb{}; // w B^T
          for (int i = 0; i < 3; ++i)
            for (int k = 0; k < 3; ++k) wb[i] += weight(o, p, k) * b[i * 3 + k];
          auto x = solve<3>(bbt, wb);
          std::copy(x.begin(), x.end(), c.begin() + (o * ch.positions + p) * 3);
        }
    }
    return c;
  }

  // Scales each group so that its largest coefficient is about 1 (the top of the
  // exponent window), moving the power of two into the basis: C B is unchanged.
  void normalise(std::vector<double> &c) {
    for (int64_t g = 0; g < ch.groups; ++g) {
      double mx = 0;
      for (int64_t p : members[size_t(g)])
        for (int64_t o = 0; o < ch.m; ++o)
          for (int i = 0; i < 3; ++i) mx = std::max(mx, std::fabs(c[size_t((o * ch.positions + p) * 3 + i)]));
      if (mx == 0) continue;
      int e = int(std::lround(std::log2(mx)));
      for (int64_t p : members[size_t(g)])
        for (int64_t o = 0; o < ch.m; ++o)
          for (int i = 0; i < 3; ++i) c[size_t((o * ch.positions + p) * 3 + i)] = std::ldexp(c[size_t((o * ch.positions + p) * 3 + i)], -e);
      for (int i = 0; i < 9; ++i) bases[size_t(g * 9 + i)] = std::ldexp(bases[size_t(g * 9 + i)], e);
    }
  }

  // dW = C B - W (double, from the current levels and bases) and Z = dW H (Z is dW
  // itself without a Gram, H = I). `exactKept`: the kept chunks count as exact (dW = 0
  // there), the state a first C step starts from.
  void residual(std::vector<double> &d, std::vector<double> &z, bool exactKept = false) const {
    const int64_t m = ch.m, k = ch.k, P = ch.positions;
    d.assign(size_t(m * k), 0);
    for (int64_t o = 0; o < m; ++o)
      for (int64_t p = 0; p < P; ++p) {
        const double *b = &bases[size_t(ch.groupOf(p) * 9)];
        const int8_t *lv = &levels[size_t((o * P + p) * 3)];
        for (int j = 0; j < 3; ++j) {
          int64_t idx = ch.index(p, j);
          if (idx < 0) continue;
          double s = 0;
          for (int i = 0; i < 3; ++i) s += levelValue(lv[i]) * b[i * 3 + j];
          d[size_t(o * k + idx)] = exactKept && kept[size_t(o * P + p)] ? 0 : s - w[size_t(o * k + idx)];
        }
      }
    z.clear();
    if (!gram) return;
    z.assign(size_t(m * k), 0);
    for (int64_t o = 0; o < m; ++o)
      for (int64_t a = 0; a < k; ++a) {
        double da = d[size_t(o * k + a)];
        if (da == 0) continue;
        const double *hr = &(*gram)[size_t(a * k)];
        double *zr = &z[size_t(o * k)];
        for (int64_t col = 0; col < k; ++col) zr[col] += da * hr[col];
      }
  }

  // C step: coordinate descent over the chunks (rows are independent, f = sum_o d_o H
  // d_o^T). Given every other chunk, chunk p of row o is best at u* = u - H_pp^-1 Z_o[p];
  // its coefficients c* = u* B^+ are rounded one at a time, the later ones re-fitted in
  // the metric B H_pp B^T (OBQ-style), and the result replaces the current levels only
  // if it lowers f (the change in f is exactly (x - u*) H_pp (x - u*)^T minus the same
  // for the current u), so a C step never raises the error. The first one (`fresh`)
  // starts from the exact weights and rounds every chunk, each compensating the rounding
  // of those before it (GPTQ's order of work).
  void quantise(bool fresh) {
    const int64_t m = ch.m, k = ch.k, P = ch.positions;
    std::vector<double> d, z;
    residual(d, z, fresh);
    std::vector<double> &zr = gram ? z : d;
    std::vector<Mat3> pinv(size_t(ch.groups)); // B^+ = B^T (B B^T)^-1, by column solves
    for (int64_t g = 0; g < ch.groups; ++g) {
      const double *b = &bases[size_t(g * 9)];
      std::array<double, 9> bbt{};
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          for (int u = 0; u < 3; ++u) bbt[size_t(i * 3 + j)] += b[i * 3 + u] * b[j * 3 + u];
      for (int r = 0; r < 3; ++r) { // row r of B^+: (B B^T)^-1 applied to column r of B
        auto x = solve<3>(bbt, {b[r], b[3 + r], b[6 + r]});
        for (int i = 0; i < 3; ++i) pinv[size_t(g)][size_t(r * 3 + i)] = x[size_t(i)];
      }
    }
    for (int64_t p = 0; p < P; ++p) {
      const double *b = &bases[size_t(ch.groupOf(p) * 9)];
      const Mat3 &bp = pinv[size_t(ch.groupOf(p))];
      Mat3 hb = blockH(p), metric{};
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          double s = 0;
          for (int u = 0; u < 3; ++u)
            for (int v = 0; v < 3; ++v) s += b[i * 3 + u] * hb[size_t(u * 3 + v)] * b[j * 3 + v];
          metric[size_t(i * 3 + j)] = s;
        }
      int64_t idx[3] = {ch.index(p, 0), ch.index(p, 1), ch.index(p, 2)};
      auto cost = [&](const std::array<double, 3> &x, const std::array<double, 3> &t) {
        double s = 0;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) s += (x[size_t(i)] - t[size_t(i)]) * hb[size_t(i * 3 + j)] * (x[size_t(j)] - t[size_t(j)]);
        return s;
      };
      auto weights = [&](const std::array<double, 3> &coef) {
        std::array<double, 3> x{};
        for (int j = 0; j < 3; ++j)
          for (int i = 0; i < 3; ++i) x[size_t(j)] += coef[size_t(i)] * b[i * 3 + j];
        return x;
      };
      for (int64_t o = 0; o < m; ++o) {
        if (!kept[size_t(o * P + p)]) continue; // levels stay 0
        int8_t *lv = &levels[size_t((o * P + p) * 3)];
        std::array<double, 3> u = weights({levelValue(lv[0]), levelValue(lv[1]), levelValue(lv[2])}), grad{};
        if (fresh)
          for (int j = 0; j < 3; ++j) u[size_t(j)] = weight(o, p, j);
        for (int j = 0; j < 3; ++j) grad[size_t(j)] = idx[j] < 0 ? 0 : zr[size_t(o * k + idx[j])];
        std::array<double, 3> step = solve<3>(hb, grad), target{}, c{};
        for (int j = 0; j < 3; ++j) target[size_t(j)] = u[size_t(j)] - step[size_t(j)];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) c[size_t(i)] += target[size_t(j)] * bp[size_t(j * 3 + i)];
        std::array<double, 3> x = c;
        std::array<int, 3> q{};
        for (int i = 0; i < 3; ++i) {
          q[size_t(i)] = nearestLevel(x[size_t(i)], magnitudes);
          x[size_t(i)] = levelValue(q[size_t(i)]);
          int rest = 2 - i; // re-fit the later ones: x_R = c_R - M_RR^-1 M_RS (x_S - c_S)
          if (rest == 0) break;
          std::array<double, 4> mrr{};
          std::array<double, 2> rhs{};
          for (int a = 0; a < rest; ++a) {
            for (int bb = 0; bb < rest; ++bb) mrr[size_t(a * 2 + bb)] = metric[size_t((i + 1 + a) * 3 + i + 1 + bb)];
            for (int s2 = 0; s2 <= i; ++s2)
              rhs[size_t(a)] -= metric[size_t((i + 1 + a) * 3 + s2)] * (x[size_t(s2)] - c[size_t(s2)]);
          }
          auto dd = solve<2>(mrr, rhs, rest);
          for (int a = 0; a < rest; ++a) x[size_t(i + 1 + a)] = c[size_t(i + 1 + a)] + dd[size_t(a)];
        }
        std::array<double, 3> xw = weights({levelValue(q[0]), levelValue(q[1]), levelValue(q[2])});
        if (!fresh && !(cost(xw, target) < cost(u, target))) continue;
        for (int i = 0; i < 3; ++i) lv[i] = int8_t(q[size_t(i)]);
        for (int j = 0; j < 3; ++j) { // dW and Z follow
          double delta = xw[size_t(j)] - u[size_t(j)];
          if (idx[j] < 0 || delta == 0) continue;
          d[size_t(o * k + idx[j])] += delta;
          if (gram) {
            const double *hr = &(*gram)[size_t(idx[j] * k)];
            double *zrow = &z[size_t(o * k)];
            for (int64_t col = 0; col < k; ++col) zrow[col] += delta * hr[col];
          }
        }
      }
    }
  }

  // B step: minimises tr(dW H dW^T) over every basis given the levels; one exact 9x9
  // solve per basis in turn, the other bases' effect carried in Z = dW H.
  void fitBases(int sweeps) {
    const int64_t m = ch.m, k = ch.k, P = ch.positions;
    std::vector<double> d, z;
    residual(d, z);
    auto coeff = [&](int64_t o, int64_t p, int i) { return levelValue(levels[size_t((o * P + p) * 3 + i)]); };
    const std::vector<double> &zref = gram ? z : d;
    std::vector<double> delta(size_t(m * 3));
    for (int sweep = 0; sweep < sweeps; ++sweep)
      for (int64_t g = 0; g < ch.groups; ++g) {
        const auto &pos = members[size_t(g)];
        std::array<double, 81> a{};
        std::array<double, 9> r{};
        for (int64_t p : pos)
          for (int64_t o = 0; o < m; ++o)
            for (int i = 0; i < 3; ++i) {
              double cv = coeff(o, p, i);
              if (cv == 0) continue;
              for (int j = 0; j < 3; ++j) {
                int64_t idx = ch.index(p, j);
                if (idx >= 0) r[size_t(i * 3 + j)] += cv * zref[size_t(o * k + idx)];
              }
            }
        for (size_t ip = 0; ip < pos.size(); ++ip)
          for (size_t iq = 0; iq < pos.size(); ++iq) {
            int64_t p = pos[ip], q = pos[iq];
            if (!gram && p != q) continue;
            Mat3 cc{}; // sum_o c[o,p,i] c[o,q,i']
            bool any = false;
            for (int64_t o = 0; o < m; ++o)
              for (int i = 0; i < 3; ++i) {
                double cp = coeff(o, p, i);
                if (cp == 0) continue;
                for (int i2 = 0; i2 < 3; ++i2) {
                  double cq = coeff(o, q, i2);
                  if (cq != 0) { cc[size_t(i * 3 + i2)] += cp * cq; any = true; }
                }
              }
            if (!any) continue;
            for (int j = 0; j < 3; ++j)
              for (int j2 = 0; j2 < 3; ++j2) {
                double hv = h(ch.index(p, j), ch.index(q, j2));
                if (hv == 0) continue;
                for (int i = 0; i < 3; ++i)
                  for (int i2 = 0; i2 < 3; ++i2) a[size_t((i * 3 + j) * 9 + i2 * 3 + j2)] += cc[size_t(i * 3 + i2)] * hv;
              }
          }
        std::array<double, 9> neg{};
        for (int i = 0; i < 9; ++i) neg[size_t(i)] = -r[size_t(i)];
        auto step = solve<9>(a, neg);
        double *b = &bases[size_t(g * 9)];
        for (int i = 0; i < 9; ++i) b[i] += step[size_t(i)];
        // dW and Z follow the change.
        for (int64_t p : pos)
          for (int64_t o = 0; o < m; ++o)
            for (int j = 0; j < 3; ++j) {
              int64_t idx = ch.index(p, j);
              if (idx < 0) continue;
              double s = 0;
              for (int i = 0; i < 3; ++i) s += coeff(o, p, i) * step[size_t(i * 3 + j)];
              if (s == 0) continue;
              d[size_t(o * k + idx)] += s;
              if (gram) {
                const double *hr = &(*gram)[size_t(idx * k)];
                double *zr = &z[size_t(o * k)];
                for (int64_t bcol = 0; bcol < k; ++bcol) zr[bcol] += s * hr[bcol];
              }
            }
      }
    roundBases();
  }

  void roundBases() {
    for (double &v : bases) v = double(fromBf16(toBf16(float(v))));
  }

  SmartDealFormat pack() const {
    std::vector<float> fb(bases.begin(), bases.end());
    return packSmartDeal(ch.m, ch.tapsH, ch.tapsW, ch.c, ch.taps3 ? KILN_SMARTDEAL_TAPS3 : KILN_SMARTDEAL_FLAT,
                         bits, 0, ch.group, levels, fb);
  }
};

} // namespace

kiln_smartdeal_t SmartDealFormat::view() const {
  kiln_smartdeal_t v = header;
  v.mask = mask.data();
  v.row_start = rowStart.data();
  v.codes = codes.data();
  v.bases = bases.data();
  return v;
}

int64_t SmartDealFormat::bytes() const {
  kiln_smartdeal_t v = view();
  return kiln_smartdeal_bytes(&v);
}

kiln_smartdeal_t smartDealHeader(int64_t m, int64_t tapsH, int64_t tapsW, int64_t c, int32_t layout,
                                 int32_t exponentBits, int32_t exponentOffset, int64_t group) {
  kiln_smartdeal_t hd{};
  hd.m = m;
  hd.kh = tapsH;
  hd.kw = layout == KILN_SMARTDEAL_TAPS3 ? 3 : tapsW;
  hd.c = c;
  hd.layout = layout;
  hd.exponent_bits = exponentBits;
  hd.exponent_offset = exponentOffset;
  hd.group = group;
  return hd;
}

SmartDealFormat packSmartDeal(int64_t m, int64_t tapsH, int64_t tapsW, int64_t c, int32_t layout,
                              int32_t exponentBits, int32_t exponentOffset, int64_t group,
                              const std::vector<int8_t> &levels, const std::vector<float> &bases) {
  SmartDealFormat f;
  f.header = smartDealHeader(m, tapsH, tapsW, c, layout, exponentBits, exponentOffset, group);
  const kiln_smartdeal_t &hd = f.header;
  const int64_t positions = kiln_smartdeal_positions(&hd), words = (m * positions + 63) / 64;
  const int nb = exponentBits + 1;
  assert(int64_t(levels.size()) == m * positions * 3 && int64_t(bases.size()) == kiln_smartdeal_groups(&hd) * 9);
  f.mask.assign(size_t(words), 0);
  f.rowStart.assign(size_t(m + 1), 0);
  uint64_t bit = 0, keptCount = 0;
  std::vector<uint8_t> &codes = f.codes;
  auto put = [&](uint32_t value) {
    for (int i = 0; i < nb; ++i, ++bit) {
      if (codes.size() <= bit / 8) codes.push_back(0);
      codes[size_t(bit / 8)] |= uint8_t(((value >> i) & 1u) << (bit % 8));
    }
  };
  for (int64_t o = 0; o < m; ++o) {
    f.rowStart[size_t(o)] = uint32_t(keptCount);
    for (int64_t p = 0; p < positions; ++p) {
      const int8_t *lv = &levels[size_t((o * positions + p) * 3)];
      if (!lv[0] && !lv[1] && !lv[2]) continue;
      f.mask[size_t((o * positions + p) / 64)] |= uint64_t(1) << ((o * positions + p) % 64);
      ++keptCount;
      for (int i = 0; i < 3; ++i) put(uint32_t(lv[i] < 0) << exponentBits | uint32_t(std::abs(lv[i])));
    }
  }
  f.rowStart[size_t(m)] = uint32_t(keptCount);
  codes.resize(size_t((bit + 7) / 8 + 8), 0); // the decoder reads 8 bytes at a time
  f.bases.resize(bases.size());
  for (size_t i = 0; i < bases.size(); ++i) f.bases[i] = toBf16(bases[i]);
  return f;
}

SmartDealResult decomposeSmartDeal(const std::vector<float> &rows, int64_t m, int64_t tapsH, int64_t tapsW,
                                   int64_t c, const std::vector<double> *gram, const SmartDealOptions &options) {
  const int64_t k = tapsH * tapsW * c;
  assert(m > 0 && k > 0 && int64_t(rows.size()) == m * k);
  assert(!gram || int64_t(gram->size()) == k * k);
  assert(options.exponentBits >= 1 && options.exponentBits <= 7);
  Chunks ch{};
  ch.m = m;
  ch.k = k;
  ch.tapsH = tapsH;
  ch.tapsW = tapsW;
  ch.c = c;
  ch.taps3 = tapsW == 3 && !options.forceFlat;
  ch.positions = ch.taps3 ? tapsH * c : (k + 2) / 3;
  const double density = std::clamp(options.rowDensity, 0.0, 1.0);
  int64_t group = options.group;
  if (group <= 0) { // bases (18 bytes) at most ~10% of what their chunks' codes and mask bits take
    double perChunk = 3.0 * (options.exponentBits + 1) / 8.0 * density + 1.0 / 8.0;
    double chunksNeeded = 180.0 / perChunk;
    group = int64_t(std::ceil(chunksNeeded / double(m * (ch.taps3 ? tapsH : 1))));
  }
  ch.group = std::clamp<int64_t>(group, 1, ch.taps3 ? c : ch.positions);
  ch.groups = ((ch.taps3 ? c : ch.positions) + ch.group - 1) / ch.group;

  Decomposer dec{rows, gram, ch, options.exponentBits, (1 << options.exponentBits) - 1, {}, {}, {}, {}};
  dec.members.assign(size_t(ch.groups), {});
  for (int64_t p = 0; p < ch.positions; ++p) dec.members[size_t(ch.groupOf(p))].push_back(p);
  dec.chooseMask(density);
  dec.initBases();
  if (options.initialBases) {
    assert(int64_t(options.initialBases->size()) == ch.groups * 9);
    dec.bases.assign(options.initialBases->begin(), options.initialBases->end());
  }

  SmartDealResult result;
  result.int8Bytes = m * k + 4 * m;
  const double signal = gramEnergy(rows, nullptr, m, k, gram);
  const double plain = gram ? gramEnergy(rows, nullptr, m, k, nullptr) : signal;
  double best = INFINITY;
  auto evaluate = [&]() { // decode exactly as the runtime does; keep the best round
    SmartDealFormat f = dec.pack();
    kiln_smartdeal_t v = f.view();
    std::vector<float> rebuilt(size_t(m * k));
    kiln_smartdeal_decode(&v, rebuilt.data());
    double err = signal > 0 ? std::sqrt(gramEnergy(rows, &rebuilt, m, k, gram) / signal) : 0;
    result.history.push_back(err);
    if (err < best) {
      best = err;
      result.outputError = err;
      result.weightError = plain > 0 ? std::sqrt(gramEnergy(rows, &rebuilt, m, k, nullptr) / plain) : 0;
      result.rebuilt = std::move(rebuilt);
      result.format = std::move(f);
    }
  };

  std::vector<double> coeffs = dec.leastSquaresCoeffs();
  dec.normalise(coeffs);
  dec.roundBases();
  dec.levels.assign(size_t(m * ch.positions * 3), 0);
  dec.quantise(true);
  evaluate();
  for (int it = 0; it < options.iterations; ++it) {
    dec.fitBases(2);
    dec.quantise(false);
    evaluate();
  }
  result.bytes = result.format.bytes();
  return result;
}

} // namespace kiln::codesign

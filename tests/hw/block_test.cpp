// Block-level testbenches of the accelerator's units, each Verilated with its own top:
// the PE array (dense, N:M with every N), a requantise lane (random and edge values), the
// pool unit, the DMA engine (LOAD, LOAD_WIN, STORE against a memory model) and the
// REBUILD unit (against IBUF/WBUF models). Expected
// values come from the reference model's arithmetic (runtime/src/accel/accel_ref.c),
// bit for bit. KILN_HW_SEED replays a run; KILN_HW_SWEEP multiplies the iterations.
#include <gtest/gtest.h>

#include "Vkiln_dma.h"
#include "Vkiln_pe_array.h"
#include "Vkiln_pool.h"
#include "Vkiln_rebuild.h"
#include "Vkiln_requant_lane.h"
#include "hw_common.h"
#include "kiln/accel.h"
#include "kiln_accel_config.h"
#include "verilated.h"

#include <algorithm>
#include <deque>
#include <memory>
#include <random>
#include <vector>

namespace {

using kiln_hw_test::seedFor;
using kiln_hw_test::sweep;

const kiln_accel_config_t kCfg = KILN_ACCEL_CFG_INIT;
constexpr unsigned ROWS = KILN_ACCEL_CFG_ROWS, COLS = KILN_ACCEL_CFG_COLS, NM_M = KILN_ACCEL_CFG_NM_M,
                   IDX_BITS = KILN_ACCEL_CFG_IDX_BITS, BUS = KILN_ACCEL_CFG_BUS_BYTES;

// ---- byte access to Verilator signals of any width --------------------------------------
template <class T> void setByte(T &s, unsigned i, uint8_t v) {
  s = T((s & ~(T(0xFF) << (8 * i))) | (T(v) << (8 * i)));
}
template <std::size_t N> void setByte(VlWide<N> &s, unsigned i, uint8_t v) {
  s[i / 4] = (s[i / 4] & ~(0xFFu << (8 * (i % 4)))) | (uint32_t(v) << (8 * (i % 4)));
}
template <class T> uint8_t getByte(const T &s, unsigned i) { return uint8_t(uint64_t(s) >> (8 * i)); }
template <std::size_t N> uint8_t getByte(const VlWide<N> &s, unsigned i) { return uint8_t(s[i / 4] >> (8 * (i % 4))); }
template <class T> void set32(T &s, unsigned i, uint32_t v) {
  for (unsigned b = 0; b < 4; ++b) setByte(s, 4 * i + b, uint8_t(v >> (8 * b)));
}
template <class T> uint32_t get32(const T &s, unsigned i) {
  uint32_t v = 0;
  for (unsigned b = 0; b < 4; ++b) v |= uint32_t(getByte(s, 4 * i + b)) << (8 * b);
  return v;
}
template <class T> void setBits(T &s, unsigned lo, unsigned n, uint32_t v) { // n <= 8, within a byte pair
  for (unsigned b = 0; b < n; ++b) {
    unsigned bit = lo + b;
    uint8_t cur = getByte(s, bit / 8);
    cur = uint8_t((cur & ~(1u << (bit % 8))) | (((v >> b) & 1u) << (bit % 8)));
    setByte(s, bit / 8, cur);
  }
}

template <class M> void clock(M &m) {
  m.clk = 0;
  m.eval();
  m.clk = 1;
  m.eval();
}

// ---- PE array ----------------------------------------------------------------------------

struct PeModel {
  std::vector<int32_t> acc = std::vector<int32_t>(ROWS * COLS, 0);
  void step(const std::vector<int8_t> &w, const std::vector<uint8_t> &act, const std::vector<unsigned> &idx, bool nm,
            bool first) {
    for (unsigned r = 0; r < ROWS; ++r)
      for (unsigned c = 0; c < COLS; ++c) {
        unsigned k = nm ? idx[r] : 0;
        uint32_t prev = first ? 0u : uint32_t(acc[r * COLS + c]);
        acc[r * COLS + c] = int32_t(prev + uint32_t(int32_t(w[r]) * int32_t(act[k * COLS + c])));
      }
  }
};

class PeArray {
public:
  VerilatedContext ctx;
  std::unique_ptr<Vkiln_pe_array> m{new Vkiln_pe_array(&ctx)};
  PeArray() {
    m->rst_n = 0;
    m->clear = m->valid = m->first = m->nm = 0;
    clock(*m);
    m->rst_n = 1;
  }
  void step(const std::vector<int8_t> &w, const std::vector<uint8_t> &act, const std::vector<unsigned> &idx, bool nm,
            bool first, bool valid = true) {
    for (unsigned r = 0; r < ROWS; ++r) setByte(m->w, r, uint8_t(w[r]));
    for (unsigned i = 0; i < NM_M * COLS; ++i) setByte(m->act, i, act[i]);
    for (unsigned r = 0; r < ROWS; ++r) setBits(m->idx, r * IDX_BITS, IDX_BITS, idx[r]);
    m->nm = nm;
    m->first = first;
    m->valid = valid;
    clock(*m);
    m->valid = 0;
  }
  void expectEq(const PeModel &pm, const char *what) {
    m->eval();
    for (unsigned i = 0; i < ROWS * COLS; ++i)
      ASSERT_EQ(int32_t(get32(m->acc, i)), pm.acc[i]) << what << ": acc[" << i / COLS << "][" << i % COLS << "]";
  }
};

TEST(HwBlock, PeArrayDenseAndNM) {
  std::mt19937_64 rng(seedFor("HwBlock.PeArrayDenseAndNM"));
  PeArray pe;
  PeModel pm;
  pe.expectEq(pm, "reset");
  std::vector<int8_t> w(ROWS);
  std::vector<uint8_t> act(NM_M * COLS);
  std::vector<unsigned> idx(ROWS);
  for (unsigned round = 0; round < 40 * sweep(); ++round) {
    bool nm = round % 2;
    unsigned n = unsigned(1 + rng() % NM_M); // N of this N:M GEMM (the index pattern's density)
    unsigned steps = unsigned(rng() % 40);
    bool acc = rng() % 3 == 0;
    if (!acc && steps == 0) { // GEMM without ACC, K = 0: clear
      pe.m->clear = 1;
      clock(*pe.m);
      pe.m->clear = 0;
      pm.acc.assign(ROWS * COLS, 0);
    }
    for (unsigned s = 0; s < steps; ++s) {
      for (auto &x : w) x = int8_t(rng());
      for (auto &x : act) x = uint8_t(rng());
      // N distinct indices per group are kept; step s is the (s % n)-th kept one.
      for (auto &x : idx) x = unsigned((rng() % NM_M + (s % n)) % NM_M);
      if (rng() % 8 == 0) { // extremes
        std::fill(w.begin(), w.end(), int8_t(-128));
        std::fill(act.begin(), act.end(), uint8_t(255));
      }
      if (rng() % 10 == 0) pe.step(w, act, idx, nm, false, false); // a bubble changes nothing
      bool first = !acc && s == 0;
      pe.step(w, act, idx, nm, first);
      pm.step(w, act, idx, nm, first);
    }
    pe.expectEq(pm, nm ? "N:M" : "dense");
    if (HasFatalFailure()) return;
  }
  // Wrapping at 32 bits: -128 * 255 summed 70000 times.
  std::fill(w.begin(), w.end(), int8_t(-128));
  std::fill(act.begin(), act.end(), uint8_t(255));
  std::fill(idx.begin(), idx.end(), 0u);
  for (unsigned s = 0; s < 70000; ++s) {
    pe.step(w, act, idx, true, s == 0);
    pm.step(w, act, idx, true, s == 0);
  }
  pe.expectEq(pm, "wrap");
  EXPECT_GT(pm.acc[0], 0); // it did wrap
}

// Every N in 1..NM_M: a full N:M GEMM's steps, each row selecting its own index.
TEST(HwBlock, PeArrayEveryN) {
  std::mt19937_64 rng(seedFor("HwBlock.PeArrayEveryN"));
  for (unsigned n = 1; n <= NM_M; ++n) {
    PeArray pe;
    PeModel pm;
    unsigned groups = 5;
    std::vector<uint8_t> abuf(groups * NM_M * COLS);
    for (auto &x : abuf) x = uint8_t(rng());
    std::vector<int8_t> w(ROWS);
    std::vector<unsigned> idx(ROWS);
    for (unsigned s = 0; s < groups * n; ++s) {
      unsigned g = s / n;
      std::vector<uint8_t> act(abuf.begin() + g * NM_M * COLS, abuf.begin() + (g + 1) * NM_M * COLS);
      for (auto &x : w) x = int8_t(rng());
      for (unsigned r = 0; r < ROWS; ++r) idx[r] = unsigned((r + s * 7 + rng() % 2) % NM_M);
      pe.step(w, act, idx, true, s == 0);
      // The reference model's formula: ACC += W * ABUF[(g*M + idx)*COLS + c].
      for (unsigned r = 0; r < ROWS; ++r)
        for (unsigned c = 0; c < COLS; ++c) {
          uint32_t prev = s == 0 ? 0u : uint32_t(pm.acc[r * COLS + c]);
          pm.acc[r * COLS + c] = int32_t(prev + uint32_t(int32_t(w[r]) * int32_t(abuf[(g * NM_M + idx[r]) * COLS + c])));
        }
    }
    pe.expectEq(pm, "every N");
    if (HasFatalFailure()) return;
  }
}

// ---- requantise lane -----------------------------------------------------------------------

int32_t requantRef(uint32_t acc, uint32_t bias, int32_t mult, uint32_t shift, int32_t zp, int32_t lo, int32_t hi,
                   bool raw) {
  int32_t v = int32_t(acc + bias);
  if (raw) return v;
  int64_t q = int64_t(v) * int64_t(mult);
  shift &= 63;
  if (shift) q = int64_t(uint64_t(q) + (uint64_t(1) << (shift - 1))) >> shift; // 64-bit wrap, arithmetic shift
  q += zp;
  q = q < lo ? lo : q > hi ? hi : q;
  return int32_t(q);
}

TEST(HwBlock, RequantLane) {
  std::mt19937_64 rng(seedFor("HwBlock.RequantLane"));
  VerilatedContext ctx;
  Vkiln_requant_lane m(&ctx);
  auto check = [&](uint32_t acc, uint32_t bias, int32_t mult, uint32_t shift, int32_t zp, int32_t lo, int32_t hi,
                   bool raw) {
    m.acc = acc;
    m.bias = bias;
    m.mult = uint32_t(mult);
    m.shift = shift & 63;
    m.zp = uint32_t(zp);
    m.lo = uint32_t(lo);
    m.hi = uint32_t(hi);
    m.raw = raw;
    m.eval();
    int32_t want = requantRef(acc, bias, mult, shift, zp, lo, hi, raw);
    EXPECT_EQ(int32_t(m.out), want) << "acc " << int32_t(acc) << " bias " << int32_t(bias) << " mult " << mult
                                    << " shift " << shift << " zp " << zp << " lo " << lo << " hi " << hi << " raw "
                                    << raw;
  };
  const int32_t I32MIN = INT32_MIN, I32MAX = INT32_MAX;
  const int32_t edges[] = {0, 1, -1, 2, -2, 127, 128, -128, 255, 256, 1 << 30, -(1 << 30), I32MAX, I32MIN, I32MAX - 1};
  const uint32_t shifts[] = {0, 1, 2, 30, 31, 32, 33, 62, 63};
  for (int32_t a : edges)
    for (int32_t mult : edges)
      for (uint32_t sh : shifts) {
        check(uint32_t(a), 0, mult, sh, 0, I32MIN, I32MAX, false); // no clamp: the rounding itself
        check(uint32_t(a), 5, mult, sh, -128, -128, 127, false);
        check(uint32_t(a), uint32_t(I32MAX), mult, sh, 3, 3, 255, false); // bias wraps
      }
  // Round half up on exact halves, negative and positive.
  for (int32_t v = -40; v <= 40; ++v)
    for (uint32_t sh = 1; sh < 5; ++sh) check(uint32_t(v), 0, 1, sh, 0, I32MIN, I32MAX, false);
  check(0, 0, 0, 0, 0, 10, 5, false); // lo > hi: lo is tested first
  check(20, 0, 1, 0, 0, 10, 5, false);
  check(uint32_t(I32MIN), 0, I32MIN, 63, 0, I32MIN, I32MAX, false); // 2^62 + 2^62 wraps
  check(uint32_t(I32MIN), uint32_t(-1), 7, 0, 0, 0, 0, true);       // RAW wraps too
  for (unsigned i = 0; i < 200000 * sweep(); ++i) {
    uint32_t acc = uint32_t(rng()), bias = uint32_t(rng()), sh = uint32_t(rng());
    int32_t mult = int32_t(rng());
    if (rng() % 2) mult >>= rng() % 31;
    if (rng() % 2) acc = uint32_t(int32_t(acc) >> (rng() % 31)), bias = uint32_t(int32_t(bias) >> (rng() % 31));
    int32_t zp = int32_t(rng() % 256) - 128, lo = rng() % 2 ? zp : int32_t(rng()), hi = rng() % 2 ? 255 : int32_t(rng());
    check(acc, bias, mult, sh, zp, lo, hi, rng() % 8 == 0);
    if (HasFailure()) return;
  }
}

// ---- pool unit ---------------------------------------------------------------------------

TEST(HwBlock, Pool) {
  std::mt19937_64 rng(seedFor("HwBlock.Pool"));
  VerilatedContext ctx;
  Vkiln_pool m(&ctx);
  m.rst_n = 0;
  m.valid = 0;
  clock(m);
  m.rst_n = 1;
  for (unsigned it = 0; it < 3000 * sweep(); ++it) {
    unsigned win = unsigned(1 + rng() % 12), row = unsigned(rng() % ROWS);
    bool zero = rng() % 6 == 0;
    std::vector<uint8_t> want(COLS, 0);
    for (unsigned w = 0; w < (zero ? 1 : win); ++w) {
      m.valid = 1;
      m.first = w == 0;
      m.last = zero || w + 1 == win;
      m.zero = zero;
      m.row = row;
      for (unsigned c = 0; c < COLS; ++c) {
        uint8_t v = rng() % 4 == 0 ? 0 : uint8_t(rng());
        setByte(m.data, c, v);
        if (!zero) want[c] = std::max(want[c], v); // the reference model starts at 0
      }
      m.clk = 0;
      m.eval();
      if (m.last) {
        ASSERT_TRUE(m.out_we);
        ASSERT_EQ(unsigned(m.out_row), row);
        for (unsigned c = 0; c < COLS; ++c) ASSERT_EQ(get32(m.out_data, c), want[c]) << "column " << c;
      } else {
        ASSERT_FALSE(m.out_we);
      }
      m.clk = 1;
      m.eval();
      if (rng() % 5 == 0) { // idle cycle in between
        m.valid = 0;
        clock(m);
      }
    }
  }
}

// ---- DMA engine ----------------------------------------------------------------------------

constexpr uint64_t kMem = 1 << 16;

struct DmaRef { // the reference model's LOAD / LOAD_WIN / STORE over flat arrays
  std::vector<uint8_t> mem = std::vector<uint8_t>(kMem), buf[4];
  std::vector<int32_t> out = std::vector<int32_t>(COLS * ROWS);
  uint32_t r[32] = {};
  uint32_t rd = 0, wt = 0, wr = 0;
  DmaRef() {
    buf[0].resize(kCfg.wbuf_bytes);
    buf[1].resize(kCfg.ibuf_bytes);
    buf[2].resize(kCfg.pbuf_bytes);
    buf[3].resize(kCfg.abuf_bytes);
  }
  uint8_t mb(uint64_t a) const { return a < kMem ? mem[a] : 0; }
  uint32_t beats(uint64_t a, uint64_t n) const { return uint32_t((a + n - 1) / BUS - a / BUS + 1); }
  void load(uint32_t a) {
    uint64_t src = r[KILN_ACCEL_R_SRC], len = r[KILN_ACCEL_R_LEN], boff = r[KILN_ACCEL_R_BOFF];
    for (uint64_t i = 0; i < len; ++i) buf[a][boff + i] = mb(src + i);
    if (len) {
      rd += beats(src, len);
      if (a != KILN_ACCEL_BUF_A) wt += beats(src, len);
    }
  }
  void loadWin() {
    uint64_t H = r[KILN_ACCEL_R_H], W = r[KILN_ACCEL_R_W], C = r[KILN_ACCEL_R_C], KH = r[KILN_ACCEL_R_KH],
             KW = r[KILN_ACCEL_R_KW], S = r[KILN_ACCEL_R_STRIDE], OW = r[KILN_ACCEL_R_OW], npix = r[KILN_ACCEL_R_NPIX],
             aoff = r[KILN_ACCEL_R_AOFF];
    int64_t pt = int32_t(r[KILN_ACCEL_R_PAD_T]), pl = int32_t(r[KILN_ACCEL_R_PAD_L]);
    uint64_t oy = r[KILN_ACCEL_R_OY0], ox = r[KILN_ACCEL_R_OX0];
    uint8_t *A = buf[3].data() + aoff;
    for (uint64_t col = 0; col < npix; ++col) {
      for (uint64_t ky = 0; ky < KH; ++ky) {
        uint32_t rowBeats = 0, taps = 0; // a kernel row all in bounds is one run of KW*C bytes
        uint64_t rowAddr = 0;
        for (uint64_t kx = 0; kx < KW; ++kx) {
          int64_t iy = int64_t(oy * S + ky) - pt, ix = int64_t(ox * S + kx) - pl;
          uint64_t k0 = (ky * KW + kx) * C;
          if (iy < 0 || ix < 0 || uint64_t(iy) >= H || uint64_t(ix) >= W) {
            for (uint64_t ch = 0; ch < C; ++ch) A[(k0 + ch) * COLS + col] = uint8_t(r[KILN_ACCEL_R_PADVAL]);
            continue;
          }
          uint64_t addr = r[KILN_ACCEL_R_SRC] + (uint64_t(iy) * W + uint64_t(ix)) * C;
          if (kx == 0) rowAddr = addr;
          for (uint64_t ch = 0; ch < C; ++ch) A[(k0 + ch) * COLS + col] = mb(addr + ch);
          rowBeats += beats(addr, C);
          ++taps;
        }
        rd += taps == KW ? beats(rowAddr, KW * C) : rowBeats;
      }
      if (++ox == OW) ox = 0, ++oy;
    }
  }
  void store(bool raw) {
    uint64_t npix = r[KILN_ACCEL_R_NPIX], nrows = r[KILN_ACCEL_R_NROWS], esz = raw ? 4 : 1;
    for (uint64_t col = 0; col < npix && nrows; ++col) {
      uint64_t base = r[KILN_ACCEL_R_DST] + col * uint64_t(r[KILN_ACCEL_R_DSTRIDE]);
      for (uint64_t row = 0; row < nrows; ++row)
        for (uint64_t b = 0; b < esz; ++b)
          if (base + row * esz + b < kMem) mem[base + row * esz + b] = uint8_t(uint32_t(out[col * ROWS + row]) >> (8 * b));
      wr += beats(base, nrows * esz);
    }
  }
};

struct DmaBench {
  VerilatedContext ctx;
  std::unique_ptr<Vkiln_dma> m{new Vkiln_dma(&ctx)};
  DmaRef dut; // the DUT's side: its memory, the buffers its write ports fill, OUT
  std::mt19937_64 &rng;
  uint32_t latency, stall;
  struct Resp {
    uint64_t due;
    uint8_t d[BUS];
  };
  std::deque<Resp> resp;
  uint64_t cycle = 0, busyCycles = 0;
  DmaBench(std::mt19937_64 &g, uint32_t lat, uint32_t st) : rng(g), latency(lat), stall(st) {
    m->rst_n = 0;
    m->start = 0;
    m->f_req = 0;
    m->mem_gnt = 0;
    m->mem_rvalid = 0;
    tick();
    tick();
    m->rst_n = 1;
  }
  void tick() {
    m->mem_gnt = (stall && rng() % 100 < stall) ? 0 : 1;
    if (!resp.empty() && resp.front().due <= cycle) {
      m->mem_rvalid = 1;
      for (unsigned i = 0; i < BUS; ++i) setByte(m->mem_rdata, i, resp.front().d[i]);
      resp.pop_front();
    } else {
      m->mem_rvalid = 0;
    }
    m->clk = 0;
    m->eval();
    // OUT column for STORE (combinational read).
    for (unsigned r = 0; r < ROWS; ++r) set32(m->st_data, r, uint32_t(dut.out[unsigned(m->st_col) * ROWS + r]));
    m->eval();
    if (m->rst_n) {
      dut.rd += m->cnt_rd;
      dut.wt += m->cnt_wt;
      dut.wr += m->cnt_wr;
      // Buffer write ports.
      if (m->wb_valid)
        for (unsigned j = 0; j < BUS; ++j)
          if ((uint64_t(m->wb_mask) >> j) & 1) {
            uint32_t a = uint32_t(m->wb_base) + j * (m->wb_stride_cols ? COLS : 1);
            ASSERT_LT(a, dut.buf[m->wb_buf].size());
            dut.buf[m->wb_buf][a] = getByte(m->wb_data, j);
          }
      if (m->pad_valid)
        for (unsigned j = 0; j < BUS; ++j)
          if ((uint64_t(m->pad_mask) >> j) & 1) {
            uint32_t a = uint32_t(m->pad_base) + j * COLS;
            ASSERT_LT(a, dut.buf[3].size());
            dut.buf[3][a] = m->pad_val;
          }
      if (m->mem_req && m->mem_gnt) {
        uint64_t addr = m->mem_addr;
        EXPECT_EQ(addr % BUS, 0u);
        if (m->mem_we) {
          for (unsigned i = 0; i < BUS; ++i)
            if (((uint64_t(m->mem_wstrb) >> i) & 1) && addr + i < kMem) dut.mem[addr + i] = getByte(m->mem_wdata, i);
        } else {
          Resp r;
          r.due = cycle + latency;
          for (unsigned i = 0; i < BUS; ++i) r.d[i] = addr + i < kMem ? dut.mem[addr + i] : 0;
          resp.push_back(r);
        }
      }
    }
    m->clk = 1;
    m->eval();
    ++cycle;
  }
  void command(unsigned cmd, unsigned bufSel, bool raw, const uint32_t *regs) {
    for (unsigned i = 0; i < 32; ++i) set32(m->regs, i, regs[i]);
    m->cmd = cmd;
    m->cmd_buf = bufSel;
    m->cmd_raw = raw;
    m->start = 1;
    tick();
    m->start = 0;
    uint64_t c0 = cycle;
    for (unsigned n = 0; n < 1000000; ++n) {
      m->eval();
      if (!m->busy && !m->outstanding) break;
      tick();
    }
    busyCycles += cycle - c0;
    ASSERT_FALSE(m->busy);
  }
};

void compareDma(const DmaRef &want, const DmaRef &got, const std::string &what) {
  EXPECT_EQ(want.rd, got.rd) << what << ": read beats";
  EXPECT_EQ(want.wt, got.wt) << what << ": weight beats";
  EXPECT_EQ(want.wr, got.wr) << what << ": write beats";
  for (int b = 0; b < 4; ++b) EXPECT_TRUE(want.buf[b] == got.buf[b]) << what << ": buffer " << b << " differs";
  EXPECT_TRUE(want.mem == got.mem) << what << ": memory differs";
}

TEST(HwBlock, Dma) {
  std::mt19937_64 rng(seedFor("HwBlock.Dma"));
  for (auto [lat, stall] : {std::pair<uint32_t, uint32_t>{1, 0}, {4, 0}, {9, 40}}) {
    DmaBench tb(rng, lat, stall);
    DmaRef ref;
    for (auto &x : ref.mem) x = uint8_t(rng());
    for (auto &x : ref.out) x = int32_t(rng());
    tb.dut.mem = ref.mem;
    tb.dut.out = ref.out;
    auto u = [&](uint64_t lo, uint64_t hi) { return lo + rng() % (hi - lo + 1); };
    for (unsigned it = 0; it < 150 * sweep() && !testing::Test::HasFailure(); ++it) {
      uint32_t *r = ref.r;
      std::fill(r, r + 32, 0u);
      unsigned kind = unsigned(rng() % 3);
      std::string what = "iteration " + std::to_string(it) + " latency " + std::to_string(lat);
      if (kind == 0) { // LOAD
        uint32_t a = uint32_t(rng() % 4), size = uint32_t(ref.buf[a].size());
        uint32_t len = uint32_t(u(0, std::min<uint32_t>(size, 3000)));
        r[KILN_ACCEL_R_LEN] = len;
        r[KILN_ACCEL_R_BOFF] = uint32_t(u(0, (size - len) / BUS)) * BUS;
        r[KILN_ACCEL_R_SRC] = uint32_t(u(0, (kMem + 64) / BUS)) * BUS; // sometimes past the end
        ref.load(a);
        tb.command(0, a, false, r);
        what += " LOAD";
      } else if (kind == 1) { // LOAD_WIN
        uint32_t c = rng() % 2 ? uint32_t(u(1, 3 * BUS)) : uint32_t(rng() % 2 ? 1 : 17);
        uint32_t kh = uint32_t(u(1, 4)), kw = uint32_t(u(1, 4));
        r[KILN_ACCEL_R_H] = uint32_t(u(1, 9));
        r[KILN_ACCEL_R_W] = uint32_t(u(1, 9));
        r[KILN_ACCEL_R_C] = c;
        r[KILN_ACCEL_R_KH] = kh;
        r[KILN_ACCEL_R_KW] = kw;
        r[KILN_ACCEL_R_STRIDE] = uint32_t(u(0, 3));
        r[KILN_ACCEL_R_PAD_T] = uint32_t(int32_t(u(0, 4)) - 2);
        r[KILN_ACCEL_R_PAD_L] = uint32_t(int32_t(u(0, 4)) - 2);
        r[KILN_ACCEL_R_PADVAL] = uint32_t(rng());
        r[KILN_ACCEL_R_OW] = uint32_t(u(1, 12));
        r[KILN_ACCEL_R_OX0] = uint32_t(u(0, r[KILN_ACCEL_R_OW] - 1));
        r[KILN_ACCEL_R_OY0] = uint32_t(u(0, 10));
        r[KILN_ACCEL_R_NPIX] = uint32_t(u(0, COLS));
        r[KILN_ACCEL_R_SRC] = uint32_t(u(0, kMem + 100));
        uint64_t k = uint64_t(kh) * kw * c;
        r[KILN_ACCEL_R_AOFF] = uint32_t(u(0, kCfg.abuf_bytes / COLS - k)) * COLS;
        ref.loadWin();
        tb.command(1, 3, false, r);
        what += " LOAD_WIN C=" + std::to_string(c);
      } else { // STORE
        bool raw = rng() % 2;
        r[KILN_ACCEL_R_NPIX] = uint32_t(u(0, COLS));
        r[KILN_ACCEL_R_NROWS] = uint32_t(u(0, ROWS));
        r[KILN_ACCEL_R_DSTRIDE] = uint32_t(rng() % 4 == 0 ? u(0, 8) : u(0, 200));
        r[KILN_ACCEL_R_DST] = uint32_t(u(0, kMem + 64));
        ref.store(raw);
        tb.command(2, 0, raw, r);
        what += " STORE";
      }
      compareDma(ref, tb.dut, what);
    }
  }
}

} // namespace

// ---- REBUILD unit ------------------------------------------------------------------------

namespace {

// The reference model's REBUILD loop (accel_ref.c) over flat IBUF/WBUF arrays; the
// parameters are legal (the controller checks them).
void rebuildRef(const std::vector<uint8_t> &I, std::vector<uint8_t> &Wb, uint32_t cfgr, uint64_t K, uint64_t C,
                uint64_t woff, uint64_t ioff, uint64_t len, uint64_t sdb) {
  const int flat = cfgr & 1;
  const uint32_t b = (cfgr >> 1) & 7, group = cfgr >> 16;
  const uint64_t P = K / 3;
  int8_t *Wt = (int8_t *)Wb.data() + woff;
  const int32_t emax = (1 << b) - 1;
  const uint64_t maskBytes = (ROWS + 7) / 8, end = ioff + len;
  uint64_t pos = ioff + ROWS;
  auto SD = [&](uint64_t at) -> uint8_t { return at < end ? I[at] : 0; };
  for (uint64_t p = 0; p < P; ++p) {
    const uint64_t g = flat ? p / group : (p % C) / group;
    const int8_t *B = (const int8_t *)I.data() + sdb + 9 * g;
    uint64_t bit = (pos + maskBytes) * 8;
    for (uint64_t row = 0; row < ROWS; ++row) {
      int32_t w[3] = {0, 0, 0};
      if ((SD(pos + row / 8) >> (row % 8)) & 1) {
        for (int i = 0; i < 3; ++i) {
          uint32_t code = 0;
          for (uint32_t t = 0; t <= b; ++t, ++bit) code |= uint32_t((SD(bit / 8) >> (bit % 8)) & 1) << t;
          const uint32_t e = code & ((1u << b) - 1), neg = (code >> b) & 1;
          if (!e) continue;
          for (int j = 0; j < 3; ++j) {
            int32_t term = int32_t(B[3 * i + j]) * (1 << (emax - int32_t(e)));
            w[j] += neg ? -term : term;
          }
        }
      }
      const uint32_t sh = I[ioff + row] & 31;
      for (int j = 0; j < 3; ++j) {
        int32_t v = sh ? int32_t((int64_t(w[j]) + (int64_t(1) << (sh - 1))) >> sh) : w[j];
        v = v < -127 ? -127 : v > 127 ? 127 : v;
        const uint64_t k = flat ? 3 * p + uint64_t(j) : ((p / C) * 3 + uint64_t(j)) * C + p % C;
        Wt[k * ROWS + row] = uint8_t(int8_t(v));
      }
    }
    pos = (bit + 7) / 8;
  }
}

struct RebuildBench {
  static constexpr unsigned SLOT = ROWS * IDX_BITS / 8;
  VerilatedContext ctx;
  std::unique_ptr<Vkiln_rebuild> m{new Vkiln_rebuild(&ctx)};
  std::vector<uint8_t> ibuf, wbuf;
  bool pend = false;
  uint32_t pendAddr = 0;
  uint64_t cycle = 0;
  RebuildBench() : ibuf(kCfg.ibuf_bytes), wbuf(kCfg.wbuf_bytes) {
    m->rst_n = 0;
    m->start = 0;
    tick();
    tick();
    m->rst_n = 1;
  }
  void tick() {
    // IBUF: the row read last cycle
    for (unsigned s = 0; s < SLOT; ++s)
      setByte(m->i_data, s, pend && pendAddr + s < ibuf.size() ? ibuf[pendAddr + s] : uint8_t(0x5A));
    m->clk = 0;
    m->eval();
    pend = m->rst_n && m->i_re;
    if (pend) {
      pendAddr = m->i_addr;
      EXPECT_EQ(pendAddr % SLOT, 0u);
    }
    if (m->rst_n && m->w_we) {
      uint32_t a = m->w_addr;
      EXPECT_EQ(a % ROWS, 0u);
      EXPECT_LE(uint64_t(a) + ROWS, wbuf.size());
      for (unsigned r = 0; r < ROWS && a + r < wbuf.size(); ++r) wbuf[a + r] = getByte(m->w_data, r);
    }
    m->clk = 1;
    m->eval();
    ++cycle;
  }
  uint64_t run(uint32_t cfg, uint32_t K, uint32_t C, uint32_t woff, uint32_t ioff, uint32_t len, uint32_t sdb) {
    m->sd_cfg = cfg;
    m->k_in = K;
    m->c_in = C;
    m->woff_in = woff;
    m->ioff_in = ioff;
    m->len_in = len;
    m->sdb_in = sdb;
    m->start = 1;
    tick();
    m->start = 0;
    uint64_t c0 = cycle;
    for (unsigned n = 0; n < 10000000 && m->busy; ++n) tick();
    EXPECT_FALSE(m->busy);
    return cycle - c0;
  }
};

// Writes a SmartDeal stream (shifts, then P records) at ioff; returns its length.
uint32_t writeStream(std::mt19937_64 &rng, std::vector<uint8_t> &I, uint32_t ioff, uint32_t P, uint32_t b,
                     unsigned maskMode, unsigned shMode) {
  std::vector<uint8_t> s;
  for (unsigned r = 0; r < ROWS; ++r) {
    uint8_t v = uint8_t(rng());
    if (shMode == 1) v = uint8_t(v & ~31u);      // shift 0 (high bits ignored)
    else if (shMode == 2) v = uint8_t(v | 31u);  // shift 31
    else if (shMode == 3) v = uint8_t(rng() % 8); // small shifts
    s.push_back(v);
  }
  const unsigned mb = (ROWS + 7) / 8;
  for (uint32_t p = 0; p < P; ++p) {
    std::vector<uint8_t> mask(mb);
    unsigned mode = maskMode == 3 ? unsigned(rng() % 3) : maskMode;
    for (unsigned r = 0; r < ROWS; ++r) {
      bool kept = mode == 0 ? (rng() & 1) : mode == 1;
      if (kept) mask[r / 8] |= uint8_t(1u << (r % 8));
    }
    if (rng() % 4 == 0) // junk in the mask bits above ROWS
      for (unsigned r = ROWS; r < 8 * mb; ++r) mask[r / 8] |= uint8_t((rng() & 1) << (r % 8));
    unsigned kept = 0;
    for (unsigned r = 0; r < ROWS; ++r) kept += (mask[r / 8] >> (r % 8)) & 1;
    s.insert(s.end(), mask.begin(), mask.end());
    unsigned nb = (kept * 3 * (b + 1) + 7) / 8;
    for (unsigned i = 0; i < nb; ++i) s.push_back(uint8_t(rng())); // codes and padding bits
  }
  for (size_t i = 0; i < s.size() && ioff + i < I.size(); ++i) I[ioff + i] = s[i];
  return uint32_t(s.size());
}

} // namespace

TEST(HwBlock, Rebuild) {
  std::mt19937_64 rng(seedFor("HwBlock.Rebuild"));
  RebuildBench tb;
  const uint32_t IB = kCfg.ibuf_bytes, WB = kCfg.wbuf_bytes;
  unsigned n = 120 * sweep();
  for (unsigned it = 0; it < n && !HasFailure(); ++it) {
    for (auto &x : tb.ibuf) x = uint8_t(rng());
    for (auto &x : tb.wbuf) x = uint8_t(rng());
    const uint32_t b = 1 + uint32_t(it % 4), flat = (it / 4) % 2;
    const uint32_t group = rng() % 3 ? 1 + uint32_t(rng() % 4) : 1 + uint32_t(rng() % 0xFFFF);
    uint32_t C = 0, K;
    if (flat) K = 3 * (1 + uint32_t(rng() % 40));
    else {
      C = 1 + uint32_t(rng() % 12);
      K = 3 * C * (1 + uint32_t(rng() % 3));
    }
    const uint32_t P = K / 3, G = ((flat ? P : C) + group - 1) / group;
    // bases: random, or extremes (clamping)
    const unsigned maskMode = unsigned(rng() % 4), shMode = unsigned(rng() % 4);
    const uint32_t maxStream = ROWS + P * ((ROWS + 7) / 8 + (ROWS * 3 * (b + 1) + 7) / 8);
    const uint32_t ioff = uint32_t(rng() % (IB - maxStream));
    const uint32_t full = writeStream(rng, tb.ibuf, ioff, P, b, maskMode, shMode);
    uint32_t len = full;
    if (rng() % 4 == 0) len = ROWS + uint32_t(rng() % (full - ROWS + 1)); // records run past LEN
    else if (rng() % 4 == 0) len = full + uint32_t(rng() % (IB - ioff - full + 1));
    const uint32_t sdb = uint32_t(rng() % (IB - 9 * G + 1));
    if (rng() % 4 == 0)
      for (uint32_t i = 0; i < 9 * G; ++i) tb.ibuf[sdb + i] = rng() & 1 ? 0x80 : 0x7F;
    const uint32_t cfg = flat | b << 1 | group << 16;
    const uint32_t woff = uint32_t(rng() % ((WB - uint64_t(K) * ROWS) / ROWS + 1)) * ROWS;
    std::vector<uint8_t> want = tb.wbuf;
    rebuildRef(tb.ibuf, want, cfg, K, C, woff, ioff, len, sdb);
    const std::vector<uint8_t> ibufBefore = tb.ibuf;
    tb.run(cfg, K, flat ? uint32_t(rng()) : C, woff, ioff, len, sdb);
    ASSERT_TRUE(tb.ibuf == ibufBefore);
    if (tb.wbuf != want) {
      size_t first = 0, cnt = 0;
      for (size_t i = 0; i < want.size(); ++i)
        if (want[i] != tb.wbuf[i]) {
          if (!cnt) first = i;
          ++cnt;
        }
      ADD_FAILURE() << "case " << it << " (b " << b << (flat ? " flat" : " taps3") << " K " << K << " C " << C
                    << " group " << group << " masks " << maskMode << " shifts " << shMode << " len " << len << "/"
                    << full << "): WBUF differs at " << cnt << " bytes, first " << first << " (step "
                    << (first - woff) / ROWS << ", row " << (first - woff) % ROWS << "): want " << int(int8_t(want[first]))
                    << " got " << int(int8_t(tb.wbuf[first]));
    }
  }
  // Cycle counts (start to done) for a few shapes, random codes, half the rows kept.
  struct Shape {
    uint32_t flat, K, C, b, group;
  };
  for (Shape sh : {Shape{0, 144, 16, 4, 1}, Shape{0, 144, 16, 2, 16}, Shape{1, 1569, 0, 2, 8}, Shape{1, 1569, 0, 1, 16}, Shape{1, 1569, 0, 4, 64}}) {
    const uint32_t P = sh.K / 3, G = ((sh.flat ? P : sh.C) + sh.group - 1) / sh.group;
    if (uint64_t(sh.K) * ROWS > WB) continue;
    for (auto &x : tb.ibuf) x = uint8_t(rng());
    const uint32_t full = writeStream(rng, tb.ibuf, 0, P, sh.b, 0, 3);
    if (full > IB - 9 * G) continue; // does not fit this IBUF
    uint64_t cyc = tb.run(sh.flat | sh.b << 1 | sh.group << 16, sh.K, sh.C, 0, 0, full, IB - 9 * G);
    std::printf("[ info ] REBUILD %s K=%u C=%u b=%u group=%u, %u stream bytes: %llu cycles (%.2f per position)\n",
                sh.flat ? "flat" : "taps3", sh.K, sh.C, sh.b, sh.group, full, (unsigned long long)cyc, double(cyc) / P);
  }
}

// The Verilated accelerator (hw_gen/sim) against the reference model (accel_ref.c):
// random legal programs and error programs run on both; after every program the whole
// device memory, STATUS, ERR_PC and every counter but CYCLES/GEMM_CYCLES must be equal.
// KILN_HW_SEED replays a run, KILN_HW_SWEEP multiplies the number of programs.
#include <gtest/gtest.h>

#include "hw_common.h"
#include "hw_gen/sim/VerilatedAccel.h"
#include "kiln_accel_config.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace {

using kiln_hw_test::seedFor;
using kiln_hw_test::sweep;

const kiln_accel_config_t kCfg = KILN_ACCEL_CFG_INIT;
constexpr uint64_t kMem = 1 << 20;       // device memory
constexpr uint64_t kData = 64 << 10;     // data starts here; programs below
constexpr uint64_t kMaxCycles = 5000000;

struct Prog {
  std::vector<uint64_t> w;
  void set(uint32_t reg, uint32_t v) { w.push_back(kiln_accel_insn(KILN_ACCEL_OP_SET, reg, v)); }
  void op(uint32_t op, uint32_t a = 0) { w.push_back(kiln_accel_insn(op, a, 0)); }
  void raw(uint64_t insn) { w.push_back(insn); }
  void end() { op(KILN_ACCEL_OP_END); }
};

struct Result {
  uint32_t status = 0, err_pc = 0, rd = 0, wr = 0, wt = 0, insns = 0, cycles = 0, gemm = 0;
};

Result runOn(kiln_accel_device_t &d, uint64_t progAddr) {
  d.reg_write(d.ctx, KILN_ACCEL_REG_PROG_ADDR, uint32_t(progAddr));
  d.reg_write(d.ctx, KILN_ACCEL_REG_CTRL, 1);
  EXPECT_EQ(d.wait(d.ctx, kMaxCycles), KILN_OK) << d.name << " did not finish";
  Result r;
  r.status = d.reg_read(d.ctx, KILN_ACCEL_REG_STATUS);
  r.err_pc = d.reg_read(d.ctx, KILN_ACCEL_REG_ERR_PC);
  r.rd = d.reg_read(d.ctx, KILN_ACCEL_REG_RD_BEATS);
  r.wr = d.reg_read(d.ctx, KILN_ACCEL_REG_WR_BEATS);
  r.wt = d.reg_read(d.ctx, KILN_ACCEL_REG_WT_BEATS);
  r.insns = d.reg_read(d.ctx, KILN_ACCEL_REG_INSNS);
  r.cycles = d.reg_read(d.ctx, KILN_ACCEL_REG_CYCLES);
  r.gemm = d.reg_read(d.ctx, KILN_ACCEL_REG_GEMM_CYCLES);
  return r;
}

// The reference model and the RTL side by side over the same memory.
struct Pair {
  kiln_accel_device_t ref{}, rtl{};
  std::vector<uint8_t> a, b;
  explicit Pair(const kiln_accel_sim_options_t &opts) {
    EXPECT_EQ(kiln_accel_ref_open(&kCfg, kMem, &ref), KILN_OK);
    EXPECT_EQ(kiln_accel_verilated_open(&kCfg, kMem, &opts, &rtl), KILN_OK);
    a.resize(kMem);
    b.resize(kMem);
  }
  ~Pair() {
    if (ref.close) ref.close(ref.ctx);
    if (rtl.close) rtl.close(rtl.ctx);
  }
  void write(uint64_t addr, const void *data, size_t n) {
    ASSERT_EQ(ref.mem_write(ref.ctx, addr, data, n), KILN_OK);
    ASSERT_EQ(rtl.mem_write(rtl.ctx, addr, data, n), KILN_OK);
  }
  void writeProg(uint64_t addr, const Prog &p) { write(addr, p.w.data(), p.w.size() * 8); }
  // Runs the program at addr on both; compares everything. Returns the reference result.
  Result run(uint64_t addr, const std::string &what) {
    Result x = runOn(ref, addr), y = runOn(rtl, addr);
    EXPECT_EQ(x.status, y.status) << what;
    EXPECT_EQ(x.err_pc, y.err_pc) << what;
    EXPECT_EQ(x.rd, y.rd) << what << ": RD_BEATS";
    EXPECT_EQ(x.wr, y.wr) << what << ": WR_BEATS";
    EXPECT_EQ(x.wt, y.wt) << what << ": WT_BEATS";
    EXPECT_EQ(x.insns, y.insns) << what << ": INSNS";
    EXPECT_EQ(ref.mem_read(ref.ctx, 0, a.data(), kMem), KILN_OK);
    EXPECT_EQ(rtl.mem_read(rtl.ctx, 0, b.data(), kMem), KILN_OK);
    if (a != b) {
      size_t first = 0, count = 0;
      for (size_t i = 0; i < kMem; ++i)
        if (a[i] != b[i]) {
          if (!count) first = i;
          ++count;
        }
      ADD_FAILURE() << what << ": memory differs at " << count << " bytes, first at 0x" << std::hex << first
                    << ": ref " << int(a[first]) << " rtl " << int(b[first]);
    }
    last = y;
    return x;
  }
  Result last;
};

// ---- random program generator -----------------------------------------------------------

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}
  uint64_t u(uint64_t lo, uint64_t hi) { return lo + rng() % (hi - lo + 1); } // [lo, hi]
  bool p(unsigned percent) { return rng() % 100 < percent; }
  template <class T> T pick(std::initializer_list<T> l) { return *(l.begin() + rng() % l.size()); }

  const uint32_t R = kCfg.rows, C = kCfg.cols, M = kCfg.nm_m, B = kCfg.bus_bytes;
  const uint32_t slot = R * kiln_accel_idx_bits(&kCfg) / 8;

  uint32_t dataAddr(uint64_t span) { // somewhere in the data area; sometimes past the end
    if (p(5)) return uint32_t(kMem - u(0, span));
    return uint32_t(u(kData, kMem - std::min<uint64_t>(span, kMem - kData)));
  }

  void load(Prog &pr) {
    uint32_t a = uint32_t(u(0, 3));
    const uint32_t size[4] = {kCfg.wbuf_bytes, kCfg.ibuf_bytes, kCfg.pbuf_bytes, kCfg.abuf_bytes};
    uint32_t len = p(10) ? 0 : p(70) ? uint32_t(u(1, 256)) : uint32_t(u(1, std::min<uint32_t>(size[a], 4096)));
    len = std::min(len, size[a]);
    uint32_t boff = uint32_t(u(0, (size[a] - len) / B)) * B;
    uint32_t src = dataAddr(len) / B * B;
    pr.set(KILN_ACCEL_R_SRC, src);
    pr.set(KILN_ACCEL_R_LEN, len);
    pr.set(KILN_ACCEL_R_BOFF, boff);
    pr.op(KILN_ACCEL_OP_LOAD, a);
  }

  void loadWin(Prog &pr) {
    uint32_t c = p(50) ? pick<uint32_t>({1, 3, 17, 16, 4}) : uint32_t(u(1, 40));
    uint32_t kh = uint32_t(u(1, 3)), kw = uint32_t(u(1, 3)), s = uint32_t(u(1, 3));
    uint32_t h = uint32_t(u(1, 10)), w = uint32_t(u(1, 10));
    int32_t pt = int32_t(u(0, 3)) - 1, pl = int32_t(u(0, 3)) - 1;
    uint32_t ow = uint32_t(u(1, w + 2)), ox0 = uint32_t(u(0, ow - 1)), oy0 = uint32_t(u(0, h + 1));
    uint32_t npix = p(10) ? 0 : uint32_t(u(1, C));
    uint64_t k = uint64_t(kh) * kw * c;
    uint32_t aoff = uint32_t(u(0, kCfg.abuf_bytes / C - k)) * C;
    pr.set(KILN_ACCEL_R_SRC, dataAddr(uint64_t(h) * w * c));
    pr.set(KILN_ACCEL_R_H, h);
    pr.set(KILN_ACCEL_R_W, w);
    pr.set(KILN_ACCEL_R_C, c);
    pr.set(KILN_ACCEL_R_KH, kh);
    pr.set(KILN_ACCEL_R_KW, kw);
    pr.set(KILN_ACCEL_R_STRIDE, s);
    pr.set(KILN_ACCEL_R_PAD_T, uint32_t(pt));
    pr.set(KILN_ACCEL_R_PAD_L, uint32_t(pl));
    pr.set(KILN_ACCEL_R_PADVAL, uint32_t(rng()));
    pr.set(KILN_ACCEL_R_OW, ow);
    pr.set(KILN_ACCEL_R_OY0, oy0);
    pr.set(KILN_ACCEL_R_OX0, ox0);
    pr.set(KILN_ACCEL_R_NPIX, npix);
    pr.set(KILN_ACCEL_R_AOFF, aoff);
    pr.op(KILN_ACCEL_OP_LOAD_WIN);
  }

  void gemm(Prog &pr) {
    bool nm = p(40), w4 = p(35);
    uint32_t a = (nm ? KILN_ACCEL_GEMM_NM : 0) | (p(40) ? KILN_ACCEL_GEMM_ACC : 0) | (w4 ? KILN_ACCEL_GEMM_W4 : 0);
    uint32_t k = p(5) ? 0 : p(50) ? uint32_t(u(1, 64)) : uint32_t(u(1, 700)), n = uint32_t(u(1, M));
    if (nm) k = k / M * M;
    uint64_t steps = nm ? k / M * n : k, wbytes = steps * (w4 ? R / 2 : R);
    // sometimes as far up WBUF as it fits (W4 with an odd step count: half a row short)
    uint32_t woff = uint32_t(p(10) ? (kCfg.wbuf_bytes - wbytes) / R : u(0, (kCfg.wbuf_bytes - wbytes) / R)) * R;
    uint32_t aoff = uint32_t(u(0, (kCfg.abuf_bytes - uint64_t(k) * C) / C)) * C;
    uint32_t ioff = uint32_t(u(0, (kCfg.ibuf_bytes - steps * slot) / slot)) * slot;
    pr.set(KILN_ACCEL_R_K, k);
    pr.set(KILN_ACCEL_R_NM_N, n);
    pr.set(KILN_ACCEL_R_WOFF, woff);
    pr.set(KILN_ACCEL_R_AOFF, aoff);
    pr.set(KILN_ACCEL_R_IOFF, ioff);
    pr.op(KILN_ACCEL_OP_GEMM, a);
  }

  void requant(Prog &pr) {
    pr.set(KILN_ACCEL_R_POFF, uint32_t(u(0, kCfg.pbuf_bytes - 12 * R)));
    int32_t zp = int32_t(u(0, 255)) - 128;
    if (p(20)) zp = int32_t(rng());
    int32_t lo = p(50) ? zp : int32_t(u(0, 300)) - 150, hi = int32_t(u(0, 300)) - 20;
    if (p(10)) lo = int32_t(rng()), hi = int32_t(rng());
    pr.set(KILN_ACCEL_R_ZP, uint32_t(zp));
    pr.set(KILN_ACCEL_R_LO, uint32_t(lo));
    pr.set(KILN_ACCEL_R_HI, uint32_t(hi));
    pr.op(KILN_ACCEL_OP_REQUANT, p(30) ? KILN_ACCEL_RAW32 : 0);
  }

  void pool(Prog &pr) {
    uint32_t c = uint32_t(p(10) ? 0 : u(1, 40)), win = uint32_t(u(1, 9));
    uint32_t ch0 = p(15) ? uint32_t(u(0, 80)) : uint32_t(u(0, c ? c - 1 : 0));
    uint64_t span = uint64_t(win) * c * C;
    pr.set(KILN_ACCEL_R_C, c);
    pr.set(KILN_ACCEL_R_WIN, win);
    pr.set(KILN_ACCEL_R_CH0, ch0);
    pr.set(KILN_ACCEL_R_AOFF, uint32_t(u(0, (kCfg.abuf_bytes - span) / C)) * C);
    pr.op(KILN_ACCEL_OP_POOL);
  }

  void store(Prog &pr) {
    bool raw = p(40);
    uint32_t nrows = p(5) ? 0 : uint32_t(u(1, R)), npix = p(5) ? 0 : uint32_t(u(1, C));
    uint32_t dstride = p(20) ? uint32_t(u(0, 8)) : uint32_t(u(nrows * (raw ? 4 : 1), 300));
    pr.set(KILN_ACCEL_R_DST, dataAddr(uint64_t(dstride) * npix + 4 * R));
    pr.set(KILN_ACCEL_R_DSTRIDE, dstride);
    pr.set(KILN_ACCEL_R_NPIX, npix);
    pr.set(KILN_ACCEL_R_NROWS, nrows);
    pr.op(KILN_ACCEL_OP_STORE, raw ? KILN_ACCEL_RAW32 : 0);
  }

  // REBUILD over the random IBUF (its bytes are the shifts, masks, codes and bases: about
  // half of the rows kept, every exponent and sign), sometimes with LEN cutting the records
  // short; usually followed by a GEMM over the rebuilt rows, REQUANT raw and STORE raw so
  // the weights reach device memory.
  void rebuild(Prog &pr) {
    const uint32_t ib = kCfg.ibuf_bytes;
    const uint32_t b = uint32_t(u(1, 4)), flat = p(50) ? 1u : 0u;
    const uint32_t group = p(50) ? uint32_t(u(1, 4)) : uint32_t(u(1, 70));
    uint32_t c = 0, k;
    if (flat) k = 3 * uint32_t(p(20) ? u(1, 3) : p(90) ? u(1, 16) : u(1, 60));
    else {
      c = p(30) ? pick<uint32_t>({1, 3, 16}) : uint32_t(u(1, 8));
      k = 3 * c * uint32_t(p(80) ? 1 : u(2, 3));
    }
    const uint32_t P = k / 3, G = ((flat ? P : c) + group - 1) / group;
    const uint32_t rec = (R + 7) / 8 + (R * 3 * (b + 1) + 7) / 8;
    const uint32_t full = std::min<uint32_t>(R + P * rec, ib);
    const uint32_t len = p(30) ? uint32_t(u(R, full)) : std::min<uint32_t>(full + uint32_t(u(0, 8)), ib);
    pr.set(KILN_ACCEL_R_SD_CFG, flat | b << 1 | group << 16);
    pr.set(KILN_ACCEL_R_K, k);
    pr.set(KILN_ACCEL_R_C, flat ? uint32_t(rng()) : c);
    const uint32_t woff = uint32_t(u(0, (kCfg.wbuf_bytes - uint64_t(k) * R) / R)) * R;
    pr.set(KILN_ACCEL_R_WOFF, woff);
    pr.set(KILN_ACCEL_R_IOFF, uint32_t(u(0, ib - len)));
    pr.set(KILN_ACCEL_R_LEN, len);
    pr.set(KILN_ACCEL_R_SDB, uint32_t(u(0, ib - 9 * G)));
    pr.op(KILN_ACCEL_OP_REBUILD);
    if (p(80)) {
      pr.set(KILN_ACCEL_R_AOFF, uint32_t(u(0, (kCfg.abuf_bytes - uint64_t(k) * C) / C)) * C);
      pr.op(KILN_ACCEL_OP_GEMM, 0);
      pr.set(KILN_ACCEL_R_POFF, uint32_t(u(0, kCfg.pbuf_bytes - 12 * R)));
      pr.op(KILN_ACCEL_OP_REQUANT, KILN_ACCEL_RAW32);
      pr.set(KILN_ACCEL_R_DST, dataAddr(uint64_t(4 * R) * C));
      pr.set(KILN_ACCEL_R_DSTRIDE, 4 * R);
      pr.set(KILN_ACCEL_R_NPIX, C);
      pr.set(KILN_ACCEL_R_NROWS, R);
      pr.op(KILN_ACCEL_OP_STORE, KILN_ACCEL_RAW32);
    }
  }

  void noise(Prog &pr) { // a SET of a random register to a random value
    pr.set(uint32_t(u(0, KILN_ACCEL_NUM_REGS - 1)), uint32_t(rng()));
  }

  Prog program(unsigned ops) {
    Prog pr;
    for (unsigned i = 0; i < ops; ++i) {
      switch (u(0, 10)) {
      case 0: case 1: load(pr); break;
      case 2: case 3: loadWin(pr); break;
      case 4: case 5: gemm(pr); break;
      case 6: requant(pr); break;
      case 7: pool(pr); break;
      case 8: store(pr); break;
      case 10: if (p(50)) rebuild(pr); else load(pr); break;
      default: noise(pr); store(pr); break;
      }
    }
    pr.end();
    return pr;
  }
};

void fillRandom(Pair &pr, std::mt19937_64 &rng) {
  std::vector<uint8_t> data(kMem - kData);
  for (auto &x : data) x = uint8_t(rng());
  pr.write(kData, data.data(), data.size());
}

// Loads every buffer with random bytes (PBUF with sane shifts half of the time).
Prog fillBuffers(Gen &g) {
  Prog pr;
  const uint32_t size[4] = {kCfg.wbuf_bytes, kCfg.ibuf_bytes, kCfg.pbuf_bytes, kCfg.abuf_bytes};
  for (uint32_t a = 0; a < 4; ++a) {
    pr.set(KILN_ACCEL_R_SRC, uint32_t(g.u(kData / g.B, (kMem - size[a]) / g.B)) * g.B);
    pr.set(KILN_ACCEL_R_LEN, size[a]);
    pr.set(KILN_ACCEL_R_BOFF, 0);
    pr.op(KILN_ACCEL_OP_LOAD, a);
  }
  pr.end();
  return pr;
}

struct SimCase {
  uint32_t latency, stall;
  unsigned programs;
};
void PrintTo(const SimCase &c, std::ostream *os) { *os << "latency " << c.latency << ", stall " << c.stall << "%"; }

class HwAccelRandom : public ::testing::TestWithParam<SimCase> {};

TEST_P(HwAccelRandom, LegalPrograms) {
  const SimCase sc = GetParam();
  std::string name = "HwAccelRandom.LegalPrograms/lat" + std::to_string(sc.latency) + "_stall" + std::to_string(sc.stall);
  uint64_t seed = seedFor(name.c_str());
  kiln_accel_sim_options_t opts{sc.latency, sc.stall, seed};
  Pair pair(opts);
  Gen g(seed);
  fillRandom(pair, g.rng);
  Prog init = fillBuffers(g);
  pair.writeProg(0, init);
  pair.run(0, "buffer fill");
  unsigned n = sc.programs * sweep();
  Result totals;
  for (unsigned i = 0; i < n && !HasFailure(); ++i) {
    Prog pr = g.program(unsigned(g.u(1, 20)));
    uint64_t at = g.u(0, (kData - pr.w.size() * 8) / 8) * 8;
    pair.writeProg(at, pr);
    Result r = pair.run(at, "program " + std::to_string(i));
    EXPECT_EQ(r.status, 2u) << "program " << i << " is not legal (generator bug): error " << (r.status >> 8)
                            << " at " << r.err_pc;
    totals.rd += r.rd;
    totals.wr += r.wr;
    totals.insns += r.insns;
    totals.gemm += pair.last.gemm;
    if (g.p(20)) fillRandom(pair, g.rng);
  }
  std::printf("[ info ] %u programs: %u instructions, %u beats read, %u written, %u GEMM cycles, %llu cycles\n", n,
              totals.insns, totals.rd, totals.wr, totals.gemm,
              (unsigned long long)kiln_accel_verilated_total_cycles(&pair.rtl));
}

INSTANTIATE_TEST_SUITE_P(Sim, HwAccelRandom,
                         ::testing::Values(SimCase{4, 0, 400}, SimCase{1, 0, 200}, SimCase{7, 30, 200},
                                           SimCase{2, 60, 150}, SimCase{23, 10, 100}),
                         [](const ::testing::TestParamInfo<SimCase> &i) {
                           return "lat" + std::to_string(i.param.latency) + "_stall" + std::to_string(i.param.stall);
                         });

// ---- error programs ----------------------------------------------------------------------

struct ErrCase {
  const char *name;
  std::function<void(Prog &)> body; // the failing instruction last
  uint32_t code;
};

std::vector<ErrCase> errorCases() {
  const uint32_t R = kCfg.rows, C = kCfg.cols, M = kCfg.nm_m, B = kCfg.bus_bytes;
  using P = Prog;
  auto S = [](P &p, uint32_t r, uint32_t v) { p.set(r, v); };
  std::vector<ErrCase> v = {
      {"bad_opcode", [](P &p) { p.op(0x09); }, KILN_ACCEL_ERR_OPCODE},
      {"bad_opcode_7e", [](P &p) { p.op(0x7E); }, KILN_ACCEL_ERR_OPCODE},
      {"bad_opcode_ff", [](P &p) { p.op(0xFF, 3); }, KILN_ACCEL_ERR_OPCODE},
      {"bits_31_16", [](P &p) { p.raw(kiln_accel_insn(KILN_ACCEL_OP_SET, 1, 5) | (1ull << 16)); }, KILN_ACCEL_ERR_OPCODE},
      {"bits_31_end", [](P &p) { p.raw(1ull << 31); }, KILN_ACCEL_ERR_OPCODE},
      {"set_reg_32", [](P &p) { p.set(32, 1); }, KILN_ACCEL_ERR_REG},
      {"set_reg_255", [](P &p) { p.set(255, 1); }, KILN_ACCEL_ERR_REG},
      {"load_buf_4", [](P &p) { p.op(KILN_ACCEL_OP_LOAD, 4); }, KILN_ACCEL_ERR_PARAM},
      {"load_src_align", [=](P &p) { S(p, KILN_ACCEL_R_SRC, kData + 1); S(p, KILN_ACCEL_R_LEN, 16); p.op(KILN_ACCEL_OP_LOAD, 0); }, KILN_ACCEL_ERR_PARAM},
      {"load_boff_align", [=](P &p) { S(p, KILN_ACCEL_R_BOFF, B / 2); p.op(KILN_ACCEL_OP_LOAD, 3); }, KILN_ACCEL_ERR_PARAM},
      {"load_bounds", [=](P &p) { S(p, KILN_ACCEL_R_BOFF, kCfg.ibuf_bytes - B); S(p, KILN_ACCEL_R_LEN, B + 1); p.op(KILN_ACCEL_OP_LOAD, 1); }, KILN_ACCEL_ERR_BOUNDS},
      {"load_bounds_huge", [=](P &p) { S(p, KILN_ACCEL_R_BOFF, 0xFFFFFFFFu / B * B); S(p, KILN_ACCEL_R_LEN, 0xFFFFFFFFu); p.op(KILN_ACCEL_OP_LOAD, 2); }, KILN_ACCEL_ERR_BOUNDS},
      {"load_align_before_bounds", [=](P &p) { S(p, KILN_ACCEL_R_SRC, 3); S(p, KILN_ACCEL_R_LEN, 0xFFFFFFFFu); p.op(KILN_ACCEL_OP_LOAD, 0); }, KILN_ACCEL_ERR_PARAM},
  };
  auto win = [=](P &p) { // a legal LOAD_WIN set-up
    S(p, KILN_ACCEL_R_SRC, kData); S(p, KILN_ACCEL_R_H, 4); S(p, KILN_ACCEL_R_W, 4); S(p, KILN_ACCEL_R_C, 3);
    S(p, KILN_ACCEL_R_KH, 3); S(p, KILN_ACCEL_R_KW, 3); S(p, KILN_ACCEL_R_STRIDE, 1); S(p, KILN_ACCEL_R_OW, 4);
    S(p, KILN_ACCEL_R_NPIX, C); S(p, KILN_ACCEL_R_AOFF, 0);
  };
  auto W = [=](uint32_t reg, uint32_t val, uint32_t code, const char *name) {
    return ErrCase{name, [=](P &p) { win(p); p.set(reg, val); p.op(KILN_ACCEL_OP_LOAD_WIN); }, code};
  };
  v.push_back(W(KILN_ACCEL_R_NPIX, C + 1, KILN_ACCEL_ERR_PARAM, "win_npix"));
  v.push_back(W(KILN_ACCEL_R_OW, 0, KILN_ACCEL_ERR_PARAM, "win_ow0"));
  v.push_back(W(KILN_ACCEL_R_OX0, 4, KILN_ACCEL_ERR_PARAM, "win_ox0"));
  v.push_back(W(KILN_ACCEL_R_AOFF, C / 2 ? C / 2 : 1, KILN_ACCEL_ERR_PARAM, "win_aoff_align"));
  v.push_back(W(KILN_ACCEL_R_C, 0, KILN_ACCEL_ERR_PARAM, "win_c0"));
  v.push_back(W(KILN_ACCEL_R_KH, 0, KILN_ACCEL_ERR_PARAM, "win_kh0"));
  v.push_back(W(KILN_ACCEL_R_KW, 0, KILN_ACCEL_ERR_PARAM, "win_kw0"));
  v.push_back(W(KILN_ACCEL_R_AOFF, kCfg.abuf_bytes - 26 * C, KILN_ACCEL_ERR_BOUNDS, "win_bounds"));
  v.push_back(W(KILN_ACCEL_R_C, 0x10000000u, KILN_ACCEL_ERR_BOUNDS, "win_bounds_big_c"));
  v.push_back(W(KILN_ACCEL_R_AOFF, kCfg.abuf_bytes - 27 * C, 0, "win_fits_exactly"));
  auto gemm = [=](P &p) {
    S(p, KILN_ACCEL_R_K, 2 * M); S(p, KILN_ACCEL_R_NM_N, 2); S(p, KILN_ACCEL_R_WOFF, 0); S(p, KILN_ACCEL_R_AOFF, 0);
    S(p, KILN_ACCEL_R_IOFF, 0);
  };
  auto G = [=](uint32_t reg, uint32_t val, uint32_t a, uint32_t code, const char *name) {
    return ErrCase{name, [=](P &p) { gemm(p); p.set(reg, val); p.op(KILN_ACCEL_OP_GEMM, a); }, code};
  };
  const uint32_t slot = R * kiln_accel_idx_bits(&kCfg) / 8;
  v.push_back(G(KILN_ACCEL_R_K, 2 * M, 8, KILN_ACCEL_ERR_PARAM, "gemm_flags"));
  v.push_back(G(KILN_ACCEL_R_WOFF, kCfg.wbuf_bytes - M * R, KILN_ACCEL_GEMM_W4, 0, "gemm_w4_fits"));
  v.push_back(G(KILN_ACCEL_R_WOFF, kCfg.wbuf_bytes - (M - 1) * R, KILN_ACCEL_GEMM_W4, KILN_ACCEL_ERR_BOUNDS,
                "gemm_w4_bounds"));
  v.push_back(G(KILN_ACCEL_R_WOFF, kCfg.wbuf_bytes - 2 * R, KILN_ACCEL_GEMM_W4 | KILN_ACCEL_GEMM_NM, 0,
                "gemm_w4_nm_fits"));
  v.push_back(G(KILN_ACCEL_R_WOFF, R + 1, 0, KILN_ACCEL_ERR_PARAM, "gemm_woff_align"));
  v.push_back(G(KILN_ACCEL_R_AOFF, C + 1, 0, KILN_ACCEL_ERR_PARAM, "gemm_aoff_align"));
  v.push_back(G(KILN_ACCEL_R_K, M + 1, 2, KILN_ACCEL_ERR_PARAM, "gemm_nm_k"));
  v.push_back(G(KILN_ACCEL_R_K, M + 1, 0, 0, "gemm_dense_any_k"));
  v.push_back(G(KILN_ACCEL_R_NM_N, 0, 2, KILN_ACCEL_ERR_PARAM, "gemm_nm_n0"));
  v.push_back(G(KILN_ACCEL_R_NM_N, M + 1, 2, KILN_ACCEL_ERR_PARAM, "gemm_nm_n_big"));
  if (slot > 1) v.push_back(G(KILN_ACCEL_R_IOFF, 1, 2, KILN_ACCEL_ERR_PARAM, "gemm_ioff_align"));
  v.push_back(G(KILN_ACCEL_R_IOFF, 1, 0, 0, "gemm_dense_ignores_ioff"));
  v.push_back(G(KILN_ACCEL_R_WOFF, kCfg.wbuf_bytes - (2 * M - 1) * R, 0, KILN_ACCEL_ERR_BOUNDS, "gemm_w_bounds"));
  v.push_back(G(KILN_ACCEL_R_WOFF, kCfg.wbuf_bytes - 4 * R, 2 | 1, 0, "gemm_nm_w_fits"));
  v.push_back(G(KILN_ACCEL_R_WOFF, kCfg.wbuf_bytes - 3 * R, 2, KILN_ACCEL_ERR_BOUNDS, "gemm_nm_w_bounds"));
  v.push_back(G(KILN_ACCEL_R_AOFF, kCfg.abuf_bytes - (2 * M - 1) * C, 2, KILN_ACCEL_ERR_BOUNDS, "gemm_a_bounds"));
  v.push_back(G(KILN_ACCEL_R_IOFF, kCfg.ibuf_bytes / slot * slot - 3 * slot, 2, KILN_ACCEL_ERR_BOUNDS, "gemm_i_bounds"));
  v.push_back(G(KILN_ACCEL_R_K, 0xFFFFFFFFu, 0, KILN_ACCEL_ERR_BOUNDS, "gemm_k_huge"));
  v.push_back(G(KILN_ACCEL_R_WOFF, R + 1, 8, KILN_ACCEL_ERR_PARAM, "gemm_flags_first"));
  v.push_back({"requant_flags", [](P &p) { p.op(KILN_ACCEL_OP_REQUANT, 2); }, KILN_ACCEL_ERR_PARAM});
  v.push_back({"requant_bounds", [=](P &p) { S(p, KILN_ACCEL_R_POFF, kCfg.pbuf_bytes - 12 * R + 1); p.op(KILN_ACCEL_OP_REQUANT, 1); }, KILN_ACCEL_ERR_BOUNDS});
  v.push_back({"requant_fits", [=](P &p) { S(p, KILN_ACCEL_R_POFF, kCfg.pbuf_bytes - 12 * R); p.op(KILN_ACCEL_OP_REQUANT, 0); }, 0});
  auto pool = [=](P &p) { S(p, KILN_ACCEL_R_C, 5); S(p, KILN_ACCEL_R_WIN, 4); S(p, KILN_ACCEL_R_AOFF, 0); };
  v.push_back({"pool_flags", [=](P &p) { pool(p); p.op(KILN_ACCEL_OP_POOL, 1); }, KILN_ACCEL_ERR_PARAM});
  v.push_back({"pool_win0", [=](P &p) { pool(p); S(p, KILN_ACCEL_R_WIN, 0); p.op(KILN_ACCEL_OP_POOL); }, KILN_ACCEL_ERR_PARAM});
  v.push_back({"pool_aoff_align", [=](P &p) { pool(p); S(p, KILN_ACCEL_R_AOFF, 1); p.op(KILN_ACCEL_OP_POOL); }, KILN_ACCEL_ERR_PARAM});
  v.push_back({"pool_bounds", [=](P &p) { pool(p); S(p, KILN_ACCEL_R_AOFF, kCfg.abuf_bytes - 19 * C); p.op(KILN_ACCEL_OP_POOL); }, KILN_ACCEL_ERR_BOUNDS});
  v.push_back({"pool_c0_aoff_past", [=](P &p) { pool(p); S(p, KILN_ACCEL_R_C, 0); S(p, KILN_ACCEL_R_AOFF, kCfg.abuf_bytes + C); p.op(KILN_ACCEL_OP_POOL); }, KILN_ACCEL_ERR_BOUNDS});
  v.push_back({"pool_c0_win_huge", [=](P &p) { pool(p); S(p, KILN_ACCEL_R_C, 0); S(p, KILN_ACCEL_R_WIN, 0xFFFFFFFFu); p.op(KILN_ACCEL_OP_POOL); }, 0});
  v.push_back({"store_flags", [](P &p) { p.op(KILN_ACCEL_OP_STORE, 3); }, KILN_ACCEL_ERR_PARAM});
  v.push_back({"store_npix", [=](P &p) { S(p, KILN_ACCEL_R_NPIX, C + 1); p.op(KILN_ACCEL_OP_STORE); }, KILN_ACCEL_ERR_PARAM});
  v.push_back({"store_nrows", [=](P &p) { S(p, KILN_ACCEL_R_NROWS, R + 1); p.op(KILN_ACCEL_OP_STORE, 1); }, KILN_ACCEL_ERR_PARAM});
  // REBUILD: a legal set-up (taps3, b = 2, group 1, C = 2, K = 6), then one register
  // changed; the checks in the reference model's order.
  const uint32_t IB = kCfg.ibuf_bytes, WB = kCfg.wbuf_bytes;
  auto rb = [=](P &p) {
    S(p, KILN_ACCEL_R_SD_CFG, 0u | 2u << 1 | 1u << 16); S(p, KILN_ACCEL_R_K, 6); S(p, KILN_ACCEL_R_C, 2);
    S(p, KILN_ACCEL_R_WOFF, 0); S(p, KILN_ACCEL_R_IOFF, 0); S(p, KILN_ACCEL_R_LEN, IB); S(p, KILN_ACCEL_R_SDB, 0);
  };
  using RV = std::vector<std::pair<uint32_t, uint32_t>>;
  auto RB = [=](RV regs, uint32_t a, uint32_t code, const char *name) {
    return ErrCase{name, [=](P &p) { rb(p); for (auto &x : regs) p.set(x.first, x.second); p.op(KILN_ACCEL_OP_REBUILD, a); }, code};
  };
  const uint32_t CFG = KILN_ACCEL_R_SD_CFG, K_ = KILN_ACCEL_R_K, C_ = KILN_ACCEL_R_C, WO = KILN_ACCEL_R_WOFF,
                 IO = KILN_ACCEL_R_IOFF, LN = KILN_ACCEL_R_LEN, SB = KILN_ACCEL_R_SDB;
  const uint32_t flat1 = 1u | 2u << 1 | 1u << 16; // flat, b = 2, group 1
  v.push_back(RB({}, 0, 0, "rebuild_legal"));
  v.push_back(RB({}, 1, KILN_ACCEL_ERR_PARAM, "rebuild_flags"));
  v.push_back(RB({{WO, WB + 1}}, 0x80, KILN_ACCEL_ERR_PARAM, "rebuild_flags_first"));
  v.push_back(RB({{CFG, 0u << 1 | 1u << 16}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_b0"));
  v.push_back(RB({{CFG, 5u << 1 | 1u << 16}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_b5"));
  v.push_back(RB({{CFG, 7u << 1 | 1u << 16}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_b7"));
  v.push_back(RB({{CFG, 4u << 1 | 1u << 16}}, 0, 0, "rebuild_b4"));
  v.push_back(RB({{CFG, 1u << 1 | 1u << 16 | 1u << 4}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_cfg_bit4"));
  v.push_back(RB({{CFG, 1u << 1 | 1u << 16 | 1u << 15}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_cfg_bit15"));
  v.push_back(RB({{CFG, 1u << 1}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_group0"));
  v.push_back(RB({{CFG, 1u << 1 | 0xFFFFu << 16}}, 0, 0, "rebuild_group_big"));
  v.push_back(RB({{K_, 0}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_k0"));
  v.push_back(RB({{CFG, flat1}, {K_, 4}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_flat_k_mod3"));
  v.push_back(RB({{CFG, flat1}, {K_, 3}, {C_, 0}}, 0, 0, "rebuild_flat_ignores_c"));
  if (R > 1) v.push_back(RB({{WO, R + 1}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_woff_align"));
  v.push_back(RB({{C_, 0}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_taps3_c0"));
  v.push_back(RB({{C_, 4}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_taps3_k_mod_3c"));
  v.push_back(RB({{C_, 1}, {K_, 9}}, 0, 0, "rebuild_taps3_k_9c1"));
  v.push_back(RB({{C_, 0xFFFFFFFFu}, {K_, 0xFFFFFFFCu}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_taps3_c_huge"));
  v.push_back(RB({{C_, 0x55555555u}, {K_, 0xFFFFFFFFu}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_taps3_3c_eq_k"));
  v.push_back(RB({{C_, 0x2AAAAAABu}, {K_, 0x80000001u}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_taps3_k_eq_3c_odd"));
  v.push_back(RB({{C_, 0x2AAAAAABu}, {K_, 0x80000002u}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_taps3_k_ne_3c"));
  v.push_back(RB({{WO, WB - 5 * R}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_w_bounds"));
  v.push_back(RB({{WO, WB - 6 * R}}, 0, 0, "rebuild_w_fits"));
  v.push_back(RB({{CFG, flat1}, {K_, 0xFFFFFFFFu}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_k_huge"));
  v.push_back(RB({{IO, IB - R + 1}, {LN, R}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_i_bounds"));
  v.push_back(RB({{IO, IB - R}, {LN, R}}, 0, 0, "rebuild_i_fits_records_zero"));
  v.push_back(RB({{IO, 1}, {LN, 0xFFFFFFFFu}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_len_huge"));
  v.push_back(RB({{SB, IB - 17}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_sdb_bounds"));
  v.push_back(RB({{SB, IB - 18}}, 0, 0, "rebuild_sdb_fits"));
  v.push_back(RB({{SB, 0xFFFFFFFFu}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_sdb_huge"));
  v.push_back(RB({{CFG, 0u | 2u << 1 | 2u << 16}, {SB, IB - 9}}, 0, 0, "rebuild_sdb_group2_fits"));
  v.push_back(RB({{CFG, flat1}, {SB, IB - 9}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_sdb_flat_bounds"));
  v.push_back(RB({{CFG, 1u | 2u << 1 | 2u << 16}, {SB, IB - 9}}, 0, 0, "rebuild_sdb_flat_group2_fits"));
  v.push_back(RB({{LN, R - 1}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_len_short"));
  v.push_back(RB({{LN, 0}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_len0"));
  v.push_back(RB({{LN, R}}, 0, 0, "rebuild_len_rows"));
  v.push_back(RB({{LN, 0}, {C_, 0}}, 0, KILN_ACCEL_ERR_PARAM, "rebuild_param_before_bounds"));
  v.push_back(RB({{LN, 0}, {WO, WB}, {SB, IB}}, 0, KILN_ACCEL_ERR_BOUNDS, "rebuild_bounds_all"));
  v.push_back({"store_past_end", [=](P &p) {
                 S(p, KILN_ACCEL_R_NPIX, C); S(p, KILN_ACCEL_R_NROWS, R); S(p, KILN_ACCEL_R_DST, uint32_t(kMem - 40));
                 S(p, KILN_ACCEL_R_DSTRIDE, 0x7FFFFFFFu); p.op(KILN_ACCEL_OP_STORE, 1); }, 0});
  return v;
}

TEST(HwAccel, ErrorPrograms) {
  uint64_t seed = seedFor("HwAccel.ErrorPrograms");
  Gen g(seed);
  for (uint32_t lat : {1u, 5u}) {
    kiln_accel_sim_options_t opts{lat, lat == 5 ? 25u : 0u, seed};
    Pair pair(opts);
    fillRandom(pair, g.rng);
    Prog init = fillBuffers(g);
    pair.writeProg(0, init);
    pair.run(0, "buffer fill");
    for (const ErrCase &e : errorCases()) {
      // A few legal operations first (sometimes), then the failing instruction, then
      // instructions that must not run.
      Prog pr;
      if (g.p(50)) {
        g.load(pr);
        g.store(pr);
      }
      e.body(pr);
      uint32_t failPc = uint32_t(pr.w.size() - 1);
      pr.set(KILN_ACCEL_R_NPIX, 1);
      pr.set(KILN_ACCEL_R_NROWS, 1);
      pr.op(KILN_ACCEL_OP_STORE, 1);
      pr.end();
      pair.writeProg(8 * 64, pr);
      Result r = pair.run(8 * 64, e.name);
      if (e.code) {
        EXPECT_EQ(r.status, 2u | 4u | (e.code << 8)) << e.name;
        EXPECT_EQ(r.err_pc, failPc) << e.name;
      } else {
        EXPECT_EQ(r.status, 2u) << e.name;
      }
    }
  }
}

// Programs run back to back: buffers and OUT persist, counters restart; a STORE that
// overwrites the instructions after it; a start while busy is ignored.
TEST(HwAccel, BackToBack) {
  uint64_t seed = seedFor("HwAccel.BackToBack");
  Gen g(seed);
  kiln_accel_sim_options_t opts{3, 10, seed};
  Pair pair(opts);
  fillRandom(pair, g.rng);
  Prog init = fillBuffers(g);
  pair.writeProg(0, init);
  pair.run(0, "buffer fill");
  // GEMM over what the previous program loaded; then REQUANT/STORE in a third.
  Prog p1;
  g.gemm(p1);
  p1.end();
  pair.writeProg(4096, p1);
  pair.run(4096, "gemm only");
  Prog p2;
  g.requant(p2);
  p2.set(KILN_ACCEL_R_DST, kData);
  p2.set(KILN_ACCEL_R_DSTRIDE, 4 * kCfg.rows);
  p2.set(KILN_ACCEL_R_NPIX, kCfg.cols);
  p2.set(KILN_ACCEL_R_NROWS, kCfg.rows);
  p2.op(KILN_ACCEL_OP_STORE, 1);
  p2.end();
  pair.writeProg(8192, p2);
  Result r = pair.run(8192, "requant + store");
  EXPECT_EQ(r.insns, p2.w.size());
  EXPECT_EQ(pair.last.insns, p2.w.size());
  // Self-modifying: the STORE overwrites the next instructions with SETs and an END.
  Prog p3;
  // OUT column 0 holds raw int32 values; make them a SET and an END via REQUANT RAW of a
  // known ACC: easier to store pool results (zero) over the program: 8 zero bytes = END.
  p3.set(KILN_ACCEL_R_C, 0);
  p3.set(KILN_ACCEL_R_WIN, 1);
  p3.set(KILN_ACCEL_R_AOFF, 0);
  p3.op(KILN_ACCEL_OP_POOL);
  uint64_t at = 12288;
  p3.set(KILN_ACCEL_R_DST, uint32_t(at + 8 * (p3.w.size() + 5)));
  p3.set(KILN_ACCEL_R_DSTRIDE, 0);
  p3.set(KILN_ACCEL_R_NPIX, 1);
  p3.set(KILN_ACCEL_R_NROWS, 2);
  p3.op(KILN_ACCEL_OP_STORE, 1); // writes 8 zero bytes (an END) right after this instruction
  p3.raw(kiln_accel_insn(0x77, 0, 0)); // overwritten: would be an error
  p3.end();
  pair.writeProg(at, p3);
  r = pair.run(at, "self-modifying store");
  EXPECT_EQ(r.status, 2u);
  EXPECT_EQ(pair.last.status, 2u);
  // A start while busy is ignored, and STATUS reads busy until the end.
  Prog p4;
  for (int i = 0; i < 50; ++i) g.noise(p4);
  p4.end();
  pair.writeProg(16384, p4);
  kiln_accel_device_t &d = pair.rtl;
  d.reg_write(d.ctx, KILN_ACCEL_REG_PROG_ADDR, 16384);
  d.reg_write(d.ctx, KILN_ACCEL_REG_CTRL, 1);
  EXPECT_EQ(d.reg_read(d.ctx, KILN_ACCEL_REG_STATUS) & 1u, 1u);
  d.reg_write(d.ctx, KILN_ACCEL_REG_PROG_ADDR, 0);
  d.reg_write(d.ctx, KILN_ACCEL_REG_CTRL, 1);
  EXPECT_EQ(d.wait(d.ctx, kMaxCycles), KILN_OK);
  EXPECT_EQ(d.reg_read(d.ctx, KILN_ACCEL_REG_STATUS), 2u);
  EXPECT_EQ(d.reg_read(d.ctx, KILN_ACCEL_REG_INSNS), 51u);
  // Random programs back to back without refilling anything.
  for (int i = 0; i < 10; ++i) {
    Prog pr = g.program(4);
    pair.writeProg(20480, pr);
    pair.run(20480, "back-to-back " + std::to_string(i));
  }
}

TEST(HwAccel, OpenChecksConfig) {
  kiln_accel_config_t other = kCfg;
  kiln_accel_device_t d{};
  other.config_id ^= 1;
  EXPECT_EQ(kiln_accel_verilated_open(&other, 4096, nullptr, &d), KILN_ERROR_INVALID_ARGUMENT);
  other = kCfg;
  other.rows *= 2;
  EXPECT_EQ(kiln_accel_verilated_open(&other, 4096, nullptr, &d), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_accel_verilated_open(&kCfg, 0, nullptr, &d), KILN_ERROR_INVALID_ARGUMENT);
  ASSERT_EQ(kiln_accel_verilated_open(&kCfg, 4096, nullptr, &d), KILN_OK);
  EXPECT_EQ(d.reg_read(d.ctx, KILN_ACCEL_REG_CONFIG_ID), kCfg.config_id);
  EXPECT_EQ(d.reg_read(d.ctx, KILN_ACCEL_REG_STATUS), 0u);
  // A program that is all zero bytes is one END.
  kiln_accel_counters_t cnt{};
  char err[128];
  EXPECT_EQ(kiln_accel_run_program(&d, 0, 1000, &cnt, err, sizeof err), KILN_OK) << err;
  EXPECT_EQ(cnt.insns, 1u);
  d.close(d.ctx);
}

// A fresh device's buffers, ACC and OUT are zero (the model starts with random state;
// reset must clear it): GEMM over all of WBUF/ABUF, REQUANT RAW, POOL, stored over 0xFF.
TEST(HwAccel, ResetClearsEverything) {
  uint64_t seed = seedFor("HwAccel.ResetClearsEverything");
  kiln_accel_sim_options_t opts{4, 0, seed};
  Pair pair(opts);
  std::vector<uint8_t> ff(kMem - kData, 0xFF);
  pair.write(kData, ff.data(), ff.size());
  const uint32_t R = kCfg.rows, C = kCfg.cols;
  Prog p;
  p.set(KILN_ACCEL_R_NPIX, C);
  p.set(KILN_ACCEL_R_NROWS, R);
  p.set(KILN_ACCEL_R_DSTRIDE, 4 * R);
  p.set(KILN_ACCEL_R_DST, kData);
  p.op(KILN_ACCEL_OP_STORE, 1); // OUT as it is after reset
  p.set(KILN_ACCEL_R_K, std::min(kCfg.wbuf_bytes / R, kCfg.abuf_bytes / C));
  p.op(KILN_ACCEL_OP_GEMM, KILN_ACCEL_GEMM_ACC); // ACC as it is after reset, plus W x A
  p.set(KILN_ACCEL_R_POFF, kCfg.pbuf_bytes - 12 * R);
  p.op(KILN_ACCEL_OP_REQUANT, 1);
  p.set(KILN_ACCEL_R_DST, kData + 4096);
  p.op(KILN_ACCEL_OP_STORE, 1);
  p.set(KILN_ACCEL_R_C, R);
  p.set(KILN_ACCEL_R_WIN, kCfg.abuf_bytes / (R * C));
  p.op(KILN_ACCEL_OP_POOL);
  p.set(KILN_ACCEL_R_DST, kData + 8192);
  p.op(KILN_ACCEL_OP_STORE, 1);
  p.set(KILN_ACCEL_R_K, 4 * kCfg.nm_m);
  p.set(KILN_ACCEL_R_NM_N, 1);
  p.set(KILN_ACCEL_R_IOFF, kCfg.ibuf_bytes / (R * kiln_accel_idx_bits(&kCfg) / 8) * (R * kiln_accel_idx_bits(&kCfg) / 8) -
                               4 * (R * kiln_accel_idx_bits(&kCfg) / 8));
  p.op(KILN_ACCEL_OP_GEMM, KILN_ACCEL_GEMM_NM);
  p.op(KILN_ACCEL_OP_REQUANT, 1);
  p.set(KILN_ACCEL_R_DST, kData + 12288);
  p.op(KILN_ACCEL_OP_STORE, 1);
  p.end();
  pair.writeProg(0, p);
  Result r = pair.run(0, "fresh device");
  EXPECT_EQ(r.status, 2u);
}

// Cycle behaviour (printed; loose bounds so that a regression shows).
TEST(HwAccel, Performance) {
  kiln_accel_sim_options_t opts{4, 0, 1};
  kiln_accel_device_t d{};
  ASSERT_EQ(kiln_accel_verilated_open(&kCfg, kMem, &opts, &d), KILN_OK);
  auto cycles = [&](const Prog &p, Result *out = nullptr) {
    EXPECT_EQ(d.mem_write(d.ctx, 0, p.w.data(), p.w.size() * 8), KILN_OK);
    Result r = runOn(d, 0);
    EXPECT_EQ(r.status, 2u);
    if (out) *out = r;
    return r.cycles;
  };
  const uint32_t R = kCfg.rows, C = kCfg.cols, M = kCfg.nm_m;
  auto base = [&](std::function<void(Prog &)> setup) {
    Prog p;
    setup(p);
    p.end();
    return p;
  };
  // GEMM: GEMM_CYCLES - steps is the fixed overhead.
  for (uint32_t nmN : {0u, 1u, 2u, M}) {
    Prog p = base([&](Prog &q) {
      q.set(KILN_ACCEL_R_K, 256);
      q.set(KILN_ACCEL_R_NM_N, nmN ? nmN : 1);
      q.op(KILN_ACCEL_OP_GEMM, nmN ? KILN_ACCEL_GEMM_NM : 0);
    });
    Result r;
    cycles(p, &r);
    uint32_t steps = nmN ? 256 / M * nmN : 256;
    std::printf("[ perf ] GEMM K=256 %s%u: %u steps, GEMM_CYCLES %u (overhead %d)\n", nmN ? "N:M N=" : "dense",
                nmN, steps, r.gemm, int(r.gemm) - int(steps));
    EXPECT_LE(r.gemm, steps + 4);
  }
  // LOAD: cycles per beat, against an empty program with the same SETs.
  for (uint32_t len : {1024u, 16384u}) {
    len = std::min(len, kCfg.wbuf_bytes / kCfg.bus_bytes * kCfg.bus_bytes);
    Prog empty = base([&](Prog &q) {
      q.set(KILN_ACCEL_R_SRC, kData);
      q.set(KILN_ACCEL_R_LEN, len);
      q.set(KILN_ACCEL_R_BOFF, 0);
    });
    Prog p = empty;
    p.w.pop_back();
    p.op(KILN_ACCEL_OP_LOAD, 0);
    p.op(KILN_ACCEL_OP_GEMM, 0); // waits for the data
    p.end();
    Result r;
    uint32_t c = cycles(p, &r) - cycles(empty);
    std::printf("[ perf ] LOAD %u bytes: %u beats in %u cycles (%.2f beats/cycle)\n", len, r.rd, c, double(r.rd) / c);
    if (r.rd >= 256) EXPECT_GE(double(r.rd) / c, 0.9);
  }
  // LOAD_WIN: a 3x3 convolution window over C channels, COLS pixels.
  for (uint32_t ch : {3u, 16u, 64u}) {
    auto setup = [&](Prog &q) {
      q.set(KILN_ACCEL_R_SRC, kData + 5);
      q.set(KILN_ACCEL_R_H, 32);
      q.set(KILN_ACCEL_R_W, 32);
      q.set(KILN_ACCEL_R_C, ch);
      q.set(KILN_ACCEL_R_KH, 3);
      q.set(KILN_ACCEL_R_KW, 3);
      q.set(KILN_ACCEL_R_STRIDE, 1);
      q.set(KILN_ACCEL_R_PAD_T, 1);
      q.set(KILN_ACCEL_R_PAD_L, 1);
      q.set(KILN_ACCEL_R_OW, 32);
      q.set(KILN_ACCEL_R_OY0, 5);
      q.set(KILN_ACCEL_R_NPIX, C);
      q.set(KILN_ACCEL_R_AOFF, 0);
    };
    Prog empty = base(setup);
    Prog p = empty;
    p.w.pop_back();
    p.op(KILN_ACCEL_OP_LOAD_WIN);
    p.op(KILN_ACCEL_OP_GEMM, 0);
    p.end();
    Result r;
    uint32_t c = cycles(p, &r) - cycles(empty);
    std::printf("[ perf ] LOAD_WIN 3x3 C=%u, %u pixels: %u taps, %u beats in %u cycles (%.2f beats/cycle, %.2f cycles/tap)\n",
                ch, C, 9 * C, r.rd, c, double(r.rd) / c, double(c) / (9 * C));
  }
  // STORE: COLS columns of ROWS bytes (u8) and 4*ROWS bytes (raw), unaligned.
  for (uint32_t raw : {0u, 1u}) {
    auto setup = [&](Prog &q) {
      q.set(KILN_ACCEL_R_DST, kData + 3);
      q.set(KILN_ACCEL_R_DSTRIDE, R * (raw ? 4 : 1));
      q.set(KILN_ACCEL_R_NPIX, C);
      q.set(KILN_ACCEL_R_NROWS, R);
    };
    Prog empty = base(setup);
    Prog p = empty;
    p.w.pop_back();
    p.op(KILN_ACCEL_OP_STORE, raw);
    p.end();
    Result r;
    uint32_t c = cycles(p, &r) - cycles(empty);
    std::printf("[ perf ] STORE %s %ux%u: %u beats in %u cycles (%.2f beats/cycle)\n", raw ? "raw" : "u8", C, R, r.wr, c,
                double(r.wr) / c);
  }
  for (int raw = 0; raw < 2; ++raw) {
    Prog empty = base([&](Prog &) {});
    Prog p = empty;
    p.w.pop_back();
    p.op(KILN_ACCEL_OP_REQUANT, uint32_t(raw));
    p.end();
    std::printf("[ perf ] REQUANT%s: %u cycles\n", raw ? " raw" : "", cycles(p) - cycles(empty));
  }
  {
    auto setup = [&](Prog &q) {
      q.set(KILN_ACCEL_R_C, R);
      q.set(KILN_ACCEL_R_WIN, 9);
    };
    Prog empty = base(setup);
    Prog p = empty;
    p.w.pop_back();
    p.op(KILN_ACCEL_OP_POOL);
    p.end();
    std::printf("[ perf ] POOL WIN=9, C=ROWS: %u cycles\n", cycles(p) - cycles(empty));
  }
  {
    Prog p;
    for (int i = 0; i < 100; ++i) p.set(KILN_ACCEL_R_SRC, uint32_t(i));
    p.end();
    std::printf("[ perf ] 100 SETs + END: %u cycles\n", cycles(p));
  }
  d.close(d.ctx);
}

} // namespace

//===- VerilatedAccel.cpp - The Verilated accelerator as a kiln_accel_device_t -----===//
#include "hw_gen/sim/VerilatedAccel.h"

#include "Vkiln_accel.h"
#include "kiln_accel_config.h"
#include "verilated.h"

#include <array>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <random>
#include <vector>

namespace {

constexpr unsigned kBus = KILN_ACCEL_CFG_BUS_BYTES;
using Beat = std::array<uint8_t, kBus>;

// Beat <-> Verilator signal of 8*kBus bits (IData, QData or VlWide).
[[maybe_unused]] void putBeat(IData &s, const Beat &b) {
  s = 0;
  for (unsigned i = 0; i < kBus && i < 4; ++i) s |= IData(b[i]) << (8 * i);
}
[[maybe_unused]] void putBeat(QData &s, const Beat &b) {
  s = 0;
  for (unsigned i = 0; i < kBus && i < 8; ++i) s |= QData(b[i]) << (8 * i);
}
template <std::size_t N> void putBeat(VlWide<N> &s, const Beat &b) {
  for (std::size_t w = 0; w < N; ++w) s[w] = 0;
  for (unsigned i = 0; i < kBus; ++i) s[i / 4] |= EData(b[i]) << (8 * (i % 4));
}
[[maybe_unused]] uint8_t beatByte(IData s, unsigned i) { return uint8_t(s >> (8 * i)); }
[[maybe_unused]] uint8_t beatByte(QData s, unsigned i) { return uint8_t(s >> (8 * i)); }
template <std::size_t N> uint8_t beatByte(const VlWide<N> &s, unsigned i) { return uint8_t(s[i / 4] >> (8 * (i % 4))); }

struct Response {
  uint64_t due;
  Beat data;
};

struct VDevice {
  kiln_accel_config_t cfg{};
  std::unique_ptr<VerilatedContext> vctx;
  std::unique_ptr<Vkiln_accel> top;
  std::vector<uint8_t> mem;
  uint64_t memBytes = 0;
  uint32_t latency = 4, stall = 0;
  std::mt19937_64 rng;
  std::deque<Response> resp;
  uint64_t cycle = 0;

  void tick() {
    top->mem_gnt = (stall && rng() % 100 < stall) ? 0 : 1;
    if (!resp.empty() && resp.front().due <= cycle) {
      top->mem_rvalid = 1;
      putBeat(top->mem_rdata, resp.front().data);
      resp.pop_front();
    } else {
      top->mem_rvalid = 0;
    }
    top->clk = 0;
    top->eval();
    if (top->rst_n && top->mem_req && top->mem_gnt) { // the port means nothing in reset
      uint64_t addr = top->mem_addr;
      if (top->mem_we) {
        uint64_t strb = top->mem_wstrb;
        for (unsigned i = 0; i < kBus; ++i)
          if (((strb >> i) & 1) && addr + i < memBytes) mem[addr + i] = beatByte(top->mem_wdata, i);
      } else {
        Response r;
        r.due = cycle + latency;
        for (unsigned i = 0; i < kBus; ++i) r.data[i] = addr + i < memBytes ? mem[addr + i] : 0;
        resp.push_back(r);
      }
    }
    top->clk = 1;
    top->eval();
    ++cycle;
  }
};

VDevice *dev(void *ctx) { return static_cast<VDevice *>(ctx); }

void vRegWrite(void *ctx, uint32_t addr, uint32_t value) {
  VDevice *d = dev(ctx);
  if (addr > 0xFF) return; // not a register: the reference model ignores it too
  d->top->reg_we = 1;
  d->top->reg_addr = addr & 0xFF;
  d->top->reg_wdata = value;
  d->tick();
  d->top->reg_we = 0;
  d->top->eval();
}

uint32_t vRegRead(void *ctx, uint32_t addr) {
  VDevice *d = dev(ctx);
  if (addr > 0xFF) return 0;
  d->top->reg_addr = addr;
  d->top->eval();
  return d->top->reg_rdata;
}

kiln_status_t vMemWrite(void *ctx, uint64_t addr, const void *data, size_t size) {
  VDevice *d = dev(ctx);
  if (addr > d->memBytes || size > d->memBytes - addr) return KILN_ERROR_INVALID_ARGUMENT;
  if (size) std::memcpy(d->mem.data() + addr, data, size);
  return KILN_OK;
}

kiln_status_t vMemRead(void *ctx, uint64_t addr, void *data, size_t size) {
  VDevice *d = dev(ctx);
  if (addr > d->memBytes || size > d->memBytes - addr) return KILN_ERROR_INVALID_ARGUMENT;
  if (size) std::memcpy(data, d->mem.data() + addr, size);
  return KILN_OK;
}

kiln_status_t vWait(void *ctx, uint64_t maxCycles) {
  VDevice *d = dev(ctx);
  d->top->reg_addr = KILN_ACCEL_REG_STATUS;
  d->top->eval();
  for (uint64_t n = 0; d->top->reg_rdata & 1; ++n) {
    if (n >= maxCycles) return KILN_ERROR_IO;
    d->tick();
  }
  return KILN_OK;
}

void vClose(void *ctx) {
  VDevice *d = dev(ctx);
  if (!d) return;
  d->top->final();
  delete d;
}

} // namespace

extern "C" kiln_status_t kiln_accel_verilated_open(const kiln_accel_config_t *cfg, uint64_t mem_bytes,
                                                   const kiln_accel_sim_options_t *opts, kiln_accel_device_t *out) {
  if (!cfg || !out || mem_bytes == 0 || mem_bytes > (uint64_t(1) << 32)) return KILN_ERROR_INVALID_ARGUMENT;
  const kiln_accel_config_t built = KILN_ACCEL_CFG_INIT;
  if (cfg->rows != built.rows || cfg->cols != built.cols || cfg->nm_m != built.nm_m ||
      cfg->bus_bytes != built.bus_bytes || cfg->wbuf_bytes != built.wbuf_bytes ||
      cfg->ibuf_bytes != built.ibuf_bytes || cfg->abuf_bytes != built.abuf_bytes ||
      cfg->pbuf_bytes != built.pbuf_bytes)
    return KILN_ERROR_INVALID_ARGUMENT;
  VDevice *d = new (std::nothrow) VDevice;
  if (!d) return KILN_ERROR_OUT_OF_MEMORY;
  try {
    d->mem.assign(size_t(mem_bytes), 0);
  } catch (...) {
    delete d;
    return KILN_ERROR_OUT_OF_MEMORY;
  }
  d->cfg = *cfg;
  d->memBytes = mem_bytes;
  if (opts) {
    d->latency = opts->read_latency ? opts->read_latency : 4;
    d->stall = opts->stall_percent > 100 ? 100 : opts->stall_percent;
    d->rng.seed(opts->seed);
  }
  d->vctx = std::make_unique<VerilatedContext>();
  // Every flop starts random: reset (and the buffers' reset sweep) must clear them.
  d->vctx->randReset(2);
  d->vctx->randSeed(int(d->rng() & 0x7FFFFFFF));
  d->top = std::make_unique<Vkiln_accel>(d->vctx.get(), "kiln_accel");
  d->top->rst_n = 0;
  d->top->reg_we = 0;
  d->top->reg_addr = 0;
  d->top->reg_wdata = 0;
  for (int i = 0; i < 4; ++i) d->tick();
  d->resp.clear();
  d->top->rst_n = 1;
  d->tick();
  // After reset the buffers are swept to zero (STATUS reads busy meanwhile).
  for (int n = 0; (vRegRead(d, KILN_ACCEL_REG_STATUS) & 1) && n < (1 << 24); ++n) d->tick();
  d->cycle = 0;
  if (vRegRead(d, KILN_ACCEL_REG_CONFIG_ID) != cfg->config_id) {
    vClose(d);
    return KILN_ERROR_INVALID_ARGUMENT;
  }
  std::memset(out, 0, sizeof *out);
  out->ctx = d;
  out->config = &d->cfg;
  out->name = "Verilated RTL";
  out->reg_write = vRegWrite;
  out->reg_read = vRegRead;
  out->mem_write = vMemWrite;
  out->mem_read = vMemRead;
  out->wait = vWait;
  out->close = vClose;
  out->mem_bytes = mem_bytes;
  return KILN_OK;
}

extern "C" uint64_t kiln_accel_verilated_total_cycles(const kiln_accel_device_t *dev) {
  return dev && dev->ctx ? static_cast<const VDevice *>(dev->ctx)->cycle : 0;
}

//===- HwGen.cpp - Accelerator description -> SystemVerilog package + C header ---===//
#include "hw_gen/HwGen.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <utility>
#include <vector>

namespace kiln::hw {

kiln_accel_config_t defaultConfig() {
  kiln_accel_config_t c{};
  c.rows = 16;
  c.cols = 16;
  c.nm_m = 4;
  c.bus_bytes = 16;
  c.wbuf_bytes = 65536;
  c.ibuf_bytes = 8192;
  c.abuf_bytes = 32768;
  c.pbuf_bytes = 3072;
  c.config_id = 0;
  std::string s = canonical(c);
  uint32_t h = 2166136261u;
  for (unsigned char ch : s) h = (h ^ ch) * 16777619u;
  c.config_id = h;
  return c;
}

std::string canonical(const kiln_accel_config_t &c) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "rows=%u;cols=%u;nm_m=%u;bus_bytes=%u;wbuf_bytes=%u;ibuf_bytes=%u;abuf_bytes=%u;pbuf_bytes=%u",
                c.rows, c.cols, c.nm_m, c.bus_bytes, c.wbuf_bytes, c.ibuf_bytes, c.abuf_bytes, c.pbuf_bytes);
  return buf;
}

static bool pow2(uint64_t v) { return v && !(v & (v - 1)); }

bool parseConfig(const std::string &json, kiln_accel_config_t &cfg, std::string &error) {
  auto parsed = llvm::json::parse(json);
  if (!parsed) {
    error = "not JSON: " + llvm::toString(parsed.takeError());
    return false;
  }
  const llvm::json::Object *obj = parsed->getAsObject();
  if (!obj) {
    error = "the description must be a JSON object";
    return false;
  }
  cfg = defaultConfig();
  struct Key {
    const char *name;
    uint32_t *field;
    uint64_t lo, hi;
  };
  uint32_t act = 8, wgt = 8, acc = 32;
  const Key keys[] = {{"rows", &cfg.rows, 1, 256},
                      {"cols", &cfg.cols, 1, 256},
                      {"nm_m", &cfg.nm_m, 2, 16},
                      {"bus_bytes", &cfg.bus_bytes, 4, 64},
                      {"wbuf_bytes", &cfg.wbuf_bytes, 1, 1u << 24},
                      {"ibuf_bytes", &cfg.ibuf_bytes, 1, 1u << 24},
                      {"abuf_bytes", &cfg.abuf_bytes, 1, 1u << 24},
                      {"pbuf_bytes", &cfg.pbuf_bytes, 12, 1u << 24},
                      {"act_bits", &act, 8, 8},
                      {"wgt_bits", &wgt, 8, 8},
                      {"acc_bits", &acc, 32, 32}};
  for (const auto &kv : *obj) {
    const Key *k = nullptr;
    for (const Key &cand : keys)
      if (kv.first == cand.name) k = &cand;
    if (!k) {
      error = "unknown key '" + kv.first.str() + "'";
      return false;
    }
    auto v = kv.second.getAsInteger();
    if (!v || *v < int64_t(k->lo) || uint64_t(*v) > k->hi) {
      error = "'" + std::string(k->name) + "' must be an integer in [" + std::to_string(k->lo) + ", " +
              std::to_string(k->hi) + "]" +
              (k->lo == k->hi ? " (other widths are not built yet)" : "");
      return false;
    }
    *k->field = uint32_t(*v);
  }
  auto fail = [&](const std::string &m) {
    error = m;
    return false;
  };
  if (!pow2(cfg.nm_m)) return fail("'nm_m' must be a power of two");
  if (!pow2(cfg.bus_bytes) || cfg.bus_bytes < cfg.nm_m) return fail("'bus_bytes' must be a power of two >= nm_m");
  if ((cfg.rows * kiln_accel_idx_bits(&cfg)) % 8) return fail("'rows' x log2(nm_m) must be a multiple of 8");
  if (cfg.wbuf_bytes % cfg.rows) return fail("'wbuf_bytes' must be a multiple of rows");
  if (cfg.abuf_bytes % cfg.cols) return fail("'abuf_bytes' must be a multiple of cols");
  if (cfg.pbuf_bytes < 12 * cfg.rows) return fail("'pbuf_bytes' must hold 12 bytes per row");
  std::string s = canonical(cfg);
  uint32_t h = 2166136261u;
  for (unsigned char ch : s) h = (h ^ ch) * 16777619u;
  cfg.config_id = h;
  return true;
}

bool loadConfig(const std::string &path, kiln_accel_config_t &cfg, std::string &error) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf) {
    error = path + ": " + buf.getError().message();
    return false;
  }
  if (!parseConfig((*buf)->getBuffer().str(), cfg, error)) {
    error = path + ": " + error;
    return false;
  }
  return true;
}

/// The instruction set's constants, from accel.h: one table for both outputs.
static std::vector<std::pair<const char *, unsigned>> isaConstants() {
  return {
      {"OP_END", KILN_ACCEL_OP_END}, {"OP_SET", KILN_ACCEL_OP_SET}, {"OP_LOAD", KILN_ACCEL_OP_LOAD},
      {"OP_LOAD_WIN", KILN_ACCEL_OP_LOAD_WIN}, {"OP_GEMM", KILN_ACCEL_OP_GEMM}, {"OP_REQUANT", KILN_ACCEL_OP_REQUANT},
      {"OP_POOL", KILN_ACCEL_OP_POOL}, {"OP_STORE", KILN_ACCEL_OP_STORE}, {"OP_REBUILD", KILN_ACCEL_OP_REBUILD},
      {"BUF_W", KILN_ACCEL_BUF_W}, {"BUF_I", KILN_ACCEL_BUF_I}, {"BUF_P", KILN_ACCEL_BUF_P}, {"BUF_A", KILN_ACCEL_BUF_A},
      {"GEMM_ACC", KILN_ACCEL_GEMM_ACC}, {"GEMM_NM", KILN_ACCEL_GEMM_NM}, {"GEMM_W4", KILN_ACCEL_GEMM_W4},
      {"RAW32", KILN_ACCEL_RAW32},
      {"R_SRC", KILN_ACCEL_R_SRC}, {"R_DST", KILN_ACCEL_R_DST}, {"R_LEN", KILN_ACCEL_R_LEN}, {"R_BOFF", KILN_ACCEL_R_BOFF},
      {"R_H", KILN_ACCEL_R_H}, {"R_W", KILN_ACCEL_R_W}, {"R_C", KILN_ACCEL_R_C}, {"R_KH", KILN_ACCEL_R_KH},
      {"R_KW", KILN_ACCEL_R_KW}, {"R_STRIDE", KILN_ACCEL_R_STRIDE}, {"R_PAD_T", KILN_ACCEL_R_PAD_T},
      {"R_PADVAL", KILN_ACCEL_R_PADVAL}, {"R_OW", KILN_ACCEL_R_OW}, {"R_OY0", KILN_ACCEL_R_OY0},
      {"R_OX0", KILN_ACCEL_R_OX0}, {"R_NPIX", KILN_ACCEL_R_NPIX}, {"R_K", KILN_ACCEL_R_K}, {"R_NM_N", KILN_ACCEL_R_NM_N},
      {"R_WOFF", KILN_ACCEL_R_WOFF}, {"R_IOFF", KILN_ACCEL_R_IOFF}, {"R_AOFF", KILN_ACCEL_R_AOFF},
      {"R_POFF", KILN_ACCEL_R_POFF}, {"R_ZP", KILN_ACCEL_R_ZP}, {"R_LO", KILN_ACCEL_R_LO}, {"R_HI", KILN_ACCEL_R_HI},
      {"R_NROWS", KILN_ACCEL_R_NROWS}, {"R_DSTRIDE", KILN_ACCEL_R_DSTRIDE}, {"R_CH0", KILN_ACCEL_R_CH0},
      {"R_WIN", KILN_ACCEL_R_WIN}, {"R_PAD_L", KILN_ACCEL_R_PAD_L}, {"R_SD_CFG", KILN_ACCEL_R_SD_CFG}, {"R_SDB", KILN_ACCEL_R_SDB}, {"NUM_REGS", KILN_ACCEL_NUM_REGS},
      {"REG_CTRL", KILN_ACCEL_REG_CTRL}, {"REG_STATUS", KILN_ACCEL_REG_STATUS},
      {"REG_PROG_ADDR", KILN_ACCEL_REG_PROG_ADDR}, {"REG_ERR_PC", KILN_ACCEL_REG_ERR_PC},
      {"REG_CYCLES", KILN_ACCEL_REG_CYCLES}, {"REG_GEMM_CYCLES", KILN_ACCEL_REG_GEMM_CYCLES},
      {"REG_RD_BEATS", KILN_ACCEL_REG_RD_BEATS}, {"REG_WR_BEATS", KILN_ACCEL_REG_WR_BEATS},
      {"REG_WT_BEATS", KILN_ACCEL_REG_WT_BEATS}, {"REG_INSNS", KILN_ACCEL_REG_INSNS},
      {"REG_CONFIG_ID", KILN_ACCEL_REG_CONFIG_ID},
      {"ERR_NONE", KILN_ACCEL_ERR_NONE}, {"ERR_OPCODE", KILN_ACCEL_ERR_OPCODE}, {"ERR_BOUNDS", KILN_ACCEL_ERR_BOUNDS},
      {"ERR_REG", KILN_ACCEL_ERR_REG}, {"ERR_PARAM", KILN_ACCEL_ERR_PARAM},
  };
}

static std::vector<std::pair<const char *, uint32_t>> parameters(const kiln_accel_config_t &c) {
  return {{"ROWS", c.rows},           {"COLS", c.cols},
          {"NM_M", c.nm_m},           {"IDX_BITS", kiln_accel_idx_bits(&c)},
          {"BUS_BYTES", c.bus_bytes}, {"WBUF_BYTES", c.wbuf_bytes},
          {"IBUF_BYTES", c.ibuf_bytes}, {"ABUF_BYTES", c.abuf_bytes},
          {"PBUF_BYTES", c.pbuf_bytes}, {"ACT_BITS", 8},
          {"WGT_BITS", 8},            {"ACC_BITS", 32}};
}

std::string systemVerilogPackage(const kiln_accel_config_t &c) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "// Generated by kiln hw-gen from: " << canonical(c) << "\n"
     << "// Do not edit: change the description and regenerate (docs/ACCELERATOR.md).\n"
     << "package kiln_accel_pkg;\n";
  for (auto &[name, v] : parameters(c)) os << "  localparam int " << name << " = " << v << ";\n";
  os << "  localparam logic [31:0] CONFIG_ID = 32'h" << llvm::format_hex_no_prefix(c.config_id, 8) << ";\n";
  for (auto &[name, v] : isaConstants()) os << "  localparam int " << name << " = " << v << ";\n";
  os << "endpackage\n";
  return s;
}

std::string cHeader(const kiln_accel_config_t &c) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "/* Generated by kiln hw-gen from: " << canonical(c) << "\n"
     << " * Do not edit: change the description and regenerate (docs/ACCELERATOR.md). */\n"
     << "#ifndef KILN_ACCEL_CONFIG_H\n#define KILN_ACCEL_CONFIG_H\n";
  for (auto &[name, v] : parameters(c)) os << "#define KILN_ACCEL_CFG_" << name << " " << v << "u\n";
  os << "#define KILN_ACCEL_CFG_CONFIG_ID 0x" << llvm::format_hex_no_prefix(c.config_id, 8) << "u\n";
  os << "/* The configuration as the runtime's struct (kiln/accel.h). */\n"
     << "#define KILN_ACCEL_CFG_INIT {" << c.rows << "u, " << c.cols << "u, " << c.nm_m << "u, " << c.bus_bytes << "u, "
     << c.wbuf_bytes << "u, " << c.ibuf_bytes << "u, " << c.abuf_bytes << "u, " << c.pbuf_bytes << "u, 0x"
     << llvm::format_hex_no_prefix(c.config_id, 8) << "u}\n";
  os << "#endif\n";
  return s;
}

static bool writeFile(const std::string &path, const std::string &text, std::string &error) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    error = path + ": " + ec.message();
    return false;
  }
  os << text;
  return true;
}

bool generate(const kiln_accel_config_t &cfg, const std::string &rtlDir, const std::string &outDir,
              std::string &error) {
  if (auto ec = llvm::sys::fs::create_directories(outDir)) {
    error = outDir + ": " + ec.message();
    return false;
  }
  if (!writeFile(outDir + "/kiln_accel_pkg.sv", systemVerilogPackage(cfg), error) ||
      !writeFile(outDir + "/kiln_accel_config.h", cHeader(cfg), error))
    return false;
  if (rtlDir.empty()) return true;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(rtlDir, ec), end; it != end && !ec; it.increment(ec)) {
    llvm::StringRef p = it->path();
    if (!p.ends_with(".sv")) continue;
    if (auto e = llvm::sys::fs::copy_file(p, outDir + "/" + llvm::sys::path::filename(p).str())) {
      error = p.str() + ": " + e.message();
      return false;
    }
  }
  if (ec) {
    error = rtlDir + ": " + ec.message();
    return false;
  }
  return true;
}

} // namespace kiln::hw

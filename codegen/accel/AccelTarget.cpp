//===- AccelTarget.cpp - The accelerator target: accel ops -> .kaccel -------===//
//
// pipeline(): the shared front passes, then kiln-lower-to-accel, which leaves only
// accel ops. emit(): serialises each accel.layer into instruction words (a SET only
// where a register changes: the registers start at zero in every program), places the
// programs after the data, and writes <name>.kaccel (the format is in kiln/accel.h)
// and <name>.accel.mlir (the program as IR, large constants elided).
//
//===----------------------------------------------------------------------===//
#include "codegen/Target.h"
#include "dialects/accel/IR/AccelDialect.h"

#include "mlir/IR/AsmState.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <cstring>
#include <vector>

extern "C" {
#include "kiln/accel.h"
}

using namespace mlir;

namespace kiln::codegen {
namespace {

using Words = std::vector<uint64_t>;

/// The instruction words of one layer.
class ProgramWriter {
public:
  Words words;
  std::array<uint32_t, KILN_ACCEL_NUM_REGS> regs{};

  void set(unsigned reg, int64_t value) {
    uint32_t v = uint32_t(value);
    if (regs[reg] == v) return;
    regs[reg] = v;
    words.push_back(kiln_accel_insn(KILN_ACCEL_OP_SET, reg, v));
  }
  void op(unsigned opcode, unsigned a) { words.push_back(kiln_accel_insn(opcode, a, 0)); }

  LogicalResult add(Operation &insn) {
    if (auto l = dyn_cast<accel::LoadOp>(insn)) {
      set(KILN_ACCEL_R_SRC, l.getSrc());
      set(KILN_ACCEL_R_LEN, l.getLen());
      set(KILN_ACCEL_R_BOFF, l.getBoff());
      llvm::StringRef b = l.getBuf();
      op(KILN_ACCEL_OP_LOAD, b == "w" ? KILN_ACCEL_BUF_W : b == "i" ? KILN_ACCEL_BUF_I : b == "p" ? KILN_ACCEL_BUF_P
                                                                                               : KILN_ACCEL_BUF_A);
    } else if (auto w = dyn_cast<accel::LoadWinOp>(insn)) {
      set(KILN_ACCEL_R_SRC, w.getSrc());
      set(KILN_ACCEL_R_H, w.getH());
      set(KILN_ACCEL_R_W, w.getW());
      set(KILN_ACCEL_R_C, w.getC());
      set(KILN_ACCEL_R_KH, w.getKh());
      set(KILN_ACCEL_R_KW, w.getKw());
      set(KILN_ACCEL_R_STRIDE, w.getStride());
      set(KILN_ACCEL_R_PAD_T, w.getPadT());
      set(KILN_ACCEL_R_PAD_L, w.getPadL());
      set(KILN_ACCEL_R_PADVAL, w.getPadval());
      set(KILN_ACCEL_R_OW, w.getOw());
      set(KILN_ACCEL_R_OY0, w.getOy0());
      set(KILN_ACCEL_R_OX0, w.getOx0());
      set(KILN_ACCEL_R_NPIX, w.getNpix());
      set(KILN_ACCEL_R_AOFF, w.getAoff());
      op(KILN_ACCEL_OP_LOAD_WIN, 0);
    } else if (auto g = dyn_cast<accel::GemmOp>(insn)) {
      set(KILN_ACCEL_R_K, g.getK());
      set(KILN_ACCEL_R_WOFF, g.getWoff());
      set(KILN_ACCEL_R_AOFF, g.getAoff());
      if (g.getNmN()) {
        set(KILN_ACCEL_R_IOFF, g.getIoff());
        set(KILN_ACCEL_R_NM_N, g.getNmN());
      }
      op(KILN_ACCEL_OP_GEMM, (g.getAccumulate() ? KILN_ACCEL_GEMM_ACC : 0) | (g.getNmN() ? KILN_ACCEL_GEMM_NM : 0) |
                                 (g.getW4() ? KILN_ACCEL_GEMM_W4 : 0));
    } else if (auto rb = dyn_cast<accel::RebuildOp>(insn)) {
      set(KILN_ACCEL_R_K, rb.getK());
      set(KILN_ACCEL_R_WOFF, rb.getWoff());
      set(KILN_ACCEL_R_IOFF, rb.getIoff());
      set(KILN_ACCEL_R_LEN, rb.getLen());
      set(KILN_ACCEL_R_C, rb.getC());
      set(KILN_ACCEL_R_SD_CFG, (rb.getFlat() ? 1 : 0) | (rb.getBits() << 1) | (rb.getGroup() << 16));
      set(KILN_ACCEL_R_SDB, rb.getSdb());
      op(KILN_ACCEL_OP_REBUILD, 0);
    } else if (auto r = dyn_cast<accel::RequantOp>(insn)) {
      set(KILN_ACCEL_R_POFF, r.getPoff());
      if (!r.getRaw()) {
        set(KILN_ACCEL_R_ZP, r.getZp());
        set(KILN_ACCEL_R_LO, r.getLo());
        set(KILN_ACCEL_R_HI, r.getHi());
      }
      op(KILN_ACCEL_OP_REQUANT, r.getRaw() ? KILN_ACCEL_RAW32 : 0);
    } else if (auto p = dyn_cast<accel::PoolOp>(insn)) {
      set(KILN_ACCEL_R_C, p.getC());
      set(KILN_ACCEL_R_WIN, p.getWin());
      set(KILN_ACCEL_R_CH0, p.getCh0());
      set(KILN_ACCEL_R_AOFF, p.getAoff());
      op(KILN_ACCEL_OP_POOL, 0);
    } else if (auto s = dyn_cast<accel::StoreOp>(insn)) {
      set(KILN_ACCEL_R_DST, s.getDst());
      set(KILN_ACCEL_R_DSTRIDE, s.getDstride());
      set(KILN_ACCEL_R_NPIX, s.getNpix());
      set(KILN_ACCEL_R_NROWS, s.getNrows());
      op(KILN_ACCEL_OP_STORE, s.getRaw() ? KILN_ACCEL_RAW32 : 0);
    } else {
      return insn.emitError("not an accelerator instruction");
    }
    return success();
  }
};

class Bytes {
public:
  std::vector<uint8_t> b;
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
  }
  void f32(float f) {
    uint32_t v;
    std::memcpy(&v, &f, 4);
    u32(v);
  }
  void str(llvm::StringRef s, size_t width) {
    for (size_t i = 0; i < width; ++i) b.push_back(i + 1 < width && i < s.size() ? uint8_t(s[i]) : 0);
  }
  void dims(llvm::ArrayRef<int64_t> d) {
    for (int i = 0; i < KILN_ACCEL_MAX_DIMS; ++i) u64(i < int(d.size()) ? uint64_t(d[i]) : 0);
  }
  void perm(llvm::ArrayRef<int64_t> p) {
    for (int i = 0; i < KILN_ACCEL_MAX_DIMS; ++i) b.push_back(i < int(p.size()) ? uint8_t(p[i]) : 0);
  }
};

class AccelTarget : public Target {
public:
  llvm::StringRef name() const override { return "accel"; }
  std::string pipeline(const CompileOptions &o) const override {
    std::string p = frontPipeline(o) + "kiln-lower-to-accel{entry=" + o.entryName;
    if (!o.accelConfig.empty()) p += " config=\"" + o.accelConfig + "\"";
    return p + "}";
  }

  LogicalResult emit(ModuleOp module, const ModelSignature &, const CompileOptions &o, const std::string &dir,
                     Artifact &artifact) override {
    auto endAttr = module->getAttrOfType<IntegerAttr>("accel.memory_end");
    auto idAttr = module->getAttrOfType<IntegerAttr>("accel.config_id");
    accel::InputOp input;
    accel::OutputOp output;
    std::vector<accel::LayerOp> layers;
    std::vector<accel::DataOp> data;
    for (Operation &op : module.getBody()->getOperations()) {
      if (auto i = dyn_cast<accel::InputOp>(op)) input = i;
      else if (auto x = dyn_cast<accel::OutputOp>(op)) output = x;
      else if (auto l = dyn_cast<accel::LayerOp>(op)) layers.push_back(l);
      else if (auto d = dyn_cast<accel::DataOp>(op)) data.push_back(d);
    }
    if (!endAttr || !idAttr || !input || !output || layers.empty())
      return module.emitError("the accel target needs the output of kiln-lower-to-accel");
    // Programs after the data, 64-byte aligned each.
    uint64_t at = uint64_t(endAttr.getInt());
    std::vector<Words> programs;
    std::vector<uint64_t> progAddr;
    for (accel::LayerOp l : layers) {
      ProgramWriter w;
      for (Operation &insn : l.getBody().front())
        if (failed(w.add(insn))) return failure();
      w.op(KILN_ACCEL_OP_END, 0);
      at = (at + 63) / 64 * 64;
      progAddr.push_back(at);
      at += 8 * w.words.size();
      programs.push_back(std::move(w.words));
    }
    const uint64_t imageBytes = (at + 63) / 64 * 64;
    if (imageBytes > (uint64_t(1) << 32)) return module.emitError("the model does not fit 32-bit device memory");
    std::vector<uint8_t> image(imageBytes, 0);
    for (accel::DataOp d : data) {
      auto values = d.getBytes().getValues<int8_t>();
      uint64_t a = uint64_t(d.getAddr());
      for (int8_t v : values) image[a++] = uint8_t(v);
    }
    for (size_t i = 0; i < programs.size(); ++i)
      for (size_t k = 0; k < programs[i].size(); ++k)
        for (int b = 0; b < 8; ++b) image[progAddr[i] + 8 * k + b] = uint8_t(programs[i][k] >> (8 * b));

    Bytes f;
    f.b = {'K', 'A', 'C', 'L'};
    f.u32(KILN_ACCEL_FILE_VERSION);
    f.u32(uint32_t(idAttr.getInt()));
    f.u32(uint32_t(layers.size()));
    f.u64(imageBytes);
    f.u64(imageBytes);
    auto scales = output.getScales();
    f.u32(uint32_t(scales.size()));
    f.u32(0);
    f.u64(0);
    auto inDims = input.getDims(), outDims = output.getDims();
    if (inDims.size() > KILN_ACCEL_MAX_DIMS || outDims.size() > KILN_ACCEL_MAX_DIMS)
      return module.emitError("more than 8 dimensions");
    f.u64(uint64_t(input.getAddr()));
    f.u32(uint32_t(inDims.size()));
    f.u32(uint32_t(input.getZeroPoint()));
    f.f32(input.getScale().convertToFloat());
    f.u32(0);
    f.dims(inDims);
    f.perm(input.getPerm());
    f.u64(uint64_t(output.getAddr()));
    f.u32(uint32_t(outDims.size()));
    f.u32(0);
    f.dims(outDims);
    f.perm(output.getPerm());
    for (float s : scales) f.f32(s);
    for (size_t i = 0; i < layers.size(); ++i) {
      f.str(layers[i].getSymName(), KILN_ACCEL_NAME_BYTES);
      f.str(layers[i].getKind(), KILN_ACCEL_KIND_BYTES);
      f.u64(uint64_t(layers[i].getMacs()));
      f.u64(progAddr[i]);
      f.u64(programs[i].size());
    }
    f.b.insert(f.b.end(), image.begin(), image.end());
    uint64_t h = 1469598103934665603ull;
    for (uint8_t c : f.b) h = (h ^ c) * 1099511628211ull;
    f.u64(h);

    std::string path = dir + "/" + o.name + ".kaccel", irPath = dir + "/" + o.name + ".accel.mlir";
    std::error_code ec;
    {
      llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
      if (ec) return module.emitError() << "cannot write '" << path << "': " << ec.message();
      os.write(reinterpret_cast<const char *>(f.b.data()), f.b.size());
    }
    {
      llvm::raw_fd_ostream os(irPath, ec, llvm::sys::fs::OF_Text);
      if (ec) return module.emitError() << "cannot write '" << irPath << "': " << ec.message();
      module.print(os, OpPrintingFlags().elideLargeElementsAttrs(16));
    }
    artifact.files = {o.name + ".kaccel", o.name + ".accel.mlir"};
    artifact.weightsBytes = imageBytes;
    return success();
  }
};

} // namespace

std::unique_ptr<Target> createAccelTarget() { return std::make_unique<AccelTarget>(); }

} // namespace kiln::codegen

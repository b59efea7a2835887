//===- CpuTarget.cpp - x86-64 and aarch64 code generation -------------------===//
//
// TOSA -> linalg -> bufferized memrefs (weights outlined, activations in one
// planned arena) -> loops -> LLVM dialect -> LLVM IR, plus the model descriptor
// and an invoke wrapper the runtime calls; optimised with LLVM's O3 pipeline and
// emitted as a relocatable object for the target triple. Also writes the C header
// and the weights file.
//
//===----------------------------------------------------------------------===//
#include "codegen/Target.h"
#include "passes/Passes.h"
#include "runtime/include/kiln/model_abi.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Operator.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"

#include <cstdio>
#include <cstring>

using namespace mlir;

namespace kiln::codegen {

/// The .kw checksum (format version 2): FNV-1a 64 over little-endian 64-bit words,
/// then over the tail bytes; must match kiln_fnv1a64 in runtime/src/weights.c.
uint64_t weightsChecksum(const void *data, size_t size) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word = 0;
    for (int b = 7; b >= 0; --b) word = word << 8 | p[i + size_t(b)];
    h ^= word;
    h *= 0x100000001b3ull;
  }
  for (; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace {

uint64_t fnv1a(const void *data, size_t size, uint64_t h = 0xcbf29ce484222325ull) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  for (size_t k = 0; k < size; ++k) {
    h ^= p[k];
    h *= 0x100000001b3ull;
  }
  return h;
}

const char *dtypeCName(int32_t d) {
  switch (d) {
  case KILN_DTYPE_F32: return "float32";
  case KILN_DTYPE_F16: return "float16";
  case KILN_DTYPE_I64: return "int64";
  case KILN_DTYPE_I32: return "int32";
  case KILN_DTYPE_I8: return "int8";
  case KILN_DTYPE_U8: return "uint8";
  case KILN_DTYPE_BOOL: return "bool";
  default: return "invalid";
  }
}

std::string dimsText(const std::vector<int64_t> &d) {
  std::string s = "[";
  for (size_t k = 0; k < d.size(); ++k) s += (k ? ", " : "") + std::to_string(d[k]);
  return s + "]";
}

LogicalResult writeFile(const std::string &path, const void *data, size_t size) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec) {
    llvm::errs() << "error: cannot write '" << path << "': " << ec.message() << "\n";
    return failure();
  }
  os.write(static_cast<const char *>(data), size);
  os.close();
  if (os.has_error()) {
    llvm::errs() << "error: writing '" << path << "' failed\n";
    return failure();
  }
  return success();
}

/// Kiln's own attributes have no LLVM IR translation: drop them before export.
void stripKilnAttributes(ModuleOp module) {
  auto strip = [](Operation *op) {
    SmallVector<StringAttr> names;
    for (NamedAttribute a : op->getDiscardableAttrs())
      if (a.getName().strref().starts_with("kiln.")) names.push_back(a.getName());
    for (StringAttr n : names) op->removeDiscardableAttr(n);
  };
  strip(module);
  module.walk([&](Operation *op) {
    strip(op);
    if (auto fn = dyn_cast<FunctionOpInterface>(op))
      for (unsigned k = 0; k < fn.getNumArguments(); ++k) {
        fn.removeArgAttr(k, StringAttr::get(op->getContext(), "kiln.role"));
        fn.removeArgAttr(k, StringAttr::get(op->getContext(), "kiln.name"));
        fn.removeArgAttr(k, StringAttr::get(op->getContext(), "kiln.uint8"));
      }
  });
}

} // namespace

/// The passes every target that reads bufferized IR shares: graph clean-up, lowering to
/// linalg, bufferization, the compression passes and quantisation.
std::string frontPipeline(const CompileOptions &o) {
  std::string e = "entry=" + o.entryName;
  std::string quantize;
  if (o.quantObserve || !o.quantPlan.empty() || !o.quantReport.empty()) {
    quantize = "kiln-quantize{" + e + (o.quantObserve ? " observe=true" : "") + (o.quantCompare ? " compare=true" : "") +
               (o.quantDefaultBits != 32 ? " default-bits=" + std::to_string(o.quantDefaultBits) : "");
    if (!o.quantPlan.empty()) quantize += " plan=\"" + o.quantPlan + "\"";
    if (!o.quantReport.empty()) quantize += " report=\"" + o.quantReport + "\"";
    quantize += "},";
  }
  return "func.func(tosa-optional-decompositions),canonicalize,func.func(tosa-reduce-transposes),"
         "canonicalize,"
         "func.func(tosa-to-linalg-named,tosa-to-linalg),tosa-to-arith,func.func(tosa-to-tensor),"
         "canonicalize,func.func(kiln-fuse-elementwise),canonicalize,cse,func.func(kiln-split-fills),"
         "one-shot-bufferize{bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map},"
         "kiln-unique-results{" + e + "},"
         "buffer-results-to-out-params{modify-public-functions hoist-static-allocs},canonicalize,"
         + compressionPipeline(o) + quantize;
}

namespace {

class CpuTarget : public Target {
public:
  explicit CpuTarget(llvm::StringRef arch) : arch(arch.str()) {}
  llvm::StringRef name() const override { return arch; }

  std::string pipeline(const CompileOptions &o) const override {
    std::string e = "entry=" + o.entryName;
    return frontPipeline(o) + "kiln-lower-to-kernels{" + e + "},"
           "kiln-outline-weights{" + e + "},kiln-plan-arena{" + e + "},"
           "buffer-deallocation-pipeline,"
           "kiln-linalg-to-loops{parallel-work=32768},func.func(convert-linalg-to-loops,kiln-approximate-math),lower-affine,convert-scf-to-cf,canonicalize,"
           "expand-strided-metadata,lower-affine,"
           "func.func(math-expand-ops),convert-math-to-llvm,convert-math-to-libm,"
           "finalize-memref-to-llvm,convert-arith-to-llvm,convert-index-to-llvm,convert-cf-to-llvm,"
           "convert-func-to-llvm{use-bare-ptr-memref-call-conv},convert-ub-to-llvm,"
           "reconcile-unrealized-casts,canonicalize";
  }

  LogicalResult emit(ModuleOp module, const ModelSignature &sig, const CompileOptions &o,
                     const std::string &dir, Artifact &artifact) override;

private:
  std::string arch;
};

/// Adds `kiln_model_<name>` (the kiln_model_desc_t) and its invoke wrapper.
void addDescriptor(llvm::Module &m, llvm::Function *entry, const ModelSignature &sig,
                   const CompileOptions &o, bool hasWeights, bool hasArena, uint64_t weightsSize,
                   uint64_t weightsHash, uint64_t arenaSize, uint64_t arenaAlign) {
  llvm::LLVMContext &c = m.getContext();
  llvm::IRBuilder<> b(c);
  auto *ptrTy = llvm::PointerType::getUnqual(c);
  auto *i32 = b.getInt32Ty();
  auto *i64 = b.getInt64Ty();

  // void kiln_model_<name>_invoke(void *const *args)
  auto *invokeTy = llvm::FunctionType::get(b.getVoidTy(), {ptrTy}, false);
  auto *invoke = llvm::Function::Create(invokeTy, llvm::GlobalValue::InternalLinkage,
                                        "kiln_model_" + o.name + "_invoke", m);
  b.SetInsertPoint(llvm::BasicBlock::Create(c, "entry", invoke));
  llvm::SmallVector<llvm::Value *> callArgs;
  auto argAt = [&](unsigned k) {
    llvm::Value *p = b.CreateConstInBoundsGEP1_64(ptrTy, invoke->getArg(0), k);
    return b.CreateLoad(ptrTy, p);
  };
  if (hasWeights) callArgs.push_back(argAt(0));
  if (hasArena) callArgs.push_back(argAt(1));
  for (unsigned k = 0; k < sig.inputs.size() + sig.outputs.size(); ++k) callArgs.push_back(argAt(2 + k));
  b.CreateCall(entry, callArgs);
  b.CreateRetVoid();

  auto str = [&](const std::string &s, const std::string &label) {
    return b.CreateGlobalString(s, "kiln." + o.name + "." + label, 0, &m);
  };
  auto *tensorTy = llvm::StructType::get(c, {ptrTy, i32, i32, ptrTy, i64});
  auto tensors = [&](const std::vector<TensorSignature> &list, const std::string &kind) -> llvm::Constant * {
    std::vector<llvm::Constant *> elems;
    for (size_t k = 0; k < list.size(); ++k) {
      const TensorSignature &t = list[k];
      std::vector<llvm::Constant *> dims;
      for (int64_t d : t.dims) dims.push_back(llvm::ConstantInt::get(i64, d));
      auto *dimsTy = llvm::ArrayType::get(i64, dims.size());
      auto *dimsG = new llvm::GlobalVariable(m, dimsTy, true, llvm::GlobalValue::PrivateLinkage,
                                             llvm::ConstantArray::get(dimsTy, dims),
                                             "kiln." + o.name + "." + kind + std::to_string(k) + ".dims");
      elems.push_back(llvm::ConstantStruct::get(
          tensorTy, {str(t.name, kind + std::to_string(k) + ".name"), llvm::ConstantInt::get(i32, t.dtype),
                     llvm::ConstantInt::get(i32, t.dims.size()), dimsG, llvm::ConstantInt::get(i64, t.sizeBytes)}));
    }
    auto *arrTy = llvm::ArrayType::get(tensorTy, elems.size());
    return new llvm::GlobalVariable(m, arrTy, true, llvm::GlobalValue::PrivateLinkage,
                                    llvm::ConstantArray::get(arrTy, elems), "kiln." + o.name + "." + kind);
  };
  auto *descTy = llvm::StructType::get(c, {i32, i32, i32, i32, ptrTy, ptrTy, ptrTy, ptrTy, i64, i64, i64, i64, ptrTy});
  llvm::Constant *fields[] = {
      llvm::ConstantInt::get(i32, KILN_MODEL_ABI_VERSION),
      llvm::ConstantInt::get(i32, sig.inputs.size()),
      llvm::ConstantInt::get(i32, sig.outputs.size()),
      llvm::ConstantInt::get(i32, 0),
      str(o.name, "name"),
      str(o.target, "target"),
      tensors(sig.inputs, "in"),
      tensors(sig.outputs, "out"),
      llvm::ConstantInt::get(i64, weightsSize),
      llvm::ConstantInt::get(i64, weightsHash),
      llvm::ConstantInt::get(i64, arenaSize),
      llvm::ConstantInt::get(i64, arenaAlign),
      invoke,
  };
  new llvm::GlobalVariable(m, descTy, true, llvm::GlobalValue::ExternalLinkage,
                           llvm::ConstantStruct::get(descTy, fields), "kiln_model_" + o.name);
}

std::string headerText(const ModelSignature &sig, const CompileOptions &o, const std::string &source,
                       uint64_t weightsSize, uint64_t arenaSize) {
  std::string guard = "KILN_MODEL_" + llvm::StringRef(o.name).upper() + "_H";
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "/* Generated by `kiln compile` from " << source << " for target " << o.target
     << "; regenerate with the same command. Do not edit. */\n";
  os << "#ifndef " << guard << "\n#define " << guard << "\n\n#include \"kiln/kiln.h\"\n\n";
  os << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n";
  os << "/* Model '" << o.name << "'.\n * Inputs:\n";
  for (size_t k = 0; k < sig.inputs.size(); ++k)
    os << " *   " << k << ": '" << sig.inputs[k].name << "' " << dtypeCName(sig.inputs[k].dtype) << " "
       << dimsText(sig.inputs[k].dims) << "\n";
  os << " * Outputs:\n";
  for (size_t k = 0; k < sig.outputs.size(); ++k)
    os << " *   " << k << ": '" << sig.outputs[k].name << "' " << dtypeCName(sig.outputs[k].dtype) << " "
       << dimsText(sig.outputs[k].dims) << "\n";
  os << " * Weights file: " << o.name << ".kw (" << weightsSize << " bytes of data); arena: " << arenaSize
     << " bytes. */\n";
  os << "extern const kiln_model_desc_t kiln_model_" << o.name << ";\n\n";
  os << "#ifndef KILN_MODEL_DESC\n#define KILN_MODEL_DESC (&kiln_model_" << o.name << ")\n#endif\n\n";
  os << "#ifdef __cplusplus\n}\n#endif\n\n#endif /* " << guard << " */\n";
  return s;
}

LogicalResult CpuTarget::emit(ModuleOp module, const ModelSignature &sig, const CompileOptions &o,
                              const std::string &dir, Artifact &artifact) {
  // Weights blob produced by kiln-outline-weights.
  ArrayRef<char> weights;
  if (auto w = module->getAttrOfType<DenseResourceElementsAttr>(kWeightsAttr)) {
    if (AsmResourceBlob *blob = w.getRawHandle().getBlob()) weights = blob->getData();
    module->removeAttr(kWeightsAttr);
  }
  uint64_t arenaSize = 0, arenaAlign = 64;
  if (auto a = module->getAttrOfType<IntegerAttr>(kArenaSizeAttr)) arenaSize = a.getInt();
  if (auto a = module->getAttrOfType<IntegerAttr>(kArenaAlignAttr)) arenaAlign = a.getInt();
  uint64_t checksum = weightsChecksum(weights.data(), weights.size());
  uint64_t hash = fnv1a(o.name.data(), o.name.size(), fnv1a(o.target.data(), o.target.size(), checksum));
  hash ^= uint64_t(weights.size()) * 0x9e3779b97f4a7c15ull;

  // Find which leading arguments the passes added before translation erases attrs.
  bool hasWeights = !weights.empty(), hasArena = arenaSize > 0;

  std::string source = module->getAttrOfType<StringAttr>("kiln.source")
                           ? module->getAttrOfType<StringAttr>("kiln.source").str()
                           : o.name;
  stripKilnAttributes(module);

  llvm::LLVMContext llctx;
  std::unique_ptr<llvm::Module> m = translateModuleToLLVMIR(module, llctx, o.name);
  if (!m) {
    llvm::errs() << "error: translation to LLVM IR failed\n";
    return failure();
  }

  static bool initialised = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    return true;
  }();
  (void)initialised;
  llvm::Triple triple(arch == "aarch64" ? "aarch64-unknown-linux-gnu" : "x86_64-unknown-linux-gnu");
  std::string err;
  const llvm::Target *t = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!t) {
    llvm::errs() << "error: LLVM has no backend for " << triple.str() << ": " << err << "\n";
    return failure();
  }
  std::string cpu = !o.cpu.empty() ? o.cpu : arch == "aarch64" ? "generic" : "x86-64-v3";
  std::string features = arch == "aarch64" ? "+neon" : "";
  llvm::TargetOptions topts;
  std::unique_ptr<llvm::TargetMachine> tm(t->createTargetMachine(triple, cpu, features, topts, llvm::Reloc::PIC_,
                                                                 std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!tm) {
    llvm::errs() << "error: cannot create a target machine for " << triple.str() << " cpu " << cpu << "\n";
    return failure();
  }
  m->setTargetTriple(triple);
  m->setDataLayout(tm->createDataLayout());

  llvm::Function *entry = m->getFunction(o.entryName);
  if (!entry) {
    llvm::errs() << "internal error: entry function '" << o.entryName << "' missing after lowering\n";
    return failure();
  }
  size_t expectArgs = sig.inputs.size() + sig.outputs.size() + hasWeights + hasArena;
  if (entry->arg_size() != expectArgs) {
    llvm::errs() << "internal error: entry takes " << entry->arg_size() << " arguments, expected " << expectArgs
                 << "\n";
    return failure();
  }
  entry->setName("kiln_model_" + o.name + "_entry");
  entry->setLinkage(llvm::GlobalValue::InternalLinkage);
  // Let LLVM reassociate and contract float arithmetic in the generated loops, so that
  // reductions (sums in norms, softmax, pooling) vectorise and multiply-adds fuse. NaN
  // and infinity semantics are kept (no nnan/ninf).
  for (llvm::Function &fn : *m)
    for (llvm::BasicBlock &bb : fn)
      for (llvm::Instruction &inst : bb)
        if (llvm::isa<llvm::FPMathOperator>(inst) && inst.getType()->isFPOrFPVectorTy()) {
          inst.setHasAllowReassoc(true);
          inst.setHasAllowContract(true);
        }
  addDescriptor(*m, entry, sig, o, hasWeights, hasArena, weights.size(), hash, arenaSize, arenaAlign);
  if (llvm::verifyModule(*m, &llvm::errs())) {
    llvm::errs() << "internal error: invalid LLVM IR\n";
    return failure();
  }

  {
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(tm.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
    mpm.run(*m, mam);
  }

  llvm::SmallVector<char, 0> object;
  {
    llvm::raw_svector_ostream os(object);
    llvm::legacy::PassManager pm;
    if (tm->addPassesToEmitFile(pm, os, nullptr, llvm::CodeGenFileType::ObjectFile)) {
      llvm::errs() << "error: the target cannot emit object files\n";
      return failure();
    }
    pm.run(*m);
  }

  // Weights file: header, padding to the data offset, data.
  kiln_weights_header_t h;
  std::memset(&h, 0, sizeof h);
  std::memcpy(h.magic, KILN_WEIGHTS_MAGIC, sizeof(KILN_WEIGHTS_MAGIC));
  h.format_version = KILN_WEIGHTS_FORMAT_VERSION;
  h.header_size = KILN_WEIGHTS_HEADER_SIZE;
  h.data_offset = KILN_WEIGHTS_ALIGNMENT;
  h.data_size = weights.size();
  h.model_hash = hash;
  h.checksum = checksum;
  std::vector<char> kw(h.data_offset + weights.size(), 0);
  std::memcpy(kw.data(), &h, sizeof h);
  if (!weights.empty()) // a model without weights has no data to copy (and a null data())
    std::memcpy(kw.data() + h.data_offset, weights.data(), weights.size());

  std::string header = headerText(sig, o, source, weights.size(), arenaSize);
  std::string base = dir + "/" + o.name;
  if (failed(writeFile(base + ".o", object.data(), object.size())) ||
      failed(writeFile(base + ".h", header.data(), header.size())) ||
      failed(writeFile(base + ".kw", kw.data(), kw.size())))
    return failure();
  artifact.files = {o.name + ".o", o.name + ".h", o.name + ".kw"};
  artifact.weightsBytes = weights.size();
  artifact.arenaBytes = arenaSize;
  artifact.objectBytes = object.size();
  return success();
}

} // namespace

std::unique_ptr<Target> createCpuTarget(llvm::StringRef arch) { return std::make_unique<CpuTarget>(arch); }

} // namespace kiln::codegen

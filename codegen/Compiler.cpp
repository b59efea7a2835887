//===- Compiler.cpp - Target registry and the compile driver ----------------===//
#include "codegen/Target.h"
#include "runtime/include/kiln/model_abi.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace kiln::codegen {

std::vector<std::string> targetNames() { return {"x86-64", "aarch64", "null", "accel", "vulkan"}; }

std::unique_ptr<Target> createTarget(llvm::StringRef name) {
  if (name == "x86-64" || name == "aarch64") return createCpuTarget(name);
  if (name == "null") return createNullTarget();
  if (name == "accel") return createAccelTarget();
  if (name == "vulkan") return createVulkanTarget();
  return nullptr;
}

static int32_t dtypeOf(Type t) {
  if (t.isF32()) return KILN_DTYPE_F32;
  if (t.isF16()) return KILN_DTYPE_F16;
  if (t.isInteger(64)) return KILN_DTYPE_I64;
  if (t.isInteger(32)) return KILN_DTYPE_I32;
  if (t.isInteger(8)) return KILN_DTYPE_I8;
  if (t.isInteger(1)) return KILN_DTYPE_BOOL;
  return KILN_DTYPE_INVALID;
}

/// `isUint8`: the importer marked an i8 value as ONNX uint8 (`kiln.uint8`).
static FailureOr<TensorSignature> signatureOf(Type type, std::string name, bool isUint8, Location loc) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape()) return emitError(loc) << "'" << name << "' must have a static shape", failure();
  TensorSignature s;
  s.name = std::move(name);
  s.dtype = dtypeOf(t.getElementType());
  if (isUint8 && s.dtype == KILN_DTYPE_I8) s.dtype = KILN_DTYPE_U8;
  if (s.dtype == KILN_DTYPE_INVALID) return emitError(loc) << "'" << s.name << "' has an unsupported element type", failure();
  s.dims.assign(t.getShape().begin(), t.getShape().end());
  unsigned bits = t.getElementType().getIntOrFloatBitWidth();
  s.sizeBytes = uint64_t(t.getNumElements()) * (bits == 1 ? 1 : bits / 8);
  return s;
}

FailureOr<ModelSignature> readSignature(ModuleOp module, llvm::StringRef entry) {
  auto func = module.lookupSymbol<func::FuncOp>(entry);
  if (!func) return module.emitError() << "no entry function '" << entry << "'", failure();
  ModelSignature sig;
  for (unsigned k = 0; k < func.getNumArguments(); ++k) {
    auto nameAttr = func.getArgAttrOfType<StringAttr>(k, "kiln.name");
    auto s = signatureOf(func.getArgument(k).getType(), nameAttr ? nameAttr.str() : "input" + std::to_string(k),
                         bool(func.getArgAttr(k, "kiln.uint8")), func.getLoc());
    if (failed(s)) return failure();
    sig.inputs.push_back(*s);
  }
  for (unsigned k = 0; k < func.getNumResults(); ++k) {
    auto nameAttr = func.getResultAttrOfType<StringAttr>(k, "kiln.name");
    auto s = signatureOf(func.getResultTypes()[k], nameAttr ? nameAttr.str() : "output" + std::to_string(k),
                         bool(func.getResultAttr(k, "kiln.uint8")), func.getLoc());
    if (failed(s)) return failure();
    sig.outputs.push_back(*s);
  }
  return sig;
}

LogicalResult compileModule(ModuleOp module, Target &target, const CompileOptions &options,
                            const std::string &dir, Artifact &artifact) {
  auto sig = readSignature(module, options.entryName);
  if (failed(sig)) return failure();
  PassManager pm(module.getContext());
  std::string text = target.pipeline(options);
  std::string err;
  llvm::raw_string_ostream errOs(err);
  if (failed(parsePassPipeline(text, pm, errOs))) {
    llvm::errs() << "internal error: bad pipeline for target " << target.name() << ": " << err << "\n";
    return failure();
  }
  if (!options.dumpIrAfter.empty()) {
    std::vector<std::string> wanted = options.dumpIrAfter;
    auto matches = [wanted](Pass *pass, Operation *) {
      for (const std::string &w : wanted)
        if (w == "all" || w == pass->getArgument()) return true;
      return false;
    };
    module.getContext()->disableMultithreading();
    pm.enableIRPrinting([](Pass *, Operation *) { return false; }, matches,
                        /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/false,
                        /*printAfterOnlyOnFailure=*/false, llvm::errs());
  }
  if (failed(pm.run(module))) return failure();
  artifact.signature = *sig;
  return target.emit(module, *sig, options, dir, artifact);
}

} // namespace kiln::codegen

//===- NullTarget.cpp - The template target: writes the graph-level IR ------===//
//
// Copy this folder to add a target: implement pipeline() (what to run on the
// imported func + TOSA module) and emit() (which files to write), then register
// the name in codegen/Compiler.cpp. The null target runs only the graph-level
// clean-up and writes the resulting IR as <name>.mlir, which makes it useful for
// checking what the importer and graph passes produce.
//
//===----------------------------------------------------------------------===//
#include "codegen/Target.h"

#include "mlir/IR/AsmState.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;

namespace kiln::codegen {
namespace {

class NullTarget : public Target {
public:
  llvm::StringRef name() const override { return "null"; }
  std::string pipeline(const CompileOptions &) const override {
    return "canonicalize,func.func(tosa-reduce-transposes),canonicalize";
  }
  LogicalResult emit(ModuleOp module, const ModelSignature &, const CompileOptions &o, const std::string &dir,
                     Artifact &artifact) override {
    std::string path = dir + "/" + o.name + ".mlir";
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_Text);
    if (ec) {
      llvm::errs() << "error: cannot write '" << path << "': " << ec.message() << "\n";
      return failure();
    }
    module.print(os, OpPrintingFlags().elideLargeElementsAttrs(16));
    artifact.files = {o.name + ".mlir"};
    return success();
  }
};

} // namespace

std::unique_ptr<Target> createNullTarget() { return std::make_unique<NullTarget>(); }

} // namespace kiln::codegen

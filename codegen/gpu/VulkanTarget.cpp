//===- VulkanTarget.cpp - SPIR-V compute kernels and a dispatch table -------===//
//
// pipeline(): the shared front passes; weights outlined (every constant, aligned for
// storage-buffer binding offsets) and activations planned in one arena; each compute
// op outlined into a GPU kernel (kiln-gpu-outline-dispatches); kernels lowered
// through MLIR's gpu -> spirv conversion. emit(): serialises the SPIR-V module,
// validates it with spirv-val when the tool is installed, reads the dispatch table
// off the host function's gpu.launch_func ops (kernel, workgroup counts, and for
// each argument the buffer and byte range it binds), and writes <name>.kvk (the
// format is in kiln/vulkan.h) and <name>.vulkan.mlir (kernels and host, as IR).
//
//===----------------------------------------------------------------------===//
#include "codegen/Target.h"
#include "passes/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVOps.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/Target/SPIRV/Serialization.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <map>
#include <vector>

extern "C" {
#include "kiln/vulkan.h"
}

using namespace mlir;

namespace kiln::codegen {
namespace {

constexpr int64_t kBindAlignment = 256; // covers every device's minStorageBufferOffsetAlignment

template <typename T> void append(std::vector<char> &out, const T &value) {
  const char *p = reinterpret_cast<const char *>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

void pad(std::vector<char> &out, size_t alignment) { out.resize((out.size() + alignment - 1) / alignment * alignment); }

template <size_t N> void copyName(char (&dst)[N], llvm::StringRef s) {
  std::memset(dst, 0, N);
  std::memcpy(dst, s.data(), std::min(s.size(), N - 1));
}

int64_t byteSize(MemRefType t) {
  int64_t bits = t.getElementType().getIntOrFloatBitWidth();
  return t.getNumElements() * ((bits + 7) / 8);
}

uint32_t featuresOf(spirv::ModuleOp spv) {
  uint32_t f = 0;
  auto vce = spv.getVceTriple();
  if (!vce) return f;
  for (spirv::Capability c : vce->getCapabilities()) {
    switch (c) {
    case spirv::Capability::Int64: f |= KILN_VK_FEATURE_INT64; break;
    case spirv::Capability::Int16: f |= KILN_VK_FEATURE_INT16; break;
    case spirv::Capability::Int8: f |= KILN_VK_FEATURE_INT8; break;
    case spirv::Capability::Float16: f |= KILN_VK_FEATURE_FLOAT16; break;
    case spirv::Capability::Float64: f |= KILN_VK_FEATURE_FLOAT64; break;
    case spirv::Capability::StorageBuffer8BitAccess: f |= KILN_VK_FEATURE_STORAGE_8BIT; break;
    case spirv::Capability::StorageBuffer16BitAccess: f |= KILN_VK_FEATURE_STORAGE_16BIT; break;
    default: break;
    }
  }
  return f;
}

/// Runs spirv-val on the module when it is installed; failure only if it rejects it.
LogicalResult validate(ModuleOp module, const std::string &spvPath) {
  llvm::ErrorOr<std::string> tool = llvm::sys::findProgramByName("spirv-val");
  if (!tool) return success();
  std::string err;
  llvm::SmallString<128> log;
  if (llvm::sys::fs::createTemporaryFile("kiln-spirv-val", "txt", log)) return success();
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(log), llvm::StringRef(log)};
  int rc = llvm::sys::ExecuteAndWait(*tool, {*tool, "--target-env", "vulkan1.1", spvPath}, std::nullopt, redirects,
                                     0, 0, &err);
  auto text = llvm::MemoryBuffer::getFile(log);
  llvm::sys::fs::remove(log);
  if (rc == 0) return success();
  return module.emitError() << "spirv-val rejected the generated SPIR-V: "
                            << (text ? (*text)->getBuffer().trim() : llvm::StringRef(err));
}

class VulkanTarget : public Target {
public:
  llvm::StringRef name() const override { return "vulkan"; }

  std::string pipeline(const CompileOptions &o) const override {
    std::string e = "entry=" + o.entryName, a = " alignment=" + std::to_string(kBindAlignment);
    return frontPipeline(o) + "kiln-gpu-pack-weights,kiln-outline-weights{" + e + " min-bytes=0" + a + "},kiln-plan-arena{" + e + a + " byte-bools" +
           "},canonicalize,kiln-gpu-outline-dispatches{" + e + (o.gpuTile ? " tile=true" : "") +
           "},canonicalize,"
           "gpu.module(fold-memref-alias-ops,lower-affine,arith-expand,kiln-approximate-math,canonicalize,cse,"
           "convert-math-to-spirv),"
           "convert-gpu-to-spirv,spirv.module(spirv-lower-abi-attrs,spirv-update-vce)";
  }

  LogicalResult emit(ModuleOp module, const ModelSignature &sig, const CompileOptions &o, const std::string &dir,
                     Artifact &artifact) override;
};

LogicalResult VulkanTarget::emit(ModuleOp module, const ModelSignature &sig, const CompileOptions &o,
                                 const std::string &dir, Artifact &artifact) {
  func::FuncOp entry = lookupEntry(module, o.entryName);
  if (!entry) return failure();
  ArrayRef<char> weights;
  if (auto w = module->getAttrOfType<DenseResourceElementsAttr>(kWeightsAttr))
    if (AsmResourceBlob *blob = w.getRawHandle().getBlob()) weights = blob->getData();
  uint64_t arenaSize = 0;
  if (auto a = module->getAttrOfType<IntegerAttr>(kArenaSizeAttr)) arenaSize = uint64_t(a.getInt());

  // The SPIR-V module and its kernels (entry points, in the gpu.module's order).
  spirv::ModuleOp spv;
  module.walk([&](spirv::ModuleOp m) { spv = m; });
  gpu::GPUModuleOp kernels;
  module.walk([&](gpu::GPUModuleOp m) { kernels = m; });
  if (!spv || !kernels) return module.emitError() << "the vulkan pipeline produced no SPIR-V module";
  SmallVector<uint32_t> words;
  if (failed(spirv::serialize(spv, words))) return failure();
  std::vector<kiln_vk_kernel_t> kernelTable;
  std::map<std::string, uint32_t> kernelIndex;
  for (auto fn : kernels.getOps<gpu::GPUFuncOp>()) {
    kiln_vk_kernel_t k{};
    copyName(k.entry, fn.getName());
    k.workgroup_size[0] = k.workgroup_size[1] = k.workgroup_size[2] = 1;
    if (auto abi = fn->getAttrOfType<spirv::EntryPointABIAttr>(spirv::getEntryPointABIAttrName()))
      if (auto wg = abi.getWorkgroupSize())
        for (auto [i, v] : llvm::enumerate(wg.asArrayRef())) k.workgroup_size[i] = uint32_t(v);
    k.num_bindings = fn.getNumArguments();
    kernelIndex[fn.getName().str()] = uint32_t(kernelTable.size());
    kernelTable.push_back(k);
  }

  // Which buffer each entry argument is.
  size_t nIn = sig.inputs.size(), nOut = sig.outputs.size();
  std::map<unsigned, uint32_t> argBuffer;
  std::map<uint32_t, uint64_t> bufferSize{{KILN_VK_BUFFER_WEIGHTS, weights.size()}, {KILN_VK_BUFFER_ARENA, arenaSize}};
  unsigned io = 0;
  for (BlockArgument arg : entry.getArguments()) {
    auto role = entry.getArgAttrOfType<StringAttr>(arg.getArgNumber(), kRoleAttr);
    uint32_t id = role && role.getValue() == "weights" ? KILN_VK_BUFFER_WEIGHTS
                  : role && role.getValue() == "arena" ? KILN_VK_BUFFER_ARENA
                                                       : KILN_VK_BUFFER_FIRST_IO + io++;
    argBuffer[arg.getArgNumber()] = id;
  }
  if (io != nIn + nOut)
    return entry.emitError() << "has " << io << " input/output arguments, the signature " << nIn + nOut;
  for (size_t k = 0; k < nIn; ++k) bufferSize[KILN_VK_BUFFER_FIRST_IO + k] = sig.inputs[k].sizeBytes;
  for (size_t k = 0; k < nOut; ++k) bufferSize[KILN_VK_BUFFER_FIRST_IO + nIn + k] = sig.outputs[k].sizeBytes;

  // The dispatch table.
  std::vector<kiln_vk_dispatch_t> dispatches;
  std::vector<kiln_vk_binding_t> bindings;
  bool ok = true;
  entry.walk([&](gpu::LaunchFuncOp launch) {
    kiln_vk_dispatch_t d{};
    auto it = kernelIndex.find(launch.getKernelName().str());
    if (it == kernelIndex.end()) {
      launch.emitError() << "launches an unknown kernel";
      ok = false;
      return;
    }
    d.kernel = it->second;
    gpu::KernelDim3 g = launch.getGridSizeOperandValues();
    Value dims[3] = {g.x, g.y, g.z};
    for (int i = 0; i < 3; ++i) {
      std::optional<int64_t> c = getConstantIntValue(dims[i]);
      if (!c || *c < 1 || *c > 65535) {
        launch.emitError() << "has a workgroup count that is not a constant in [1, 65535]";
        ok = false;
        return;
      }
      d.groups[i] = uint32_t(*c);
    }
    d.first_binding = uint32_t(bindings.size());
    d.num_bindings = uint32_t(launch.getNumKernelOperands());
    for (Value arg : launch.getKernelOperands()) {
      kiln_vk_binding_t b{};
      auto type = cast<MemRefType>(arg.getType());
      b.size = uint64_t(byteSize(type));
      Value root = arg;
      if (auto view = arg.getDefiningOp<memref::ViewOp>()) {
        std::optional<int64_t> shift = getConstantIntValue(view.getByteShift());
        if (!shift) {
          launch.emitError() << "binds a view at a non-constant offset";
          ok = false;
          return;
        }
        b.offset = uint64_t(*shift);
        root = view.getSource();
      }
      auto barg = dyn_cast<BlockArgument>(root);
      if (!barg || barg.getOwner()->getParentOp() != entry.getOperation()) {
        launch.emitError() << "binds a buffer that is not a model argument or a view of one";
        ok = false;
        return;
      }
      b.buffer = argBuffer[barg.getArgNumber()];
      if (b.offset % kBindAlignment || b.offset + b.size > bufferSize[b.buffer] || b.size == 0) {
        launch.emitError() << "binds bytes [" << b.offset << ", " << b.offset + b.size << ") of buffer " << b.buffer
                           << " (" << bufferSize[b.buffer] << " bytes, offsets aligned to " << kBindAlignment << ")";
        ok = false;
        return;
      }
      bindings.push_back(b);
    }
    dispatches.push_back(d);
  });
  if (!ok) return failure();

  for (const TensorSignature &t : sig.inputs)
    if (t.dims.size() > KILN_VK_MAX_DIMS) return module.emitError() << "input '" << t.name << "' has too many dimensions";
  for (const TensorSignature &t : sig.outputs)
    if (t.dims.size() > KILN_VK_MAX_DIMS) return module.emitError() << "output '" << t.name << "' has too many dimensions";

  // The file: header, tables, SPIR-V, weights.
  kiln_vk_header_t h{};
  std::memcpy(h.magic, KILN_VK_MAGIC, 8);
  h.version = KILN_VK_FORMAT_VERSION;
  h.header_size = sizeof h;
  h.num_inputs = uint32_t(nIn);
  h.num_outputs = uint32_t(nOut);
  h.num_kernels = uint32_t(kernelTable.size());
  h.num_dispatches = uint32_t(dispatches.size());
  h.num_bindings = uint32_t(bindings.size());
  h.features = featuresOf(spv);
  h.arena_size = arenaSize;
  copyName(h.name, o.name);
  copyName(h.target, "vulkan");
  std::vector<char> body;
  auto section = [&](size_t alignment) {
    pad(body, alignment);
    return uint64_t(sizeof h + body.size());
  };
  h.tensors_offset = section(8);
  auto tensor = [&](const TensorSignature &t) {
    kiln_vk_tensor_t r{};
    copyName(r.name, t.name);
    r.dtype = t.dtype;
    r.rank = uint32_t(t.dims.size());
    for (size_t k = 0; k < t.dims.size() && k < KILN_VK_MAX_DIMS; ++k) r.dims[k] = t.dims[k];
    r.size_bytes = t.sizeBytes;
    append(body, r);
  };
  for (const TensorSignature &t : sig.inputs) tensor(t);
  for (const TensorSignature &t : sig.outputs) tensor(t);
  h.kernels_offset = section(8);
  for (const kiln_vk_kernel_t &k : kernelTable) append(body, k);
  h.dispatches_offset = section(8);
  for (const kiln_vk_dispatch_t &d : dispatches) append(body, d);
  h.bindings_offset = section(8);
  for (const kiln_vk_binding_t &b : bindings) append(body, b);
  h.spirv_offset = section(8);
  h.spirv_size = words.size() * 4;
  body.insert(body.end(), reinterpret_cast<const char *>(words.data()),
              reinterpret_cast<const char *>(words.data()) + h.spirv_size);
  // Weights at an offset aligned in the file, so that a mapped file can be bound as is.
  size_t headerPad = 0;
  while ((sizeof h + body.size() + headerPad) % KILN_VK_WEIGHTS_ALIGNMENT) ++headerPad;
  body.resize(body.size() + headerPad);
  h.weights_offset = sizeof h + body.size();
  h.weights_size = weights.size();
  body.insert(body.end(), weights.begin(), weights.end());
  h.file_size = sizeof h + body.size();
  h.checksum = weightsChecksum(body.data(), body.size());
  h.model_hash = weightsChecksum(o.name.data(), o.name.size()) ^ (h.checksum * 0x9e3779b97f4a7c15ull);

  std::string base = dir + "/" + o.name;
  std::error_code ec;
  {
    llvm::raw_fd_ostream os(base + ".spv", ec, llvm::sys::fs::OF_None);
    if (ec) return module.emitError() << "cannot write '" << base << ".spv': " << ec.message();
    os.write(reinterpret_cast<const char *>(words.data()), words.size() * 4);
  }
  if (failed(validate(module, base + ".spv"))) return failure();
  {
    llvm::raw_fd_ostream os(base + ".kvk", ec, llvm::sys::fs::OF_None);
    if (ec) return module.emitError() << "cannot write '" << base << ".kvk': " << ec.message();
    os.write(reinterpret_cast<const char *>(&h), sizeof h);
    os.write(body.data(), body.size());
  }
  {
    module->removeAttr(kWeightsAttr);
    llvm::raw_fd_ostream os(base + ".vulkan.mlir", ec, llvm::sys::fs::OF_Text);
    if (ec) return module.emitError() << "cannot write '" << base << ".vulkan.mlir': " << ec.message();
    module.print(os, OpPrintingFlags().elideLargeElementsAttrs(16));
  }
  artifact.files = {o.name + ".kvk", o.name + ".spv", o.name + ".vulkan.mlir"};
  artifact.signature = sig;
  artifact.weightsBytes = weights.size();
  artifact.arenaBytes = arenaSize;
  artifact.objectBytes = h.spirv_size;
  return success();
}

} // namespace

std::unique_ptr<Target> createVulkanTarget() { return std::make_unique<VulkanTarget>(); }

} // namespace kiln::codegen

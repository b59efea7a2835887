// Fuzzes the plan readers. The bytes are a plan file (JSON), read three ways:
//  1. as the quantisation plan of kiln-quantize, which runs on a fixed module with one
//     quantisable convolution and one matmul, followed by kiln-lower-to-kernels, which
//     quantises the weights with the plan's parameters;
//  2. as `kiln ... --plan`'s per-layer structures (applyPlanStructures, PlanFile.cpp):
//     a plan it accepts runs the compression passes it selects, with the quantisation
//     plan, on the same module, as kiln compile would;
//  3. as the planner's cache (checkPlannerCache): one it accepts must have the shape
//     the planner reads without further checks.
// A bad plan must be an error, never a crash.
#include "codegen/Target.h"
#include "tools/kiln/Tool.h"

#include "fuzz_util.h"
#include "pass_fuzz.h"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

const std::string &source() {
  static const std::string s =
      kiln_fuzz::convMatmulModule(4, 3, 2, 1, 2, 3, "[[[[1.0, -2.0, 0.5]]], [[[4.0, 5.0, -6.0]]]]", "[0.5, -0.5]",
                                  "[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]");
  return s;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string planPath = kiln_fuzz::scratchPath(".plan.json");
  static const std::string reportPath = kiln_fuzz::scratchPath(".report.json");
  kiln_fuzz::writeFile(planPath, data, size);

  std::string quantize = "kiln-quantize{plan=" + planPath + " report=" + reportPath + "},kiln-lower-to-kernels";
  kiln_fuzz::runPipeline(source(), quantize);

  // The structures, as every command's --plan reads them. Their errors go to stderr;
  // libFuzzer's -close_fd_mask=2 silences them.
  kiln::tool::CommonOptions o;
  bool compressed = false;
  std::string calib;
  int64_t samples = 0;
  if (kiln::tool::applyPlanStructures(o, planPath, compressed, &calib, &samples) == 0 && compressed) {
    o.compile.sparsifyReport = o.compile.decomposeReport = o.compile.butterflyReport = reportPath;
    std::string compress = kiln::codegen::compressionPipeline(o.compile);
    if (compress.empty()) std::abort(); // compressed, yet no pass selected
    kiln_fuzz::runPipeline(source(), compress + quantize);
  }

  // The planner's cache.
  if (auto v = kiln::tool::readJson(planPath); v && v->getAsObject()) {
    std::string why;
    if (kiln::tool::checkPlannerCache(*v->getAsObject(), why)) {
      const llvm::json::Object &cache = *v->getAsObject();
      for (const char *table : {"trials", "verified"})
        for (const auto &entry : *cache.getObject(table))
          if (!entry.second.getAsObject() || !entry.second.getAsObject()->getBoolean("ok")) std::abort();
    } else if (why.empty()) {
      std::abort(); // rejected without a reason
    }
  }
  return 0;
}

//===- PlanFile.cpp - Reading plan.json structures and the planner's cache -===//
//
// The parts of `kiln plan` that read files a user may have been handed or edited: the
// per-layer "structure" keys of a plan (applied by every command's --plan) and the
// planner's cache (DIR/cache/planner.json), with the JSON reader and writer every
// command uses. Kept apart from the search so that the plan fuzz target
// (tests/fuzz/plan_fuzz.cpp) runs exactly this code.
//
//===----------------------------------------------------------------------===//
#include "tools/kiln/Tool.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <set>

namespace kiln::tool {

bool writeJson(const std::string &path, const llvm::json::Value &v) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) {
    llvm::errs() << "error: cannot write '" << path << "': " << ec.message() << "\n";
    return false;
  }
  os << llvm::formatv("{0:2}", v) << "\n";
  return true;
}

std::optional<llvm::json::Value> readJson(const std::string &path) {
  auto buf = llvm::MemoryBuffer::getFile(path);
  if (!buf) return std::nullopt;
  auto v = llvm::json::parse((*buf)->getBuffer());
  if (!v) {
    llvm::consumeError(v.takeError());
    return std::nullopt;
  }
  return std::move(*v);
}

std::optional<Structure> parseStructure(llvm::StringRef s) {
  if (s == "dense") return Structure{};
  if (s == "butterfly") return Structure{Structure::Butterfly, ""};
  if (s == "smartdeal") return Structure{Structure::SmartDeal, ""};
  if (s.consume_front("smartdeal:")) {
    llvm::SmallVector<llvm::StringRef> parts;
    s.split(parts, ':');
    for (llvm::StringRef p : parts) {
      double v;
      if (p.size() < 2 || !llvm::is_contained(llvm::StringRef("bdg"), p[0]) || p.drop_front().getAsDouble(v))
        return std::nullopt;
    }
    return Structure{Structure::SmartDeal, s.str()};
  }
  auto [n, m] = s.split(':');
  int64_t nv, mv;
  if (n.getAsInteger(10, nv) || m.getAsInteger(10, mv) || nv < 1 || nv >= mv || mv > 16) return std::nullopt;
  return Structure{Structure::NM, s.str()};
}

int applyPlanStructures(CommonOptions &o, const std::string &planPath, bool &needsCalibration,
                        std::string *calibFromPlan, int64_t *calibSamplesFromPlan) {
  needsCalibration = false;
  auto plan = readJson(planPath);
  const llvm::json::Object *root = plan ? plan->getAsObject() : nullptr;
  const llvm::json::Array *layers = root ? root->getArray("layers") : nullptr;
  if (!layers) {
    llvm::errs() << "error: plan '" << planPath << "' cannot be read, is not JSON, or has no \"layers\" array\n";
    return 1;
  }
  std::string nm, sd, bf;
  std::set<std::string> seen;
  bool any = false;
  for (size_t k = 0; k < layers->size(); ++k) {
    const llvm::json::Object *l = (*layers)[k].getAsObject();
    auto name = l ? l->getString("name") : std::nullopt;
    if (!name) {
      llvm::errs() << "error: plan '" << planPath << "': layer " << k << " has no \"name\"\n";
      return 1;
    }
    if (name->contains(',') || name->contains('=') || !fitsPassOption(*name)) {
      llvm::errs() << "error: plan '" << planPath << "': layer '" << *name
                   << "': a name with ',', '=', '\"', '{' or '}' cannot be given a structure\n";
      return 1;
    }
    if (!seen.insert(name->str()).second) {
      llvm::errs() << "error: plan '" << planPath << "': layer '" << *name << "' appears twice\n";
      return 1;
    }
    const llvm::json::Value *sv = l->get("structure");
    if (!sv) continue;
    auto str = sv->getAsString();
    std::optional<Structure> s = str ? parseStructure(*str) : std::nullopt;
    if (!s) {
      llvm::errs() << "error: plan '" << planPath << "': layer '" << *name
                   << "': \"structure\" must be \"dense\", \"N:M\" (1 <= N < M <= 16), \"smartdeal[:bB][:dD]\" or "
                      "\"butterfly\"\n";
      return 1;
    }
    any = true;
    auto add = [&](std::string &list, const std::string &entry) { list += (list.empty() ? "" : ",") + entry; };
    if (s->kind == Structure::NM) add(nm, name->str() + "=" + s->setting);
    if (s->kind == Structure::SmartDeal) add(sd, name->str() + "=" + (s->setting.empty() ? "b3:d0.75" : s->setting));
    if (s->kind == Structure::Butterfly) add(bf, name->str());
  }
  if (!any) return 0;
  if (!o.compile.sparsify.empty() || !o.compile.decompose.empty() || !o.compile.butterfly.empty()) {
    llvm::errs() << "error: plan '" << planPath
                 << "' chooses each layer's structure: --sparsify, --decompose and --butterfly do not combine with it\n";
    return 1;
  }
  // Layers the plan does not name stay dense.
  if (!nm.empty()) {
    o.compile.sparsify = "dense";
    o.compile.sparsifyLayers = nm;
  }
  if (!sd.empty()) {
    o.compile.decompose = "smartdeal";
    o.compile.decomposeLayers = sd;
    o.compile.decomposeOnlyNamed = true;
  }
  o.compile.butterfly = bf;
  needsCalibration = !nm.empty() || !sd.empty() || !bf.empty();
  if (const llvm::json::Object *cal = root->getObject("calibration")) {
    if (calibFromPlan) calibFromPlan->assign(cal->getString("data").value_or("").str());
    if (calibSamplesFromPlan) *calibSamplesFromPlan = cal->getInteger("samples").value_or(0);
  }
  return 0;
}


bool checkPlannerCache(const llvm::json::Object &cache, std::string &why) {
  for (const char *table : {"trials", "verified"}) {
    const llvm::json::Object *entries = cache.getObject(table);
    if (!entries) {
      why = std::string("no \"") + table + "\" object";
      return false;
    }
    for (const auto &[key, value] : *entries) {
      const llvm::json::Object *m = value.getAsObject();
      auto bad = [&](const char *what) {
        why = llvm::formatv("{0} entry '{1}': {2}", table, key.str(), what).str();
        return false;
      };
      if (!m) return bad("not an object");
      if (!m->getBoolean("ok")) return bad("no boolean \"ok\"");
      if (const llvm::json::Value *v = m->get("reason"); v && !v->getAsString())
        return bad("\"reason\" is not a string");
      for (const char *field : {"noise", "latency_ms", "bytes", "top1"}) {
        const llvm::json::Value *v = m->get(field);
        if (!v) continue;
        std::optional<double> d = v->getAsNumber();
        if (!d || !std::isfinite(*d)) return bad("a number field is not a finite number");
        if (std::string_view(field) == "noise" && *d < 0) return bad("\"noise\" is negative");
        if (std::string_view(field) == "top1" && (*d < -1 || *d > 1)) return bad("\"top1\" is outside [-1, 1]");
      }
      if (const llvm::json::Value *v = m->get("priced"); v && !v->getAsBoolean())
        return bad("\"priced\" is not a boolean");
    }
  }
  return true;
}

} // namespace kiln::tool

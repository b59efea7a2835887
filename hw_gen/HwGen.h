//===- HwGen.h - The accelerator's parameters and what they generate -*- C++ -*-===//
//
// One description of the accelerator (hw_gen/default.json; docs/ACCELERATOR.md)
// generates the SystemVerilog package the RTL reads and the C header the runtime
// reads, so the two cannot drift. The compiler reads the same description.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_HW_GEN_HWGEN_H
#define KILN_HW_GEN_HWGEN_H

#include "kiln/accel.h"

#include <string>

namespace kiln::hw {

/// Parses and checks a JSON description; on failure returns false with `error` naming
/// the key and the reason. Keys not given take the defaults of hw_gen/default.json.
bool parseConfig(const std::string &json, kiln_accel_config_t &cfg, std::string &error);
/// Reads and parses a description file.
bool loadConfig(const std::string &path, kiln_accel_config_t &cfg, std::string &error);
/// The default configuration.
kiln_accel_config_t defaultConfig();
/// The canonical description string whose FNV-1a hash is the config id.
std::string canonical(const kiln_accel_config_t &cfg);
/// The SystemVerilog package (parameters and the instruction set's constants).
std::string systemVerilogPackage(const kiln_accel_config_t &cfg);
/// The C header (KILN_ACCEL_CFG_* macros).
std::string cHeader(const kiln_accel_config_t &cfg);
/// Writes the package, the header and the RTL sources (copied from `rtlDir`) into
/// `outDir`; returns false with `error` on failure.
bool generate(const kiln_accel_config_t &cfg, const std::string &rtlDir, const std::string &outDir,
              std::string &error);

} // namespace kiln::hw

#endif

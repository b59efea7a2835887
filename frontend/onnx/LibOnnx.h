//===- LibOnnx.h - libonnx's model passes, isolated from its crashes -*- C++ -*-===//
//
// libonnx's shape inference and version converter trust the model more than they
// should: Debian's 1.12 dies with SIGSEGV on some malformed models (a Conv whose input
// and weights differ in rank; an old-opset graph output that no node produces). By
// default Kiln runs them in a forked child that sends its result back, so a crash there
// is an error about the model, not the end of Kiln. `isolate` = false runs them in this
// process (the libFuzzer targets, where a fork per input would cost more than the work).
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_ONNX_LIBONNX_H
#define KILN_FRONTEND_ONNX_LIBONNX_H

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstdint>
#include <string>

namespace kiln::onnx_frontend {

/// ONNX's shape inference on `model` (it adds value_info, in subgraphs too; the graph
/// objects stay where they are). Returns "" on success, else what went wrong, to read
/// after "shape inference failed: "; `model` is unchanged on failure.
std::string inferShapes(onnx::ModelProto &model, const onnx::ShapeInferenceOptions &options = {},
                        bool isolate = true);

/// ONNX's version converter: replaces `model` by its conversion to `opset` (a new
/// model: pointers into the old one are stale). Returns "" on success, else what went
/// wrong; `model` is unchanged on failure.
std::string convertVersion(onnx::ModelProto &model, int64_t opset, bool isolate = true);

} // namespace kiln::onnx_frontend

#endif

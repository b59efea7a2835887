//===- ShapeInference.h - ONNX shape inference, isolated from crashes -*- C++ -*-===//
#ifndef KILN_FRONTEND_ONNX_SHAPEINFERENCE_H
#define KILN_FRONTEND_ONNX_SHAPEINFERENCE_H

#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <string>

namespace kiln::onnx_frontend {

/// Runs ONNX's shape inference on `model` (adding value_info). libonnx's inference
/// functions index shapes without checking some ranks (Debian's 1.12 dies with SIGSEGV
/// on a Conv whose input and weights differ in rank), so by default it runs in a forked
/// child that sends the inferred model back: a crash there becomes an error, not the
/// end of Kiln. `isolate` = false runs it in this process (fuzz targets, where the fork
/// would cost more than the inference). Returns "" on success, else what went wrong;
/// `model` is unchanged on failure. The messages read after "shape inference failed: ".
std::string inferShapes(onnx::ModelProto &model, const onnx::ShapeInferenceOptions &options = {},
                        bool isolate = true);

} // namespace kiln::onnx_frontend

#endif

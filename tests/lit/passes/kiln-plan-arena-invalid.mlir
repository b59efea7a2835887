// RUN: kiln-opt %s -kiln-plan-arena="alignment=3" -verify-diagnostics

// The arena alignment must be a power of two.
// expected-error @+1 {{alignment must be a power of two, got 3}}
module {
  func.func @forward() {
    return
  }
}

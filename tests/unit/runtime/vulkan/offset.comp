// Test kernel of the Vulkan HAL tests: y[i] = t[i] + 1 (entry point "offset").
#version 450
layout(local_size_x = 16) in;
layout(set = 0, binding = 0) readonly buffer T { float t[]; };
layout(set = 0, binding = 1) writeonly buffer Y { float y[]; };

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < uint(y.length())) y[i] = t[i] + 1.0;
}

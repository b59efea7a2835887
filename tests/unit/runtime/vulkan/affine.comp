// Test kernel of the Vulkan HAL tests: t[i] = a * x[i] + w[i]; `a` and `w` come from the
// weights buffer, at different binding offsets. Compiled with its entry point renamed to
// "affine" and linked with offset.comp into one module, the shape `kiln compile` emits.
#version 450
layout(local_size_x = 16) in;
layout(set = 0, binding = 0) readonly buffer Params { float a; } params;
layout(set = 0, binding = 1) readonly buffer X { float x[]; };
layout(set = 0, binding = 2) readonly buffer W { float w[]; };
layout(set = 0, binding = 3) writeonly buffer T { float t[]; };

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i < uint(t.length())) t[i] = params.a * x[i] + w[i];
}

// Unit tests of the Vulkan HAL (kiln/vulkan.h): .kvk validation on images built here (no
// device needed), and, where a Vulkan device exists (lavapipe in CI), a two-kernel model run
// end to end with its pipeline cache. Device tests skip themselves without a device.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kiln/vulkan.h"
#include "test_util.h"

extern "C" {
#include "internal.h"  // kiln_fnv1a64, the .kvk checksum
}

namespace {

using kiln_test::ErrorCapture;
using kiln_test::TempDir;
using Bytes = std::vector<unsigned char>;

constexpr size_t kN = 64;  // elements of the test model's input and output

// ---- building .kvk images ----------------------------------------------------------------

// The contents of a .kvk file, laid out by Build() as `kiln compile` lays it out.
struct KvkModel {
  uint32_t num_inputs = 0, num_outputs = 0;
  std::vector<kiln_vk_tensor_t> tensors;  // inputs, then outputs
  std::vector<kiln_vk_kernel_t> kernels;
  std::vector<kiln_vk_dispatch_t> dispatches;
  std::vector<kiln_vk_binding_t> bindings;
  std::vector<uint32_t> spirv;
  Bytes weights;
  uint64_t arena_size = 0;
  uint32_t features = 0;
  uint64_t model_hash = 0x6b696c6e766b0001ull;
};

kiln_vk_tensor_t Tensor(const char *name, kiln_dtype_t dtype, std::vector<int64_t> dims) {
  kiln_vk_tensor_t t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  t.dtype = dtype;
  t.rank = static_cast<uint32_t>(dims.size());
  uint64_t bytes = kiln_dtype_size(dtype);
  for (size_t i = 0; i < dims.size(); ++i) {
    t.dims[i] = dims[i];
    bytes *= static_cast<uint64_t>(dims[i]);
  }
  t.size_bytes = bytes;
  return t;
}

kiln_vk_kernel_t Kernel(const char *entry, uint32_t num_bindings) {
  kiln_vk_kernel_t k;
  memset(&k, 0, sizeof k);
  snprintf(k.entry, sizeof k.entry, "%s", entry);
  k.workgroup_size[0] = 16;
  k.workgroup_size[1] = k.workgroup_size[2] = 1;
  k.num_bindings = num_bindings;
  return k;
}

kiln_vk_dispatch_t Dispatch(uint32_t kernel, uint32_t groups, uint32_t first, uint32_t count) {
  return kiln_vk_dispatch_t{kernel, {groups, 1, 1}, first, count};
}

kiln_vk_binding_t Binding(uint32_t buffer, uint64_t offset, uint64_t size) {
  return kiln_vk_binding_t{buffer, 0, offset, size};
}

// A SPIR-V module that only declares GLCompute entry points: enough for validation, which
// looks no further than the entry points.
std::vector<uint32_t> FakeSpirv(const std::vector<std::string> &entries) {
  std::vector<uint32_t> w = {0x07230203u, 0x00010300u, 0, 16, 0};
  w.insert(w.end(), {2u << 16 | 17u, 1u});        // OpCapability Shader
  w.insert(w.end(), {3u << 16 | 14u, 0u, 1u});    // OpMemoryModel Logical GLSL450
  uint32_t id = 1;
  for (const std::string &name : entries) {
    std::vector<uint32_t> words((name.size() + 4) / 4, 0);
    memcpy(words.data(), name.data(), name.size());
    w.push_back(static_cast<uint32_t>(3 + words.size()) << 16 | 15u);  // OpEntryPoint
    w.push_back(5u);                                                   // GLCompute
    w.push_back(id++);
    w.insert(w.end(), words.begin(), words.end());
  }
  return w;
}

size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

void Seal(Bytes &b) {
  uint64_t checksum = kiln_fnv1a64(b.data() + sizeof(kiln_vk_header_t),
                                   b.size() - sizeof(kiln_vk_header_t));
  memcpy(b.data() + offsetof(kiln_vk_header_t, checksum), &checksum, sizeof checksum);
}

Bytes Build(const KvkModel &m) {
  kiln_vk_header_t h;
  memset(&h, 0, sizeof h);
  memcpy(h.magic, KILN_VK_MAGIC, sizeof h.magic);
  h.version = KILN_VK_FORMAT_VERSION;
  h.header_size = sizeof h;
  h.model_hash = m.model_hash;
  h.num_inputs = m.num_inputs;
  h.num_outputs = m.num_outputs;
  h.num_kernels = static_cast<uint32_t>(m.kernels.size());
  h.num_dispatches = static_cast<uint32_t>(m.dispatches.size());
  h.num_bindings = static_cast<uint32_t>(m.bindings.size());
  h.features = m.features;
  h.arena_size = m.arena_size;
  snprintf(h.name, sizeof h.name, "%s", "vk_test");
  snprintf(h.target, sizeof h.target, "%s", "vulkan");

  Bytes b(sizeof h);
  auto append = [&b](const void *data, size_t size, size_t alignment) {
    size_t at = AlignUp(b.size(), alignment);
    b.resize(at + size);
    if (size) memcpy(b.data() + at, data, size);
    return static_cast<uint64_t>(at);
  };
  h.tensors_offset = append(m.tensors.data(), m.tensors.size() * sizeof(kiln_vk_tensor_t), 8);
  h.kernels_offset = append(m.kernels.data(), m.kernels.size() * sizeof(kiln_vk_kernel_t), 8);
  h.dispatches_offset =
      append(m.dispatches.data(), m.dispatches.size() * sizeof(kiln_vk_dispatch_t), 8);
  h.bindings_offset =
      append(m.bindings.data(), m.bindings.size() * sizeof(kiln_vk_binding_t), 8);
  h.spirv_size = m.spirv.size() * 4;
  h.spirv_offset = append(m.spirv.data(), h.spirv_size, 8);
  h.weights_size = m.weights.size();
  h.weights_offset = append(m.weights.data(), m.weights.size(), KILN_VK_WEIGHTS_ALIGNMENT);
  h.file_size = b.size();
  memcpy(b.data(), &h, sizeof h);
  Seal(b);
  return b;
}

kiln_vk_header_t HeaderOf(const Bytes &b) {
  kiln_vk_header_t h;
  memcpy(&h, b.data(), sizeof h);
  return h;
}

// `b` with its header changed by `edit`, checksum recomputed.
Bytes EditHeader(Bytes b, const std::function<void(kiln_vk_header_t &)> &edit) {
  kiln_vk_header_t h = HeaderOf(b);
  edit(h);
  memcpy(b.data(), &h, sizeof h);
  Seal(b);
  return b;
}

float WeightA() { return 2.0f; }
float WeightW(size_t i) { return 0.5f * static_cast<float>(i); }
float InputX(size_t i, float scale) { return scale * static_cast<float>(i); }
// What the model computes: y = (a * x + w) + 1.
float Expected(size_t i, float scale) { return WeightA() * InputX(i, scale) + WeightW(i) + 1.0f; }

// The model of the device tests: input x[64] -> affine (a * x + w into the arena, at byte
// 256) -> offset (+1) -> output y[64]. Weights: `a` at byte 0, w[64] at byte 256.
KvkModel TwoKernelModel(std::vector<uint32_t> spirv) {
  KvkModel m;
  m.num_inputs = m.num_outputs = 1;
  m.tensors = {Tensor("x", KILN_DTYPE_F32, {1, kN}), Tensor("y", KILN_DTYPE_F32, {1, kN})};
  m.kernels = {Kernel("affine", 4), Kernel("offset", 2)};
  m.bindings = {
      Binding(KILN_VK_BUFFER_WEIGHTS, 0, 4),                 // a
      Binding(KILN_VK_BUFFER_FIRST_IO, 0, 4 * kN),           // x
      Binding(KILN_VK_BUFFER_WEIGHTS, 256, 4 * kN),          // w
      Binding(KILN_VK_BUFFER_ARENA, 256, 4 * kN),            // t (written)
      Binding(KILN_VK_BUFFER_ARENA, 256, 4 * kN),            // t (read)
      Binding(KILN_VK_BUFFER_FIRST_IO + 1, 0, 4 * kN),       // y
  };
  m.dispatches = {Dispatch(0, kN / 16, 0, 4), Dispatch(1, kN / 16, 4, 2)};
  m.spirv = std::move(spirv);
  m.weights.assign(256 + 4 * kN, 0);
  float a = WeightA();
  memcpy(m.weights.data(), &a, sizeof a);
  for (size_t i = 0; i < kN; ++i) {
    float w = WeightW(i);
    memcpy(m.weights.data() + 256 + 4 * i, &w, sizeof w);
  }
  m.arena_size = 512;
  return m;
}

KvkModel ValidModel() { return TwoKernelModel(FakeSpirv({"affine", "offset"})); }

// ---- validation ------------------------------------------------------------------------

class VulkanValidateTest : public ::testing::Test {
 protected:
  // The image must be rejected as bad weights, with a message containing `reason`.
  void ExpectRejected(const Bytes &b, const std::string &reason) {
    errors_.clear();
    EXPECT_EQ(kiln_vk_validate(b.data(), b.size()), KILN_ERROR_BAD_WEIGHTS);
    EXPECT_NE(errors_.last().find(reason), std::string::npos)
        << "message: '" << errors_.last() << "', expected to mention '" << reason << "'";
  }
  // Rebuilds ValidModel() after `edit`.
  Bytes With(const std::function<void(KvkModel &)> &edit) {
    KvkModel m = ValidModel();
    edit(m);
    return Build(m);
  }
  ErrorCapture errors_;
};

TEST_F(VulkanValidateTest, ValidImagePasses) {
  Bytes b = Build(ValidModel());
  EXPECT_EQ(kiln_vk_validate(b.data(), b.size()), KILN_OK) << errors_.last();
}

TEST_F(VulkanValidateTest, NullImageIsAnInvalidArgument) {
  EXPECT_EQ(kiln_vk_validate(nullptr, 0), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(VulkanValidateTest, EveryTruncationFails) {
  Bytes b = Build(ValidModel());
  for (size_t size : {size_t{0}, size_t{1}, sizeof(kiln_vk_header_t) - 1,
                      sizeof(kiln_vk_header_t), b.size() / 2, b.size() - 1}) {
    SCOPED_TRACE(size);
    EXPECT_EQ(kiln_vk_validate(b.data(), size), KILN_ERROR_BAD_WEIGHTS);
    EXPECT_FALSE(errors_.last().empty());
  }
  Bytes padded = b;
  padded.push_back(0);
  ExpectRejected(padded, "file_size");
}

TEST_F(VulkanValidateTest, EveryFlippedByteAfterTheHeaderFailsTheChecksum) {
  Bytes b = Build(ValidModel());
  for (size_t at = sizeof(kiln_vk_header_t); at < b.size(); ++at) {
    Bytes flipped = b;
    flipped[at] ^= 0x10;
    errors_.clear();
    ASSERT_EQ(kiln_vk_validate(flipped.data(), flipped.size()), KILN_ERROR_BAD_WEIGHTS) << at;
    ASSERT_NE(errors_.last().find("checksum"), std::string::npos) << errors_.last();
  }
}

TEST_F(VulkanValidateTest, BadMagicVersionOrHeaderSize) {
  Bytes b = Build(ValidModel());
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.magic[0] = 'X'; }), "magic");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.version = 2; }), "version 2");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.header_size = 224; }),
                 "header_size");
}

TEST_F(VulkanValidateTest, UnterminatedModelNameOrUnknownFeature) {
  Bytes b = Build(ValidModel());
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { memset(h.name, 'n', sizeof h.name); }),
                 "NUL");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.features = 1u << 20; }),
                 "feature");
}

TEST_F(VulkanValidateTest, TablesOutsideTheFileOrMisaligned) {
  Bytes b = Build(ValidModel());
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.tensors_offset = h.file_size; }),
                 "tensor table");
  // Offsets that would wrap around if added to the size.
  ExpectRejected(
      EditHeader(b, [](kiln_vk_header_t &h) { h.bindings_offset = UINT64_MAX - 7; }),
      "binding table");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.kernels_offset += 4; }),
                 "aligned");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.dispatches_offset = 8; }),
                 "header");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.num_dispatches = 1000000; }),
                 "dispatch table");
}

TEST_F(VulkanValidateTest, BadSpirvSection) {
  Bytes b = Build(ValidModel());
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.spirv_size -= 2; }), "multiple of 4");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.spirv_size = 0; }), "multiple of 4");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.spirv_offset += 4; }),
                 "not a SPIR-V module");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.spirv_size = h.file_size; }),
                 "SPIR-V");
}

TEST_F(VulkanValidateTest, MisalignedOrTruncatedWeights) {
  Bytes b = Build(ValidModel());
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.weights_offset -= 8; }),
                 "256-byte aligned");
  ExpectRejected(EditHeader(b, [](kiln_vk_header_t &h) { h.weights_size += 1; }),
                 "weights");
}

TEST_F(VulkanValidateTest, BadTensors) {
  ExpectRejected(With([](KvkModel &m) { m.tensors[0].rank = KILN_VK_MAX_DIMS + 1; }), "rank 9");
  ExpectRejected(With([](KvkModel &m) { m.tensors[1].dims[1] = 0; }), "dimension 1 is 0");
  ExpectRejected(With([](KvkModel &m) { m.tensors[0].dims[0] = -1; }), "dimension 0 is -1");
  ExpectRejected(With([](KvkModel &m) { m.tensors[0].size_bytes += 4; }), "size_bytes");
  ExpectRejected(With([](KvkModel &m) { m.tensors[0].dtype = 99; }), "dtype");
  ExpectRejected(With([](KvkModel &m) {
                   memset(m.tensors[1].name, 'y', sizeof m.tensors[1].name);
                 }),
                 "output 0: name");
  ExpectRejected(With([](KvkModel &m) {
                   for (int d = 0; d < 8; ++d) m.tensors[0].dims[d] = INT64_C(1) << 40;
                   m.tensors[0].rank = 8;
                 }),
                 "overflows");
}

TEST_F(VulkanValidateTest, BadKernels) {
  ExpectRejected(With([](KvkModel &m) { snprintf(m.kernels[1].entry, 8, "missing"); }),
                 "'missing' is not a GLCompute entry point");
  ExpectRejected(With([](KvkModel &m) { m.kernels[0].entry[0] = '\0'; }), "empty");
  ExpectRejected(With([](KvkModel &m) {
                   memset(m.kernels[0].entry, 'k', sizeof m.kernels[0].entry);
                 }),
                 "NUL-terminated");
  ExpectRejected(With([](KvkModel &m) { m.kernels[0].push_constant_bytes = 16; }),
                 "push_constant_bytes");
  // An entry point of another execution model (Vertex) does not count.
  ExpectRejected(With([](KvkModel &m) { m.spirv[5 + 2 + 3 + 1] = 0; }),
                 "'affine' is not a GLCompute entry point");
}

TEST_F(VulkanValidateTest, BadDispatches) {
  ExpectRejected(With([](KvkModel &m) { m.dispatches[1].kernel = 2; }), "kernel 2 of 2");
  ExpectRejected(With([](KvkModel &m) { m.dispatches[0].num_bindings = 3; }),
                 "3 bindings, but kernel 'affine' takes 4");
  ExpectRejected(With([](KvkModel &m) { m.dispatches[1].first_binding = 5; }),
                 "past the table");
  ExpectRejected(With([](KvkModel &m) { m.dispatches[1].first_binding = UINT32_MAX; }),
                 "past the table");
  ExpectRejected(With([](KvkModel &m) { m.dispatches[0].groups[2] = 0; }),
                 "workgroup count 4x1x0");
}

TEST_F(VulkanValidateTest, BindingsOutsideTheirBuffer) {
  ExpectRejected(With([](KvkModel &m) { m.bindings[2].offset = 512; }), "outside buffer 0");
  ExpectRejected(With([](KvkModel &m) { m.bindings[3].size = 512; }), "outside buffer 1");
  ExpectRejected(With([](KvkModel &m) { m.bindings[1].offset = 4; }), "outside buffer 2");
  ExpectRejected(With([](KvkModel &m) { m.bindings[5].size = 4 * kN + 1; }),
                 "outside buffer 3");
  ExpectRejected(With([](KvkModel &m) { m.bindings[5].buffer = 4; }), "no buffer 4");
  ExpectRejected(With([](KvkModel &m) { m.bindings[0].size = 0; }), "outside buffer 0");
  ExpectRejected(With([](KvkModel &m) {
                   m.bindings[0].offset = UINT64_MAX - 2;
                   m.bindings[0].size = 4;
                 }),
                 "outside buffer 0");
  // An arena of 0 bytes cannot be bound.
  ExpectRejected(With([](KvkModel &m) { m.arena_size = 0; }), "outside buffer 1");
}

// Every byte of a valid image set to a few values, checksum recomputed so that the structural
// checks see it: whatever the verdict, validation must not read out of bounds or crash (run
// under ASan), and a rejection must explain itself.
TEST_F(VulkanValidateTest, ResealedByteEditsNeverCrash) {
  Bytes b = Build(ValidModel());
  size_t rejected = 0;
  for (size_t at = 0; at < b.size(); ++at) {
    if (at >= offsetof(kiln_vk_header_t, checksum) &&
        at < offsetof(kiln_vk_header_t, checksum) + 8)
      continue;
    for (unsigned char v : {0x00, 0xff, 0x80}) {
      Bytes edited = b;
      edited[at] = static_cast<unsigned char>(v == 0x80 ? edited[at] ^ 0x80 : v);
      Seal(edited);
      errors_.clear();
      kiln_status_t s = kiln_vk_validate(edited.data(), edited.size());
      ASSERT_TRUE(s == KILN_OK || s == KILN_ERROR_BAD_WEIGHTS) << at;
      if (s != KILN_OK) {
        ++rejected;
        ASSERT_FALSE(errors_.last().empty()) << at;
      }
    }
  }
  EXPECT_GT(rejected, 0u);
}

TEST_F(VulkanValidateTest, EmptyModelWithoutDispatchesPasses) {
  KvkModel m;
  m.spirv = FakeSpirv({});
  Bytes b = Build(m);
  EXPECT_EQ(kiln_vk_validate(b.data(), b.size()), KILN_OK) << errors_.last();
}

TEST_F(VulkanValidateTest, OpenRejectsBadFilesBeforeTouchingVulkan) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  Bytes b = Build(ValidModel());
  b[b.size() - 1] ^= 1;
  kiln_vk_model_t *model = reinterpret_cast<kiln_vk_model_t *>(1);
  EXPECT_EQ(kiln_vk_model_open(dir.Write("bad.kvk", b).c_str(), nullptr, &model),
            KILN_ERROR_BAD_WEIGHTS);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(errors_.last().find("checksum"), std::string::npos) << errors_.last();
  EXPECT_EQ(kiln_vk_model_open(dir.Write("short.kvk", Bytes(10, 0)).c_str(), nullptr, &model),
            KILN_ERROR_BAD_WEIGHTS);
  EXPECT_EQ(kiln_vk_model_open((dir.File("missing.kvk")).c_str(), nullptr, &model),
            KILN_ERROR_IO);
  EXPECT_EQ(kiln_vk_model_open(nullptr, nullptr, &model), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_vk_model_open("x.kvk", nullptr, nullptr), KILN_ERROR_INVALID_ARGUMENT);
  kiln_vk_options_t options = {-2, ""};
  EXPECT_EQ(kiln_vk_model_open("x.kvk", &options, &model), KILN_ERROR_INVALID_ARGUMENT);
}

// An empty table's offset is only checked for alignment, so open must never form a
// pointer from it (a UBSan pointer overflow before the fix; the fuzz corpus holds the
// file as tests/fuzz/corpus/vulkan/empty-table-far-offset.kvk). Device 1000 stops open
// after the tables are copied and before any shader is created.
TEST_F(VulkanValidateTest, EmptyTableAtAFarOffsetIsNeverDereferenced) {
  KvkModel m;
  m.spirv = FakeSpirv({});
  Bytes b = Build(m);
  uint64_t far = 0xFFFFFFFFFFFFFF00ull;
  std::memcpy(b.data() + offsetof(kiln_vk_header_t, dispatches_offset), &far, sizeof far);
  ASSERT_EQ(kiln_vk_validate(b.data(), b.size()), KILN_OK) << errors_.last();
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  kiln_vk_options_t options = {1000, ""};
  kiln_vk_model_t *model = nullptr;
  EXPECT_EQ(kiln_vk_model_open(dir.Write("far.kvk", b).c_str(), &options, &model), KILN_ERROR_DEVICE)
      << errors_.last();
  EXPECT_EQ(model, nullptr);
}

TEST_F(VulkanValidateTest, NullModelIsSafe) {
  kiln_vk_model_close(nullptr);
  EXPECT_EQ(kiln_vk_model_info(nullptr), nullptr);
  EXPECT_EQ(kiln_vk_model_num_inputs(nullptr), 0u);
  EXPECT_EQ(kiln_vk_model_input(nullptr, 0), nullptr);
  EXPECT_EQ(kiln_vk_model_run(nullptr, nullptr, nullptr, nullptr, nullptr),
            KILN_ERROR_INVALID_ARGUMENT);
}

// ---- on a device ------------------------------------------------------------------------

#ifdef KILN_VK_TEST_SPIRV
std::vector<uint32_t> ReadSpirv() {
  std::vector<uint32_t> words;
  FILE *f = fopen(KILN_VK_TEST_SPIRV, "rb");
  if (!f) return words;
  uint32_t w;
  while (fread(&w, sizeof w, 1, f) == 1) words.push_back(w);
  fclose(f);
  return words;
}
#endif

class VulkanDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef KILN_VK_TEST_SPIRV
    GTEST_SKIP() << "glslangValidator or spirv-link not found: no test kernels";
#else
    spirv_ = ReadSpirv();
    ASSERT_FALSE(spirv_.empty()) << "cannot read " << KILN_VK_TEST_SPIRV;
    ASSERT_TRUE(dir_.ok());
    path_ = Write("model.kvk", TwoKernelModel(spirv_));
    cache_ = dir_.File("model.kvk.cache");
    // Whether there is a device at all, without leaving a cache file behind.
    kiln_vk_options_t options = {-1, ""};
    kiln_vk_model_t *model = nullptr;
    kiln_status_t s = kiln_vk_model_open(path_.c_str(), &options, &model);
    kiln_vk_model_close(model);
    if (s == KILN_ERROR_DEVICE) GTEST_SKIP() << "no usable Vulkan device: " << errors_.last();
    ASSERT_EQ(s, KILN_OK) << errors_.last();
#endif
  }

  std::string Write(const std::string &name, const KvkModel &m) {
    return dir_.Write(name, Build(m));
  }

  // Opens `path`; KILN_OK expected.
  kiln_vk_model_t *Open(const std::string &path, const char *cache_path = nullptr,
                        int device_index = -1) {
    kiln_vk_options_t options = {device_index, cache_path};
    kiln_vk_model_t *model = nullptr;
    kiln_status_t s = kiln_vk_model_open(path.c_str(), &options, &model);
    EXPECT_EQ(s, KILN_OK) << errors_.last();
    return model;
  }

  // Runs the test model on x[i] = scale * i and checks y.
  void RunAndCheck(kiln_vk_model_t *model, float scale) {
    ASSERT_NE(model, nullptr);
    std::vector<float> x(kN), y(kN, -1.0f);
    for (size_t i = 0; i < kN; ++i) x[i] = InputX(i, scale);
    const void *inputs[] = {x.data()};
    size_t input_sizes[] = {x.size() * sizeof(float)};
    void *outputs[] = {y.data()};
    size_t output_sizes[] = {y.size() * sizeof(float)};
    ASSERT_EQ(kiln_vk_model_run(model, inputs, input_sizes, outputs, output_sizes), KILN_OK)
        << errors_.last();
    for (size_t i = 0; i < kN; ++i) ASSERT_FLOAT_EQ(y[i], Expected(i, scale)) << "y[" << i << "]";
  }

  bool Exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

  ErrorCapture errors_;
  TempDir dir_;
  std::vector<uint32_t> spirv_;
  std::string path_, cache_;
};

TEST_F(VulkanDeviceTest, RunsTheModel) {
  kiln_vk_model_t *model = Open(path_, "");
  ASSERT_NE(model, nullptr);
  const kiln_vk_info_t *info = kiln_vk_model_info(model);
  ASSERT_NE(info, nullptr);
  EXPECT_STRNE(info->device_name, "");
  EXPECT_GT(info->device_bytes, 0u);
  EXPECT_GE(info->open_ms, info->pipelines_ms);
  EXPECT_GT(info->pipelines_ms, 0.0);
  EXPECT_EQ(info->pipeline_cache_hit, 0);
  EXPECT_FALSE(Exists(cache_)) << "\"\" disables the cache file";

  ASSERT_EQ(kiln_vk_model_num_inputs(model), 1u);
  ASSERT_EQ(kiln_vk_model_num_outputs(model), 1u);
  EXPECT_STREQ(kiln_vk_model_input(model, 0)->name, "x");
  EXPECT_STREQ(kiln_vk_model_output(model, 0)->name, "y");
  EXPECT_EQ(kiln_vk_model_output(model, 0)->size_bytes, 4 * kN);
  EXPECT_EQ(kiln_vk_model_input(model, 1), nullptr);
  EXPECT_EQ(kiln_vk_model_output(model, 1), nullptr);

  // The recorded command buffer is submitted again, with new inputs, by every run.
  RunAndCheck(model, 1.0f);
  RunAndCheck(model, -3.0f);
  RunAndCheck(model, 0.25f);
  kiln_vk_model_close(model);
}

TEST_F(VulkanDeviceTest, PipelineCacheIsWrittenThenHit) {
  kiln_vk_model_t *first = Open(path_);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(kiln_vk_model_info(first)->pipeline_cache_hit, 0);
  EXPECT_TRUE(Exists(cache_)) << "the first open writes <model>.cache";
  RunAndCheck(first, 1.0f);
  kiln_vk_model_close(first);

  kiln_vk_model_t *second = Open(path_);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(kiln_vk_model_info(second)->pipeline_cache_hit, 1);
  RunAndCheck(second, 2.0f);
  kiln_vk_model_close(second);
}

TEST_F(VulkanDeviceTest, ExplicitCachePath) {
  std::string cache = dir_.File("elsewhere.cache");
  kiln_vk_model_close(Open(path_, cache.c_str()));
  EXPECT_TRUE(Exists(cache));
  EXPECT_FALSE(Exists(cache_));
  kiln_vk_model_t *model = Open(path_, cache.c_str());
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(kiln_vk_model_info(model)->pipeline_cache_hit, 1);
  kiln_vk_model_close(model);
}

TEST_F(VulkanDeviceTest, DamagedOrForeignCacheIsRebuilt) {
  kiln_vk_model_close(Open(path_));
  Bytes good;
  {
    FILE *f = fopen(cache_.c_str(), "rb");
    ASSERT_NE(f, nullptr);
    int c;
    while ((c = fgetc(f)) != EOF) good.push_back(static_cast<unsigned char>(c));
    fclose(f);
  }
  ASSERT_GT(good.size(), 72u);

  Bytes flipped = good;  // a flipped byte in Vulkan's data: the checksum catches it
  flipped[good.size() - 1] ^= 0xff;
  Bytes truncated(good.begin(), good.begin() + 40);
  Bytes garbage(good.size(), 0x5a);
  for (const Bytes &bad : {flipped, truncated, garbage, Bytes{}}) {
    SCOPED_TRACE(bad.size());
    dir_.Write("model.kvk.cache", bad);
    kiln_vk_model_t *model = Open(path_);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(kiln_vk_model_info(model)->pipeline_cache_hit, 0);
    RunAndCheck(model, 1.5f);
    kiln_vk_model_close(model);
    // ...and rewritten, so the next open hits.
    model = Open(path_);
    ASSERT_NE(model, nullptr);
    EXPECT_EQ(kiln_vk_model_info(model)->pipeline_cache_hit, 1);
    kiln_vk_model_close(model);
  }

  // Another model (another model_hash) does not use this model's cache.
  KvkModel other = TwoKernelModel(spirv_);
  other.model_hash ^= 1;
  std::string other_path = Write("other.kvk", other);
  std::string shared = dir_.File("shared.cache");
  kiln_vk_model_close(Open(path_, shared.c_str()));
  kiln_vk_model_t *model = Open(other_path, shared.c_str());
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(kiln_vk_model_info(model)->pipeline_cache_hit, 0);
  RunAndCheck(model, 1.0f);
  kiln_vk_model_close(model);
}

TEST_F(VulkanDeviceTest, RunChecksItsArguments) {
  kiln_vk_model_t *model = Open(path_, "");
  ASSERT_NE(model, nullptr);
  std::vector<float> x(kN, 1.0f), y(kN + 8, 0.0f);
  const void *inputs[] = {x.data()};
  void *outputs[] = {y.data()};
  size_t good_in[] = {4 * kN}, short_in[] = {4 * kN - 4}, long_in[] = {4 * kN + 4};
  size_t good_out[] = {4 * kN}, small_out[] = {4 * kN - 1}, large_out[] = {4 * (kN + 8)};

  EXPECT_EQ(kiln_vk_model_run(model, inputs, short_in, outputs, good_out),
            KILN_ERROR_SHAPE_MISMATCH);
  EXPECT_NE(errors_.last().find("'x'"), std::string::npos) << errors_.last();
  EXPECT_EQ(kiln_vk_model_run(model, inputs, long_in, outputs, good_out),
            KILN_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(kiln_vk_model_run(model, inputs, good_in, outputs, small_out),
            KILN_ERROR_BUFFER_TOO_SMALL);
  EXPECT_NE(errors_.last().find("'y'"), std::string::npos) << errors_.last();
  EXPECT_EQ(kiln_vk_model_run(model, nullptr, good_in, outputs, good_out),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_vk_model_run(model, inputs, good_in, nullptr, good_out),
            KILN_ERROR_INVALID_ARGUMENT);
  const void *null_inputs[] = {nullptr};
  EXPECT_EQ(kiln_vk_model_run(model, null_inputs, good_in, outputs, good_out),
            KILN_ERROR_INVALID_ARGUMENT);
  // A larger output buffer is fine; the bytes past the tensor are left alone.
  y[kN] = 42.0f;
  EXPECT_EQ(kiln_vk_model_run(model, inputs, good_in, outputs, large_out), KILN_OK)
      << errors_.last();
  EXPECT_FLOAT_EQ(y[1], Expected(1, 1.0f));
  EXPECT_FLOAT_EQ(y[kN], 42.0f);
  kiln_vk_model_close(model);
}

TEST_F(VulkanDeviceTest, ModelWithoutWeightsOrArena) {
  // One dispatch of "offset" straight from the input to the output.
  KvkModel m;
  m.num_inputs = m.num_outputs = 1;
  m.tensors = {Tensor("x", KILN_DTYPE_F32, {kN}), Tensor("y", KILN_DTYPE_F32, {kN})};
  m.kernels = {Kernel("offset", 2)};
  m.bindings = {Binding(KILN_VK_BUFFER_FIRST_IO, 0, 4 * kN),
                Binding(KILN_VK_BUFFER_FIRST_IO + 1, 0, 4 * kN)};
  m.dispatches = {Dispatch(0, kN / 16, 0, 2)};
  m.spirv = spirv_;
  kiln_vk_model_t *model = Open(Write("plain.kvk", m), "");
  ASSERT_NE(model, nullptr);
  std::vector<float> x(kN), y(kN);
  for (size_t i = 0; i < kN; ++i) x[i] = static_cast<float>(i) * 3.0f;
  const void *inputs[] = {x.data()};
  void *outputs[] = {y.data()};
  size_t sizes[] = {4 * kN};
  ASSERT_EQ(kiln_vk_model_run(model, inputs, sizes, outputs, sizes), KILN_OK) << errors_.last();
  for (size_t i = 0; i < kN; ++i) EXPECT_FLOAT_EQ(y[i], x[i] + 1.0f);
  kiln_vk_model_close(model);
}

TEST_F(VulkanDeviceTest, ArenaLargerThanTheDeviceIsOutOfMemory) {
  // Fails late in open (device, weights and command pool exist): all of it is released.
  KvkModel m = TwoKernelModel(spirv_);
  m.arena_size = uint64_t{1} << 46;
  kiln_vk_options_t options = {-1, ""};
  kiln_vk_model_t *model = reinterpret_cast<kiln_vk_model_t *>(1);
  kiln_status_t s = kiln_vk_model_open(Write("huge.kvk", m).c_str(), &options, &model);
  EXPECT_EQ(model, nullptr);
  EXPECT_TRUE(s == KILN_ERROR_OUT_OF_MEMORY || s == KILN_ERROR_DEVICE) << kiln_status_string(s);
  EXPECT_NE(errors_.last().find("arena"), std::string::npos) << errors_.last();
}

TEST_F(VulkanDeviceTest, DeviceIndexOutOfRange) {
  kiln_vk_options_t options = {1000, ""};
  kiln_vk_model_t *model = reinterpret_cast<kiln_vk_model_t *>(1);
  EXPECT_EQ(kiln_vk_model_open(path_.c_str(), &options, &model), KILN_ERROR_DEVICE);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(errors_.last().find("device index 1000"), std::string::npos) << errors_.last();
  // Device 0 exists (SetUp found one).
  kiln_vk_model_close(Open(path_, "", 0));
}

TEST_F(VulkanDeviceTest, BindingOffsetBelowTheDeviceAlignment) {
  // `a` moved to byte 4 of the weights: no device aligns storage buffers to less than 4, and
  // most (lavapipe: 16) want more, which open reports as a device limit.
  KvkModel m = TwoKernelModel(spirv_);
  m.bindings[0].offset = 4;
  kiln_vk_options_t options = {-1, ""};
  kiln_vk_model_t *model = nullptr;
  kiln_status_t s = kiln_vk_model_open(Write("misaligned.kvk", m).c_str(), &options, &model);
  if (s == KILN_OK) {
    kiln_vk_model_close(model);
    GTEST_SKIP() << "this device accepts 4-byte aligned storage buffer offsets";
  }
  EXPECT_EQ(s, KILN_ERROR_DEVICE);
  EXPECT_NE(errors_.last().find("minStorageBufferOffsetAlignment"), std::string::npos)
      << errors_.last();
}

TEST_F(VulkanDeviceTest, FeaturesAreEnabledOrReported) {
  // Every feature bit: lavapipe has them all; a device without one must say which.
  KvkModel m = TwoKernelModel(spirv_);
  m.features = KILN_VK_FEATURE_INT64 | KILN_VK_FEATURE_INT16 | KILN_VK_FEATURE_INT8 |
               KILN_VK_FEATURE_FLOAT16 | KILN_VK_FEATURE_FLOAT64 |
               KILN_VK_FEATURE_STORAGE_8BIT | KILN_VK_FEATURE_STORAGE_16BIT;
  kiln_vk_options_t options = {-1, ""};
  kiln_vk_model_t *model = nullptr;
  kiln_status_t s = kiln_vk_model_open(Write("features.kvk", m).c_str(), &options, &model);
  if (s == KILN_ERROR_DEVICE) {
    EXPECT_NE(errors_.last().find("no "), std::string::npos) << errors_.last();
    return;
  }
  ASSERT_EQ(s, KILN_OK) << errors_.last();
  RunAndCheck(model, 1.0f);
  kiln_vk_model_close(model);
}

}  // namespace

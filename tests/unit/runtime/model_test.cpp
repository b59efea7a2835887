// Unit tests of model creation, binding and running against the hand-written fake models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "fake_model.h"
#include "kiln/kiln.h"
#include "test_util.h"

namespace {

using kiln_test::AlignedBuffer;
using kiln_test::ErrorCapture;

// Weights for a model, wrapped from 64-byte aligned memory; closes on destruction.
class WrappedWeights {
 public:
  WrappedWeights(const void *data, size_t size, uint64_t hash) : image_(64 + size + 64) {
    size_t n = kiln_fake_build_weights(data, size, hash, image_.data(), image_.size());
    status_ = n ? kiln_weights_wrap(image_.data(), n, &weights_) : KILN_ERROR_INVALID_ARGUMENT;
  }
  ~WrappedWeights() { kiln_weights_close(weights_); }
  kiln_status_t status() const { return status_; }
  const kiln_weights_t *get() const { return weights_; }

 private:
  AlignedBuffer image_;
  kiln_weights_t *weights_ = nullptr;
  kiln_status_t status_;
};

static WrappedWeights *FakeWeights(uint64_t hash = KILN_FAKE_WEIGHTS_HASH) {
  float w[KILN_FAKE_WEIGHTS_COUNT];
  kiln_fake_weights_data(w);
  return new WrappedWeights(w, sizeof w, hash);
}

class FakeModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    weights_.reset(FakeWeights());
    ASSERT_EQ(weights_->status(), KILN_OK);
    ASSERT_EQ(kiln_model_create(&kiln_fake_model_desc, weights_->get(), &model_), KILN_OK);
    for (int i = 0; i < 10; ++i) x_[i] = static_cast<float>(i);
  }
  void TearDown() override { kiln_model_destroy(model_); }

  kiln_status_t BindX(kiln_dtype_t dtype = KILN_DTYPE_F32) {
    return kiln_model_bind_input(model_, 0, dtype, 2, kDims, x_, sizeof x_);
  }
  kiln_status_t BindY() {
    return kiln_model_bind_output(model_, 0, KILN_DTYPE_F32, 2, kDims, y_, sizeof y_);
  }
  kiln_status_t BindSum() {
    return kiln_model_bind_output(model_, 1, KILN_DTYPE_F32, 0, nullptr, &sum_, sizeof sum_);
  }
  kiln_status_t BindArena() { return kiln_model_bind_arena(model_, arena_.data(), arena_.size()); }
  void BindAll() {
    ASSERT_EQ(BindArena(), KILN_OK);
    ASSERT_EQ(BindX(), KILN_OK);
    ASSERT_EQ(BindY(), KILN_OK);
    ASSERT_EQ(BindSum(), KILN_OK);
  }

  static constexpr int64_t kDims[2] = {1, 10};
  std::unique_ptr<WrappedWeights> weights_;
  kiln_model_t *model_ = nullptr;
  AlignedBuffer arena_{64, 64};
  float x_[10];
  float y_[10] = {0};
  float sum_ = 0;
  ErrorCapture errors_;
};

constexpr int64_t FakeModelTest::kDims[2];

// ---- create ---------------------------------------------------------------------------

TEST(ModelCreate, AcceptsMatchingWeights) {
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_model_t *model = nullptr;
  ASSERT_EQ(kiln_model_create(&kiln_fake_model_desc, w->get(), &model), KILN_OK);
  EXPECT_NE(model, nullptr);
  kiln_model_destroy(model);
}

TEST(ModelCreate, RejectsNullArguments) {
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(nullptr, w->get(), &model), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_create(&kiln_fake_model_desc, nullptr, &model),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_create(&kiln_fake_model_desc, w->get(), nullptr),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(model, nullptr);
}

TEST(ModelCreate, RejectsObjectBuiltForAnotherAbiVersion) {
  ErrorCapture errors;
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_model_desc_t desc = kiln_fake_model_desc;
  desc.abi_version = KILN_MODEL_ABI_VERSION + 1;
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&desc, w->get(), &model), KILN_ERROR_ABI_MISMATCH);
  EXPECT_EQ(model, nullptr);
  EXPECT_NE(errors.last().find("ABI version"), std::string::npos) << errors.last();
}

TEST(ModelCreate, RejectsWeightsWithAnotherModelHash) {
  ErrorCapture errors;
  std::unique_ptr<WrappedWeights> w(FakeWeights(KILN_FAKE_WEIGHTS_HASH ^ 1));
  ASSERT_EQ(w->status(), KILN_OK);
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&kiln_fake_model_desc, w->get(), &model), KILN_ERROR_BAD_WEIGHTS);
  EXPECT_NE(errors.last().find("another model"), std::string::npos) << errors.last();
}

TEST(ModelCreate, RejectsWeightsOfAnotherSize) {
  float w[KILN_FAKE_WEIGHTS_COUNT + 1] = {0};
  WrappedWeights weights(w, sizeof w, KILN_FAKE_WEIGHTS_HASH);
  ASSERT_EQ(weights.status(), KILN_OK);
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&kiln_fake_model_desc, weights.get(), &model),
            KILN_ERROR_BAD_WEIGHTS);
}

TEST(ModelCreate, RejectsDescriptorWhoseSizeBytesDisagreesWithDims) {
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_tensor_desc_t inputs[1];
  memcpy(inputs, kiln_fake_model_desc.inputs, sizeof inputs);
  inputs[0].size_bytes += 4;
  kiln_model_desc_t desc = kiln_fake_model_desc;
  desc.inputs = inputs;
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&desc, w->get(), &model), KILN_ERROR_ABI_MISMATCH);
}

TEST(ModelCreate, RejectsDescriptorWithDuplicateOutputNames) {
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_tensor_desc_t outputs[2];
  memcpy(outputs, kiln_fake_model_desc.outputs, sizeof outputs);
  outputs[1] = outputs[0];
  kiln_model_desc_t desc = kiln_fake_model_desc;
  desc.outputs = outputs;
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&desc, w->get(), &model), KILN_ERROR_ABI_MISMATCH);
}

TEST(ModelCreate, RejectsDescriptorWithUnknownDtypeOrMissingEntry) {
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_tensor_desc_t inputs[1];
  memcpy(inputs, kiln_fake_model_desc.inputs, sizeof inputs);
  inputs[0].dtype = 99;
  kiln_model_desc_t desc = kiln_fake_model_desc;
  desc.inputs = inputs;
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&desc, w->get(), &model), KILN_ERROR_ABI_MISMATCH);
  desc = kiln_fake_model_desc;
  desc.invoke = nullptr;
  EXPECT_EQ(kiln_model_create(&desc, w->get(), &model), KILN_ERROR_ABI_MISMATCH);
}

TEST(ModelCreate, RejectsArenaAlignmentThatIsNotAPowerOfTwo) {
  std::unique_ptr<WrappedWeights> w(FakeWeights());
  kiln_model_desc_t desc = kiln_fake_model_desc;
  desc.arena_alignment = 48;
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&desc, w->get(), &model), KILN_ERROR_ABI_MISMATCH);
}

// ---- introspection and plan --------------------------------------------------------------

TEST_F(FakeModelTest, IntrospectionReportsTheDescriptor) {
  EXPECT_EQ(kiln_model_num_inputs(model_), 1u);
  EXPECT_EQ(kiln_model_num_outputs(model_), 2u);
  ASSERT_NE(kiln_model_input(model_, 0), nullptr);
  EXPECT_STREQ(kiln_model_input(model_, 0)->name, "x");
  EXPECT_STREQ(kiln_model_output(model_, 1)->name, "stats/sum");
  EXPECT_EQ(kiln_model_input(model_, 1), nullptr);
  EXPECT_EQ(kiln_model_output(model_, 2), nullptr);
  EXPECT_EQ(kiln_model_num_inputs(nullptr), 0u);
}

TEST_F(FakeModelTest, FindByNameReturnsIndexOrNotFound) {
  size_t index = 99;
  EXPECT_EQ(kiln_model_find_input(model_, "x", &index), KILN_OK);
  EXPECT_EQ(index, 0u);
  EXPECT_EQ(kiln_model_find_output(model_, "stats/sum", &index), KILN_OK);
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(kiln_model_find_input(model_, "y", &index), KILN_ERROR_NOT_FOUND);
  EXPECT_EQ(kiln_model_find_output(model_, "", &index), KILN_ERROR_NOT_FOUND);
  EXPECT_EQ(kiln_model_find_input(model_, nullptr, &index), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(FakeModelTest, PlanReportsArenaSizeAndAlignment) {
  size_t size = 0, alignment = 0;
  ASSERT_EQ(kiln_model_plan(model_, &size, &alignment), KILN_OK);
  EXPECT_EQ(size, 64u);
  EXPECT_EQ(alignment, 64u);
}

// ---- run ------------------------------------------------------------------------------

TEST_F(FakeModelTest, HappyPathComputesEveryOutput) {
  BindAll();
  int before = kiln_fake_invocations;
  ASSERT_EQ(kiln_model_run(model_), KILN_OK);
  EXPECT_EQ(kiln_fake_invocations, before + 1);
  for (int i = 0; i < 10; ++i) EXPECT_FLOAT_EQ(y_[i], 2.5f * i) << i;
  EXPECT_FLOAT_EQ(sum_, 112.5f);
  // Runs are repeatable with the same bindings.
  x_[0] = 4.0f;
  ASSERT_EQ(kiln_model_run(model_), KILN_OK);
  EXPECT_FLOAT_EQ(y_[0], 8.0f);
}

TEST_F(FakeModelTest, RunBeforeBindingIsNotBound) {
  int before = kiln_fake_invocations;
  EXPECT_EQ(kiln_model_run(model_), KILN_ERROR_NOT_BOUND);
  EXPECT_EQ(kiln_fake_invocations, before);
}

TEST_F(FakeModelTest, RunWithoutArenaIsNotBound) {
  ASSERT_EQ(BindX(), KILN_OK);
  ASSERT_EQ(BindY(), KILN_OK);
  ASSERT_EQ(BindSum(), KILN_OK);
  EXPECT_EQ(kiln_model_run(model_), KILN_ERROR_NOT_BOUND);
  EXPECT_NE(errors_.last().find("arena"), std::string::npos) << errors_.last();
}

TEST_F(FakeModelTest, RunWithoutOneOutputIsNotBoundAndNamesIt) {
  ASSERT_EQ(BindArena(), KILN_OK);
  ASSERT_EQ(BindX(), KILN_OK);
  ASSERT_EQ(BindY(), KILN_OK);
  int before = kiln_fake_invocations;
  EXPECT_EQ(kiln_model_run(model_), KILN_ERROR_NOT_BOUND);
  EXPECT_EQ(kiln_fake_invocations, before);
  EXPECT_NE(errors_.last().find("stats/sum"), std::string::npos) << errors_.last();
}

TEST_F(FakeModelTest, FailedRebindLeavesTheSlotUnbound) {
  BindAll();
  EXPECT_EQ(BindX(KILN_DTYPE_I32), KILN_ERROR_DTYPE_MISMATCH);
  EXPECT_EQ(kiln_model_run(model_), KILN_ERROR_NOT_BOUND);
  ASSERT_EQ(BindX(), KILN_OK);
  EXPECT_EQ(kiln_model_run(model_), KILN_OK);
}

TEST(ModelRun, ModelWithoutArenaAndWithEmptyWeightsRunsWithoutArena) {
  WrappedWeights weights(nullptr, 0, KILN_FAKE_NOARENA_HASH);
  ASSERT_EQ(weights.status(), KILN_OK);
  kiln_model_t *model = nullptr;
  ASSERT_EQ(kiln_model_create(&kiln_fake_noarena_desc, weights.get(), &model), KILN_OK);
  size_t size = 1, alignment = 0;
  ASSERT_EQ(kiln_model_plan(model, &size, &alignment), KILN_OK);
  EXPECT_EQ(size, 0u);
  EXPECT_EQ(alignment, 1u);
  const int64_t dims[] = {3};
  int64_t ids[3] = {1, 2, 3}, out[3] = {0};
  ASSERT_EQ(kiln_model_bind_input(model, 0, KILN_DTYPE_I64, 1, dims, ids, sizeof ids), KILN_OK);
  ASSERT_EQ(kiln_model_bind_output(model, 0, KILN_DTYPE_I64, 1, dims, out, sizeof out), KILN_OK);
  ASSERT_EQ(kiln_model_run(model), KILN_OK);
  EXPECT_EQ(out[0], 2);
  EXPECT_EQ(out[2], 4);
  kiln_model_destroy(model);
}

TEST(ModelRun, NullModelIsInvalidArgument) {
  EXPECT_EQ(kiln_model_run(nullptr), KILN_ERROR_INVALID_ARGUMENT);
  kiln_model_destroy(nullptr);  // must be a no-op
}

// ---- bind -----------------------------------------------------------------------------

TEST_F(FakeModelTest, BindInputWithWrongDtypeIsDtypeMismatch) {
  EXPECT_EQ(BindX(KILN_DTYPE_F16), KILN_ERROR_DTYPE_MISMATCH);
  EXPECT_EQ(BindX(KILN_DTYPE_INVALID), KILN_ERROR_DTYPE_MISMATCH);
  EXPECT_NE(errors_.last().find("'x'"), std::string::npos) << errors_.last();
}

TEST_F(FakeModelTest, BindOutputWithWrongDtypeIsDtypeMismatch) {
  EXPECT_EQ(kiln_model_bind_output(model_, 0, KILN_DTYPE_I32, 2, kDims, y_, sizeof y_),
            KILN_ERROR_DTYPE_MISMATCH);
}

TEST_F(FakeModelTest, BindInputWithWrongRankIsShapeMismatch) {
  const int64_t dims3[] = {1, 10, 1};
  const int64_t dims1[] = {10};
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 3, dims3, x_, sizeof x_),
            KILN_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 1, dims1, x_, sizeof x_),
            KILN_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(kiln_model_bind_output(model_, 1, KILN_DTYPE_F32, 1, dims1, &sum_, sizeof sum_),
            KILN_ERROR_SHAPE_MISMATCH);
}

TEST_F(FakeModelTest, BindInputWithWrongDimIsShapeMismatchForEveryDim) {
  const int64_t first[] = {2, 10};
  const int64_t last[] = {1, 9};
  const int64_t swapped[] = {10, 1};
  float big[20] = {0};
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, first, big, sizeof big),
            KILN_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, last, x_, sizeof x_),
            KILN_ERROR_SHAPE_MISMATCH);
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, swapped, x_, sizeof x_),
            KILN_ERROR_SHAPE_MISMATCH);
}

TEST_F(FakeModelTest, BindOutputWithWrongDimIsShapeMismatch) {
  const int64_t dims[] = {1, 11};
  float big[11];
  EXPECT_EQ(kiln_model_bind_output(model_, 0, KILN_DTYPE_F32, 2, dims, big, sizeof big),
            KILN_ERROR_SHAPE_MISMATCH);
}

TEST_F(FakeModelTest, BindInputBufferTooSmall) {
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, kDims, x_, sizeof x_ - 1),
            KILN_ERROR_BUFFER_TOO_SMALL);
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, kDims, x_, 0),
            KILN_ERROR_BUFFER_TOO_SMALL);
  // Larger than needed is fine.
  float big[16] = {0};
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, kDims, big, sizeof big), KILN_OK);
}

TEST_F(FakeModelTest, BindOutputBufferTooSmall) {
  EXPECT_EQ(kiln_model_bind_output(model_, 0, KILN_DTYPE_F32, 2, kDims, y_, 39),
            KILN_ERROR_BUFFER_TOO_SMALL);
  EXPECT_EQ(kiln_model_bind_output(model_, 1, KILN_DTYPE_F32, 0, nullptr, &sum_, 3),
            KILN_ERROR_BUFFER_TOO_SMALL);
}

TEST_F(FakeModelTest, BindWithIndexOutOfRangeOrNullPointersIsInvalidArgument) {
  EXPECT_EQ(kiln_model_bind_input(model_, 1, KILN_DTYPE_F32, 2, kDims, x_, sizeof x_),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_bind_output(model_, 2, KILN_DTYPE_F32, 2, kDims, y_, sizeof y_),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, nullptr, x_, sizeof x_),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_bind_input(model_, 0, KILN_DTYPE_F32, 2, kDims, nullptr, sizeof x_),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_bind_input(nullptr, 0, KILN_DTYPE_F32, 2, kDims, x_, sizeof x_),
            KILN_ERROR_INVALID_ARGUMENT);
}

// ---- arena ----------------------------------------------------------------------------

TEST_F(FakeModelTest, MisalignedArenaIsRejected) {
  AlignedBuffer big(128, 64);
  EXPECT_EQ(kiln_model_bind_arena(model_, big.data() + 4, 100), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_model_bind_arena(model_, big.data() + 32, 96), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(errors_.last().find("aligned"), std::string::npos) << errors_.last();
  ASSERT_EQ(BindX(), KILN_OK);
  ASSERT_EQ(BindY(), KILN_OK);
  ASSERT_EQ(BindSum(), KILN_OK);
  EXPECT_EQ(kiln_model_run(model_), KILN_ERROR_NOT_BOUND);
}

TEST_F(FakeModelTest, ArenaSmallerThanPlanIsBufferTooSmall) {
  EXPECT_EQ(kiln_model_bind_arena(model_, arena_.data(), 63), KILN_ERROR_BUFFER_TOO_SMALL);
}

TEST_F(FakeModelTest, NullArenaIsInvalidArgument) {
  EXPECT_EQ(kiln_model_bind_arena(model_, nullptr, 64), KILN_ERROR_INVALID_ARGUMENT);
}

// ---- status, dtype, error hook ---------------------------------------------------------

TEST(Status, EveryStatusHasADistinctName) {
  std::set<std::string> names;
  for (int s = KILN_OK; s <= KILN_ERROR_DEVICE; ++s)
    names.insert(kiln_status_string(static_cast<kiln_status_t>(s)));
  EXPECT_EQ(names.size(), static_cast<size_t>(KILN_ERROR_DEVICE + 1));
  EXPECT_STREQ(kiln_status_string(KILN_OK), "ok");
  EXPECT_STREQ(kiln_status_string(KILN_ERROR_SHAPE_MISMATCH), "shape mismatch");
  EXPECT_STREQ(kiln_status_string(static_cast<kiln_status_t>(1234)), "unknown status");
}

TEST(Dtype, SizesAndNamesMatchTheAbi) {
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_F32), 4u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_F16), 2u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_I64), 8u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_I32), 4u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_I8), 1u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_U8), 1u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_BOOL), 1u);
  EXPECT_EQ(kiln_dtype_size(KILN_DTYPE_INVALID), 0u);
  EXPECT_EQ(kiln_dtype_size(static_cast<kiln_dtype_t>(77)), 0u);
  EXPECT_STREQ(kiln_dtype_name(KILN_DTYPE_F32), "f32");
  EXPECT_STREQ(kiln_dtype_name(KILN_DTYPE_BOOL), "bool");
  EXPECT_STREQ(kiln_dtype_name(static_cast<kiln_dtype_t>(77)), "unknown");
}

TEST(ErrorHook, ReceivesDetailOnlyWhileInstalled) {
  {
    ErrorCapture errors;
    EXPECT_EQ(kiln_model_run(nullptr), KILN_ERROR_INVALID_ARGUMENT);
    EXPECT_FALSE(errors.last().empty());
  }
  // With no hook installed, failing calls must still just return their status.
  EXPECT_EQ(kiln_model_run(nullptr), KILN_ERROR_INVALID_ARGUMENT);
}

}  // namespace

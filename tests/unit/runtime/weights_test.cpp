// Unit tests of .kw weights validation: every corruption must give KILN_ERROR_BAD_WEIGHTS/IO.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fake_model.h"
#include "kiln/kiln.h"
#include "test_util.h"

namespace {

using kiln_test::AlignedBuffer;
using kiln_test::ErrorCapture;
using kiln_test::TempDir;
using Bytes = std::vector<unsigned char>;

Bytes ValidImage() {
  float w[KILN_FAKE_WEIGHTS_COUNT];
  kiln_fake_weights_data(w);
  Bytes image(64 + sizeof w);
  size_t n = kiln_fake_build_weights(w, sizeof w, KILN_FAKE_WEIGHTS_HASH, image.data(),
                                     image.size());
  image.resize(n);
  return image;
}

void StoreU32(Bytes &b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}
void StoreU64(Bytes &b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}

// Header field offsets, from kiln_weights_header_t.
constexpr size_t kVersion = 8, kHeaderSize = 12, kDataOffset = 16, kDataSize = 24,
                 kModelHash = 32, kChecksum = 40;

class WeightsFileTest : public ::testing::Test {
 protected:
  // Opens `bytes` written to a file; the status, with the handle closed again.
  kiln_status_t Open(const Bytes &bytes) {
    kiln_weights_t *w = reinterpret_cast<kiln_weights_t *>(1);
    errors_.clear();
    std::string path = dir_.Write("w" + std::to_string(n_++) + ".kw", bytes);
    kiln_status_t s = kiln_weights_open(path.c_str(), &w);
    if (s != KILN_OK) {
      EXPECT_EQ(w, nullptr) << "failed open must clear the out pointer";
      EXPECT_FALSE(errors_.last().empty()) << "failure without detail";
      w = nullptr;
    }
    kiln_weights_close(w);
    return s;
  }
  // The same bytes through kiln_weights_wrap, from 64-byte aligned memory.
  kiln_status_t Wrap(const Bytes &bytes) {
    AlignedBuffer buf(bytes.size());
    if (!bytes.empty()) memcpy(buf.data(), bytes.data(), bytes.size());
    kiln_weights_t *w = nullptr;
    kiln_status_t s = kiln_weights_wrap(buf.data(), bytes.size(), &w);
    kiln_weights_close(w);
    return s;
  }
  // Both ways must agree.
  kiln_status_t Check(const Bytes &bytes) {
    kiln_status_t opened = Open(bytes);
    EXPECT_EQ(Wrap(bytes), opened);
    return opened;
  }

  TempDir dir_;
  ErrorCapture errors_;
  int n_ = 0;
};

TEST_F(WeightsFileTest, ValidFileOpensAndFeedsTheModel) {
  ASSERT_TRUE(dir_.ok());
  std::string path = dir_.Write("model.kw", ValidImage());
  kiln_weights_t *w = nullptr;
  ASSERT_EQ(kiln_weights_open(path.c_str(), &w), KILN_OK);
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&kiln_fake_model_desc, w, &model), KILN_OK);
  kiln_model_destroy(model);
  kiln_weights_close(w);
  EXPECT_EQ(Wrap(ValidImage()), KILN_OK);
}

TEST_F(WeightsFileTest, ZeroSizeDataSectionIsValid) {
  Bytes image(64);
  ASSERT_EQ(kiln_fake_build_weights(nullptr, 0, 7, image.data(), image.size()), 64u);
  EXPECT_EQ(Check(image), KILN_OK);
}

TEST_F(WeightsFileTest, PaddingBetweenHeaderAndDataIsValid) {
  Bytes image = ValidImage();
  Bytes padded(image.begin(), image.begin() + 64);
  padded.resize(128, 0);
  padded.insert(padded.end(), image.begin() + 64, image.end());
  StoreU64(padded, kDataOffset, 128);
  EXPECT_EQ(Check(padded), KILN_OK);
}

TEST_F(WeightsFileTest, MissingFileIsIoError) {
  kiln_weights_t *w = nullptr;
  EXPECT_EQ(kiln_weights_open(dir_.File("absent.kw").c_str(), &w), KILN_ERROR_IO);
  EXPECT_EQ(w, nullptr);
}

TEST_F(WeightsFileTest, DirectoryIsIoError) {
  kiln_weights_t *w = nullptr;
  EXPECT_EQ(kiln_weights_open("/", &w), KILN_ERROR_IO);
}

TEST_F(WeightsFileTest, NullArgumentsAreInvalid) {
  kiln_weights_t *w = nullptr;
  EXPECT_EQ(kiln_weights_open(nullptr, &w), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_weights_open("x.kw", nullptr), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_weights_wrap(nullptr, 64, &w), KILN_ERROR_INVALID_ARGUMENT);
  kiln_weights_close(nullptr);  // must be a no-op
}

TEST_F(WeightsFileTest, EmptyFileIsTruncatedHeader) {
  EXPECT_EQ(Check(Bytes()), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, TruncatedHeaderIsBadWeights) {
  Bytes image = ValidImage();
  for (size_t n : {1u, 8u, 32u, 63u}) {
    EXPECT_EQ(Check(Bytes(image.begin(), image.begin() + n)), KILN_ERROR_BAD_WEIGHTS) << n;
  }
}

TEST_F(WeightsFileTest, TruncatedDataIsBadWeights) {
  Bytes image = ValidImage();
  image.pop_back();
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  image.resize(64);  // header only, data_size still 40
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  EXPECT_NE(errors_.last().find("truncated"), std::string::npos) << errors_.last();
}

TEST_F(WeightsFileTest, BadMagicIsBadWeights) {
  Bytes image = ValidImage();
  image[0] = 'X';
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  image = ValidImage();
  image[7] = ' ';  // the magic's terminating NUL is part of it
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, WrongFormatVersionIsBadWeights) {
  Bytes image = ValidImage();
  StoreU32(image, kVersion, KILN_WEIGHTS_FORMAT_VERSION + 1);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  StoreU32(image, kVersion, 0);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  EXPECT_NE(errors_.last().find("version"), std::string::npos) << errors_.last();
}

TEST_F(WeightsFileTest, WrongHeaderSizeIsBadWeights) {
  Bytes image = ValidImage();
  StoreU32(image, kHeaderSize, 128);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, FlippedDataByteFailsTheChecksum) {
  Bytes image = ValidImage();
  for (size_t at : {size_t(64), size_t(80), image.size() - 1}) {
    Bytes bad = image;
    bad[at] ^= 0x01;
    EXPECT_EQ(Check(bad), KILN_ERROR_BAD_WEIGHTS) << at;
    EXPECT_NE(errors_.last().find("checksum"), std::string::npos) << errors_.last();
  }
}

TEST_F(WeightsFileTest, FlippedChecksumFieldIsBadWeights) {
  Bytes image = ValidImage();
  image[kChecksum + 3] ^= 0x80;
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, ChecksumIsFnv1a64OverTheDataBytes) {
  // A tail shorter than a word is plain FNV-1a 64: "a" -> 0xaf63dc4c8601ec8c.
  Bytes image(65);
  ASSERT_EQ(kiln_fake_build_weights("a", 1, 1, image.data(), image.size()), 65u);
  uint64_t stored = 0;
  for (int i = 7; i >= 0; --i) stored = stored << 8 | image[kChecksum + i];
  EXPECT_EQ(stored, 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Check(image), KILN_OK);
}

TEST_F(WeightsFileTest, ChecksumTakesWholeWordsThenBytes) {
  // "abcdefghi": one word 0x6867666564636261, then the byte 'i'.
  uint64_t h = 0xcbf29ce484222325ull;
  h ^= 0x6867666564636261ull;
  h *= 0x100000001b3ull;
  h ^= 'i';
  h *= 0x100000001b3ull;
  Bytes image(64 + 9);
  ASSERT_EQ(kiln_fake_build_weights("abcdefghi", 9, 1, image.data(), image.size()), 73u);
  uint64_t stored = 0;
  for (int i = 7; i >= 0; --i) stored = stored << 8 | image[kChecksum + i];
  EXPECT_EQ(stored, h);
  EXPECT_EQ(Check(image), KILN_OK);
}

TEST_F(WeightsFileTest, ModelHashOfAnotherModelIsRejectedAtCreate) {
  Bytes image = ValidImage();
  StoreU64(image, kModelHash, 0x1234);
  std::string path = dir_.Write("other.kw", image);
  kiln_weights_t *w = nullptr;
  ASSERT_EQ(kiln_weights_open(path.c_str(), &w), KILN_OK);  // the file itself is intact
  kiln_model_t *model = nullptr;
  EXPECT_EQ(kiln_model_create(&kiln_fake_model_desc, w, &model), KILN_ERROR_BAD_WEIGHTS);
  EXPECT_EQ(model, nullptr);
  kiln_weights_close(w);
}

TEST_F(WeightsFileTest, DataOffsetNotAMultipleOf64IsBadWeights) {
  Bytes image = ValidImage();
  StoreU64(image, kDataOffset, 65);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  StoreU64(image, kDataOffset, 96);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, DataOffsetInsideTheHeaderIsBadWeights) {
  Bytes image = ValidImage();
  StoreU64(image, kDataOffset, 0);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, DataOffsetPastTheEndIsBadWeights) {
  Bytes image = ValidImage();
  StoreU64(image, kDataOffset, 128);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  StoreU64(image, kDataOffset, 0xffffffffffffffc0ull);  // aligned, would wrap a pointer
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, DataOffsetPlusSizeOverflowingIsBadWeights) {
  Bytes image = ValidImage();
  StoreU64(image, kDataSize, UINT64_MAX - 32);  // 64 + this wraps around to 31
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  StoreU64(image, kDataSize, UINT64_MAX);
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
  StoreU64(image, kDataOffset, 0x8000000000000000ull);
  StoreU64(image, kDataSize, 0x8000000000000000ull);  // sum wraps to exactly 0
  EXPECT_EQ(Check(image), KILN_ERROR_BAD_WEIGHTS);
}

TEST_F(WeightsFileTest, DataSizeSmallerThanTheFileIsAcceptedButChecked) {
  // Trailing bytes after the data section are allowed; the checksum covers data_size bytes.
  Bytes image = ValidImage();
  image.push_back(0xAA);
  EXPECT_EQ(Check(image), KILN_OK);
}

TEST(WeightsWrap, MisalignedDataSectionIsRejected) {
  Bytes image = ValidImage();
  AlignedBuffer buf(image.size() + 8);
  memcpy(buf.data() + 8, image.data(), image.size());
  kiln_weights_t *w = nullptr;
  EXPECT_EQ(kiln_weights_wrap(buf.data() + 8, image.size(), &w), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(w, nullptr);
}

// Every prefix of a valid file and every single-bit flip of its header must be rejected
// (or, for bits the format ignores, accepted) without crashing.
TEST_F(WeightsFileTest, EveryTruncationAndHeaderBitFlipIsHandled) {
  Bytes image = ValidImage();
  for (size_t n = 0; n < image.size(); ++n)
    EXPECT_EQ(Wrap(Bytes(image.begin(), image.begin() + n)), KILN_ERROR_BAD_WEIGHTS) << n;
  for (size_t byte = 0; byte < 64; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      Bytes bad = image;
      bad[byte] ^= static_cast<unsigned char>(1u << bit);
      kiln_status_t s = Wrap(bad);
      // reserved[16] is not validated, and model_hash only by kiln_model_create.
      bool unchecked = byte >= 48 || (byte >= kModelHash && byte < kModelHash + 8);
      if (unchecked)
        EXPECT_EQ(s, KILN_OK) << byte;
      else
        EXPECT_NE(s, KILN_OK) << byte << ":" << bit;
    }
  }
}

}  // namespace

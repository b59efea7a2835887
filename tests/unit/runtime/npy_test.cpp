// Unit tests of the .npy reader/writer: round trips, and every malformed file is rejected.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/npy.h"
#include "test_util.h"

namespace {

using kiln_test::ErrorCapture;
using kiln_test::TempDir;
using Bytes = std::vector<unsigned char>;

// A .npy image with the given header text (padded like NumPy unless `pad` is false).
Bytes Npy(const std::string &header, const Bytes &data, int major = 1, bool pad = true) {
  std::string h = header;
  size_t prefix = major == 1 ? 10 : 12;
  if (pad) {
    size_t total = prefix + h.size() + 1;
    h.append((64 - total % 64) % 64, ' ');
    h.push_back('\n');
  }
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(major), 0};
  uint32_t len = static_cast<uint32_t>(h.size());
  out.push_back(len & 0xff);
  out.push_back((len >> 8) & 0xff);
  if (major != 1) {
    out.push_back((len >> 16) & 0xff);
    out.push_back((len >> 24) & 0xff);
  }
  out.insert(out.end(), h.begin(), h.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes Zeros(size_t n) { return Bytes(n, 0); }

std::string Dict(const std::string &descr, const std::string &order, const std::string &shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
}

class NpyTest : public ::testing::Test {
 protected:
  // Parses bytes from memory and also through a file; both must agree.
  kiln_status_t Read(const Bytes &bytes) {
    kiln_npy_free(&npy_);
    errors_.clear();
    kiln_status_t from_memory = kiln_npy_read_memory(bytes.data(), bytes.size(), &npy_);
    if (from_memory != KILN_OK) {
      EXPECT_EQ(npy_.data, nullptr) << "failed read must leave the result empty";
      EXPECT_FALSE(errors_.last().empty()) << "failure without detail";
    }
    kiln_npy_t from_file_npy;
    std::string path = dir_.Write("t" + std::to_string(n_++) + ".npy", bytes);
    kiln_status_t from_file = kiln_npy_read(path.c_str(), &from_file_npy);
    EXPECT_EQ(from_file, from_memory) << errors_.last();
    if (from_file == KILN_OK && from_memory == KILN_OK) {
      EXPECT_EQ(from_file_npy.size_bytes, npy_.size_bytes);
      EXPECT_EQ(0, memcmp(from_file_npy.data, npy_.data, npy_.size_bytes));
    }
    kiln_npy_free(&from_file_npy);
    return from_memory;
  }
  void TearDown() override { kiln_npy_free(&npy_); }

  kiln_npy_t npy_ = {};
  TempDir dir_;
  ErrorCapture errors_;
  int n_ = 0;
};

// ---- valid files ----------------------------------------------------------------------

TEST_F(NpyTest, RoundTripsEveryWritableDtype) {
  struct Case {
    kiln_dtype_t dtype;
    const char *descr;
  } cases[] = {{KILN_DTYPE_F32, "<f4"}, {KILN_DTYPE_F16, "<f2"}, {KILN_DTYPE_I64, "<i8"},
               {KILN_DTYPE_I32, "<i4"}, {KILN_DTYPE_I8, "|i1"},  {KILN_DTYPE_U8, "|u1"},
               {KILN_DTYPE_BOOL, "|b1"}};
  for (const Case &c : cases) {
    const int64_t dims[] = {2, 3};
    size_t bytes = 6 * kiln_dtype_size(c.dtype);
    Bytes data(bytes);
    for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<unsigned char>(i * 7 + 1);
    if (c.dtype == KILN_DTYPE_BOOL)
      for (auto &b : data) b &= 1;
    std::string path = dir_.File(std::string("rt_") + kiln_dtype_name(c.dtype) + ".npy");
    ASSERT_EQ(kiln_npy_write(path.c_str(), c.dtype, 2, dims, data.data()), KILN_OK);
    kiln_npy_t npy;
    ASSERT_EQ(kiln_npy_read(path.c_str(), &npy), KILN_OK) << c.descr;
    EXPECT_EQ(npy.dtype, c.dtype);
    EXPECT_STREQ(npy.descr, c.descr);
    EXPECT_EQ(npy.rank, 2u);
    EXPECT_EQ(npy.dims[0], 2);
    EXPECT_EQ(npy.dims[1], 3);
    EXPECT_EQ(npy.num_elements, 6u);
    ASSERT_EQ(npy.size_bytes, bytes);
    EXPECT_EQ(0, memcmp(npy.data, data.data(), bytes));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(npy.data) % 64, 0u);
    kiln_npy_free(&npy);
    EXPECT_EQ(npy.data, nullptr);
  }
}

TEST_F(NpyTest, RoundTripsScalarVectorEmptyAndHighRank) {
  float value = 3.5f;
  std::string p0 = dir_.File("scalar.npy");
  ASSERT_EQ(kiln_npy_write(p0.c_str(), KILN_DTYPE_F32, 0, nullptr, &value), KILN_OK);
  kiln_npy_t npy;
  ASSERT_EQ(kiln_npy_read(p0.c_str(), &npy), KILN_OK);
  EXPECT_EQ(npy.rank, 0u);
  EXPECT_EQ(npy.num_elements, 1u);
  EXPECT_EQ(*static_cast<float *>(npy.data), 3.5f);
  kiln_npy_free(&npy);

  const int64_t empty_dims[] = {4, 0};
  std::string p1 = dir_.File("empty.npy");
  ASSERT_EQ(kiln_npy_write(p1.c_str(), KILN_DTYPE_I64, 2, empty_dims, nullptr), KILN_OK);
  ASSERT_EQ(kiln_npy_read(p1.c_str(), &npy), KILN_OK);
  EXPECT_EQ(npy.num_elements, 0u);
  EXPECT_EQ(npy.size_bytes, 0u);
  EXPECT_NE(npy.data, nullptr);
  kiln_npy_free(&npy);

  int64_t dims[KILN_NPY_MAX_RANK];
  for (auto &d : dims) d = 1;
  std::string p2 = dir_.File("rank32.npy");
  uint8_t byte = 9;
  ASSERT_EQ(kiln_npy_write(p2.c_str(), KILN_DTYPE_U8, KILN_NPY_MAX_RANK, dims, &byte), KILN_OK);
  ASSERT_EQ(kiln_npy_read(p2.c_str(), &npy), KILN_OK);
  EXPECT_EQ(npy.rank, static_cast<size_t>(KILN_NPY_MAX_RANK));
  kiln_npy_free(&npy);
}

TEST_F(NpyTest, WrittenFileIsCanonicalNumpyFormat10) {
  const int64_t dims[] = {10};
  float data[10] = {0};
  std::string path = dir_.File("canon.npy");
  ASSERT_EQ(kiln_npy_write(path.c_str(), KILN_DTYPE_F32, 1, dims, data), KILN_OK);
  FILE *f = fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  Bytes bytes(4096);
  bytes.resize(fread(bytes.data(), 1, bytes.size(), f));
  fclose(f);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(0, memcmp(bytes.data(), "\x93NUMPY\x01\x00", 8));
  size_t header_len = bytes[8] | bytes[9] << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  ASSERT_EQ(bytes.size(), 10 + header_len + sizeof data);
  std::string header(bytes.begin() + 10, bytes.begin() + 10 + header_len);
  EXPECT_EQ(header.back(), '\n');
  EXPECT_EQ(header.substr(0, header.find_last_not_of(" \n") + 1),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }");
}

TEST_F(NpyTest, ReadsFormat20) {
  ASSERT_EQ(Read(Npy(Dict("<i4", "False", "(3,)"), Zeros(12), 2)), KILN_OK);
  EXPECT_EQ(npy_.dtype, KILN_DTYPE_I32);
  EXPECT_EQ(npy_.dims[0], 3);
}

TEST_F(NpyTest, ReadsF64AndReportsItsDescr) {
  ASSERT_EQ(Read(Npy(Dict("<f8", "False", "(2,)"), Zeros(16))), KILN_OK);
  EXPECT_EQ(npy_.dtype, KILN_DTYPE_INVALID);
  EXPECT_STREQ(npy_.descr, "<f8");
  EXPECT_EQ(npy_.elem_size, 8u);
  EXPECT_EQ(npy_.size_bytes, 16u);
}

TEST_F(NpyTest, AcceptsAnyKeyOrderQuotesAndSpacing) {
  EXPECT_EQ(Read(Npy("{\"shape\":(2,3),\"descr\":\"<f4\",\"fortran_order\":False}", Zeros(24))),
            KILN_OK);
  EXPECT_EQ(Read(Npy("  {  'descr' : '|u1' ,\n'fortran_order':False,'shape':( 2 , )}  ",
                     Zeros(2), 1, false)),
            KILN_OK);
  EXPECT_EQ(Read(Npy(Dict("|b1", "False", "(2, 3,)"), Zeros(6))), KILN_OK);
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "()"), Zeros(4))), KILN_OK);
  EXPECT_EQ(npy_.rank, 0u);
}

// ---- malformed files: each must fail cleanly -------------------------------------------

TEST_F(NpyTest, EmptyFileIsRejected) { EXPECT_NE(Read(Bytes()), KILN_OK); }

TEST_F(NpyTest, TruncatedPreambleIsRejected) {
  Bytes good = Npy(Dict("<f4", "False", "(1,)"), Zeros(4));
  for (size_t n : {1u, 5u, 8u, 9u})
    EXPECT_EQ(Read(Bytes(good.begin(), good.begin() + n)), KILN_ERROR_INVALID_ARGUMENT) << n;
  Bytes v2 = Npy(Dict("<f4", "False", "(1,)"), Zeros(4), 2);
  EXPECT_EQ(Read(Bytes(v2.begin(), v2.begin() + 11)), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, TruncatedHeaderIsRejected) {
  Bytes good = Npy(Dict("<f4", "False", "(1,)"), Zeros(4));
  EXPECT_EQ(Read(Bytes(good.begin(), good.begin() + 40)), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(errors_.last().find("truncated"), std::string::npos) << errors_.last();
}

TEST_F(NpyTest, BadMagicIsRejected) {
  Bytes bad = Npy(Dict("<f4", "False", "(1,)"), Zeros(4));
  bad[0] = 0x92;
  EXPECT_EQ(Read(bad), KILN_ERROR_INVALID_ARGUMENT);
  bad = Npy(Dict("<f4", "False", "(1,)"), Zeros(4));
  bad[3] = 'm';
  EXPECT_EQ(Read(bad), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(errors_.last().find("magic"), std::string::npos) << errors_.last();
}

TEST_F(NpyTest, UnsupportedFormatVersionIsRejected) {
  for (auto v : {std::make_pair(3, 0), std::make_pair(1, 1), std::make_pair(0, 0)}) {
    Bytes bad = Npy(Dict("<f4", "False", "(1,)"), Zeros(4), 2);
    bad[6] = static_cast<unsigned char>(v.first);
    bad[7] = static_cast<unsigned char>(v.second);
    EXPECT_EQ(Read(bad), KILN_ERROR_INVALID_ARGUMENT) << v.first << "." << v.second;
  }
}

TEST_F(NpyTest, HeaderLengthZeroOrHugeIsRejected) {
  Bytes bad = Npy(Dict("<f4", "False", "(1,)"), Zeros(4));
  bad[8] = bad[9] = 0;
  EXPECT_EQ(Read(bad), KILN_ERROR_INVALID_ARGUMENT);
  Bytes v2 = Npy(Dict("<f4", "False", "(1,)"), Zeros(4), 2);
  v2[8] = v2[9] = v2[10] = v2[11] = 0xff;  // 4 GiB header: must not be allocated
  EXPECT_EQ(Read(v2), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, HeaderThatIsNotADictIsRejected) {
  for (const char *h : {"", "   ", "[1, 2]", "'descr'", "{", "{'descr': '<f4'",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
                        "{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': '<f4',, 'fortran_order': False, 'shape': (1,)}",
                        "{descr: '<f4', 'fortran_order': False, 'shape': (1,)}"}) {
    EXPECT_EQ(Read(Npy(h, Zeros(4))), KILN_ERROR_INVALID_ARGUMENT) << h;
  }
}

TEST_F(NpyTest, MissingDuplicateOrUnknownKeysAreRejected) {
  for (const char *h : {"{}", "{'fortran_order': False, 'shape': (1,)}",
                        "{'descr': '<f4', 'shape': (1,)}",
                        "{'descr': '<f4', 'fortran_order': False}",
                        "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
                        "{'Descr': '<f4', 'fortran_order': False, 'shape': (1,)}"}) {
    EXPECT_EQ(Read(Npy(h, Zeros(4))), KILN_ERROR_INVALID_ARGUMENT) << h;
  }
}

TEST_F(NpyTest, MalformedDescrIsRejected) {
  for (const char *h : {"{'descr': <f4, 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': \"<f4', 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (1,)}",
                        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}"}) {
    EXPECT_EQ(Read(Npy(h, Zeros(4))), KILN_ERROR_INVALID_ARGUMENT) << h;
  }
}

TEST_F(NpyTest, UnsupportedDtypeIsRejected) {
  for (const char *d : {">f4", "<f16", "<c8", "|O", "<U3", "f4", "<i2", "<u4", "<b1", "|f4", ""})
    EXPECT_EQ(Read(Npy(Dict(d, "False", "(1,)"), Zeros(4))), KILN_ERROR_INVALID_ARGUMENT) << d;
}

TEST_F(NpyTest, FortranOrderIsRejected) {
  EXPECT_EQ(Read(Npy(Dict("<f4", "True", "(2, 2)"), Zeros(16))), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(errors_.last().find("fortran_order"), std::string::npos) << errors_.last();
}

TEST_F(NpyTest, FortranOrderThatIsNotABoolIsRejected) {
  for (const char *v : {"0", "false", "'False'", "Falsey", "None", "TrueFalse"})
    EXPECT_EQ(Read(Npy(Dict("<f4", v, "(1,)"), Zeros(4))), KILN_ERROR_INVALID_ARGUMENT) << v;
}

TEST_F(NpyTest, MalformedShapeIsRejected) {
  for (const char *s : {"[1]", "(1)", "1", "(,)", "(1,,)", "(1 2)", "(1, 2", "(-1,)",
                        "(1.0,)", "(01,)", "(1L,)", "(0x10,)", "(1_0,)", "(+1,)", "(None,)"})
    EXPECT_EQ(Read(Npy(Dict("<f4", "False", s), Zeros(4))), KILN_ERROR_INVALID_ARGUMENT) << s;
}

TEST_F(NpyTest, DimOverflowingInt64IsRejected) {
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(9223372036854775808,)"), Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(99999999999999999999999,)"), Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, ShapeWhoseByteSizeOverflowsIsRejected) {
  // Each dim fits; the element count or byte count does not fit in size_t.
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(4294967296, 4294967296)"), Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(9223372036854775807,)"), Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(Read(Npy(Dict("<i8", "False", "(4611686018427387904,)"), Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
  // A zero dim makes the product 0 even after huge dims.
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(9223372036854775807, 0)"), Bytes())), KILN_OK);
}

TEST_F(NpyTest, ShapeMuchLargerThanTheFileIsRejectedWithoutAllocating) {
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(1000000000000,)"), Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, RankAboveTheLimitIsRejected) {
  std::string shape = "(";
  for (int i = 0; i <= KILN_NPY_MAX_RANK; ++i) shape += "1, ";
  shape += ")";
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", shape), Zeros(4))), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, DataShorterThanTheShapeSaysIsRejected) {
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(2, 3)"), Zeros(23))), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(2, 3)"), Bytes())), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(errors_.last().find("need 24"), std::string::npos) << errors_.last();
}

TEST_F(NpyTest, DataLongerThanTheShapeSaysIsRejected) {
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(2, 3)"), Zeros(25))), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, JunkOrNulInTheHeaderIsRejected) {
  EXPECT_EQ(Read(Npy(Dict("<f4", "False", "(1,)") + " x", Zeros(4))),
            KILN_ERROR_INVALID_ARGUMENT);
  std::string with_nul = Dict("<f4", "False", "(1,)");
  with_nul.push_back('\0');
  EXPECT_EQ(Read(Npy(with_nul, Zeros(4))), KILN_ERROR_INVALID_ARGUMENT);
  with_nul = std::string("{'descr': '<f4") + '\0' + "', 'fortran_order': False, 'shape': (1,)}";
  EXPECT_EQ(Read(Npy(with_nul, Zeros(4))), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, MissingFileIsIoError) {
  kiln_npy_t npy;
  EXPECT_EQ(kiln_npy_read(dir_.File("absent.npy").c_str(), &npy), KILN_ERROR_IO);
  EXPECT_EQ(npy.data, nullptr);
  EXPECT_EQ(kiln_npy_read(nullptr, &npy), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_read("x.npy", nullptr), KILN_ERROR_INVALID_ARGUMENT);
}

TEST_F(NpyTest, WriteRejectsBadArguments) {
  const int64_t dims[] = {2};
  const int64_t negative[] = {-2};
  float data[2] = {0};
  std::string path = dir_.File("w.npy");
  EXPECT_EQ(kiln_npy_write(path.c_str(), KILN_DTYPE_INVALID, 1, dims, data),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_write(path.c_str(), KILN_DTYPE_F32, 1, negative, data),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_write(path.c_str(), KILN_DTYPE_F32, 1, nullptr, data),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_write(path.c_str(), KILN_DTYPE_F32, 1, dims, nullptr),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_write(path.c_str(), KILN_DTYPE_F32, KILN_NPY_MAX_RANK + 1, dims, data),
            KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_write(nullptr, KILN_DTYPE_F32, 1, dims, data), KILN_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(kiln_npy_write("/nonexistent-dir/x.npy", KILN_DTYPE_F32, 1, dims, data),
            KILN_ERROR_IO);
}

TEST_F(NpyTest, FreeIsSafeOnEmptyAndTwice) {
  kiln_npy_t npy = {};
  kiln_npy_free(&npy);
  kiln_npy_free(&npy);
  kiln_npy_free(nullptr);
}

// A poor man's fuzz pass: every prefix, and every byte of the header replaced by a few
// interesting values, must give a status and never crash or leak (ASan catches the rest).
TEST_F(NpyTest, EveryTruncationAndHeaderByteMutationIsHandled) {
  Bytes good = Npy(Dict("<i4", "False", "(2, 3)"), Zeros(24));
  for (size_t n = 0; n < good.size(); ++n) {
    kiln_npy_t npy;
    EXPECT_NE(kiln_npy_read_memory(good.data(), n, &npy), KILN_OK) << n;
    EXPECT_EQ(npy.data, nullptr);
  }
  const unsigned char values[] = {0, ' ', '\'', '"', '(', ')', ',', ':', '{', '}',
                                  '9', '-', 'T', 0x7f, 0xff};
  for (size_t at = 0; at < good.size() - 24; ++at) {
    for (unsigned char v : values) {
      Bytes bad = good;
      bad[at] = v;
      kiln_npy_t npy;
      kiln_status_t s = kiln_npy_read_memory(bad.data(), bad.size(), &npy);
      if (s == KILN_OK) {
        EXPECT_EQ(npy.size_bytes, 24u);
      } else {
        EXPECT_EQ(npy.data, nullptr);
      }
      kiln_npy_free(&npy);
    }
  }
}

}  // namespace

// Unit tests of memrefCopy, the strided copy that MLIR-compiled code calls into the runtime.
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

extern "C" void memrefCopy(int64_t elemSize, void *src, void *dst);

namespace {

// MLIR's ranked descriptor laid out for rank R, plus the unranked wrapper pointing at it.
template <int R>
struct Memref {
  void *allocated;
  void *aligned;
  int64_t offset;
  int64_t sizes_and_strides[R > 0 ? 2 * R : 1];
};

struct Unranked {
  int64_t rank;
  void *descriptor;
};

template <int R>
Memref<R> Make(void *base, int64_t offset, const int64_t (&sizes)[R > 0 ? R : 1],
               const int64_t (&strides)[R > 0 ? R : 1]) {
  Memref<R> m;
  m.allocated = base;
  m.aligned = base;
  m.offset = offset;
  for (int i = 0; i < R; ++i) {
    m.sizes_and_strides[i] = sizes[i];
    m.sizes_and_strides[R + i] = strides[i];
  }
  return m;
}

template <int R>
void Copy(int64_t elem, Memref<R> &src, Memref<R> &dst) {
  Unranked s = {R, &src};
  Unranked d = {R, &dst};
  memrefCopy(elem, &s, &d);
}

TEST(MemrefCopy, Rank0CopiesOneElementAtTheOffset) {
  double src[3] = {1, 2, 3}, dst[2] = {0, 0};
  Memref<0> s = {src, src, 2, {0}};
  Memref<0> d = {dst, dst, 1, {0}};
  Copy(8, s, d);
  EXPECT_EQ(dst[0], 0);
  EXPECT_EQ(dst[1], 3);
}

TEST(MemrefCopy, ContiguousRank2) {
  std::vector<float> src(12), dst(12, -1);
  std::iota(src.begin(), src.end(), 0.0f);
  auto s = Make<2>(src.data(), 0, {3, 4}, {4, 1});
  auto d = Make<2>(dst.data(), 0, {3, 4}, {4, 1});
  Copy(4, s, d);
  EXPECT_EQ(src, dst);
}

TEST(MemrefCopy, TransposedSourceIsGatheredElementwise) {
  // src is a 2x3 row-major buffer viewed as its 3x2 transpose.
  std::vector<int32_t> src = {0, 1, 2, 10, 11, 12}, dst(6, -1);
  auto s = Make<2>(src.data(), 0, {3, 2}, {1, 3});
  auto d = Make<2>(dst.data(), 0, {3, 2}, {2, 1});
  Copy(4, s, d);
  EXPECT_EQ(dst, (std::vector<int32_t>{0, 10, 1, 11, 2, 12}));
}

TEST(MemrefCopy, SubviewWithOffsetAndPaddedRowsCopiesOnlyTheWindow) {
  // src: 4x5 buffer, window rows 1..2, cols 2..4 (offset 7, row stride 5).
  std::vector<int64_t> src(20), dst(8, -1);
  std::iota(src.begin(), src.end(), 0);
  auto s = Make<2>(src.data(), 7, {2, 3}, {5, 1});
  // dst: rows of 4 with one pad element, starting at offset 1.
  auto d = Make<2>(dst.data(), 1, {2, 3}, {4, 1});
  Copy(8, s, d);
  EXPECT_EQ(dst, (std::vector<int64_t>{-1, 7, 8, 9, -1, 12, 13, 14}));
}

TEST(MemrefCopy, Rank3WithNonContiguousMiddleDim) {
  // 2x2x3 taken from a 2x4x3 buffer (every other row), into a dense 2x2x3.
  std::vector<uint8_t> src(24), dst(12, 0xEE);
  std::iota(src.begin(), src.end(), 0);
  auto s = Make<3>(src.data(), 0, {2, 2, 3}, {12, 6, 1});
  auto d = Make<3>(dst.data(), 0, {2, 2, 3}, {6, 3, 1});
  Copy(1, s, d);
  EXPECT_EQ(dst, (std::vector<uint8_t>{0, 1, 2, 6, 7, 8, 12, 13, 14, 18, 19, 20}));
}

TEST(MemrefCopy, SizeOneDimsWithArbitraryStridesStayDense) {
  std::vector<float> src = {1, 2, 3, 4}, dst(4, 0);
  auto s = Make<3>(src.data(), 0, {1, 4, 1}, {999, 1, 77});
  auto d = Make<3>(dst.data(), 0, {1, 4, 1}, {4, 1, 1});
  Copy(4, s, d);
  EXPECT_EQ(dst, src);
}

TEST(MemrefCopy, EmptyShapeCopiesNothing) {
  std::vector<float> src = {1, 2}, dst = {0, 0};
  auto s = Make<2>(src.data(), 0, {0, 2}, {2, 1});
  auto d = Make<2>(dst.data(), 0, {0, 2}, {2, 1});
  Copy(4, s, d);
  EXPECT_EQ(dst, (std::vector<float>{0, 0}));
}

TEST(MemrefCopy, MismatchedRanksOrNullDescriptorsAreIgnored) {
  std::vector<float> src = {1, 2}, dst = {0, 0};
  auto s = Make<1>(src.data(), 0, {2}, {1});
  auto d = Make<1>(dst.data(), 0, {2}, {1});
  Unranked us = {1, &s}, ud = {2, &d};
  memrefCopy(4, &us, &ud);
  Unranked null_desc = {1, nullptr};
  memrefCopy(4, &us, &null_desc);
  memrefCopy(4, nullptr, &ud);
  EXPECT_EQ(dst, (std::vector<float>{0, 0}));
}

}  // namespace

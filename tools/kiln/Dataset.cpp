//===- Dataset.cpp - Labelled data for kiln eval (.npy and IDX files) -------===//
#include "tools/kiln/Dataset.h"

extern "C" {
#include "kiln/npy.h"
}

#include <cmath>
#include <cstring>
#include <zlib.h>

namespace kiln::tools {

static bool endsWith(const std::string &s, const char *suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

/// Whole file through zlib's gz reader (which also reads uncompressed files).
static bool readAll(const std::string &path, std::vector<unsigned char> &bytes, std::string &err) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) {
    err = "cannot open '" + path + "'";
    return false;
  }
  unsigned char buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof buf)) > 0) {
    bytes.insert(bytes.end(), buf, buf + got);
    if (bytes.size() > (size_t(1) << 32)) {
      gzclose(f);
      err = "'" + path + "' is larger than 4 GiB";
      return false;
    }
  }
  bool ok = got == 0;
  gzclose(f);
  if (!ok) err = "'" + path + "' is corrupted (decompression failed)";
  return ok;
}

/// IDX: magic 0x0000 08 <rank>, big-endian dims, then unsigned bytes.
static bool readIdx(const std::string &path, Array &out, bool labels, std::string &err) {
  std::vector<unsigned char> b;
  if (!readAll(path, b, err)) return false;
  if (b.size() < 4 || b[0] || b[1] || b[2] != 0x08 || b[3] == 0 || b[3] > 8) {
    err = "'" + path + "' is not an IDX file of unsigned bytes";
    return false;
  }
  size_t rank = b[3], header = 4 + 4 * rank;
  if (b.size() < header) {
    err = "'" + path + "' is truncated";
    return false;
  }
  uint64_t count = 1;
  for (size_t d = 0; d < rank; ++d) {
    const unsigned char *p = &b[4 + 4 * d];
    uint32_t v = uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
    out.dims.push_back(v);
    count *= v;
    if (count > b.size()) break;
  }
  if (b.size() - header != count) {
    err = "'" + path + "' holds " + std::to_string(b.size() - header) + " values, its header says " +
          std::to_string(count);
    return false;
  }
  if (labels) {
    if (rank != 1) {
      err = "'" + path + "' is not a label file (rank " + std::to_string(rank) + ")";
      return false;
    }
    out.i.assign(b.begin() + long(header), b.end());
  } else {
    out.f.resize(count);
    for (size_t k = 0; k < count; ++k) out.f[k] = float(b[header + k]) / 255.0f;
  }
  return true;
}

static bool readNpy(const std::string &path, Array &out, bool labels, std::string &err) {
  kiln_npy_t npy{};
  kiln_status_t st = kiln_npy_read(path.c_str(), &npy);
  if (st != KILN_OK) {
    err = "cannot read '" + path + "': " + kiln_status_string(st);
    kiln_npy_free(&npy);
    return false;
  }
  out.dims.assign(npy.dims, npy.dims + npy.rank);
  const char *p = static_cast<const char *>(npy.data);
  bool ok = true;
  for (size_t k = 0; k < npy.num_elements && ok; ++k) {
    double v;
    switch (npy.dtype) {
    case KILN_DTYPE_F32: { float f; std::memcpy(&f, p + 4 * k, 4); v = f; break; }
    case KILN_DTYPE_I64: { int64_t x; std::memcpy(&x, p + 8 * k, 8); v = double(x); break; }
    case KILN_DTYPE_I32: { int32_t x; std::memcpy(&x, p + 4 * k, 4); v = x; break; }
    case KILN_DTYPE_U8: v = uint8_t(p[k]); break;
    case KILN_DTYPE_I8: v = int8_t(p[k]); break;
    default: ok = false; v = 0; break;
    }
    if (!ok) {
      err = "'" + path + "' has an element type kiln eval does not read";
    } else if (labels && !(v == std::trunc(v) && v >= -0x1p63 && v < 0x1p63)) {
      // A float label file: only whole numbers in int64's range are class indices.
      err = "label " + std::to_string(k) + " in '" + path + "' is " + std::to_string(v) + ", not a class index";
      ok = false;
    } else if (labels) {
      out.i.push_back(int64_t(v));
    } else {
      out.f.push_back(float(v));
    }
  }
  kiln_npy_free(&npy);
  if (ok && labels && out.dims.size() != 1) {
    err = "labels in '" + path + "' must be one-dimensional";
    ok = false;
  }
  return ok;
}

bool readSamples(const std::string &path, Array &out, std::string &err) {
  return endsWith(path, ".npy") ? readNpy(path, out, false, err) : readIdx(path, out, false, err);
}

bool readLabels(const std::string &path, Array &out, std::string &err) {
  return endsWith(path, ".npy") ? readNpy(path, out, true, err) : readIdx(path, out, true, err);
}

} // namespace kiln::tools

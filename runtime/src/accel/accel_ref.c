/* The accelerator's reference model: docs/ACCELERATOR.md's instruction set executed in
 * C. It is the golden model the RTL is checked against, bit for bit (device memory,
 * counters other than cycles, error codes), and a device the driver can run on. */
#include "kiln/accel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t kiln_accel_idx_bits(const kiln_accel_config_t *cfg) {
  uint32_t b = 0;
  while ((1u << b) < cfg->nm_m) ++b;
  return b;
}

typedef struct ref_device {
  kiln_accel_config_t cfg;
  uint8_t *mem;
  uint64_t mem_bytes;
  uint8_t *buf[4]; /* W, I, P, A */
  uint32_t buf_bytes[4];
  int32_t *out;    /* [cols][rows] */
  int32_t *acc;    /* [rows][cols] */
  uint32_t r[KILN_ACCEL_NUM_REGS];
  uint32_t status, prog_addr, err_pc;
  kiln_accel_counters_t cnt;
  int pending; /* started, not yet executed */
} ref_device;

static uint8_t mem_byte(const ref_device *d, uint64_t a) { return a < d->mem_bytes ? d->mem[a] : 0; }
static void mem_put(ref_device *d, uint64_t a, uint8_t v) {
  if (a < d->mem_bytes) d->mem[a] = v;
}
/* Beats of the bus covering [addr, addr + n), n > 0. */
static uint32_t beats(const ref_device *d, uint64_t addr, uint64_t n) {
  uint64_t b = d->cfg.bus_bytes;
  return (uint32_t)((addr + n - 1) / b - addr / b + 1);
}
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Executes one instruction; returns 0 to go on, 1 at END, or -error. */
static int step(ref_device *d, uint64_t insn) {
  const kiln_accel_config_t *c = &d->cfg;
  const uint32_t op = (uint32_t)(insn & 0xFF), a = (uint32_t)((insn >> 8) & 0xFF), imm = (uint32_t)(insn >> 32);
  const uint32_t *r = d->r;
  const uint64_t ROWS = c->rows, COLS = c->cols;
  if ((insn >> 16) & 0xFFFF) return -KILN_ACCEL_ERR_OPCODE;
  switch (op) {
  case KILN_ACCEL_OP_END: return 1;
  case KILN_ACCEL_OP_SET:
    if (a >= KILN_ACCEL_NUM_REGS) return -KILN_ACCEL_ERR_REG;
    d->r[a] = imm;
    return 0;
  case KILN_ACCEL_OP_LOAD: {
    if (a > 3) return -KILN_ACCEL_ERR_PARAM;
    uint64_t src = r[KILN_ACCEL_R_SRC], len = r[KILN_ACCEL_R_LEN], boff = r[KILN_ACCEL_R_BOFF];
    if (src % c->bus_bytes || boff % c->bus_bytes) return -KILN_ACCEL_ERR_PARAM;
    if (boff + len > d->buf_bytes[a]) return -KILN_ACCEL_ERR_BOUNDS;
    for (uint64_t i = 0; i < len; ++i) d->buf[a][boff + i] = mem_byte(d, src + i);
    if (len) {
      uint32_t n = beats(d, src, len);
      d->cnt.rd_beats += n;
      if (a != KILN_ACCEL_BUF_A) d->cnt.wt_beats += n;
    }
    return 0;
  }
  case KILN_ACCEL_OP_LOAD_WIN: {
    uint64_t H = r[KILN_ACCEL_R_H], W = r[KILN_ACCEL_R_W], C = r[KILN_ACCEL_R_C], KH = r[KILN_ACCEL_R_KH],
             KW = r[KILN_ACCEL_R_KW], S = r[KILN_ACCEL_R_STRIDE], OW = r[KILN_ACCEL_R_OW], npix = r[KILN_ACCEL_R_NPIX],
             aoff = r[KILN_ACCEL_R_AOFF];
    int64_t pt = (int32_t)r[KILN_ACCEL_R_PAD_T], pl = (int32_t)r[KILN_ACCEL_R_PAD_L];
    uint64_t oy = r[KILN_ACCEL_R_OY0], ox = r[KILN_ACCEL_R_OX0];
    if (npix > COLS || OW == 0 || ox >= OW || aoff % COLS || C == 0 || KH == 0 || KW == 0) return -KILN_ACCEL_ERR_PARAM;
    if (aoff + KH * KW * C * COLS > d->buf_bytes[KILN_ACCEL_BUF_A]) return -KILN_ACCEL_ERR_BOUNDS;
    uint8_t *A = d->buf[KILN_ACCEL_BUF_A] + aoff;
    const uint8_t padval = (uint8_t)r[KILN_ACCEL_R_PADVAL];
    for (uint64_t col = 0; col < npix; ++col) {
      for (uint64_t ky = 0; ky < KH; ++ky) {
        /* A kernel row whose taps are all in bounds is read as one run of KW*C bytes (its
         * taps are adjacent in memory and go to consecutive reduction rows). */
        uint64_t row_addr = 0, in_taps = 0;
        uint32_t tap_beats = 0;
        for (uint64_t kx = 0; kx < KW; ++kx) {
          int64_t iy = (int64_t)(oy * S + ky) - pt, ix = (int64_t)(ox * S + kx) - pl;
          uint64_t k0 = (ky * KW + kx) * C;
          if (iy < 0 || ix < 0 || (uint64_t)iy >= H || (uint64_t)ix >= W) {
            for (uint64_t ch = 0; ch < C; ++ch) A[(k0 + ch) * COLS + col] = padval;
            continue;
          }
          uint64_t addr = r[KILN_ACCEL_R_SRC] + ((uint64_t)iy * W + (uint64_t)ix) * C;
          for (uint64_t ch = 0; ch < C; ++ch) A[(k0 + ch) * COLS + col] = mem_byte(d, addr + ch);
          if (kx == 0) row_addr = addr;
          tap_beats += beats(d, addr, C);
          ++in_taps;
        }
        d->cnt.rd_beats += in_taps == KW ? beats(d, row_addr, KW * C) : tap_beats;
      }
      if (++ox == OW) {
        ox = 0;
        ++oy;
      }
    }
    return 0;
  }
  case KILN_ACCEL_OP_GEMM: {
    if (a & ~7u) return -KILN_ACCEL_ERR_PARAM;
    const int nm = (a & KILN_ACCEL_GEMM_NM) != 0, w4 = (a & KILN_ACCEL_GEMM_W4) != 0;
    uint64_t K = r[KILN_ACCEL_R_K], woff = r[KILN_ACCEL_R_WOFF], ioff = r[KILN_ACCEL_R_IOFF], aoff = r[KILN_ACCEL_R_AOFF];
    uint64_t N = r[KILN_ACCEL_R_NM_N], M = c->nm_m, ib = kiln_accel_idx_bits(c), slot_bytes = ROWS * ib / 8;
    if (woff % ROWS || aoff % COLS) return -KILN_ACCEL_ERR_PARAM;
    if (nm && (K % M || N == 0 || N > M || ioff % slot_bytes)) return -KILN_ACCEL_ERR_PARAM;
    uint64_t steps = nm ? K / M * N : K;
    const uint64_t step_bytes = w4 ? ROWS / 2 : ROWS;
    if (woff + steps * step_bytes > d->buf_bytes[KILN_ACCEL_BUF_W] || aoff + K * COLS > d->buf_bytes[KILN_ACCEL_BUF_A] ||
        (nm && ioff + steps * slot_bytes > d->buf_bytes[KILN_ACCEL_BUF_I]))
      return -KILN_ACCEL_ERR_BOUNDS;
    const int8_t *Wt = (const int8_t *)d->buf[KILN_ACCEL_BUF_W] + woff;
    const uint8_t *A = d->buf[KILN_ACCEL_BUF_A] + aoff, *I = d->buf[KILN_ACCEL_BUF_I] + ioff;
    if (!(a & KILN_ACCEL_GEMM_ACC)) memset(d->acc, 0, sizeof(int32_t) * ROWS * COLS);
    for (uint64_t s = 0; s < steps; ++s)
      for (uint64_t row = 0; row < ROWS; ++row) {
        uint64_t k = s;
        if (nm) {
          uint64_t bit = row * ib, idx = 0;
          for (uint64_t b = 0; b < ib; ++b, ++bit) idx |= (uint64_t)((I[s * slot_bytes + bit / 8] >> (bit % 8)) & 1) << b;
          k = s / N * M + idx;
        }
        int32_t w;
        if (w4) {
          const uint8_t byte = (uint8_t)Wt[s * step_bytes + row / 2];
          const uint8_t nib = (row & 1) ? byte >> 4 : byte & 15;
          w = nib >= 8 ? (int32_t)nib - 16 : (int32_t)nib; /* sign-extended nibble */
        } else {
          w = Wt[s * ROWS + row];
        }
        for (uint64_t col = 0; col < COLS; ++col)
          d->acc[row * COLS + col] = (int32_t)((uint32_t)d->acc[row * COLS + col] + (uint32_t)(w * (int32_t)A[k * COLS + col]));
      }
    return 0;
  }
  case KILN_ACCEL_OP_REQUANT: {
    if (a & ~1u) return -KILN_ACCEL_ERR_PARAM;
    uint64_t poff = r[KILN_ACCEL_R_POFF];
    if (poff + 12 * ROWS > d->buf_bytes[KILN_ACCEL_BUF_P]) return -KILN_ACCEL_ERR_BOUNDS;
    const int64_t zp = (int32_t)r[KILN_ACCEL_R_ZP], lo = (int32_t)r[KILN_ACCEL_R_LO], hi = (int32_t)r[KILN_ACCEL_R_HI];
    for (uint64_t row = 0; row < ROWS; ++row) {
      const uint8_t *p = d->buf[KILN_ACCEL_BUF_P] + poff + 12 * row;
      uint32_t bias = rd32(p), shift = rd32(p + 8) & 63;
      int64_t mult = (int32_t)rd32(p + 4);
      for (uint64_t col = 0; col < COLS; ++col) {
        int32_t v = (int32_t)((uint32_t)d->acc[row * COLS + col] + bias);
        if (a & KILN_ACCEL_RAW32) {
          d->out[col * ROWS + row] = v;
          continue;
        }
        int64_t q = (int64_t)v * mult;
        if (shift) q = (q + ((int64_t)1 << (shift - 1))) >> shift; /* arithmetic shift */
        q += zp;
        q = q < lo ? lo : q > hi ? hi : q;
        d->out[col * ROWS + row] = (int32_t)q;
      }
    }
    return 0;
  }
  case KILN_ACCEL_OP_POOL: {
    if (a) return -KILN_ACCEL_ERR_PARAM;
    uint64_t C = r[KILN_ACCEL_R_C], win = r[KILN_ACCEL_R_WIN], ch0 = r[KILN_ACCEL_R_CH0], aoff = r[KILN_ACCEL_R_AOFF];
    if (win == 0 || aoff % COLS) return -KILN_ACCEL_ERR_PARAM;
    if (aoff + win * C * COLS > d->buf_bytes[KILN_ACCEL_BUF_A]) return -KILN_ACCEL_ERR_BOUNDS;
    const uint8_t *A = d->buf[KILN_ACCEL_BUF_A] + aoff;
    for (uint64_t col = 0; col < COLS; ++col)
      for (uint64_t row = 0; row < ROWS; ++row) {
        uint8_t m = 0;
        if (ch0 + row < C)
          for (uint64_t w = 0; w < win; ++w) {
            uint8_t v = A[(w * C + ch0 + row) * COLS + col];
            m = v > m ? v : m;
          }
        d->out[col * ROWS + row] = m;
      }
    return 0;
  }
  case KILN_ACCEL_OP_STORE: {
    if (a & ~1u) return -KILN_ACCEL_ERR_PARAM;
    uint64_t npix = r[KILN_ACCEL_R_NPIX], nrows = r[KILN_ACCEL_R_NROWS], esz = (a & KILN_ACCEL_RAW32) ? 4 : 1;
    if (npix > COLS || nrows > ROWS) return -KILN_ACCEL_ERR_PARAM;
    for (uint64_t col = 0; col < npix && nrows; ++col) {
      uint64_t base = r[KILN_ACCEL_R_DST] + col * (uint64_t)r[KILN_ACCEL_R_DSTRIDE];
      for (uint64_t row = 0; row < nrows; ++row) {
        uint32_t v = (uint32_t)d->out[col * ROWS + row];
        for (uint64_t b = 0; b < esz; ++b) mem_put(d, base + row * esz + b, (uint8_t)(v >> (8 * b)));
      }
      d->cnt.wr_beats += beats(d, base, nrows * esz);
    }
    return 0;
  }
  case KILN_ACCEL_OP_REBUILD: {
    if (a) return -KILN_ACCEL_ERR_PARAM;
    const uint32_t cfgr = r[KILN_ACCEL_R_SD_CFG];
    const uint64_t K = r[KILN_ACCEL_R_K], woff = r[KILN_ACCEL_R_WOFF], ioff = r[KILN_ACCEL_R_IOFF],
                   len = r[KILN_ACCEL_R_LEN], sdb = r[KILN_ACCEL_R_SDB], C = r[KILN_ACCEL_R_C];
    const int flat = cfgr & 1;
    const uint32_t b = (cfgr >> 1) & 7, group = cfgr >> 16;
    if (b == 0 || b > 4 || (cfgr & 0xFFF0u) || group == 0 || K == 0 || K % 3 || woff % ROWS ||
        (!flat && (C == 0 || K % (3 * C))))
      return -KILN_ACCEL_ERR_PARAM;
    const uint64_t P = K / 3, G = flat ? (P + group - 1) / group : (C + group - 1) / group;
    if (woff + K * ROWS > d->buf_bytes[KILN_ACCEL_BUF_W] || ioff + len > d->buf_bytes[KILN_ACCEL_BUF_I] ||
        sdb + 9 * G > d->buf_bytes[KILN_ACCEL_BUF_I] || len < ROWS)
      return -KILN_ACCEL_ERR_BOUNDS;
    const uint8_t *I = d->buf[KILN_ACCEL_BUF_I];
    int8_t *Wt = (int8_t *)d->buf[KILN_ACCEL_BUF_W] + woff;
    const int32_t emax = (1 << b) - 1;
    const uint64_t maskBytes = (ROWS + 7) / 8, end = ioff + len;
    uint64_t pos = ioff + ROWS; /* byte of the next record */
#define SD_BYTE(at) ((at) < end ? I[at] : 0)
    for (uint64_t p = 0; p < P; ++p) {
      const uint64_t g = flat ? p / group : (p % C) / group;
      const int8_t *B = (const int8_t *)I + sdb + 9 * g;
      uint64_t bit = (pos + maskBytes) * 8;
      for (uint64_t row = 0; row < ROWS; ++row) {
        int32_t w[3] = {0, 0, 0};
        if ((SD_BYTE(pos + row / 8) >> (row % 8)) & 1) {
          for (int i = 0; i < 3; ++i) {
            uint32_t code = 0;
            for (uint32_t t = 0; t <= b; ++t, ++bit) code |= (uint32_t)((SD_BYTE(bit / 8) >> (bit % 8)) & 1) << t;
            const uint32_t e = code & ((1u << b) - 1), neg = (code >> b) & 1;
            if (!e) continue;
            for (int j = 0; j < 3; ++j) {
              int32_t term = (int32_t)B[3 * i + j] * (1 << (emax - (int32_t)e));
              w[j] += neg ? -term : term;
            }
          }
        }
        const uint32_t sh = I[ioff + row] & 31;
        for (int j = 0; j < 3; ++j) {
          int32_t v = sh ? (int32_t)(((int64_t)w[j] + ((int64_t)1 << (sh - 1))) >> sh) : w[j];
          v = v < -127 ? -127 : v > 127 ? 127 : v;
          const uint64_t k = flat ? 3 * p + (uint64_t)j : ((p / C) * 3 + (uint64_t)j) * C + p % C;
          Wt[k * ROWS + row] = (int8_t)v;
        }
      }
      pos = (bit + 7) / 8; /* the next record starts at a byte boundary */
    }
#undef SD_BYTE
    return 0;
  }
  default: return -KILN_ACCEL_ERR_OPCODE;
  }
}

static void execute(ref_device *d) {
  memset(d->r, 0, sizeof d->r);
  for (uint64_t pc = 0;; ++pc) {
    uint64_t at = (uint64_t)d->prog_addr + 8 * pc, insn = 0;
    for (int b = 0; b < 8; ++b) insn |= (uint64_t)mem_byte(d, at + (uint64_t)b) << (8 * b);
    int rc = step(d, insn);
    ++d->cnt.insns;
    if (rc == 1) {
      d->status = 2; /* done */
      return;
    }
    if (rc < 0) {
      d->status = 2 | 4 | ((uint32_t)-rc << 8);
      d->err_pc = (uint32_t)pc;
      return;
    }
  }
}

static void ref_reg_write(void *ctx, uint32_t addr, uint32_t v) {
  ref_device *d = ctx;
  if (addr == KILN_ACCEL_REG_PROG_ADDR) d->prog_addr = v;
  else if (addr == KILN_ACCEL_REG_CTRL && (v & 1) && !(d->status & 1)) {
    memset(&d->cnt, 0, sizeof d->cnt);
    d->status = 1;
    d->err_pc = 0;
    d->pending = 1;
  }
}

static uint32_t ref_reg_read(void *ctx, uint32_t addr) {
  ref_device *d = ctx;
  switch (addr) {
  case KILN_ACCEL_REG_STATUS: return d->status;
  case KILN_ACCEL_REG_PROG_ADDR: return d->prog_addr;
  case KILN_ACCEL_REG_ERR_PC: return d->err_pc;
  case KILN_ACCEL_REG_CYCLES: return d->cnt.cycles;
  case KILN_ACCEL_REG_GEMM_CYCLES: return d->cnt.gemm_cycles;
  case KILN_ACCEL_REG_RD_BEATS: return d->cnt.rd_beats;
  case KILN_ACCEL_REG_WR_BEATS: return d->cnt.wr_beats;
  case KILN_ACCEL_REG_WT_BEATS: return d->cnt.wt_beats;
  case KILN_ACCEL_REG_INSNS: return d->cnt.insns;
  case KILN_ACCEL_REG_CONFIG_ID: return d->cfg.config_id;
  default: return 0;
  }
}

static kiln_status_t ref_mem_write(void *ctx, uint64_t addr, const void *data, size_t size) {
  ref_device *d = ctx;
  if (addr > d->mem_bytes || size > d->mem_bytes - addr) return KILN_ERROR_INVALID_ARGUMENT;
  if (size) memcpy(d->mem + addr, data, size);
  return KILN_OK;
}

static kiln_status_t ref_mem_read(void *ctx, uint64_t addr, void *data, size_t size) {
  ref_device *d = ctx;
  if (addr > d->mem_bytes || size > d->mem_bytes - addr) return KILN_ERROR_INVALID_ARGUMENT;
  if (size) memcpy(data, d->mem + addr, size);
  return KILN_OK;
}

static kiln_status_t ref_wait(void *ctx, uint64_t max_cycles) {
  (void)max_cycles;
  ref_device *d = ctx;
  if (d->pending) {
    d->pending = 0;
    execute(d);
  }
  return KILN_OK;
}

static void ref_close(void *ctx) {
  ref_device *d = ctx;
  if (!d) return;
  free(d->mem);
  for (int i = 0; i < 4; ++i) free(d->buf[i]);
  free(d->out);
  free(d->acc);
  free(d);
}

static int config_ok(const kiln_accel_config_t *c) {
  int pow2_m = c->nm_m >= 2 && c->nm_m <= 16 && !(c->nm_m & (c->nm_m - 1));
  int pow2_b = c->bus_bytes >= 4 && c->bus_bytes <= 64 && !(c->bus_bytes & (c->bus_bytes - 1));
  return c->rows >= 1 && c->rows <= 256 && c->cols >= 1 && c->cols <= 256 && pow2_m && pow2_b &&
         c->bus_bytes >= c->nm_m && (c->rows * kiln_accel_idx_bits(c)) % 8 == 0 && c->wbuf_bytes % c->rows == 0 &&
         c->abuf_bytes % c->cols == 0 && c->pbuf_bytes >= 12 * c->rows && c->wbuf_bytes && c->ibuf_bytes && c->abuf_bytes;
}

kiln_status_t kiln_accel_ref_open(const kiln_accel_config_t *cfg, uint64_t mem_bytes, kiln_accel_device_t *out) {
  if (!cfg || !out || !config_ok(cfg) || mem_bytes == 0 || mem_bytes > ((uint64_t)1 << 32)) return KILN_ERROR_INVALID_ARGUMENT;
  ref_device *d = calloc(1, sizeof *d);
  if (!d) return KILN_ERROR_OUT_OF_MEMORY;
  d->cfg = *cfg;
  d->mem_bytes = mem_bytes;
  d->mem = calloc(1, (size_t)mem_bytes);
  const uint32_t sizes[4] = {cfg->wbuf_bytes, cfg->ibuf_bytes, cfg->pbuf_bytes, cfg->abuf_bytes};
  int ok = d->mem != NULL;
  for (int i = 0; i < 4; ++i) {
    d->buf_bytes[i] = sizes[i];
    d->buf[i] = calloc(1, sizes[i]);
    ok = ok && d->buf[i];
  }
  d->out = calloc((size_t)cfg->rows * cfg->cols, sizeof(int32_t));
  d->acc = calloc((size_t)cfg->rows * cfg->cols, sizeof(int32_t));
  if (!ok || !d->out || !d->acc) {
    ref_close(d);
    return KILN_ERROR_OUT_OF_MEMORY;
  }
  memset(out, 0, sizeof *out);
  out->ctx = d;
  out->config = &d->cfg;
  out->name = "reference model";
  out->reg_write = ref_reg_write;
  out->reg_read = ref_reg_read;
  out->mem_write = ref_mem_write;
  out->mem_read = ref_mem_read;
  out->wait = ref_wait;
  out->close = ref_close;
  out->mem_bytes = mem_bytes;
  return KILN_OK;
}

kiln_status_t kiln_accel_run_program(kiln_accel_device_t *dev, uint64_t prog_addr, uint64_t max_cycles,
                                     kiln_accel_counters_t *counters, char *error, size_t error_size) {
  if (!dev || prog_addr % 8 || prog_addr >= dev->mem_bytes || prog_addr > UINT32_MAX) return KILN_ERROR_INVALID_ARGUMENT;
  dev->reg_write(dev->ctx, KILN_ACCEL_REG_PROG_ADDR, (uint32_t)prog_addr);
  dev->reg_write(dev->ctx, KILN_ACCEL_REG_CTRL, 1);
  kiln_status_t st = dev->wait(dev->ctx, max_cycles);
  uint32_t status = dev->reg_read(dev->ctx, KILN_ACCEL_REG_STATUS);
  if (st != KILN_OK || (status & 1)) {
    if (error) snprintf(error, error_size, "accelerator did not finish within %llu cycles", (unsigned long long)max_cycles);
    return KILN_ERROR_IO;
  }
  if (status & 4) {
    if (error)
      snprintf(error, error_size, "accelerator error %u at instruction %u", (status >> 8) & 0xFF,
               dev->reg_read(dev->ctx, KILN_ACCEL_REG_ERR_PC));
    return KILN_ERROR_IO;
  }
  if (counters) {
    counters->cycles = dev->reg_read(dev->ctx, KILN_ACCEL_REG_CYCLES);
    counters->gemm_cycles = dev->reg_read(dev->ctx, KILN_ACCEL_REG_GEMM_CYCLES);
    counters->rd_beats = dev->reg_read(dev->ctx, KILN_ACCEL_REG_RD_BEATS);
    counters->wr_beats = dev->reg_read(dev->ctx, KILN_ACCEL_REG_WR_BEATS);
    counters->wt_beats = dev->reg_read(dev->ctx, KILN_ACCEL_REG_WT_BEATS);
    counters->insns = dev->reg_read(dev->ctx, KILN_ACCEL_REG_INSNS);
  }
  return KILN_OK;
}

/* Kiln accelerator: instruction set, register map and the host interface (HAL).
 *
 * docs/ACCELERATOR.md is the specification; this header is its machine-readable half.
 * The configuration (array size, buffers, bus width) comes from hw_gen's description:
 * the generated kiln_accel_config.h gives the default one as KILN_ACCEL_CFG_* macros,
 * and kiln_accel_config_t carries any one at run time.
 *
 * A device is anything that implements kiln_accel_device_t: the reference model in this
 * runtime (kiln_accel_ref_open: the ISA executed in C, the golden model the RTL is
 * checked against), or the Verilated RTL (hw_gen/sim). The driver code above it
 * (kiln_accel_run) is the same for both. */
#ifndef KILN_ACCEL_H
#define KILN_ACCEL_H

#include "kiln/kiln.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- configuration ---------------------------------------------------------------- */

typedef struct kiln_accel_config_t {
  uint32_t rows;       /* PE rows: output channels per tile */
  uint32_t cols;       /* PE columns: output pixels per tile */
  uint32_t nm_m;       /* N:M group size of the sparse lanes (power of two, 2..16) */
  uint32_t bus_bytes;  /* DMA beat (power of two, >= nm_m, >= 4) */
  uint32_t wbuf_bytes; /* weight buffer (multiple of rows) */
  uint32_t ibuf_bytes; /* N:M index buffer */
  uint32_t abuf_bytes; /* activation buffer (multiple of cols) */
  uint32_t pbuf_bytes; /* per-row requantisation parameters, 12 bytes a row */
  uint32_t config_id;  /* FNV-1a of the canonical description (hw_gen) */
} kiln_accel_config_t;

/* log2(nm_m): bits per stored N:M index. */
uint32_t kiln_accel_idx_bits(const kiln_accel_config_t *cfg);

/* ---- instruction set ---------------------------------------------------------------
 * One instruction = one little-endian 64-bit word: bits [7:0] opcode, [15:8] operand a,
 * [31:16] zero, [63:32] imm. */
enum {
  KILN_ACCEL_OP_END = 0x00,      /* stop; STATUS.done */
  KILN_ACCEL_OP_SET = 0x01,      /* reg[a] = imm */
  KILN_ACCEL_OP_LOAD = 0x02,     /* DRAM[SRC, +LEN) -> buffer a at BOFF */
  KILN_ACCEL_OP_LOAD_WIN = 0x03, /* im2col gather of COLS output pixels into ABUF */
  KILN_ACCEL_OP_GEMM = 0x04,     /* acc (+)= W x A over K (dense or N:M) */
  KILN_ACCEL_OP_REQUANT = 0x05,  /* acc + bias -> u8 (or raw int32) into OUT */
  KILN_ACCEL_OP_POOL = 0x06,     /* OUT = max over WIN windows in ABUF */
  KILN_ACCEL_OP_STORE = 0x07,    /* OUT -> DRAM */
  KILN_ACCEL_OP_REBUILD = 0x08,  /* SmartDeal: int8 weights from codes and bases, shifts and adds */
};

/* LOAD's buffer (operand a). */
enum { KILN_ACCEL_BUF_W = 0, KILN_ACCEL_BUF_I = 1, KILN_ACCEL_BUF_P = 2, KILN_ACCEL_BUF_A = 3 };

/* GEMM flags (operand a). */
/* W4: int4 weights, two per byte (row r of step s is the low nibble of byte s*rows/2 +
 * r/2 for even r, the high nibble for odd r, sign-extended); rows is always even. */
enum { KILN_ACCEL_GEMM_ACC = 1, KILN_ACCEL_GEMM_NM = 2, KILN_ACCEL_GEMM_W4 = 4 };
/* REQUANT and STORE flags (operand a). */
enum { KILN_ACCEL_RAW32 = 1 };

/* Control registers written by SET (all zero at start). */
enum {
  KILN_ACCEL_R_SRC = 0,
  KILN_ACCEL_R_DST = 1,
  KILN_ACCEL_R_LEN = 2,
  KILN_ACCEL_R_BOFF = 3,
  KILN_ACCEL_R_H = 4,
  KILN_ACCEL_R_W = 5,
  KILN_ACCEL_R_C = 6,
  KILN_ACCEL_R_KH = 7,
  KILN_ACCEL_R_KW = 8,
  KILN_ACCEL_R_STRIDE = 9,
  KILN_ACCEL_R_PAD_T = 10,
  KILN_ACCEL_R_PADVAL = 11,
  KILN_ACCEL_R_OW = 12,
  KILN_ACCEL_R_OY0 = 13,
  KILN_ACCEL_R_OX0 = 14,
  KILN_ACCEL_R_NPIX = 15,
  KILN_ACCEL_R_K = 16,
  KILN_ACCEL_R_NM_N = 17,
  KILN_ACCEL_R_WOFF = 18,
  KILN_ACCEL_R_IOFF = 19,
  KILN_ACCEL_R_AOFF = 20,
  KILN_ACCEL_R_POFF = 21,
  KILN_ACCEL_R_ZP = 22,
  KILN_ACCEL_R_LO = 23,
  KILN_ACCEL_R_HI = 24,
  KILN_ACCEL_R_NROWS = 25,
  KILN_ACCEL_R_DSTRIDE = 26,
  KILN_ACCEL_R_CH0 = 27,
  KILN_ACCEL_R_WIN = 28,
  KILN_ACCEL_R_PAD_L = 29,
  KILN_ACCEL_R_SD_CFG = 30, /* REBUILD: bit 0 layout (0 taps3, 1 flat), [3:1] exponent bits, [31:16] group */
  KILN_ACCEL_R_SDB = 31,    /* REBUILD: IBUF offset of the int8 bases */
  KILN_ACCEL_NUM_REGS = 32
};

/* Host-visible registers (byte offsets; 32-bit). */
enum {
  KILN_ACCEL_REG_CTRL = 0x00,      /* write 1: start at PROG_ADDR (ignored while busy) */
  KILN_ACCEL_REG_STATUS = 0x04,    /* bit0 busy, bit1 done, bit2 error, [15:8] error code */
  KILN_ACCEL_REG_PROG_ADDR = 0x08, /* byte address of the first instruction (8-aligned) */
  KILN_ACCEL_REG_ERR_PC = 0x0C,    /* index of the instruction that raised the error */
  KILN_ACCEL_REG_CYCLES = 0x10,    /* cycles from start to END */
  KILN_ACCEL_REG_GEMM_CYCLES = 0x14, /* cycles the PE array spent in GEMM */
  KILN_ACCEL_REG_RD_BEATS = 0x18,  /* DRAM beats read (instruction fetch excluded) */
  KILN_ACCEL_REG_WR_BEATS = 0x1C,  /* DRAM beats written */
  KILN_ACCEL_REG_WT_BEATS = 0x20,  /* of RD_BEATS: beats LOAD read into WBUF/IBUF/PBUF */
  KILN_ACCEL_REG_INSNS = 0x24,     /* instructions retired (END included) */
  KILN_ACCEL_REG_CONFIG_ID = 0x28, /* the configuration's id (read-only) */
};

/* STATUS error codes. */
enum {
  KILN_ACCEL_ERR_NONE = 0,
  KILN_ACCEL_ERR_OPCODE = 1, /* unknown opcode, or non-zero bits [31:16] */
  KILN_ACCEL_ERR_BOUNDS = 2, /* an access past a buffer's end */
  KILN_ACCEL_ERR_REG = 3,    /* SET of a register >= KILN_ACCEL_NUM_REGS */
  KILN_ACCEL_ERR_PARAM = 4,  /* a parameter outside its range (see the spec) */
};

static inline uint64_t kiln_accel_insn(uint32_t op, uint32_t a, uint32_t imm) {
  return (uint64_t)(op & 0xFFu) | ((uint64_t)(a & 0xFFu) << 8) | ((uint64_t)imm << 32);
}

/* ---- devices ------------------------------------------------------------------------ */

typedef struct kiln_accel_device_t {
  void *ctx;
  const kiln_accel_config_t *config;
  const char *name; /* "reference model", "Verilated RTL", ... */
  void (*reg_write)(void *ctx, uint32_t addr, uint32_t value);
  uint32_t (*reg_read)(void *ctx, uint32_t addr);
  /* Device memory as the DMA sees it (a driver's shared buffer). */
  kiln_status_t (*mem_write)(void *ctx, uint64_t addr, const void *data, size_t size);
  kiln_status_t (*mem_read)(void *ctx, uint64_t addr, void *data, size_t size);
  /* Lets the device run until STATUS.busy clears; KILN_ERROR_IO if it is still busy
   * after `max_cycles` (the RTL) or cannot run. */
  kiln_status_t (*wait)(void *ctx, uint64_t max_cycles);
  void (*close)(void *ctx);
  uint64_t mem_bytes;
} kiln_accel_device_t;

/* The reference model: the ISA executed in C over `mem_bytes` of device memory. It
 * counts instructions and beats exactly as the RTL does; it has no cycle count. */
kiln_status_t kiln_accel_ref_open(const kiln_accel_config_t *cfg, uint64_t mem_bytes,
                                  kiln_accel_device_t *out);

/* Counters of one program run, read back after it. */
typedef struct kiln_accel_counters_t {
  uint32_t cycles, gemm_cycles, rd_beats, wr_beats, wt_beats, insns;
} kiln_accel_counters_t;

/* Runs the program at `prog_addr` to its END: start, wait, check STATUS. On a device
 * error, fills `error` (if not null) with "accelerator error CODE at instruction PC"
 * and returns KILN_ERROR_IO. */
kiln_status_t kiln_accel_run_program(kiln_accel_device_t *dev, uint64_t prog_addr, uint64_t max_cycles,
                                     kiln_accel_counters_t *counters, char *error, size_t error_size);

/* ---- compiled models (.kaccel) -------------------------------------------------------
 * Written by `kiln compile --target accel`, read by kiln_accel_model_open. Little-endian:
 *   header (48 bytes): magic "KACL", version u32, config_id u32, n_layers u32,
 *     mem_bytes u64 (device memory the model needs), image_bytes u64 (loaded at address
 *     0: activations, weights, programs), n_scales u32, zero u32, zero u64
 *   input (96 bytes): addr u64, ndims u32, zero_point i32, scale f32, zero u32, dims i64[8],
 *     perm u8[8]: device memory holds the input transposed by perm (stored element
 *     [i0, i1, ...] is the input's element x with x[perm[k]] = ik)
 *   output (88 bytes): addr u64, ndims u32, zero u32, dims i64[8], perm u8[8]: the stored
 *     int32 tensor Z (shape: Z.dims[perm[k]] = dims[k]) is the output transposed back,
 *     output[o] = Z[z] with z[perm[k]] = o[k]
 *   scales f32[n_scales]: y = value x scales[index along Z's last dimension]
 *   layers, 120 bytes each: name[64], kind[32] (NUL-padded), macs u64, prog_addr u64,
 *     n_insns u64
 *   image (image_bytes)
 *   checksum u64: FNV-1a 64 of every byte before it */
#define KILN_ACCEL_FILE_VERSION 2u
#define KILN_ACCEL_MAX_DIMS 8
#define KILN_ACCEL_NAME_BYTES 64
#define KILN_ACCEL_KIND_BYTES 32

typedef struct kiln_accel_model_t kiln_accel_model_t;

/* Reads and checks a .kaccel file (sizes, offsets, checksum); on failure writes why into
 * `error` and returns KILN_ERROR_BAD_WEIGHTS or KILN_ERROR_IO. */
kiln_status_t kiln_accel_model_open(const char *path, kiln_accel_model_t **out, char *error, size_t error_size);
/* The same from memory (`path` names it in errors; may be null). */
kiln_status_t kiln_accel_model_read(const void *data, size_t size, const char *path, kiln_accel_model_t **out,
                                    char *error, size_t error_size);
void kiln_accel_model_free(kiln_accel_model_t *model);
uint32_t kiln_accel_model_config_id(const kiln_accel_model_t *model);
size_t kiln_accel_model_layer_count(const kiln_accel_model_t *model);
const char *kiln_accel_model_layer_name(const kiln_accel_model_t *model, size_t i);
const char *kiln_accel_model_layer_kind(const kiln_accel_model_t *model, size_t i);
uint64_t kiln_accel_model_layer_macs(const kiln_accel_model_t *model, size_t i);
/* Elements of the input and the output, and their shapes (up to KILN_ACCEL_MAX_DIMS). */
size_t kiln_accel_model_input_size(const kiln_accel_model_t *model, int64_t *dims, size_t *ndims);
size_t kiln_accel_model_output_size(const kiln_accel_model_t *model, int64_t *dims, size_t *ndims);
/* Device memory the model needs. */
uint64_t kiln_accel_model_mem_bytes(const kiln_accel_model_t *model);
/* Checks the device's configuration and memory, then writes the image (weights and
 * programs) into device memory. */
kiln_status_t kiln_accel_model_load(const kiln_accel_model_t *model, kiln_accel_device_t *dev, char *error,
                                    size_t error_size);
/* One inference: quantises `input` (the model's input scale and zero point, round half
 * to even, clamped to u8) into device memory, runs every layer's program, reads the
 * int32 output and scales it into `output`. `per_layer` (n_layers entries) or null. */
kiln_status_t kiln_accel_model_run(const kiln_accel_model_t *model, kiln_accel_device_t *dev, const float *input,
                                   size_t input_size, float *output, size_t output_size,
                                   kiln_accel_counters_t *per_layer, uint64_t max_cycles, char *error,
                                   size_t error_size);

#ifdef __cplusplus
}
#endif

#endif

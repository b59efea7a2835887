/* kiln-runner: generic driver that runs one compiled model on .npy inputs, writing .npy outputs.
 *
 * `kiln run` compiles this file with the runtime sources, the model object and the model.h
 * generated for it into one executable (also cross-compiled, e.g. static for aarch64).
 * Built with KILN_RUNNER_VULKAN it is kiln-vk-runner instead: --weights names a .kvk
 * (`kiln compile --target vulkan`), whose signature is read at run time, and the model
 * runs through the runtime's Vulkan HAL. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdir/stat/clock_gettime also under a strict -std=c11 */
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "kiln/kiln.h"
#include "kiln/npy.h"
#include "kiln/kernels.h" /* kiln_observe_write (models compiled for calibration) */
#ifdef KILN_RUNNER_VULKAN
#include "kiln/vulkan.h"
#else
#include "model.h" /* generated: declares the descriptor, defines KILN_MODEL_DESC */
#endif

#define RUNNER_BUFFER_ALIGNMENT 64u
#define RUNNER_MAX_PRINTED 10u

/* The runtime explains failures through the error hook; the last message is kept so the
 * final "error:" line can carry it. */
static char g_detail[1024];

static void capture_detail(void *user, const char *message) {
  (void)user;
  snprintf(g_detail, sizeof g_detail, "%s", message);
}

static int fail_status(kiln_status_t status) {
  /* KILN_NO_ERROR_TEXT builds send just the status name as detail: don't print it twice. */
  if (g_detail[0] && strcmp(g_detail, kiln_status_string(status)) != 0)
    fprintf(stderr, "error: %s: %s\n", kiln_status_string(status), g_detail);
  else
    fprintf(stderr, "error: %s\n", kiln_status_string(status));
  return 1;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 1, 2)))
#endif
static int fail(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fputs("error: ", stderr);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  return 1;
}

static void print_shape(FILE *out, size_t rank, const int64_t *dims) {
  fputc('[', out);
  for (size_t d = 0; d < rank; ++d) fprintf(out, d ? ", %lld" : "%lld", (long long)dims[d]);
  fputc(']', out);
}

#ifndef KILN_RUNNER_VULKAN
static const char *or_empty(const char *s) { return s ? s : ""; }

static void print_tensor_line(FILE *out, const char *kind, const kiln_tensor_desc_t *t) {
  fprintf(out, "  %-6s %s: %s ", kind, or_empty(t->name),
          kiln_dtype_name((kiln_dtype_t)t->dtype));
  if (t->rank >= 0 && (t->dims || t->rank == 0)) print_shape(out, (size_t)t->rank, t->dims);
  fputc('\n', out);
}
#endif

/* Runs before the descriptor is validated, hence the NULL guards. */
static void print_usage(FILE *out, const char *argv0, const kiln_model_desc_t *desc) {
#ifdef KILN_RUNNER_VULKAN
  (void)desc;
  fprintf(out,
          "usage: %s --weights MODEL.kvk [--input NAME=FILE.npy]... --output DIR [--repeat N] [--timing]\n"
          "Runs a model compiled by `kiln compile --target vulkan` once (or N times) on a Vulkan\n"
          "device, writes DIR/<output>.npy for each output and prints each output's shape,\n"
          "dtype, first values and argmax. KILN_VK_DEVICE=N picks device N.\n",
          argv0);
#else
  fprintf(out,
          "usage: %s --weights MODEL.kw [--input NAME=FILE.npy]... --output DIR [--repeat N] [--threads N] [--timing] [--observe FILE] [--observe-gram FILE]\n"
          "Runs model '%s' (%s) once (or N times), writes DIR/<output>.npy for each output\n"
          "and prints each output's shape, dtype, first values and argmax.\n",
          argv0, or_empty(desc->name), or_empty(desc->target));
  for (uint32_t i = 0; desc->inputs && i < desc->num_inputs; ++i)
    print_tensor_line(out, "input", &desc->inputs[i]);
  for (uint32_t i = 0; desc->outputs && i < desc->num_outputs; ++i)
    print_tensor_line(out, "output", &desc->outputs[i]);
#endif
}

/* ONNX names may hold '/', ':' and worse; keep file names portable and inside DIR. Same
 * rule as tests/oracle/ort_run.js, so both write the same file for an output. */
static void sanitise_name(const char *name, char *out) {
  size_t i = 0;
  for (; name[i]; ++i) {
    char ch = name[i];
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-';
    out[i] = ok ? ch : '_';
  }
  out[i] = '\0';
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else { /* subnormal: renormalise */
    exp = 113;
    while (!(mant & 0x400)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* Element i as a double, for printing and argmax; every kiln dtype fits. */
static double element_value(kiln_dtype_t dtype, const void *data, size_t i) {
  switch (dtype) {
    case KILN_DTYPE_F32: {
      float v;
      memcpy(&v, (const char *)data + i * 4, 4);
      return v;
    }
    case KILN_DTYPE_F16: {
      uint16_t v;
      memcpy(&v, (const char *)data + i * 2, 2);
      return half_to_float(v);
    }
    case KILN_DTYPE_I64: {
      int64_t v;
      memcpy(&v, (const char *)data + i * 8, 8);
      return (double)v;
    }
    case KILN_DTYPE_I32: {
      int32_t v;
      memcpy(&v, (const char *)data + i * 4, 4);
      return v;
    }
    case KILN_DTYPE_I8: return ((const int8_t *)data)[i];
    case KILN_DTYPE_U8: return ((const uint8_t *)data)[i];
    case KILN_DTYPE_BOOL: return ((const uint8_t *)data)[i] != 0;
    case KILN_DTYPE_INVALID: break;
  }
  return 0.0;
}

static void print_element(kiln_dtype_t dtype, const void *data, size_t i) {
  if (dtype == KILN_DTYPE_I64) {
    int64_t v;
    memcpy(&v, (const char *)data + i * 8, 8);
    printf("%lld", (long long)v); /* exact, unlike going through double */
  } else if (dtype == KILN_DTYPE_F32 || dtype == KILN_DTYPE_F16) {
    printf("%.6g", element_value(dtype, data, i));
  } else {
    printf("%.0f", element_value(dtype, data, i));
  }
}

/* One stdout line per output:
 *   NAME: shape [4, 10] dtype f32 values [v0, ..., v9, ...] argmax per row [K0, K1, K2, K3]
 * "..." marks more than 10 elements; the argmax of each row (first maximum wins, at most
 * 16 rows listed) only when the trailing dim is > 1. */
static void print_output(const kiln_tensor_desc_t *t, const void *data) {
  kiln_dtype_t dtype = (kiln_dtype_t)t->dtype;
  size_t count = t->size_bytes / kiln_dtype_size(dtype);
  for (const char *p = t->name; *p; ++p) putchar((unsigned char)*p < 0x20 ? '?' : *p);
  printf(": shape ");
  print_shape(stdout, (size_t)t->rank, t->dims);
  printf(" dtype %s values [", kiln_dtype_name(dtype));
  size_t shown = count < RUNNER_MAX_PRINTED ? count : RUNNER_MAX_PRINTED;
  for (size_t i = 0; i < shown; ++i) {
    if (i) printf(", ");
    print_element(dtype, data, i);
  }
  if (count > shown) printf(", ...");
  printf("]");
  if (t->rank > 0 && t->dims[t->rank - 1] > 1 && count > 0) {
    /* Per-row argmax (classifier outputs), first maximum wins; at most 16 rows. */
    size_t row = (size_t)t->dims[t->rank - 1];
    size_t rows = count / row;
    size_t listed = rows < 16 ? rows : 16;
    printf(" argmax%s [", rows > 1 ? " per row" : "");
    for (size_t r = 0; r < listed; ++r) {
      size_t best = 0;
      double best_value = element_value(dtype, data, r * row);
      for (size_t i = 1; i < row; ++i) {
        double v = element_value(dtype, data, r * row + i);
        if (v > best_value) {
          best_value = v;
          best = i;
        }
      }
      printf("%s%zu", r ? ", " : "", best);
    }
    printf("%s]", rows > listed ? ", ..." : "");
  }
  printf("\n");
}

static void *alloc_aligned(size_t size) {
  size_t rounded = (size / RUNNER_BUFFER_ALIGNMENT + 1) * RUNNER_BUFFER_ALIGNMENT;
  if (rounded < size) return NULL;
  return aligned_alloc(RUNNER_BUFFER_ALIGNMENT, rounded);
}

static int ensure_directory(const char *dir) {
  if (mkdir(dir, 0777) == 0) return 0;
  int err = errno;
  struct stat st;
  if (err == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
  return fail("cannot create output directory %s: %s", dir,
              err == EEXIST ? "exists and is not a directory" : strerror(err));
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Peak resident memory of this process image (VmHWM), or -1 where /proc is missing. */
static long peak_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

typedef struct runner_t {
  const kiln_model_desc_t *desc;
  const char *weights_path;
  const char *output_dir;
  long repeat;
  long threads;
  int timing;               /* --timing: print load/first-run/median times to stderr */
  const char *observe_path; /* --observe FILE: append calibration ranges (calibration builds) */
  const char *gram_path;    /* --observe-gram FILE: write input Gram matrices (N:M calibration) */
  const char **input_args;  /* the NAME=FILE values of --input, in order */
  int num_input_args;
  const char **input_paths; /* per model input; NULL until given */
  kiln_npy_t *inputs;
  void **outputs;
  void *arena;
  kiln_weights_t *weights;
  kiln_model_t *model;
#ifdef KILN_RUNNER_VULKAN
  kiln_vk_model_t *vk;
  kiln_model_desc_t vk_desc;     /* the .kvk's signature in the descriptor's form */
  kiln_tensor_desc_t *vk_tensors;
#endif
} runner_t;

/* NAME=FILE, where NAME may itself contain '=': the first split whose left side names a
 * model input wins. */
static int parse_input_arg(runner_t *r, const char *arg) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg) return fail("--input expects NAME=FILE.npy, got '%s'", arg);
  for (const char *split = eq; split; split = strchr(split + 1, '=')) {
    size_t len = (size_t)(split - arg);
    for (uint32_t i = 0; i < r->desc->num_inputs; ++i) {
      const char *name = r->desc->inputs[i].name;
      if (strlen(name) != len || memcmp(name, arg, len) != 0) continue;
      if (r->input_paths[i]) return fail("input '%s' given twice", name);
      r->input_paths[i] = split + 1;
      return 0;
    }
  }
  fprintf(stderr, "error: the model has no input named '%.*s' (inputs:", (int)(eq - arg), arg);
  for (uint32_t i = 0; i < r->desc->num_inputs; ++i)
    fprintf(stderr, "%s '%s'", i ? "," : "", r->desc->inputs[i].name);
  fprintf(stderr, "%s)\n", r->desc->num_inputs ? "" : " none");
  return 1;
}

static int parse_args(runner_t *r, int argc, char **argv, int *exit_now) {
  *exit_now = 0;
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      print_usage(stdout, argv[0], r->desc);
      *exit_now = 1;
      return 0;
    }
    if (strcmp(arg, "--timing") == 0) {
      r->timing = 1;
      continue;
    }
    int known = strcmp(arg, "--weights") == 0 || strcmp(arg, "--input") == 0 ||
                strcmp(arg, "--output") == 0 || strcmp(arg, "--repeat") == 0 ||
                strcmp(arg, "--threads") == 0 || strcmp(arg, "--observe") == 0 ||
                strcmp(arg, "--observe-gram") == 0;
    if (!known) return fail("unknown argument '%s' (see --help)", arg);
    if (i + 1 >= argc) return fail("%s needs a value", arg);
    const char *value = argv[++i];
    if (strcmp(arg, "--weights") == 0) {
      r->weights_path = value;
    } else if (strcmp(arg, "--observe") == 0) {
      r->observe_path = value;
    } else if (strcmp(arg, "--observe-gram") == 0) {
      r->gram_path = value;
    } else if (strcmp(arg, "--output") == 0) {
      r->output_dir = value;
    } else if (strcmp(arg, "--input") == 0) {
      r->input_args[r->num_input_args++] = value; /* resolved once the model is checked */
    } else if (strcmp(arg, "--threads") == 0) {
      char *end = NULL;
      errno = 0;
      long n = strtol(value, &end, 10);
      if (errno || !end || *end || end == value || n < 1 || n > 256)
        return fail("--threads expects a count from 1 to 256, got '%s'", value);
      r->threads = n;
    } else {
      char *end = NULL;
      errno = 0;
      long n = strtol(value, &end, 10);
      if (errno || !end || *end || end == value || n < 1 || n > 1000000000L)
        return fail("--repeat expects a count from 1 to 1000000000, got '%s'", value);
      r->repeat = n;
    }
  }
  if (!r->weights_path) return fail("missing --weights MODEL.kw (see --help)");
  if (!r->output_dir) return fail("missing --output DIR (see --help)");
  return 0;
}

static int resolve_inputs(runner_t *r) {
  for (int i = 0; i < r->num_input_args; ++i)
    if (parse_input_arg(r, r->input_args[i])) return 1;
  for (uint32_t i = 0; i < r->desc->num_inputs; ++i)
    if (!r->input_paths[i])
      return fail("input '%s' of the model was not given (use --input %s=FILE.npy)",
                  r->desc->inputs[i].name, r->desc->inputs[i].name);
  return 0;
}

static int bind_inputs(runner_t *r) {
  for (uint32_t i = 0; i < r->desc->num_inputs; ++i) {
    const kiln_tensor_desc_t *t = &r->desc->inputs[i];
    const char *path = r->input_paths[i];
    kiln_npy_t *npy = &r->inputs[i];
    g_detail[0] = '\0';
    kiln_status_t status = kiln_npy_read(path, npy);
    if (status != KILN_OK) return fail_status(status);
    if (npy->dtype != (kiln_dtype_t)t->dtype)
      return fail("input '%s': %s holds %s, the model expects %s", t->name, path, npy->descr,
                  kiln_dtype_name((kiln_dtype_t)t->dtype));
    if (npy->rank != (size_t)t->rank ||
        (t->rank > 0 && memcmp(npy->dims, t->dims, (size_t)t->rank * sizeof(int64_t)) != 0)) {
      fprintf(stderr, "error: input '%s': %s has shape ", t->name, path);
      print_shape(stderr, npy->rank, npy->dims);
      fprintf(stderr, ", the model expects ");
      print_shape(stderr, (size_t)t->rank, t->dims);
      fputc('\n', stderr);
      return 1;
    }
#ifndef KILN_RUNNER_VULKAN
    status = kiln_model_bind_input(r->model, i, npy->dtype, npy->rank, npy->dims, npy->data,
                                   npy->size_bytes);
    if (status != KILN_OK) return fail_status(status);
#endif
  }
  return 0;
}

static int bind_outputs(runner_t *r) {
  for (uint32_t i = 0; i < r->desc->num_outputs; ++i) {
    const kiln_tensor_desc_t *t = &r->desc->outputs[i];
    r->outputs[i] = alloc_aligned((size_t)t->size_bytes);
    if (!r->outputs[i])
      return fail("cannot allocate %llu bytes for output '%s'",
                  (unsigned long long)t->size_bytes, t->name);
    /* Zeroed so an output the model fails to write reads as zeros, not garbage. */
    memset(r->outputs[i], 0, (size_t)t->size_bytes);
#ifndef KILN_RUNNER_VULKAN
    g_detail[0] = '\0';
    kiln_status_t status = kiln_model_bind_output(r->model, i, (kiln_dtype_t)t->dtype,
                                                  (size_t)t->rank, t->dims, r->outputs[i],
                                                  (size_t)t->size_bytes);
    if (status != KILN_OK) return fail_status(status);
#endif
  }
  return 0;
}

static int write_outputs(runner_t *r) {
  if (ensure_directory(r->output_dir)) return 1;
  uint32_t n = r->desc->num_outputs;
  char **names = (char **)calloc(n ? n : 1, sizeof *names);
  if (!names) return fail("out of memory");
  int rc = 0;
  /* All names first, so a collision is reported before any file is written. */
  for (uint32_t i = 0; i < n && rc == 0; ++i) {
    const char *name = r->desc->outputs[i].name;
    names[i] = (char *)malloc(strlen(name) + 1);
    if (!names[i]) {
      rc = fail("out of memory");
      break;
    }
    sanitise_name(name, names[i]);
    for (uint32_t j = 0; j < i && rc == 0; ++j)
      if (strcmp(names[i], names[j]) == 0)
        rc = fail("outputs '%s' and '%s' both sanitise to '%s'", r->desc->outputs[j].name,
                  name, names[i]);
  }
  for (uint32_t i = 0; i < n && rc == 0; ++i) {
    const kiln_tensor_desc_t *t = &r->desc->outputs[i];
    size_t path_len = strlen(r->output_dir) + 1 + strlen(names[i]) + 5;
    char *path = (char *)malloc(path_len);
    if (!path) {
      rc = fail("out of memory");
      break;
    }
    snprintf(path, path_len, "%s/%s.npy", r->output_dir, names[i]);
    g_detail[0] = '\0';
    kiln_status_t status = kiln_npy_write(path, (kiln_dtype_t)t->dtype, (size_t)t->rank,
                                          t->dims, r->outputs[i]);
    free(path);
    if (status != KILN_OK) {
      rc = fail_status(status);
      break;
    }
    print_output(t, r->outputs[i]);
  }
  for (uint32_t i = 0; i < n; ++i) free(names[i]);
  free(names);
  return rc;
}

#ifdef KILN_RUNNER_VULKAN
/* Opens the .kvk and describes its inputs and outputs as a kiln_model_desc_t. */
static kiln_status_t open_vulkan(runner_t *r) {
  const char *device = getenv("KILN_VK_DEVICE");
  kiln_vk_options_t options = {device && *device ? atoi(device) : -1, NULL};
  kiln_status_t status = kiln_vk_model_open(r->weights_path, &options, &r->vk);
  if (status != KILN_OK) return status;
  size_t ni = kiln_vk_model_num_inputs(r->vk), no = kiln_vk_model_num_outputs(r->vk);
  r->vk_tensors = (kiln_tensor_desc_t *)calloc(ni + no + 1, sizeof *r->vk_tensors);
  if (!r->vk_tensors) return KILN_ERROR_OUT_OF_MEMORY;
  for (size_t i = 0; i < ni + no; ++i) {
    const kiln_vk_tensor_t *t = i < ni ? kiln_vk_model_input(r->vk, i) : kiln_vk_model_output(r->vk, i - ni);
    r->vk_tensors[i].name = t->name;
    r->vk_tensors[i].dtype = t->dtype;
    r->vk_tensors[i].rank = (int32_t)t->rank;
    r->vk_tensors[i].dims = t->dims;
    r->vk_tensors[i].size_bytes = t->size_bytes;
  }
  r->vk_desc.num_inputs = (uint32_t)ni;
  r->vk_desc.num_outputs = (uint32_t)no;
  r->vk_desc.inputs = r->vk_tensors;
  r->vk_desc.outputs = r->vk_tensors + ni;
  r->desc = &r->vk_desc;
  const kiln_vk_info_t *info = kiln_vk_model_info(r->vk);
  fprintf(stderr, "vulkan: device '%s', pipeline cache %s, pipelines_ms=%.3f open_ms=%.3f\n",
          info->device_name, info->pipeline_cache_hit ? "hit" : "miss", info->pipelines_ms, info->open_ms);
  return KILN_OK;
}

static kiln_status_t run_vulkan(runner_t *r) {
  uint32_t ni = r->desc->num_inputs, no = r->desc->num_outputs;
  const void *in[64];
  size_t in_sizes[64], out_sizes[64];
  if (ni > 64 || no > 64) return KILN_ERROR_INVALID_ARGUMENT;
  for (uint32_t i = 0; i < ni; ++i) {
    in[i] = r->inputs[i].data;
    in_sizes[i] = r->inputs[i].size_bytes;
  }
  for (uint32_t i = 0; i < no; ++i) out_sizes[i] = (size_t)r->desc->outputs[i].size_bytes;
  return kiln_vk_model_run(r->vk, in, in_sizes, r->outputs, out_sizes);
}
#endif

static int run(runner_t *r, int argc, char **argv) {
  r->input_args = (const char **)calloc(argc > 0 ? (size_t)argc : 1, sizeof *r->input_args);
  if (!r->input_args) return fail("out of memory");
  int exit_now = 0;
  if (parse_args(r, argc, argv, &exit_now)) return 1;
  if (exit_now) return 0;

  double load_start = now_seconds();
#ifdef KILN_RUNNER_VULKAN
  if (r->threads > 1 || r->observe_path || r->gram_path)
    return fail("--threads, --observe and --observe-gram do not apply to a Vulkan model");
  kiln_status_t status = open_vulkan(r);
  if (status != KILN_OK) return fail_status(status);
#else
  kiln_status_t status = kiln_weights_open(r->weights_path, &r->weights);
  if (status != KILN_OK) return fail_status(status);
  /* Creating the model validates the descriptor, so names are trusted from here on. */
  status = kiln_model_create(r->desc, r->weights, &r->model);
  if (status != KILN_OK) return fail_status(status);
#endif
  uint32_t num_inputs = r->desc->num_inputs, num_outputs = r->desc->num_outputs;
  r->input_paths = (const char **)calloc(num_inputs ? num_inputs : 1, sizeof *r->input_paths);
  r->inputs = (kiln_npy_t *)calloc(num_inputs ? num_inputs : 1, sizeof *r->inputs);
  r->outputs = (void **)calloc(num_outputs ? num_outputs : 1, sizeof *r->outputs);
  if (!r->input_paths || !r->inputs || !r->outputs) return fail("out of memory");
  if (resolve_inputs(r)) return 1;
#ifndef KILN_RUNNER_VULKAN
  if (r->threads > 1) {
    status = kiln_model_set_threads(r->model, (size_t)r->threads);
    if (status != KILN_OK) return fail_status(status);
  }

  size_t arena_size = 0, arena_alignment = 1;
  status = kiln_model_plan(r->model, &arena_size, &arena_alignment);
  if (status != KILN_OK) return fail_status(status);
  if (arena_size > 0) {
    size_t alignment = arena_alignment > sizeof(void *) ? arena_alignment : sizeof(void *);
    size_t rounded = (arena_size + alignment - 1) / alignment * alignment;
    r->arena = rounded >= arena_size ? aligned_alloc(alignment, rounded) : NULL;
    if (!r->arena) return fail("cannot allocate the model's %zu-byte arena", arena_size);
  }
  status = kiln_model_bind_arena(r->model, r->arena, arena_size);
  if (status != KILN_OK) return fail_status(status);
#endif

  if (bind_inputs(r) || bind_outputs(r)) return 1;

  double start = now_seconds(), load_ms = (start - load_start) * 1e3, first_ms = 0;
  double *times = r->timing ? (double *)calloc((size_t)r->repeat, sizeof(double)) : NULL;
  if (r->timing && !times) return fail("out of memory");
  for (long i = 0; i < r->repeat; ++i) {
    double t0 = now_seconds();
#ifdef KILN_RUNNER_VULKAN
    status = run_vulkan(r);
#else
    status = kiln_model_run(r->model);
#endif
    if (status != KILN_OK) {
      free(times);
      return fail_status(status);
    }
    if (times) times[i] = (now_seconds() - t0) * 1e3;
  }
  double elapsed = now_seconds() - start;
  if (times) {
    first_ms = times[0];
    /* Median of the runs after the first (which pays for cold caches). */
    long n = r->repeat > 1 ? r->repeat - 1 : 1;
    double *warm = r->repeat > 1 ? times + 1 : times;
    for (long i = 1; i < n; ++i)
      for (long j = i; j > 0 && warm[j - 1] > warm[j]; --j) {
        double t = warm[j];
        warm[j] = warm[j - 1];
        warm[j - 1] = t;
      }
    fprintf(stderr, "timing load_ms=%.3f first_ms=%.3f median_ms=%.4f runs=%ld threads=%ld peak_rss_kb=%ld\n",
            load_ms, first_ms, warm[n / 2], r->repeat, r->threads > 1 ? r->threads : 1, peak_rss_kb());
    free(times);
  }
  if (r->repeat > 1 && !r->timing)
    fprintf(stderr, "runner: %ld runs, %.6g ms per run\n", r->repeat,
            elapsed * 1e3 / (double)r->repeat);
  if (r->observe_path && kiln_observe_write(r->observe_path) != 0)
    return fail("cannot write the calibration ranges to '%s' (or recording them ran out of memory)", r->observe_path);
  if (r->gram_path && kiln_observe_write_grams(r->gram_path) != 0)
    return fail("cannot write the calibration Gram matrices to '%s' (or recording them ran out of memory)", r->gram_path);
  return write_outputs(r);
}

int main(int argc, char **argv) {
  runner_t r;
  memset(&r, 0, sizeof r);
  r.repeat = 1;
#ifndef KILN_RUNNER_VULKAN
  r.desc = KILN_MODEL_DESC;
  if (!r.desc) return fail("the model descriptor is NULL");
#endif
  kiln_set_error_hook(capture_detail, NULL);

  int rc = run(&r, argc, argv);

  kiln_model_destroy(r.model);
  kiln_weights_close(r.weights);
#ifdef KILN_RUNNER_VULKAN
  kiln_vk_model_close(r.vk);
  free(r.vk_tensors);
#endif
  free(r.arena);
  for (uint32_t i = 0; r.outputs && i < r.desc->num_outputs; ++i) free(r.outputs[i]);
  for (uint32_t i = 0; r.inputs && i < r.desc->num_inputs; ++i) kiln_npy_free(&r.inputs[i]);
  free(r.outputs);
  free(r.inputs);
  free((void *)r.input_paths);
  free((void *)r.input_args);
  return rc;
}

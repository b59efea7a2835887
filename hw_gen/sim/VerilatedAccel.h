/* The Verilated accelerator RTL (hw_gen/rtl, top kiln_accel) as a runtime device
 * (kiln_accel_device_t, kiln/accel.h), with a memory model on its DMA port.
 *
 * The model is built for the default configuration (build/hw_gen/default); opening it
 * with another configuration fails with KILN_ERROR_INVALID_ARGUMENT (the device's
 * CONFIG_ID register must equal cfg->config_id, and every field must match). */
#ifndef KILN_HW_GEN_SIM_VERILATEDACCEL_H
#define KILN_HW_GEN_SIM_VERILATEDACCEL_H

#include "kiln/accel.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The memory model: reads return in request order `read_latency` cycles after they are
 * granted (0 means the default, 4; at least 1); each cycle mem_gnt is low with
 * probability stall_percent/100 (default 0), drawn from `seed`. Reads past the end of
 * memory return zeros, writes past it are dropped; writes honour the byte strobes. */
typedef struct kiln_accel_sim_options_t {
  uint32_t read_latency;
  uint32_t stall_percent;
  uint64_t seed;
} kiln_accel_sim_options_t;

/* Opens the Verilated RTL over `mem_bytes` (1 .. 2^32) of zeroed device memory; `opts`
 * may be null (defaults). close() frees it. */
kiln_status_t kiln_accel_verilated_open(const kiln_accel_config_t *cfg, uint64_t mem_bytes,
                                        const kiln_accel_sim_options_t *opts, kiln_accel_device_t *out);

/* Total clock cycles the device has simulated since it was opened (all programs). */
uint64_t kiln_accel_verilated_total_cycles(const kiln_accel_device_t *dev);

#ifdef __cplusplus
}
#endif

#endif

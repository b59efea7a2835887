// Kiln accelerator top level (docs/ACCELERATOR.md): the controller, the DMA engine and
// memory port, the buffers, the compute sequencer (PE array, requantise lanes, pool
// unit) and OUT, parameterised by kiln_accel_pkg (written by kiln hw-gen).
module kiln_accel
  import kiln_accel_pkg::*;
(
  input  logic                   clk,
  input  logic                   rst_n,
  // host registers
  input  logic                   reg_we,
  input  logic [7:0]             reg_addr,
  input  logic [31:0]            reg_wdata,
  output logic [31:0]            reg_rdata,
  // memory port
  output logic                   mem_req,
  output logic                   mem_we,
  output logic [31:0]            mem_addr,
  output logic [8*BUS_BYTES-1:0] mem_wdata,
  output logic [BUS_BYTES-1:0]   mem_wstrb,
  input  logic                   mem_gnt,
  input  logic                   mem_rvalid,
  input  logic [8*BUS_BYTES-1:0] mem_rdata
);
  localparam int TAG_BITS = 6;

  // Only 8-bit operands and 32-bit accumulators are built (hw_gen checks the same).
  if (ACT_BITS != 8 || WGT_BITS != 8 || ACC_BITS != 32) begin : g_bad_widths
    $error("kiln_accel: only act_bits = 8, wgt_bits = 8, acc_bits = 32 are built");
  end
  localparam int SLOT = ROWS * IDX_BITS / 8;
  localparam int RW = (ROWS > 1) ? $clog2(ROWS) : 1;
  localparam int CW = (COLS > 1) ? $clog2(COLS) : 1;

  logic [32*NUM_REGS-1:0] regs;
  logic dma_start, dma_raw, dma_issue_busy, dma_busy, dma_outstanding, cnt_rd, cnt_wt, cnt_wr;
  logic [1:0] dma_cmd, dma_buf;
  logic f_req, f_gnt, f_rvalid;
  logic [31:0] f_addr;
  logic [TAG_BITS-1:0] f_tag, f_rtag;
  logic [8*BUS_BYTES-1:0] f_rdata;
  logic comp_start, comp_busy, comp_gemm;
  logic [1:0] comp_op;
  logic [2:0] comp_flags;
  logic rb_start, rb_busy, rb_ire, rb_we;
  logic [31:0] rb_iaddr, rb_waddr;
  logic [8*ROWS-1:0] rb_wdata;

  logic buf_clearing;

  kiln_ctrl #(.TAG_BITS(TAG_BITS)) u_ctrl (
    .clk, .rst_n, .buf_clearing,
    .reg_we, .reg_addr, .reg_wdata, .reg_rdata,
    .regs,
    .dma_start, .dma_cmd, .dma_buf, .dma_raw, .dma_issue_busy, .dma_busy, .dma_outstanding,
    .cnt_rd, .cnt_wt, .cnt_wr,
    .f_req, .f_addr, .f_tag, .f_gnt, .f_rvalid, .f_rtag, .f_rdata,
    .comp_start, .comp_op, .comp_flags, .comp_busy, .comp_gemm,
    .rb_start, .rb_busy
  );

  logic wb_valid, wb_stride_cols, pad_valid;
  logic [1:0] wb_buf;
  logic [31:0] wb_base, pad_base;
  logic [BUS_BYTES-1:0] wb_mask, pad_mask;
  logic [8*BUS_BYTES-1:0] wb_data;
  logic [7:0] pad_val;
  logic [CW-1:0] st_col;
  logic [32*ROWS-1:0] st_data;

  kiln_dma #(.TAG_BITS(TAG_BITS)) u_dma (
    .clk, .rst_n,
    .start(dma_start), .cmd(dma_cmd), .cmd_buf(dma_buf), .cmd_raw(dma_raw), .regs,
    .issue_busy(dma_issue_busy), .busy(dma_busy), .outstanding(dma_outstanding),
    .cnt_rd, .cnt_wt, .cnt_wr,
    .f_req, .f_addr, .f_tag, .f_gnt, .f_rvalid, .f_rtag, .f_rdata,
    .wb_valid, .wb_buf, .wb_base, .wb_stride_cols, .wb_mask, .wb_data,
    .pad_valid, .pad_base, .pad_mask, .pad_val,
    .st_col, .st_data,
    .mem_req, .mem_we, .mem_addr, .mem_wdata, .mem_wstrb, .mem_gnt, .mem_rvalid, .mem_rdata
  );

  logic w_re, a_re, p_re;
  logic [31:0] w_addr, i_addr, a_addr, p_addr;
  logic [8*ROWS-1:0] w_data;
  logic [8*SLOT-1:0] i_data;
  logic [8*NM_M*COLS-1:0] a_data;
  logic [95:0] p_data;

  kiln_buffers u_buf (
    .clk, .rst_n, .clearing(buf_clearing),
    .wb_valid, .wb_buf, .wb_base, .wb_stride_cols, .wb_mask, .wb_data,
    .pad_valid, .pad_base, .pad_mask, .pad_val,
    .w_re, .w_addr, .w_data, .i_addr, .i_data, .a_re, .a_addr, .a_data, .p_re, .p_addr, .p_data,
    .rb_ire, .rb_iaddr, .rb_we, .rb_waddr, .rb_wdata
  );

  kiln_rebuild u_rebuild (
    .clk, .rst_n,
    .start(rb_start),
    .sd_cfg(regs[32*R_SD_CFG +: 32]), .k_in(regs[32*R_K +: 32]), .c_in(regs[32*R_C +: 32]),
    .woff_in(regs[32*R_WOFF +: 32]), .ioff_in(regs[32*R_IOFF +: 32]), .len_in(regs[32*R_LEN +: 32]),
    .sdb_in(regs[32*R_SDB +: 32]),
    .busy(rb_busy),
    .i_re(rb_ire), .i_addr(rb_iaddr), .i_data,
    .w_we(rb_we), .w_addr(rb_waddr), .w_data(rb_wdata)
  );

  logic out_we;
  logic [RW-1:0] out_row;
  logic [32*COLS-1:0] out_data;

  kiln_compute u_comp (
    .clk, .rst_n,
    .start(comp_start), .op(comp_op), .flags(comp_flags), .regs,
    .busy(comp_busy), .gemm_active(comp_gemm),
    .w_re, .w_addr, .w_data, .i_addr, .i_data, .a_re, .a_addr, .a_data, .p_re, .p_addr, .p_data,
    .out_we, .out_row, .out_data
  );

  kiln_outbuf u_out (
    .clk, .rst_n,
    .we(out_we), .row(out_row), .wdata(out_data),
    .col(st_col), .rdata(st_data)
  );
endmodule

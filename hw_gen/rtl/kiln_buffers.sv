// On-chip buffers (docs/ACCELERATOR.md, Buffers): WBUF, IBUF, PBUF and ABUF, byte
// addressed, zero after reset (initial contents; they persist across programs).
//
// Write ports:
//  - DMA return: up to BUS_BYTES bytes a cycle into one buffer; lane j writes
//    base + j (LOAD: a contiguous beat) or base + j*COLS (LOAD_WIN: up to BUS_BYTES
//    channels of one pixel, one ABUF k-row each), lanes selected by mask.
//  - Padding (LOAD_WIN taps outside the image): up to BUS_BYTES bytes of one value into
//    ABUF at base + j*COLS.
// Read ports (registered, one cycle):
//  - WBUF: ROWS bytes at w_addr (one GEMM step's weights);
//  - IBUF: ROWS*IDX_BITS/8 bytes at i_addr (one step's N:M indices);
//  - ABUF: NM_M k-rows of COLS bytes at a_addr (dense GEMM and POOL use the first; N:M
//    GEMM the whole group);
//  - PBUF: 12 bytes at p_addr (one output row's bias, multiplier, shift).
// ABUF is COLS byte lanes deep per k-row; the strided LOAD_WIN writes and the group reads
// map onto a bank per (k-row mod NM_M) in a physical build.
module kiln_buffers
  import kiln_accel_pkg::*;
#(
  parameter int SLOT = ROWS * IDX_BITS / 8
) (
  input  logic                   clk,
  // DMA return writes
  input  logic                   wb_valid,
  input  logic [1:0]             wb_buf,
  input  logic [31:0]            wb_base,
  input  logic                   wb_stride_cols,
  input  logic [BUS_BYTES-1:0]   wb_mask,
  input  logic [8*BUS_BYTES-1:0] wb_data,
  // padding writes (ABUF, stride COLS)
  input  logic                   pad_valid,
  input  logic [31:0]            pad_base,
  input  logic [BUS_BYTES-1:0]   pad_mask,
  input  logic [7:0]             pad_val,
  // reads
  input  logic                   w_re,
  input  logic [31:0]            w_addr,
  output logic [8*ROWS-1:0]      w_data,
  input  logic [31:0]            i_addr,
  output logic [8*SLOT-1:0]      i_data,
  input  logic                   a_re,
  input  logic [31:0]            a_addr,
  output logic [8*NM_M*COLS-1:0] a_data,
  input  logic                   p_re,
  input  logic [31:0]            p_addr,
  output logic [95:0]            p_data
);
  logic [7:0] wmem[WBUF_BYTES];
  logic [7:0] imem[IBUF_BYTES];
  logic [7:0] pmem[PBUF_BYTES];
  logic [7:0] amem[ABUF_BYTES];

  initial begin
    for (int i = 0; i < WBUF_BYTES; i++) wmem[i] = 8'd0;
    for (int i = 0; i < IBUF_BYTES; i++) imem[i] = 8'd0;
    for (int i = 0; i < PBUF_BYTES; i++) pmem[i] = 8'd0;
    for (int i = 0; i < ABUF_BYTES; i++) amem[i] = 8'd0;
  end

  // Lane addresses of the DMA write port.
  logic [31:0] wb_lane[BUS_BYTES];
  logic [31:0] pad_lane[BUS_BYTES];
  always_comb begin
    for (int j = 0; j < BUS_BYTES; j++) begin
      wb_lane[j]  = wb_base + (wb_stride_cols ? 32'(j) * 32'(COLS) : 32'(j));
      pad_lane[j] = pad_base + 32'(j) * 32'(COLS);
    end
  end

  always_ff @(posedge clk) begin
    if (wb_valid && wb_buf == 2'(BUF_W))
      for (int j = 0; j < BUS_BYTES; j++)
        if (wb_mask[j] && wb_lane[j] < 32'(WBUF_BYTES)) wmem[wb_lane[j]] <= wb_data[8*j +: 8];
    if (w_re)
      for (int r = 0; r < ROWS; r++)
        w_data[8*r +: 8] <= (w_addr + 32'(r) < 32'(WBUF_BYTES)) ? wmem[w_addr + 32'(r)] : 8'd0;
  end

  always_ff @(posedge clk) begin
    if (wb_valid && wb_buf == 2'(BUF_I))
      for (int j = 0; j < BUS_BYTES; j++)
        if (wb_mask[j] && wb_lane[j] < 32'(IBUF_BYTES)) imem[wb_lane[j]] <= wb_data[8*j +: 8];
    if (w_re)
      for (int b = 0; b < SLOT; b++)
        i_data[8*b +: 8] <= (i_addr + 32'(b) < 32'(IBUF_BYTES)) ? imem[i_addr + 32'(b)] : 8'd0;
  end

  always_ff @(posedge clk) begin
    if (wb_valid && wb_buf == 2'(BUF_P))
      for (int j = 0; j < BUS_BYTES; j++)
        if (wb_mask[j] && wb_lane[j] < 32'(PBUF_BYTES)) pmem[wb_lane[j]] <= wb_data[8*j +: 8];
    if (p_re)
      for (int b = 0; b < 12; b++)
        p_data[8*b +: 8] <= (p_addr + 32'(b) < 32'(PBUF_BYTES)) ? pmem[p_addr + 32'(b)] : 8'd0;
  end

  always_ff @(posedge clk) begin
    if (wb_valid && wb_buf == 2'(BUF_A))
      for (int j = 0; j < BUS_BYTES; j++)
        if (wb_mask[j] && wb_lane[j] < 32'(ABUF_BYTES)) amem[wb_lane[j]] <= wb_data[8*j +: 8];
    if (pad_valid)
      for (int j = 0; j < BUS_BYTES; j++)
        if (pad_mask[j] && pad_lane[j] < 32'(ABUF_BYTES)) amem[pad_lane[j]] <= pad_val;
    if (a_re)
      for (int b = 0; b < NM_M * COLS; b++)
        a_data[8*b +: 8] <= (a_addr + 32'(b) < 32'(ABUF_BYTES)) ? amem[a_addr + 32'(b)] : 8'd0;
  end
endmodule

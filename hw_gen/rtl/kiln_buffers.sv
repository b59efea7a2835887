// On-chip buffers (docs/ACCELERATOR.md, Buffers): WBUF, IBUF, PBUF and ABUF, each a
// kiln_bank_mem of 1R1W banks with byte enables. After reset they sweep every
// bank word to zero (one word per bank a cycle, `clearing` meanwhile: the accelerator
// reads busy); their contents persist across programs.
//  - WBUF: rows of ROWS bytes (one GEMM step's weights), enough banks that one DMA beat
//    (BUS_BYTES contiguous bytes) touches each bank once.
//  - IBUF: rows of ROWS*IDX_BITS/8 bytes (one step's N:M indices), banked likewise.
//  - PBUF: byte rows in max(16, BUS_BYTES) banks: REQUANT reads 12 consecutive bytes (one
//    output row's bias, multiplier, shift) at any offset.
//  - ABUF: k-rows of COLS bytes (one activation per PE column) in BUS_BYTES banks (>=
//    NM_M): GEMM reads one k-row a cycle in dense mode and the NM_M-row group in N:M mode;
//    POOL reads one k-row; LOAD_WIN writes up to BUS_BYTES channels of one pixel, i.e.
//    consecutive k-rows, a cycle.
// Write port: the DMA's returning beats (lane j -> base + j, or base + j*COLS for
// LOAD_WIN), or LOAD_WIN padding (lane j -> base + j*COLS; the DMA only pads in cycles
// without a returning beat).
module kiln_buffers
  import kiln_accel_pkg::*;
#(
  parameter int SLOT = ROWS * IDX_BITS / 8
) (
  input  logic                   clk,
  input  logic                   rst_n,
  output logic                   clearing,  // zeroing the buffers after reset
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
  // REBUILD: IBUF reads, whole WBUF rows written (the DMA writes nothing meanwhile)
  input  logic                   rb_ire,
  input  logic [31:0]            rb_iaddr,
  input  logic                   rb_we,
  input  logic [31:0]            rb_waddr,
  input  logic [8*ROWS-1:0]      rb_wdata,
  input  logic                   a_re,
  input  logic [31:0]            a_addr,
  output logic [8*NM_M*COLS-1:0] a_data,
  input  logic                   p_re,
  input  logic [31:0]            p_addr,
  output logic [95:0]            p_data
);
  localparam int B = BUS_BYTES;
  localparam int WLW = (ROWS > BUS_BYTES) ? ROWS : BUS_BYTES;  // WBUF write lanes

  function automatic int pow2ceil(input int v);
    int p = 1;
    while (p < v) p = p * 2;
    return p;
  endfunction
  function automatic int min2(input int a, input int b);
    return a < b ? a : b;
  endfunction
  function automatic int max2(input int a, input int b);
    return a > b ? a : b;
  endfunction

  // Rows one beat of B contiguous bytes can touch: at most ceil(B/RW) + 1, at most B.
  localparam int NB_W = pow2ceil(min2(B, (B + ROWS - 1) / ROWS + 1));
  localparam int NB_I = pow2ceil(min2(B, (B + SLOT - 1) / SLOT + 1));
  localparam int NB_P = pow2ceil(max2(16, B));
  localparam int NB_A = pow2ceil(max2(B, NM_M));

  function automatic int depth(input int bytes, input int rw, input int nb);
    return ((bytes + rw - 1) / rw + nb - 1) / nb;
  endfunction
  localparam int CLR_WORDS = max2(max2(depth(WBUF_BYTES, ROWS, NB_W), depth(IBUF_BYTES, SLOT, NB_I)),
                                  max2(depth(PBUF_BYTES, 1, NB_P), depth(ABUF_BYTES, COLS, NB_A)));

  // The reset sweep.
  logic [31:0] clr_word;
  always_ff @(posedge clk) begin
    if (!rst_n) begin
      clearing <= 1'b1;
      clr_word <= '0;
    end else if (clearing) begin
      clr_word <= clr_word + 32'd1;
      if (clr_word == 32'(CLR_WORDS - 1)) clearing <= 1'b0;
    end
  end

  // The write lanes: a returning beat or a padding chunk.
  logic [32*B-1:0] lane_addr;
  logic [8*B-1:0]  lane_data;
  logic [B-1:0]    lane_en_w, lane_en_i, lane_en_p, lane_en_a;
  always_comb begin
    for (int j = 0; j < B; j++) begin
      if (pad_valid) begin
        lane_addr[32*j +: 32] = pad_base + 32'(j) * 32'(COLS);
        lane_data[8*j +: 8]   = pad_val;
      end else begin
        lane_addr[32*j +: 32] = wb_base + (wb_stride_cols ? 32'(j) * 32'(COLS) : 32'(j));
        lane_data[8*j +: 8]   = wb_data[8*j +: 8];
      end
    end
    lane_en_w = (wb_valid && wb_buf == 2'(BUF_W)) ? wb_mask : '0;
    lane_en_i = (wb_valid && wb_buf == 2'(BUF_I)) ? wb_mask : '0;
    lane_en_p = (wb_valid && wb_buf == 2'(BUF_P)) ? wb_mask : '0;
    lane_en_a = pad_valid ? pad_mask : (wb_valid && wb_buf == 2'(BUF_A)) ? wb_mask : '0;
  end

  // WBUF lanes: the DMA's (B) or REBUILD's row (ROWS bytes at a multiple of ROWS: one bank word)
  logic [WLW-1:0]    wl_en;
  logic [32*WLW-1:0] wl_addr;
  logic [8*WLW-1:0]  wl_data;
  always_comb begin
    for (int j = 0; j < WLW; j++) begin
      if (rb_we) begin
        wl_en[j] = j < ROWS;
        wl_addr[32*j +: 32] = rb_waddr + 32'(j);
        wl_data[8*j +: 8] = (j < ROWS) ? rb_wdata[8*(j % ROWS) +: 8] : 8'd0;
      end else begin
        wl_en[j] = (j < B) ? lane_en_w[j % B] : 1'b0;
        wl_addr[32*j +: 32] = (j < B) ? lane_addr[32*(j % B) +: 32] : 32'd0;
        wl_data[8*j +: 8] = (j < B) ? lane_data[8*(j % B) +: 8] : 8'd0;
      end
    end
  end

  kiln_bank_mem #(.BYTES(WBUF_BYTES), .RW(ROWS), .NB(NB_W), .NR(1), .WL(WLW)) u_wbuf (
    .clk, .clr(clearing), .clr_word, .we(wl_en), .waddr(wl_addr), .wdata(wl_data), .re(w_re), .raddr(w_addr), .rdata(w_data));
  kiln_bank_mem #(.BYTES(IBUF_BYTES), .RW(SLOT), .NB(NB_I), .NR(1), .WL(B)) u_ibuf (
    .clk, .clr(clearing), .clr_word, .we(lane_en_i), .waddr(lane_addr), .wdata(lane_data), .re(w_re || rb_ire),
    .raddr(rb_ire ? rb_iaddr : i_addr), .rdata(i_data));
  kiln_bank_mem #(.BYTES(PBUF_BYTES), .RW(1), .NB(NB_P), .NR(12), .WL(B)) u_pbuf (
    .clk, .clr(clearing), .clr_word, .we(lane_en_p), .waddr(lane_addr), .wdata(lane_data), .re(p_re), .raddr(p_addr), .rdata(p_data));
  kiln_bank_mem #(.BYTES(ABUF_BYTES), .RW(COLS), .NB(NB_A), .NR(NM_M), .WL(B)) u_abuf (
    .clk, .clr(clearing), .clr_word, .we(lane_en_a), .waddr(lane_addr), .wdata(lane_data), .re(a_re), .raddr(a_addr), .rdata(a_data));
endmodule

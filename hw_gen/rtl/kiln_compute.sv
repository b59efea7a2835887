// Compute sequencer (docs/ACCELERATOR.md, GEMM / REQUANT / POOL): walks the buffers for
// the PE array, the requantise lanes and the pool unit, and writes OUT.
//  - GEMM: one reduction step a cycle (buffers read one cycle ahead); dense: K steps,
//    N:M: K/NM_M*N steps, the ABUF group advancing every N steps; W4: a WBUF row holds
//    two steps' int4 weights (the low half, then the high half), each nibble
//    sign-extended for its PE row. Busy for steps + 2 cycles (one cycle when K = 0).
//  - REQUANT: one output row a cycle (PBUF row r, ACC row r, COLS lanes): ROWS + 1 cycles.
//  - POOL: one (row, window position) a cycle; rows past C take one cycle.
module kiln_compute
  import kiln_accel_pkg::*;
#(
  parameter int SLOT = ROWS * IDX_BITS / 8,
  parameter int RW = (ROWS > 1) ? $clog2(ROWS) : 1
) (
  input  logic                   clk,
  input  logic                   rst_n,
  input  logic                   start,
  input  logic [1:0]             op,      // OPC_GEMM, OPC_REQUANT, OPC_POOL
  input  logic [2:0]             flags,   // instruction operand a (validated)
  input  logic [32*NUM_REGS-1:0] regs,
  output logic                   busy,
  output logic                   gemm_active,
  // buffer reads
  output logic                   w_re,
  output logic [31:0]            w_addr,
  input  logic [8*ROWS-1:0]      w_data,
  output logic [31:0]            i_addr,
  input  logic [8*SLOT-1:0]      i_data,
  output logic                   a_re,
  output logic [31:0]            a_addr,
  input  logic [8*NM_M*COLS-1:0] a_data,
  output logic                   p_re,
  output logic [31:0]            p_addr,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [95:0]            p_data,  // bias, mult, shift (low 6 bits used)
  /* verilator lint_on UNUSEDSIGNAL */
  // OUT writes
  output logic                   out_we,
  output logic [RW-1:0]          out_row,
  output logic [32*COLS-1:0]     out_data
);
  localparam logic [1:0] C_GEMM = 2'd0, C_REQUANT = 2'd1;  // else POOL
  localparam int ACC_BIT = $clog2(GEMM_ACC), NM_BIT = $clog2(GEMM_NM), W4_BIT = $clog2(GEMM_W4),
                 RAW_BIT = $clog2(RAW32);
  localparam int LM = $clog2(NM_M);

  function automatic logic [31:0] rg(input int i);
    return regs[32*i +: 32];
  endfunction

  typedef enum logic [2:0] {S_IDLE, S_GEMM, S_RQ, S_POOL, S_DRAIN} state_t;
  state_t st;

  // GEMM
  logic        g_nm, g_first, g_w4, g_half, mac_w4, mac_half;
  logic [31:0] g_left, g_n, g_cnt, g_wp, g_ip, g_ap;
  logic        mac_v, mac_first, mac_nm, pe_clear;
  logic [32*ROWS*COLS-1:0] acc;

  // REQUANT
  logic        rq_raw, rq_v;
  logic [31:0] rq_zp, rq_lo, rq_hi;
  logic [RW-1:0] r_cnt, rq_row;
  logic [31:0] r_pp;

  // POOL
  logic [32:0] pl_c;
  logic [31:0] pl_win, pl_w, pl_ap, pl_rowp, pl_ccols;
  logic [32:0] pl_ch;   // CH0 + r
  logic        tk_v, tk_first, tk_last, tk_zero;
  logic [RW-1:0] tk_row;
  logic        pl_rv, pl_last;

  assign pl_rv   = pl_ch < pl_c;
  assign pl_last = !pl_rv || pl_w + 32'd1 == pl_win;

  always_comb begin
    w_re   = st == S_GEMM;
    w_addr = g_wp;
    i_addr = g_ip;
    a_re   = (st == S_GEMM) || (st == S_POOL && pl_rv);
    a_addr = (st == S_POOL) ? pl_ap : g_ap;
    p_re   = st == S_RQ;
    p_addr = r_pp;
  end
  assign busy        = st != S_IDLE;
  assign gemm_active = (st == S_GEMM) || mac_v || pe_clear;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      st <= S_IDLE;
      mac_v <= 1'b0;
      pe_clear <= 1'b0;
      rq_v <= 1'b0;
      tk_v <= 1'b0;
    end else begin
      mac_v    <= 1'b0;
      pe_clear <= 1'b0;
      rq_v     <= 1'b0;
      tk_v     <= 1'b0;
      unique case (st)
        S_IDLE:
          if (start) begin
            unique case (op)
              C_GEMM: begin
                logic [31:0] k, steps;
                k     = rg(R_K);
                steps = flags[NM_BIT] ? (k >> LM) * rg(R_NM_N) : k;
                g_nm    <= flags[NM_BIT];
                g_w4    <= flags[W4_BIT];
                g_half  <= 1'b0;
                g_first <= !flags[ACC_BIT];
                g_left  <= steps;
                g_n     <= rg(R_NM_N);
                g_cnt   <= '0;
                g_wp    <= rg(R_WOFF);
                g_ip    <= rg(R_IOFF);
                g_ap    <= rg(R_AOFF);
                if (steps == 32'd0) begin
                  pe_clear <= !flags[ACC_BIT];
                  st <= S_DRAIN;
                end else st <= S_GEMM;
              end
              C_REQUANT: begin
                rq_raw <= flags[RAW_BIT];
                rq_zp  <= rg(R_ZP);
                rq_lo  <= rg(R_LO);
                rq_hi  <= rg(R_HI);
                r_cnt  <= '0;
                r_pp   <= rg(R_POFF);
                st     <= S_RQ;
              end
              default: begin
                pl_c     <= 33'(rg(R_C));
                pl_win   <= rg(R_WIN);
                pl_w     <= '0;
                pl_ch    <= 33'(rg(R_CH0));
                pl_ccols <= rg(R_C) * 32'(COLS);
                pl_rowp  <= rg(R_AOFF) + rg(R_CH0) * 32'(COLS);
                pl_ap    <= rg(R_AOFF) + rg(R_CH0) * 32'(COLS);
                r_cnt    <= '0;
                st       <= S_POOL;
              end
            endcase
          end
        S_GEMM: begin
          mac_v     <= 1'b1;
          mac_first <= g_first;
          mac_nm    <= g_nm;
          mac_w4    <= g_w4;
          mac_half  <= g_half;
          g_first   <= 1'b0;
          g_left    <= g_left - 32'd1;
          // W4: the row holds this step and the next one
          g_half    <= g_w4 && !g_half;
          if (!g_w4 || g_half) g_wp <= g_wp + 32'(ROWS);
          g_ip      <= g_ip + 32'(SLOT);
          if (g_nm) begin
            if (g_cnt + 32'd1 == g_n) begin
              g_cnt <= '0;
              g_ap  <= g_ap + 32'(NM_M * COLS);
            end else g_cnt <= g_cnt + 32'd1;
          end else g_ap <= g_ap + 32'(COLS);
          if (g_left == 32'd1) st <= S_DRAIN;
        end
        S_RQ: begin
          rq_v   <= 1'b1;
          rq_row <= r_cnt;
          r_cnt  <= r_cnt + 1'b1;
          r_pp   <= r_pp + 32'd12;
          if (r_cnt == RW'(ROWS - 1)) st <= S_DRAIN;
        end
        S_POOL: begin
          tk_v     <= 1'b1;
          tk_first <= pl_w == 32'd0;
          tk_last  <= pl_last;
          tk_zero  <= !pl_rv;
          tk_row   <= r_cnt;
          if (pl_last) begin
            pl_w    <= '0;
            pl_ch   <= pl_ch + 33'd1;
            pl_rowp <= pl_rowp + 32'(COLS);
            pl_ap   <= pl_rowp + 32'(COLS);
            r_cnt   <= r_cnt + 1'b1;
            if (r_cnt == RW'(ROWS - 1)) st <= S_DRAIN;
          end else begin
            pl_w  <= pl_w + 32'd1;
            pl_ap <= pl_ap + pl_ccols;
          end
        end
        default: st <= S_IDLE;  // S_DRAIN: the last MAC / row is written this cycle
      endcase
    end
  end

  // ---- PE array ----------------------------------------------------------------------------
  logic [IDX_BITS*ROWS-1:0] idx;
  assign idx = i_data[IDX_BITS*ROWS-1:0];
  // The PE rows' weights: int8 as read, or W4 nibbles of the step's half row.
  logic [8*ROWS-1:0] w_pe;
  always_comb begin
    for (int r = 0; r < ROWS; r++) begin
      logic [3:0] nib;
      nib = w_data[(mac_half ? 4 * ROWS : 0) + 4 * r +: 4];
      w_pe[8*r +: 8] = mac_w4 ? {{4{nib[3]}}, nib} : w_data[8*r +: 8];
    end
  end
  kiln_pe_array u_pe (
    .clk, .rst_n,
    .clear(pe_clear),
    .valid(mac_v),
    .first(mac_first),
    .nm(mac_nm),
    .w(w_pe),
    .idx,
    .act(a_data),
    .acc
  );

  // ---- requantise lanes ----------------------------------------------------------------------
  logic [32*COLS-1:0] rq_out, pool_out;
  logic [32*COLS-1:0] acc_row;
  assign acc_row = acc[32*COLS*rq_row +: 32*COLS];
  for (genvar c = 0; c < COLS; c++) begin : g_rq
    kiln_requant_lane u_lane (
      .acc(acc_row[32*c +: 32]),
      .bias(p_data[31:0]),
      .mult(p_data[63:32]),
      .shift(p_data[69:64]),
      .zp(rq_zp),
      .lo(rq_lo),
      .hi(rq_hi),
      .raw(rq_raw),
      .out(rq_out[32*c +: 32])
    );
  end

  // ---- pool unit ---------------------------------------------------------------------------
  logic          pool_we;
  logic [RW-1:0] pool_row;
  kiln_pool u_pool (
    .clk, .rst_n,
    .valid(tk_v),
    .first(tk_first),
    .last(tk_last),
    .zero(tk_zero),
    .row(tk_row),
    .data(a_data[8*COLS-1:0]),
    .out_we(pool_we),
    .out_row(pool_row),
    .out_data(pool_out)
  );

  assign out_we   = rq_v || pool_we;
  assign out_row  = rq_v ? rq_row : pool_row;
  assign out_data = rq_v ? rq_out : pool_out;
endmodule

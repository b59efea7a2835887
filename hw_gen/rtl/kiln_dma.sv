// DMA engine (docs/ACCELERATOR.md, LOAD / LOAD_WIN / STORE) and the memory port.
//
// One issue engine walks the current command and puts at most one request a cycle on the
// memory port (mem_req while it has one; it holds while mem_gnt is low). Reads are
// remembered in an in-order outstanding-request FIFO (FIFO_DEPTH entries, so any read
// latency is covered) that says where each returning beat goes: a buffer write of up to
// BUS_BYTES lanes, or the instruction fetch (which uses the port when the DMA does not).
//  - LOAD: one read per beat of [SRC, SRC+LEN), lane j -> buffer BOFF + i*B + j.
//  - LOAD_WIN: after a short set-up (the 64-bit products, one multiplier, a cycle each),
//    walks pixel, ky, kx; an in-bounds tap is one run of C bytes (one read per beat it
//    touches; lane j of a beat is channel beat_addr + j - tap_addr -> ABUF k-row
//    (k0 + ch), column col), and a kernel row whose KW taps are all in bounds is one run
//    of KW*C bytes (adjacent in memory, consecutive k-rows); a padded tap writes PADVAL
//    into ABUF, BUS_BYTES channels a cycle, without a memory access, in cycles where no
//    beat returns (the buffers have one write port). Addresses are computed modulo 2^64
//    exactly as the reference model does; beats at or above 2^32 read as zero.
//  - STORE: per column one run of NROWS*size bytes at DST + c*DSTRIDE, one write per beat
//    with byte strobes (none at or above 2^32).
// Counting: every LOAD/LOAD_WIN read beat counts RD_BEATS (and WT_BEATS for LOAD into
// WBUF/IBUF/PBUF), every STORE write beat WR_BEATS: the reference model's formula.
module kiln_dma
  import kiln_accel_pkg::*;
#(
  parameter int FIFO_DEPTH = 16,
  parameter int TAG_BITS = 6,
  parameter int CW = (COLS > 1) ? $clog2(COLS) : 1
) (
  input  logic                   clk,
  input  logic                   rst_n,
  // command
  input  logic                   start,
  input  logic [1:0]             cmd,       // CMD_LOAD, CMD_WIN, CMD_STORE
  input  logic [1:0]             cmd_buf,
  input  logic                   cmd_raw,
  input  logic [32*NUM_REGS-1:0] regs,
  output logic                   issue_busy,  // still issuing the command
  output logic                   busy,        // issuing, or its reads not all written back
  output logic                   outstanding, // any read in flight (DMA or fetch)
  output logic                   cnt_rd,
  output logic                   cnt_wt,
  output logic                   cnt_wr,
  // instruction fetch
  input  logic                   f_req,
  input  logic [31:0]            f_addr,
  input  logic [TAG_BITS-1:0]    f_tag,
  output logic                   f_gnt,
  output logic                   f_rvalid,
  output logic [TAG_BITS-1:0]    f_rtag,
  output logic [8*BUS_BYTES-1:0] f_rdata,
  // buffer writes
  output logic                   wb_valid,
  output logic [1:0]             wb_buf,
  output logic [31:0]            wb_base,
  output logic                   wb_stride_cols,
  output logic [BUS_BYTES-1:0]   wb_mask,
  output logic [8*BUS_BYTES-1:0] wb_data,
  output logic                   pad_valid,
  output logic [31:0]            pad_base,
  output logic [BUS_BYTES-1:0]   pad_mask,
  output logic [7:0]             pad_val,
  // OUT column for STORE
  output logic [CW-1:0]          st_col,
  input  logic [32*ROWS-1:0]     st_data,
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
  localparam int B = BUS_BYTES;
  localparam int LB = $clog2(BUS_BYTES);
  localparam logic [1:0] CMD_LOAD = 2'd0, CMD_WIN = 2'd1, CMD_STORE = 2'd2;
  localparam int FW = $clog2(FIFO_DEPTH);

  function automatic logic [31:0] rg(input int i);
    return regs[32*i +: 32];
  endfunction

  typedef enum logic [2:0] {D_IDLE, D_LOAD, D_SETUP, D_WIN, D_STORE} dstate_t;
  dstate_t st;

  // ---- LOAD ----------------------------------------------------------------------------
  logic [63:0] ld_addr;
  logic [31:0] ld_boff;
  logic [32:0] ld_left;
  logic [1:0]  ld_buf;

  // ---- LOAD_WIN --------------------------------------------------------------------------
  logic [63:0] w_src, w_h, w_w, w_c, w_s, w_pt, w_pl, w_ow, w_oy0, w_ox0;
  logic [31:0] w_kh, w_kw, w_npix, w_aoff, w_ccols, w_kwc, w_kwccols;
  logic [7:0]  w_padval;
  logic [2:0]  su_step;
  logic [63:0] mul_a, mul_b, mul_p;
  logic [63:0] iy0, ix0, wc, sc, swc, plc, rowaddr, coladdr, ox;
  logic [63:0] tap_iy, tap_ix, tap_row, tap_addr;
  logic [31:0] ky, kx, col, dst_col, dst_tap, t_i;

  // ---- STORE -----------------------------------------------------------------------------
  logic [63:0] s_base, s_dstride;
  logic [31:0] s_len, s_npix, s_col;
  logic        s_raw;

  // ---- request of this cycle ---------------------------------------------------------------
  logic              win_inb, row_run;
  logic [31:0]       run_c;  // bytes of the current run: C, or KW*C for a whole kernel row
  logic [31:0]       win_chrel;
  logic [63:0]       beat_addr;
  logic [B-1:0]      lane_mask;
  logic              last_beat;
  logic [31:0]       rd_base;
  logic [8*B-1:0]    st_wdata;
  logic              dma_rd, dma_wr, room, dma_req, dma_fire, f_ok;
  logic              ret_dma;  // a DMA beat returns (and is written) this cycle

  always_comb begin
    win_inb   = !tap_iy[63] && !tap_ix[63] && tap_iy < w_h && tap_ix < w_w;
    row_run   = kx == 32'd0 && win_inb && tap_ix + 64'(w_kw) - 64'd1 < w_w;
    run_c     = row_run ? w_kwc : w_c[31:0];
    win_chrel = t_i - 32'(tap_addr[LB-1:0]);
    beat_addr = '0;
    lane_mask = '0;
    last_beat = 1'b0;
    rd_base   = '0;
    st_wdata  = '0;
    pad_valid = 1'b0;
    pad_base  = dst_tap + t_i * 32'(COLS);
    pad_mask  = '0;
    pad_val   = w_padval;
    unique case (st)
      D_LOAD: begin
        beat_addr = ld_addr;
        for (int j = 0; j < B; j++) lane_mask[j] = 33'(j) < ld_left;
        last_beat = ld_left <= 33'(B);
        rd_base   = ld_boff;
      end
      D_WIN: begin
        if (win_inb) begin
          beat_addr = {tap_addr[63:LB], LB'(0)} + 64'(t_i);
          for (int j = 0; j < B; j++) begin
            logic [31:0] ch;
            ch = win_chrel + 32'(j);
            lane_mask[j] = !ch[31] && ch < run_c;
          end
          last_beat = $signed(win_chrel) + 32'sd0 + 32'(B) >= $signed(run_c);
          rd_base   = dst_tap + win_chrel * 32'(COLS);
        end else begin
          pad_valid = !ret_dma;  // the buffers' write port is free
          for (int j = 0; j < B; j++) pad_mask[j] = t_i + 32'(j) < w_c[31:0];
          last_beat = t_i + 32'(B) >= w_c[31:0];
        end
      end
      D_STORE: begin
        logic [31:0] erel;
        erel      = t_i - 32'(s_base[LB-1:0]);
        beat_addr = {s_base[63:LB], LB'(0)} + 64'(t_i);
        for (int j = 0; j < B; j++) begin
          logic [31:0] e;
          e = erel + 32'(j);
          lane_mask[j] = !e[31] && e < s_len;
          if (s_raw) st_wdata[8*j +: 8] = st_data[8*e[$clog2(4*ROWS)-1:0] +: 8];
          else       st_wdata[8*j +: 8] = st_data[32*e[$clog2(4*ROWS)-1:0] +: 8];
        end
        last_beat = $signed(erel) + 32'(B) >= $signed(s_len);
      end
      default: ;
    endcase
    dma_rd   = (st == D_LOAD) || (st == D_WIN && win_inb);
    dma_wr   = (st == D_STORE);
    dma_req  = dma_wr || (dma_rd && room);
    dma_fire = dma_req && mem_gnt;
    f_ok     = f_req && !dma_rd && !dma_wr && room;
    f_gnt    = f_ok && mem_gnt;
    mem_req  = dma_req || f_ok;
    mem_we   = dma_wr;
    mem_addr = (dma_rd || dma_wr) ? beat_addr[31:0] : f_addr;
    mem_wdata = st_wdata;
    mem_wstrb = (beat_addr[63:32] == 32'd0) ? lane_mask : '0;
  end

  assign st_col     = CW'(s_col);
  assign issue_busy = st != D_IDLE;
  assign cnt_rd     = dma_fire && dma_rd;
  assign cnt_wt     = dma_fire && st == D_LOAD && ld_buf != 2'(BUF_A);
  assign cnt_wr     = dma_fire && dma_wr;

  // ---- outstanding reads -------------------------------------------------------------------
  typedef struct packed {
    logic                is_f;
    logic [TAG_BITS-1:0] tag;
    logic                zero;
    logic [1:0]          bsel;
    logic                stride_cols;
    logic [B-1:0]        mask;
    logic [31:0]         base;
  } entry_t;
  entry_t      fifo[FIFO_DEPTH];
  logic [FW-1:0] f_head, f_tail;
  logic [FW:0]   f_cnt, d_cnt;
  entry_t      push_e, head_e;
  logic        push;

  always_comb begin
    room   = f_cnt < (FW+1)'(FIFO_DEPTH);
    push   = (dma_fire && dma_rd) || f_gnt;
    push_e.is_f        = !(dma_rd && dma_fire);
    push_e.tag         = f_tag;
    push_e.zero        = beat_addr[63:32] != 32'd0;
    push_e.bsel        = (st == D_LOAD) ? ld_buf : 2'(BUF_A);
    push_e.stride_cols = st == D_WIN;
    push_e.mask        = lane_mask;
    push_e.base        = rd_base;
    head_e             = fifo[f_head];
    f_rvalid       = mem_rvalid && head_e.is_f;
    f_rtag         = head_e.tag;
    f_rdata        = mem_rdata;
    wb_valid       = ret_dma;
    wb_buf         = head_e.bsel;
    wb_base        = head_e.base;
    wb_stride_cols = head_e.stride_cols;
    wb_mask        = head_e.mask;
    wb_data        = head_e.zero ? '0 : mem_rdata;
  end

  assign ret_dma     = mem_rvalid && !fifo[f_head].is_f;
  assign busy        = issue_busy || d_cnt != '0;
  assign outstanding = f_cnt != '0;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      f_head <= '0;
      f_tail <= '0;
      f_cnt  <= '0;
      d_cnt  <= '0;
    end else begin
      if (push) begin
        fifo[f_tail] <= push_e;
        f_tail <= (f_tail == FW'(FIFO_DEPTH - 1)) ? '0 : f_tail + 1'b1;
      end
      if (mem_rvalid) f_head <= (f_head == FW'(FIFO_DEPTH - 1)) ? '0 : f_head + 1'b1;
      f_cnt <= f_cnt + (FW+1)'(push) - (FW+1)'(mem_rvalid);
      d_cnt <= d_cnt + (FW+1)'(dma_fire && dma_rd) - (FW+1)'(wb_valid);
    end
  end

  // ---- set-up multiplier -------------------------------------------------------------------
  always_comb begin
    unique case (su_step)
      3'd0: begin mul_a = w_oy0; mul_b = w_s; end
      3'd1: begin mul_a = w_ox0; mul_b = w_s; end
      3'd2: begin mul_a = w_w;   mul_b = w_c; end
      3'd3: begin mul_a = w_s;   mul_b = w_c; end
      3'd4: begin mul_a = w_s;   mul_b = wc;  end
      3'd5: begin mul_a = -w_pl; mul_b = w_c; end
      3'd6: begin mul_a = iy0;   mul_b = wc;  end
      default: begin mul_a = ix0; mul_b = w_c; end
    endcase
    mul_p = mul_a * mul_b;
  end

  // ---- issue engine ------------------------------------------------------------------------
  logic step;  // the current beat / pad chunk is done this cycle
  assign step = (st == D_WIN) ? (win_inb ? dma_fire : pad_valid) : dma_fire;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      st <= D_IDLE;
      su_step <= '0;
      t_i <= '0;
    end else begin
      unique case (st)
        D_IDLE:
          if (start) begin
            unique case (cmd)
              CMD_LOAD: begin
                ld_addr <= 64'(rg(R_SRC));
                ld_boff <= rg(R_BOFF);
                ld_left <= 33'(rg(R_LEN));
                ld_buf  <= cmd_buf;
                if (rg(R_LEN) != 32'd0) st <= D_LOAD;
              end
              CMD_WIN: begin
                w_src   <= 64'(rg(R_SRC));
                w_h     <= 64'(rg(R_H));
                w_w     <= 64'(rg(R_W));
                w_c     <= 64'(rg(R_C));
                w_s     <= 64'(rg(R_STRIDE));
                w_pt    <= 64'($signed(rg(R_PAD_T)));
                w_pl    <= 64'($signed(rg(R_PAD_L)));
                w_ow    <= 64'(rg(R_OW));
                w_oy0   <= 64'(rg(R_OY0));
                w_ox0   <= 64'(rg(R_OX0));
                w_kh    <= rg(R_KH);
                w_kw    <= rg(R_KW);
                w_npix  <= rg(R_NPIX);
                w_aoff  <= rg(R_AOFF);
                w_ccols <= rg(R_C) * 32'(COLS);
                w_kwc   <= rg(R_KW) * rg(R_C);  // a legal LOAD_WIN keeps it in ABUF's range
                w_padval <= regs[32*R_PADVAL +: 8];
                su_step <= '0;
                if (rg(R_NPIX) != 32'd0) st <= D_SETUP;
              end
              CMD_STORE: begin
                s_base    <= 64'(rg(R_DST));
                s_dstride <= 64'(rg(R_DSTRIDE));
                s_len     <= cmd_raw ? rg(R_NROWS) << 2 : rg(R_NROWS);
                s_raw     <= cmd_raw;
                s_npix    <= rg(R_NPIX);
                s_col     <= '0;
                t_i       <= '0;
                if (rg(R_NPIX) != 32'd0 && rg(R_NROWS) != 32'd0) st <= D_STORE;
              end
              default: ;
            endcase
          end
        D_LOAD:
          if (dma_fire) begin
            ld_addr <= ld_addr + 64'(B);
            ld_boff <= ld_boff + 32'(B);
            ld_left <= ld_left - 33'(B);
            if (last_beat) st <= D_IDLE;
          end
        D_SETUP: begin
          su_step <= su_step + 3'd1;
          if (su_step == 3'd0) w_kwccols <= w_kwc * 32'(COLS);  // a whole-row run's k-rows
          unique case (su_step)
            3'd0: iy0 <= mul_p - w_pt;
            3'd1: ix0 <= mul_p - w_pl;
            3'd2: wc  <= mul_p;
            3'd3: sc  <= mul_p;
            3'd4: swc <= mul_p;
            3'd5: plc <= mul_p;
            3'd6: rowaddr <= w_src + mul_p;
            default: begin
              coladdr  <= rowaddr + mul_p;
              tap_iy   <= iy0;
              tap_ix   <= ix0;
              tap_row  <= rowaddr + mul_p;
              tap_addr <= rowaddr + mul_p;
              ox       <= w_ox0;
              ky       <= '0;
              kx       <= '0;
              col      <= '0;
              dst_col  <= w_aoff;
              dst_tap  <= w_aoff;
              t_i      <= '0;
              st       <= D_WIN;
            end
          endcase
        end
        D_WIN:
          if (step) begin
            if (!last_beat) t_i <= t_i + 32'(B);
            else begin
              // next tap (after a whole-row run: the next row)
              t_i     <= '0;
              dst_tap <= dst_tap + (row_run ? w_kwccols : w_ccols);
              if (!row_run && kx + 32'd1 < w_kw) begin
                kx       <= kx + 32'd1;
                tap_ix   <= tap_ix + 64'd1;
                tap_addr <= tap_addr + w_c;
              end else begin
                kx <= '0;
                if (ky + 32'd1 < w_kh) begin
                  ky       <= ky + 32'd1;
                  tap_iy   <= tap_iy + 64'd1;
                  tap_ix   <= ix0;
                  tap_row  <= tap_row + wc;
                  tap_addr <= tap_row + wc;
                end else begin
                  // next pixel
                  ky      <= '0;
                  col     <= col + 32'd1;
                  dst_col <= dst_col + 32'd1;
                  dst_tap <= dst_col + 32'd1;
                  if (col + 32'd1 == w_npix) st <= D_IDLE;
                  if (ox + 64'd1 < w_ow) begin
                    ox       <= ox + 64'd1;
                    ix0      <= ix0 + w_s;
                    coladdr  <= coladdr + sc;
                    tap_iy   <= iy0;
                    tap_ix   <= ix0 + w_s;
                    tap_row  <= coladdr + sc;
                    tap_addr <= coladdr + sc;
                  end else begin
                    ox       <= '0;
                    ix0      <= -w_pl;
                    iy0      <= iy0 + w_s;
                    rowaddr  <= rowaddr + swc;
                    coladdr  <= rowaddr + swc + plc;
                    tap_iy   <= iy0 + w_s;
                    tap_ix   <= -w_pl;
                    tap_row  <= rowaddr + swc + plc;
                    tap_addr <= rowaddr + swc + plc;
                  end
                end
              end
            end
          end
        D_STORE:
          if (dma_fire) begin
            if (!last_beat) t_i <= t_i + 32'(B);
            else begin
              t_i    <= '0;
              s_col  <= s_col + 32'd1;
              s_base <= s_base + s_dstride;
              if (s_col + 32'd1 == s_npix) st <= D_IDLE;
            end
          end
        default: st <= D_IDLE;
      endcase
    end
  end
endmodule

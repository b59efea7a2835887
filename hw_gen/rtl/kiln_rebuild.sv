// REBUILD unit (docs/ACCELERATOR.md, REBUILD): rebuilds a tile of int8 weights into WBUF
// from SmartDeal codes in IBUF (per-row shifts, per-position records of a row mask and
// the kept rows' three (b+1)-bit codes, int8 3x3 bases at SDB) with shifts and adds.
// The controller has already checked the parameters (in the reference model's order).
//
// Sequencing (correctness first): IBUF is read one byte a cycle (a row-aligned SLOT-byte
// read, data a cycle later, reads pipelined). Per position: the 9 bases when the basis
// group changes, the mask bytes, then one cycle per kept row (a kept row's three codes are
// decoded and its three weights computed in one cycle once the bit buffer holds them;
// a kept row waits for the bytes it lacks, fetched only then so that no read runs past
// the record), then the position's three weight rows (ROWS bytes each) go to WBUF.
// Bytes of the records at or past IOFF + LEN read as zero; shifts and bases are read as
// they are (the bounds checks keep them inside IBUF).
module kiln_rebuild
  import kiln_accel_pkg::*;
#(
  parameter int SLOT = ROWS * IDX_BITS / 8
) (
  input  logic              clk,
  input  logic              rst_n,
  input  logic              start,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [31:0]       sd_cfg,  // bits [15:4] are checked zero by the controller
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [31:0]       k_in,
  input  logic [31:0]       c_in,
  input  logic [31:0]       woff_in,
  input  logic [31:0]       ioff_in,
  input  logic [31:0]       len_in,
  input  logic [31:0]       sdb_in,
  output logic              busy,
  // IBUF read port (row-aligned address, data one cycle later)
  output logic              i_re,
  output logic [31:0]       i_addr,
  input  logic [8*SLOT-1:0] i_data,
  // WBUF write (a whole row of ROWS bytes at a multiple of ROWS)
  output logic              w_we,
  output logic [31:0]       w_addr,
  output logic [8*ROWS-1:0] w_data
);
  localparam int MB = (ROWS + 7) / 8;  // mask bytes
  localparam int RI = ($clog2(ROWS + 1) > 4) ? $clog2(ROWS + 1) : 4;  // counts rows and the 9 bases
  localparam int RL = (ROWS > 1) ? $clog2(ROWS) : 1;

  typedef enum logic [2:0] {S_IDLE, S_SH, S_BASE, S_MASK, S_ROW, S_WR} st_t;
  st_t st;

  // latched parameters
  logic        flat;
  logic [2:0]  bb;
  logic [15:0] group;
  logic [31:0] cc, woff, ioff, iend, sdb, npos;

  // position state
  logic [31:0] p, ch, kq, kbase, g, gcnt, bg, pos, fp;
  logic        bvalid;
  logic [4:0]  sh[ROWS];
  logic signed [7:0] bas[9];
  logic [8*MB-1:0] mask;
  logic [23:0] bitbuf;
  logic [4:0]  nbits;
  logic [RI-1:0] idx, iss;  // byte or row consumed, byte read issued
  logic [7:0]  wv[3][ROWS];

  // byte reads
  logic        rd_wait, rd_endmask;
  logic [31:0] ra_q, ra;
  logic [7:0]  rbyte;
  always_comb begin
    logic [7:0] by;
    by = '0;
    for (int s = 0; s < SLOT; s++)
      if (ra_q % 32'(SLOT) == 32'(s)) by = i_data[8*s +: 8];
    rbyte = (rd_endmask && ra_q >= iend) ? 8'd0 : by;
  end

  // the byte address a reading state reads next
  always_comb begin
    unique case (st)
      S_SH:    ra = ioff + 32'(iss);
      S_BASE:  ra = sdb + 32'd9 * g + 32'(iss);
      S_MASK:  ra = pos + 32'(iss);
      default: ra = fp;
    endcase
  end

  // one kept row: three codes from the bit buffer, three weights
  logic [4:0] need, n_eff;
  logic [23:0] bb_eff;  // the bit buffer with the byte arriving this cycle
  assign need   = 5'd3 * (5'(bb) + 5'd1);
  assign bb_eff = (st == S_ROW && rd_wait) ? bitbuf | (24'(rbyte) << nbits) : bitbuf;
  assign n_eff  = (st == S_ROW && rd_wait) ? nbits + 5'd8 : nbits;

  function automatic logic [7:0] finish(input logic signed [31:0] w, input logic [4:0] s);
    logic signed [39:0] v;
    v = 40'(w);
    if (s != 5'd0) v = (v + (40'sd1 <<< (s - 5'd1))) >>> s;
    if (v < -40'sd127) v = -40'sd127;
    if (v > 40'sd127) v = 40'sd127;
    return v[7:0];
  endfunction

  logic signed [31:0] wk[3];
  always_comb begin
    logic [4:0] code[3];
    logic [3:0] e[3];
    logic [3:0] emax;
    logic [4:0] cm, em;
    logic signed [31:0] term;
    emax = 4'((5'd1 << bb) - 5'd1);
    em   = 5'((5'd1 << bb) - 5'd1);
    cm   = 5'((6'd1 << (bb + 3'd1)) - 6'd1);
    for (int i = 0; i < 3; i++) begin
      code[i] = 5'(bb_eff >> (5'(i) * (5'(bb) + 5'd1))) & cm;
      e[i]    = 4'(code[i] & em);
    end
    for (int j = 0; j < 3; j++) begin
      wk[j] = '0;
      for (int i = 0; i < 3; i++) begin
        term = 32'(bas[3*i+j]) <<< (emax - e[i]);
        if (e[i] != 4'd0) wk[j] = code[i][bb] ? wk[j] - term : wk[j] + term;
      end
    end
  end

  // write port
  logic [1:0] wj;
  always_comb begin
    logic [31:0] k;
    k = kq + 32'(wj) * (flat ? 32'd1 : cc);
    w_we   = st == S_WR;
    w_addr = woff + k * 32'(ROWS);
    for (int r = 0; r < ROWS; r++) w_data[8*r +: 8] = wv[wj][r];
  end

  assign busy = st != S_IDLE;

  // the row idx keeps the chunk
  logic kept;
  assign kept = ((mask >> idx) & (8*MB)'(1)) != '0;
  // the first kept row after idx (ROWS if none): runs of dropped rows take no cycles
  logic [RI-1:0] nxt;
  always_comb begin
    nxt = RI'(ROWS);
    for (int r = ROWS - 1; r >= 0; r--)
      if (RI'(r) > idx && mask[r]) nxt = RI'(r);
  end

  always_comb begin
    i_re   = 1'b0;
    i_addr = (ra / 32'(SLOT)) * 32'(SLOT);
    unique case (st)
      S_SH:   i_re = iss < RI'(ROWS);
      S_MASK: i_re = iss < RI'(MB);
      S_BASE: i_re = !(bvalid && bg == g) && iss < RI'(9);
      S_ROW:  i_re = idx != RI'(ROWS) && kept && n_eff < need;
      default: ;
    endcase
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      st <= S_IDLE;
      rd_wait <= 1'b0;
      rd_endmask <= 1'b0;
      ra_q <= '0;
      idx <= '0;
      iss <= '0;
      wj <= '0;
      bvalid <= 1'b0;
    end else begin
      unique case (st)
        S_IDLE:
          if (start) begin
            flat  <= sd_cfg[0];
            bb    <= sd_cfg[3:1];
            group <= sd_cfg[31:16];
            cc    <= c_in;
            woff  <= woff_in;
            ioff  <= ioff_in;
            iend  <= ioff_in + len_in;
            sdb   <= sdb_in;
            npos  <= k_in / 32'd3;
            p     <= '0;
            ch    <= '0;
            kq    <= '0;
            kbase <= '0;
            g     <= '0;
            gcnt  <= '0;
            pos   <= ioff_in + 32'(ROWS);
            bvalid <= 1'b0;
            idx   <= '0;
            iss   <= '0;
            st    <= S_SH;
          end
        S_SH:
          if (rd_wait) begin
            rd_wait <= 1'b0;
            sh[RL'(idx)] <= rbyte[4:0];
            if (idx == RI'(ROWS - 1)) begin
              idx <= '0;
              iss <= '0;
              st <= S_BASE;
            end else idx <= idx + 1'b1;
          end
        S_BASE:
          if (bvalid && bg == g) st <= S_MASK;
          else if (rd_wait) begin
            rd_wait <= 1'b0;
            bas[4'(idx)] <= rbyte;
            if (idx == RI'(8)) begin
              idx <= '0;
              iss <= '0;
              bvalid <= 1'b1;
              bg <= g;
              st <= S_MASK;
            end else idx <= idx + 1'b1;
          end
        S_MASK:
          if (rd_wait) begin
            rd_wait <= 1'b0;
            mask[8*idx +: 8] <= rbyte;
            if (idx == RI'(MB - 1)) begin
              idx <= '0;
              iss <= '0;
              for (int j = 0; j < 3; j++)
                for (int r = 0; r < ROWS; r++) wv[j][r] <= 8'd0;  // dropped rows
              fp <= pos + 32'(MB);
              nbits <= '0;
              bitbuf <= '0;
              st <= S_ROW;
            end else idx <= idx + 1'b1;
          end
        S_ROW: begin
          // A read is issued only for a kept row that lacks bits, and that row is still
          // the current one when the byte arrives: none is in flight at the end.
          rd_wait <= 1'b0;
          bitbuf <= bb_eff;
          nbits <= n_eff;
          if (idx == RI'(ROWS)) begin
            pos <= fp;  // the next record starts at the next unread byte
            wj <= '0;
            st <= S_WR;
          end else if (!kept) idx <= nxt;  // only row 0 can be a dropped current row
          else if (n_eff >= need) begin
            for (int j = 0; j < 3; j++) wv[j][RL'(idx)] <= finish(wk[j], sh[RL'(idx)]);
            bitbuf <= bb_eff >> need;
            nbits <= n_eff - need;
            idx <= nxt;
          end
        end
        S_WR:
          if (wj == 2'd2) begin
            wj <= '0;
            idx <= '0;
            p <= p + 32'd1;
            if (p + 32'd1 == npos) st <= S_IDLE;
            else begin
              st <= S_BASE;
              if (flat) begin
                kq <= kq + 32'd3;
                if (gcnt + 32'd1 == 32'(group)) begin
                  gcnt <= '0;
                  g <= g + 32'd1;
                end else gcnt <= gcnt + 32'd1;
              end else if (ch + 32'd1 == cc) begin
                ch <= '0;
                gcnt <= '0;
                g <= '0;
                kbase <= kbase + 32'd3 * cc;
                kq <= kbase + 32'd3 * cc;
              end else begin
                ch <= ch + 32'd1;
                kq <= kq + 32'd1;
                if (gcnt + 32'd1 == 32'(group)) begin
                  gcnt <= '0;
                  g <= g + 32'd1;
                end else gcnt <= gcnt + 32'd1;
              end
            end
          end else wj <= wj + 2'd1;
        default: st <= S_IDLE;
      endcase
      // byte reads: one may be issued every cycle (the one arriving is consumed above)
      if (i_re) begin
        rd_wait <= 1'b1;
        ra_q <= ra;
        rd_endmask <= st == S_MASK || st == S_ROW;
        if (st == S_ROW) fp <= fp + 32'd1;
        else iss <= iss + 1'b1;
      end
    end
  end
endmodule

// Controller (docs/ACCELERATOR.md, Registers and Instructions): host registers and
// counters, the control register file, instruction fetch and decode/dispatch.
//
// Fetch: a prefetch queue of FQ_DEPTH instructions, filled over the DMA's memory port
// whenever the DMA does not use it (one request per instruction, two when BUS_BYTES = 4).
// After a STORE (which may overwrite the program) and at start the queue is flushed and
// refilled from the next instruction; responses of flushed requests are dropped (epoch).
// Decode: the reference model's checks, in its order, on the instruction at the head of
// the queue and the current control registers; a failing instruction has no effect.
// Dispatch, in program order, to two units that run at once: the DMA (LOAD, LOAD_WIN,
// STORE) and the compute sequencer (GEMM, REQUANT, POOL). Both latch their registers at
// dispatch. An interlock keeps the result that of one instruction at a time:
//  - the byte ranges of each buffer that dispatched LOAD / LOAD_WIN still write (one
//    interval per buffer, the union; forgotten when the DMA is idle) and the ranges the
//    running compute instruction reads are kept;
//  - GEMM, REQUANT and POOL wait for the compute unit and until the DMA no longer
//    writes what they read;
//  - LOAD waits for the DMA's issue engine, LOAD_WIN for the whole DMA, and both until
//    the running compute instruction no longer reads what they write;
//  - STORE waits while a REQUANT or POOL (which write OUT) runs; it retires when issued
//    (then the queue is refilled), so nothing writes OUT while it reads it;
//  - REBUILD waits until both units are idle and runs alone.
// REBUILD's check that K is a multiple of 3C takes a 32-cycle serial remainder (K mod 3C)
// before it decodes. END and errors finish when every unit and the memory port are quiet.
module kiln_ctrl
  import kiln_accel_pkg::*;
#(
  parameter int TAG_BITS = 6,
  parameter int FQ_DEPTH = 8
) (
  input  logic                   clk,
  input  logic                   rst_n,
  input  logic                   buf_clearing,  // buffers still being zeroed after reset
  // host registers
  input  logic                   reg_we,
  input  logic [7:0]             reg_addr,
  input  logic [31:0]            reg_wdata,
  output logic [31:0]            reg_rdata,
  // control registers
  output logic [32*NUM_REGS-1:0] regs,
  // DMA
  output logic                   dma_start,
  output logic [1:0]             dma_cmd,
  output logic [1:0]             dma_buf,
  output logic                   dma_raw,
  input  logic                   dma_issue_busy,
  input  logic                   dma_busy,
  input  logic                   dma_outstanding,
  input  logic                   cnt_rd,
  input  logic                   cnt_wt,
  input  logic                   cnt_wr,
  // fetch over the DMA's port
  output logic                   f_req,
  output logic [31:0]            f_addr,
  output logic [TAG_BITS-1:0]    f_tag,
  input  logic                   f_gnt,
  input  logic                   f_rvalid,
  /* verilator lint_off UNUSEDSIGNAL */
  input  logic [TAG_BITS-1:0]    f_rtag,  // {epoch, slot or part}
  /* verilator lint_on UNUSEDSIGNAL */
  input  logic [8*BUS_BYTES-1:0] f_rdata,
  // compute
  output logic                   comp_start,
  output logic [1:0]             comp_op,
  output logic [2:0]             comp_flags,
  input  logic                   comp_busy,
  input  logic                   comp_gemm,
  // REBUILD unit
  output logic                   rb_start,
  input  logic                   rb_busy
);
  localparam int B = BUS_BYTES;
  localparam int LB = $clog2(BUS_BYTES);
  localparam int NP = (B >= 8) ? 1 : 2;  // memory requests per instruction
  localparam int QW = $clog2(FQ_DEPTH);
  localparam int SLOT = ROWS * IDX_BITS / 8;
  localparam int HALF_ROWS = ROWS / 2;  // bytes of one W4 step (ROWS is always even)
  localparam logic [1:0] CMD_LOAD = 2'd0, CMD_WIN = 2'd1, CMD_STORE = 2'd2;
  localparam logic [1:0] C_GEMM = 2'd0, C_REQUANT = 2'd1, C_POOL = 2'd2;

  typedef enum logic [2:0] {S_IDLE, S_RUN, S_STORE_WAIT, S_COMP_WAIT, S_FINISH} state_t;
  state_t st;

  logic [31:0] r[NUM_REGS];
  always_comb for (int i = 0; i < NUM_REGS; i++) regs[32*i +: 32] = r[i];

  // host-visible state
  logic [31:0] prog_addr, err_pc, cycles, gemm_cycles, rd_beats, wr_beats, wt_beats, insns;
  logic        s_busy, s_done, s_err;
  logic [7:0]  s_code, fin_code;
  logic [31:0] pc, pc_addr;

  always_comb begin
    unique case (reg_addr)
      8'(REG_STATUS):      reg_rdata = {16'd0, s_code, 5'd0, s_err, s_done, s_busy || buf_clearing};
      8'(REG_PROG_ADDR):   reg_rdata = prog_addr;
      8'(REG_ERR_PC):      reg_rdata = err_pc;
      8'(REG_CYCLES):      reg_rdata = cycles;
      8'(REG_GEMM_CYCLES): reg_rdata = gemm_cycles;
      8'(REG_RD_BEATS):    reg_rdata = rd_beats;
      8'(REG_WR_BEATS):    reg_rdata = wr_beats;
      8'(REG_WT_BEATS):    reg_rdata = wt_beats;
      8'(REG_INSNS):       reg_rdata = insns;
      8'(REG_CONFIG_ID):   reg_rdata = CONFIG_ID;
      default:             reg_rdata = 32'd0;
    endcase
  end

  logic host_start;
  assign host_start = reg_we && reg_addr == 8'(REG_CTRL) && reg_wdata[0] && !s_busy && !buf_clearing;

  // ---- fetch -------------------------------------------------------------------------------
  logic [63:0]   fq[FQ_DEPTH];
  logic [QW-1:0] fq_head, fq_tail;
  logic [QW:0]   fq_cnt, inflight;
  logic [31:0]   faddr, lowhalf;
  logic          fpart;
  logic [1:0]    epoch;
  logic          fetch_en, fq_push, fq_pop, flush;
  logic [63:0]   fq_in;
  logic [31:0]   flush_addr;

  // The instruction a returning beat holds (one instruction per request, BUS_BYTES >= 8).
  logic [63:0] beat_insn;
  if (NP == 1) begin : g_slot
    always_comb begin
      beat_insn = f_rdata[63:0];
      for (int sl = 1; sl < B / 8; sl++)
        if (f_rtag[3:0] == 4'(sl)) beat_insn = f_rdata[64*sl +: 64];
    end
  end else begin : g_half
    assign beat_insn = '0;
  end

  assign fetch_en = st == S_RUN || st == S_COMP_WAIT;
  always_comb begin
    f_req = fetch_en && (fpart || (fq_cnt + inflight < (QW+1)'(FQ_DEPTH)));
    if (NP == 1) begin
      f_addr = {faddr[31:LB], LB'(0)};
      f_tag  = TAG_BITS'({epoch, faddr[6:3] & 4'(B / 8 - 1)});  // the instruction's slot in the beat
    end else begin
      f_addr = faddr + (fpart ? 32'd4 : 32'd0);
      f_tag  = TAG_BITS'({epoch, 3'd0, fpart});
    end
    fq_push = 1'b0;
    fq_in   = '0;
    if (f_rvalid && f_rtag[5:4] == epoch) begin
      if (NP == 1) begin
        fq_push = 1'b1;
        fq_in   = beat_insn;
      end else if (f_rtag[0]) begin
        fq_push = 1'b1;
        fq_in   = {f_rdata[31:0], lowhalf};
      end
    end
  end

  // ---- decode / checks ---------------------------------------------------------------------
  logic [63:0] insn;
  logic        insn_v;
  logic [7:0]  op, a;
  logic [31:0] imm;
  logic [7:0]  err;
  assign insn   = fq[fq_head];
  assign insn_v = fq_cnt != '0;
  assign op     = insn[7:0];
  assign a      = insn[15:8];
  assign imm    = insn[63:32];

  // REBUILD: K mod 3C, one quotient bit a cycle while a REBUILD waits at the head.
  logic [5:0]  dv_cnt;
  logic [33:0] dv_rem;
  logic        dv_done, rb_head;
  assign dv_done = dv_cnt == 6'd32;
  assign rb_head = insn_v && op == 8'(OP_REBUILD) && insn[31:16] == 16'd0;

  // The byte ranges [h_lo, h_hi) of each buffer the head instruction writes (LOAD,
  // LOAD_WIN) or reads (GEMM, REQUANT, POOL); exact where its checks pass.
  logic [63:0] h_lo[4], h_hi[4];
  logic [3:0]  h_v;

  // Exact products for the bounds checks: a factor above the buffer already fails.
  function automatic logic [63:0] clampv(input logic [31:0] v, input int lim);
    return (64'(v) > 64'(lim)) ? 64'(lim) + 64'd1 : 64'(v);
  endfunction

  always_comb begin
    logic [63:0] k, n, steps, woff, aoff, ioff, x, c, kh, kw, wbytes;
    err = 8'(ERR_NONE);
    wbytes = '0;
    h_v = '0;
    for (int b = 0; b < 4; b++) begin
      h_lo[b] = '0;
      h_hi[b] = '0;
    end
    k = 64'(r[R_K]);
    n = 64'(r[R_NM_N]);
    woff = 64'(r[R_WOFF]);
    aoff = 64'(r[R_AOFF]);
    ioff = 64'(r[R_IOFF]);
    steps = a[1] ? (k >> $clog2(NM_M)) * n : k;
    if (insn[31:16] != 16'd0) err = 8'(ERR_OPCODE);
    else begin
      unique case (op)
        8'(OP_END): ;
        8'(OP_SET): if (a >= 8'(NUM_REGS)) err = 8'(ERR_REG);
        8'(OP_LOAD): begin
          if (a > 8'd3) err = 8'(ERR_PARAM);
          else if (r[R_SRC][LB-1:0] != '0 || r[R_BOFF][LB-1:0] != '0) err = 8'(ERR_PARAM);
          else begin
            unique case (a[1:0])
              2'(BUF_W): x = 64'(WBUF_BYTES);
              2'(BUF_I): x = 64'(IBUF_BYTES);
              2'(BUF_P): x = 64'(PBUF_BYTES);
              default:   x = 64'(ABUF_BYTES);
            endcase
            if (64'(r[R_BOFF]) + 64'(r[R_LEN]) > x) err = 8'(ERR_BOUNDS);
            h_v[a[1:0]]  = r[R_LEN] != 32'd0;
            h_lo[a[1:0]] = 64'(r[R_BOFF]);
            h_hi[a[1:0]] = 64'(r[R_BOFF]) + 64'(r[R_LEN]);
          end
        end
        8'(OP_LOAD_WIN): begin
          if (r[R_NPIX] > 32'(COLS) || r[R_OW] == 32'd0 || r[R_OX0] >= r[R_OW] || r[R_AOFF] % 32'(COLS) != 32'd0 ||
              r[R_C] == 32'd0 || r[R_KH] == 32'd0 || r[R_KW] == 32'd0)
            err = 8'(ERR_PARAM);
          else begin
            c  = clampv(r[R_C], ABUF_BYTES);
            kh = clampv(r[R_KH], ABUF_BYTES);
            kw = clampv(r[R_KW], ABUF_BYTES);
            h_v[BUF_A]  = r[R_NPIX] != 32'd0;
            h_lo[BUF_A] = aoff;
            h_hi[BUF_A] = aoff + kh * kw * c * 64'(COLS);
            if (h_hi[BUF_A] > 64'(ABUF_BYTES)) err = 8'(ERR_BOUNDS);
          end
        end
        8'(OP_GEMM): begin
          // W4: ROWS/2 bytes a step; the unit reads whole rows of ROWS bytes
          wbytes      = a[2] ? steps * 64'(HALF_ROWS) : steps * 64'(ROWS);
          h_v[BUF_W]  = steps != 64'd0;
          h_lo[BUF_W] = woff;
          h_hi[BUF_W] = woff + (a[2] ? ((steps + 64'd1) >> 1) * 64'(ROWS) : wbytes);
          h_v[BUF_A]  = steps != 64'd0;
          h_lo[BUF_A] = aoff;
          h_hi[BUF_A] = aoff + k * 64'(COLS);
          h_v[BUF_I]  = a[1] && steps != 64'd0;
          h_lo[BUF_I] = ioff;
          h_hi[BUF_I] = ioff + steps * 64'(SLOT);
          if (a[7:3] != 5'd0) err = 8'(ERR_PARAM);
          else if (woff % 64'(ROWS) != 64'd0 || aoff % 64'(COLS) != 64'd0) err = 8'(ERR_PARAM);
          else if (a[1] && (k % 64'(NM_M) != 64'd0 || n == 64'd0 || n > 64'(NM_M) || ioff % 64'(SLOT) != 64'd0))
            err = 8'(ERR_PARAM);
          else if (woff + wbytes > 64'(WBUF_BYTES) || h_hi[BUF_A] > 64'(ABUF_BYTES) ||
                   (a[1] && h_hi[BUF_I] > 64'(IBUF_BYTES)))
            err = 8'(ERR_BOUNDS);
        end
        8'(OP_REQUANT): begin
          h_v[BUF_P]  = 1'b1;
          h_lo[BUF_P] = 64'(r[R_POFF]);
          h_hi[BUF_P] = 64'(r[R_POFF]) + 64'(12 * ROWS);
          if (a[7:1] != 7'd0) err = 8'(ERR_PARAM);
          else if (h_hi[BUF_P] > 64'(PBUF_BYTES)) err = 8'(ERR_BOUNDS);
        end
        8'(OP_POOL): begin
          if (a != 8'd0) err = 8'(ERR_PARAM);
          else if (r[R_WIN] == 32'd0 || r[R_AOFF] % 32'(COLS) != 32'd0) err = 8'(ERR_PARAM);
          else begin
            c  = clampv(r[R_C], ABUF_BYTES);
            kw = clampv(r[R_WIN], ABUF_BYTES);
            h_v[BUF_A]  = c != 64'd0;
            h_lo[BUF_A] = aoff;
            h_hi[BUF_A] = aoff + kw * c * 64'(COLS);
            if (h_hi[BUF_A] > 64'(ABUF_BYTES)) err = 8'(ERR_BOUNDS);
          end
        end
        8'(OP_STORE): begin
          if (a[7:1] != 7'd0) err = 8'(ERR_PARAM);
          else if (r[R_NPIX] > 32'(COLS) || r[R_NROWS] > 32'(ROWS)) err = 8'(ERR_PARAM);
        end
        8'(OP_REBUILD): begin
          logic [31:0] cfg;
          logic [63:0] maxg, xg;
          cfg = r[R_SD_CFG];
          if (a != 8'd0) err = 8'(ERR_PARAM);
          else if (cfg[3:1] == 3'd0 || cfg[3:1] > 3'd4 || cfg[15:4] != 12'd0 || cfg[31:16] == 16'd0 ||
                   r[R_K] == 32'd0 || r[R_K] % 32'd3 != 32'd0 || r[R_WOFF] % 32'(ROWS) != 32'd0 ||
                   (!cfg[0] && (r[R_C] == 32'd0 || dv_rem != 34'd0)))
            err = 8'(ERR_PARAM);
          else begin
            // SDB + 9*ceil(X/group) <= IBUF  <=>  SDB <= IBUF and X <= floor((IBUF-SDB)/9)*group
            maxg = (64'(r[R_SDB]) <= 64'(IBUF_BYTES)) ? (64'(IBUF_BYTES) - 64'(r[R_SDB])) / 64'd9 : 64'd0;
            xg = cfg[0] ? 64'(r[R_K]) / 64'd3 : 64'(r[R_C]);
            if (woff + k * 64'(ROWS) > 64'(WBUF_BYTES) || ioff + 64'(r[R_LEN]) > 64'(IBUF_BYTES) ||
                64'(r[R_SDB]) > 64'(IBUF_BYTES) || xg > maxg * 64'(cfg[31:16]) || r[R_LEN] < 32'(ROWS))
              err = 8'(ERR_BOUNDS);
          end
        end
        default: err = 8'(ERR_OPCODE);
      endcase
    end
  end

  // ---- interlock ---------------------------------------------------------------------------
  // d_*: what dispatched LOAD / LOAD_WIN still write (valid while the DMA is busy);
  // c_*: what the running compute instruction reads (valid while it is busy), c_out: it
  // writes OUT (REQUANT, POOL).
  logic [63:0] d_lo[4], d_hi[4], c_lo[4], c_hi[4];
  logic [3:0]  d_v, c_v;
  logic        c_out, raw_hz, war_hz;
  always_comb begin
    raw_hz = 1'b0;
    war_hz = 1'b0;
    for (int b = 0; b < 4; b++) begin
      if (h_v[b] && dma_busy && d_v[b] && h_lo[b] < d_hi[b] && d_lo[b] < h_hi[b]) raw_hz = 1'b1;
      if (h_v[b] && comp_busy && c_v[b] && h_lo[b] < c_hi[b] && c_lo[b] < h_hi[b]) war_hz = 1'b1;
    end
  end

  // ---- dispatch ----------------------------------------------------------------------------
  logic retire;  // the head instruction leaves the queue this cycle
  always_comb begin
    retire     = 1'b0;
    dma_start  = 1'b0;
    dma_cmd    = CMD_LOAD;
    dma_buf    = a[1:0];
    dma_raw    = a[0];
    comp_start = 1'b0;
    comp_op    = C_GEMM;
    comp_flags = a[2:0];
    rb_start   = 1'b0;
    if (st == S_RUN && insn_v) begin
      if (rb_head && !dv_done) retire = 1'b0;  // the remainder is not ready yet
      else if (err != 8'd0) retire = 1'b1;
      else begin
        unique case (op)
          8'(OP_LOAD): begin
            dma_cmd = CMD_LOAD;
            retire = !dma_issue_busy && !war_hz;
          end
          8'(OP_LOAD_WIN): begin
            dma_cmd = CMD_WIN;
            retire = !dma_busy && !war_hz;
          end
          8'(OP_STORE): begin
            dma_cmd = CMD_STORE;
            retire = !dma_issue_busy && !(comp_busy && c_out);
          end
          8'(OP_GEMM): begin
            comp_op = C_GEMM;
            retire = !comp_busy && !raw_hz;
          end
          8'(OP_REQUANT): begin
            comp_op = C_REQUANT;
            retire = !comp_busy && !raw_hz;
          end
          8'(OP_POOL): begin
            comp_op = C_POOL;
            retire = !comp_busy && !raw_hz;
          end
          8'(OP_REBUILD): retire = !dma_busy && !comp_busy;
          default: retire = 1'b1;  // END, SET
        endcase
        dma_start  = retire && (op == 8'(OP_LOAD) || op == 8'(OP_LOAD_WIN) || op == 8'(OP_STORE));
        comp_start = retire && (op == 8'(OP_GEMM) || op == 8'(OP_REQUANT) || op == 8'(OP_POOL));
        rb_start   = retire && op == 8'(OP_REBUILD);
      end
    end
    fq_pop = retire;
    flush  = host_start || (st == S_STORE_WAIT && !dma_issue_busy);
    flush_addr = host_start ? {prog_addr[31:3], 3'd0} : pc_addr;
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      d_v   <= '0;
      c_v   <= '0;
      c_out <= 1'b0;
    end else begin
      logic [3:0] dv;
      dv = dma_busy ? d_v : '0;
      if (dma_start && op != 8'(OP_STORE))
        for (int b = 0; b < 4; b++)
          if (h_v[b]) begin
            d_lo[b] <= (dv[b] && d_lo[b] < h_lo[b]) ? d_lo[b] : h_lo[b];
            d_hi[b] <= (dv[b] && d_hi[b] > h_hi[b]) ? d_hi[b] : h_hi[b];
            dv[b] = 1'b1;
          end
      d_v <= dv;
      if (comp_start) begin
        c_v   <= h_v;
        c_out <= op != 8'(OP_GEMM);
        for (int b = 0; b < 4; b++) begin
          c_lo[b] <= h_lo[b];
          c_hi[b] <= h_hi[b];
        end
      end
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      st <= S_IDLE;
      for (int i = 0; i < NUM_REGS; i++) r[i] <= '0;
      prog_addr <= '0;
      err_pc <= '0;
      cycles <= '0;
      gemm_cycles <= '0;
      rd_beats <= '0;
      wr_beats <= '0;
      wt_beats <= '0;
      insns <= '0;
      s_busy <= 1'b0;
      s_done <= 1'b0;
      s_err <= 1'b0;
      s_code <= '0;
      fin_code <= '0;
      pc <= '0;
      pc_addr <= '0;
      fq_head <= '0;
      fq_tail <= '0;
      fq_cnt <= '0;
      inflight <= '0;
      faddr <= '0;
      fpart <= 1'b0;
      epoch <= '0;
      lowhalf <= '0;
      dv_cnt <= '0;
      dv_rem <= '0;
    end else begin
      // K mod 3C for the REBUILD at the head (restarted for each instruction)
      if (host_start || retire || flush || !rb_head) begin
        dv_cnt <= '0;
        dv_rem <= '0;
      end else if (!dv_done) begin
        logic [34:0] t;
        t = {dv_rem, r[R_K][5'd31 - dv_cnt[4:0]]};
        if (t >= 35'(r[R_C]) * 35'd3) t = t - 35'(r[R_C]) * 35'd3;
        dv_rem <= 34'(t);
        dv_cnt <= dv_cnt + 6'd1;
      end

      if (reg_we && reg_addr == 8'(REG_PROG_ADDR)) prog_addr <= reg_wdata;

      // counters
      if (s_busy) cycles <= cycles + 32'd1;
      if (comp_gemm) gemm_cycles <= gemm_cycles + 32'd1;
      if (cnt_rd) rd_beats <= rd_beats + 32'd1;
      if (cnt_wt) wt_beats <= wt_beats + 32'd1;
      if (cnt_wr) wr_beats <= wr_beats + 32'd1;

      // fetch queue
      begin
        logic [QW:0] inf;
        inf = inflight;
        if (f_gnt && (NP == 1 || !fpart)) inf = inf + 1'b1;
        if (f_rvalid && (NP == 1 || f_rtag[0])) inf = inf - 1'b1;
        if (f_gnt) begin
          if (NP == 1 || fpart) faddr <= faddr + 32'd8;
          if (NP == 2) fpart <= !fpart;
        end
        if (f_rvalid && NP == 2 && !f_rtag[0]) lowhalf <= f_rdata[31:0];
        if (flush) begin
          if (NP == 2 && fpart && !f_gnt) inf = inf - 1'b1;  // half-issued instruction
          fq_head <= '0;
          fq_tail <= '0;
          fq_cnt  <= '0;
          faddr   <= flush_addr;
          fpart   <= 1'b0;
          epoch   <= epoch + 2'd1;
        end else begin
          if (fq_push) begin
            fq[fq_tail] <= fq_in;
            fq_tail <= fq_tail + 1'b1;
          end
          if (fq_pop) fq_head <= fq_head + 1'b1;
          fq_cnt <= fq_cnt + (QW+1)'(fq_push) - (QW+1)'(fq_pop);
        end
        inflight <= inf;
      end

      if (host_start) begin
        st <= S_RUN;
        for (int i = 0; i < NUM_REGS; i++) r[i] <= '0;
        cycles <= '0;
        gemm_cycles <= '0;
        rd_beats <= '0;
        wr_beats <= '0;
        wt_beats <= '0;
        insns <= '0;
        err_pc <= '0;
        s_busy <= 1'b1;
        s_done <= 1'b0;
        s_err <= 1'b0;
        s_code <= '0;
        pc <= '0;
        pc_addr <= {prog_addr[31:3], 3'd0};
      end else begin
        unique case (st)
          S_RUN:
            if (retire) begin
              insns <= insns + 32'd1;
              if (err != 8'd0) begin
                fin_code <= err;
                err_pc <= pc;
                st <= S_FINISH;
              end else begin
                pc <= pc + 32'd1;
                pc_addr <= pc_addr + 32'd8;
                unique case (op)
                  8'(OP_END): begin
                    fin_code <= '0;
                    st <= S_FINISH;
                  end
                  8'(OP_SET): r[a[4:0]] <= imm;
                  8'(OP_STORE): st <= S_STORE_WAIT;
                  8'(OP_REBUILD): st <= S_COMP_WAIT;
                  default: ;
                endcase
              end
            end
          S_STORE_WAIT: if (!dma_issue_busy) st <= S_RUN;
          S_COMP_WAIT: if (!rb_busy) st <= S_RUN;
          S_FINISH:
            if (!dma_busy && !dma_outstanding && !comp_busy && !rb_busy) begin
              st <= S_IDLE;
              s_busy <= 1'b0;
              s_done <= 1'b1;
              s_err <= fin_code != 8'd0;
              s_code <= fin_code;
            end
          default: ;
        endcase
      end
    end
  end
endmodule

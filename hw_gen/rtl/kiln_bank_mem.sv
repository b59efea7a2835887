// Banked buffer memory: BYTES bytes as rows of RW bytes; row i lives in bank i % NB at
// word i / NB. Every bank is a memory of DEPTH words with one write port (byte enables)
// and one read port (a 1R1W SRAM macro): the DMA writes one part of a buffer while the
// compute unit reads another. A write and a read of the same word never meet in one
// cycle (the controller's interlock keeps the ranges apart). The write lanes of one
// cycle never touch two different words of one bank (checked in simulation).
//  - write: WL byte lanes (enable, byte address, byte); the lanes of one cycle that fall
//    into one bank fall into one word of it.
//  - read: NR consecutive rows from raddr (a multiple of RW), data one cycle later; rows
//    past the end read as zero.
//  - clear: clr writes zero to word clr_word of every bank (the reset sweep).
module kiln_bank_mem #(
  parameter int BYTES = 1024,
  parameter int RW = 16,
  parameter int NB = 4,
  parameter int NR = 1,
  parameter int WL = 16
) (
  input  logic               clk,
  input  logic               clr,       // write zero to word clr_word of every bank
  input  logic [31:0]        clr_word,
  input  logic [WL-1:0]      we,
  input  logic [32*WL-1:0]   waddr,
  input  logic [8*WL-1:0]    wdata,
  input  logic               re,
  input  logic [31:0]        raddr,
  output logic [8*RW*NR-1:0] rdata
);
  localparam int NROWS = (BYTES + RW - 1) / RW;
  localparam int DEPTH = (NROWS + NB - 1) / NB;
  localparam int BB = (NB > 1) ? $clog2(NB) : 1;

  // Lanes: bank, word and byte of each.
  logic [31:0] l_row[WL];
  logic [31:0] l_off[WL];
  logic [BB-1:0] l_bank[WL];
  logic [31:0] l_word[WL];
  logic        l_ok[WL];
  always_comb begin
    for (int j = 0; j < WL; j++) begin
      l_row[j]  = waddr[32*j +: 32] / 32'(RW);
      l_off[j]  = waddr[32*j +: 32] % 32'(RW);
      l_bank[j] = BB'(l_row[j] % 32'(NB));
      l_word[j] = l_row[j] / 32'(NB);
      l_ok[j]   = we[j] && waddr[32*j +: 32] < 32'(BYTES);
    end
  end

  // Per bank: the word written and its byte enables (scatter of the lanes).
  logic [NB-1:0]   b_wen;
  logic [31:0]     b_word[NB];
  logic [8*RW-1:0] b_mask[NB];
  logic [8*RW-1:0] b_val[NB];
  always_comb begin
    b_wen = '0;
    for (int b = 0; b < NB; b++) begin
      b_word[b] = '0;
      b_mask[b] = '0;
      b_val[b]  = '0;
    end
    if (we != '0)
      for (int j = 0; j < WL; j++)
        if (l_ok[j]) begin
          b_wen[l_bank[j]]  = 1'b1;
          b_word[l_bank[j]] = l_word[j];
          b_mask[l_bank[j]][8*l_off[j] +: 8] = 8'hFF;
          b_val[l_bank[j]][8*l_off[j] +: 8]  = wdata[8*j +: 8];
        end
  end

`ifndef SYNTHESIS
  always_ff @(posedge clk)
    if (we != '0)
      for (int j = 0; j < WL; j++)
        if (l_ok[j] && l_word[j] != b_word[l_bank[j]])
          $error("kiln_bank_mem: two words of bank %0d written in one cycle", l_bank[j]);
`endif

  // Reads: the bank of read row r is (base_row + r) % NB.
  logic [31:0]       base_row;
  logic [BB-1:0]     rot_q;
  logic [8*RW-1:0]   bank_q[NB];
  assign base_row = raddr / 32'(RW);
  always_ff @(posedge clk) if (re) rot_q <= BB'(base_row % 32'(NB));
  always_comb begin
    for (int r = 0; r < NR; r++) rdata[8*RW*r +: 8*RW] = bank_q[BB'((32'(rot_q) + 32'(r)) % 32'(NB))];
  end

  for (genvar b = 0; b < NB; b++) begin : g_bank
    logic [8*RW-1:0] mem[DEPTH];
    logic [31:0]     rrow, rd;

    // this bank's row among the NR read rows, if any
    assign rd   = (32'(b) + 32'(NB) - base_row % 32'(NB)) % 32'(NB);
    assign rrow = base_row + rd;

    always_ff @(posedge clk) begin
      if (clr) begin
        if (clr_word < 32'(DEPTH)) mem[clr_word] <= '0;
      end else if (b_wen[b] && b_word[b] < 32'(DEPTH))
        mem[b_word[b]] <= (mem[b_word[b]] & ~b_mask[b]) | (b_val[b] & b_mask[b]);
      if (re) bank_q[b] <= (rd < 32'(NR) && rrow < 32'(NROWS)) ? mem[rrow / 32'(NB)] : '0;
    end
  end
endmodule

// OUT storage (docs/ACCELERATOR.md, Buffers): cols x rows int32, OUT[c][r]. REQUANT and
// POOL write one row r of all columns per cycle; STORE reads one column (all rows).
module kiln_outbuf
  import kiln_accel_pkg::*;
#(
  parameter int RW = (ROWS > 1) ? $clog2(ROWS) : 1,
  parameter int CW = (COLS > 1) ? $clog2(COLS) : 1
) (
  input  logic               clk,
  input  logic               rst_n,
  input  logic               we,
  input  logic [RW-1:0]      row,
  input  logic [32*COLS-1:0] wdata,
  input  logic [CW-1:0]      col,
  output logic [32*ROWS-1:0] rdata
);
  logic [COLS-1:0][ROWS-1:0][31:0] mem;
  always_ff @(posedge clk) begin
    if (!rst_n) mem <= '0;
    else if (we)
      for (int c = 0; c < COLS; c++) mem[c][row] <= wdata[32*c +: 32];
  end
  assign rdata = mem[col];
endmodule

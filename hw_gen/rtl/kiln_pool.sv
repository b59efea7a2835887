// Pool unit (docs/ACCELERATOR.md, POOL): running unsigned max over the window rows of one
// output row, COLS columns in parallel. A token (valid) carries one ABUF row (data) of
// window position `first`..`last` for output row `row`; `zero` marks a row past C (its
// result is 0, no data). On `last` the row's maxima are written to OUT.
module kiln_pool
  import kiln_accel_pkg::*;
#(
  parameter int RW = (ROWS > 1) ? $clog2(ROWS) : 1
) (
  input  logic                clk,
  input  logic                rst_n,
  input  logic                valid,
  input  logic                first,
  input  logic                last,
  input  logic                zero,
  input  logic [RW-1:0]       row,
  input  logic [8*COLS-1:0]   data,
  output logic                out_we,
  output logic [RW-1:0]       out_row,
  output logic [32*COLS-1:0]  out_data
);
  logic [8*COLS-1:0] m_q, m_n;
  always_comb begin
    for (int c = 0; c < COLS; c++) begin
      logic [7:0] d, m;
      d = zero ? 8'd0 : data[8*c +: 8];
      m = first ? 8'd0 : m_q[8*c +: 8];
      m_n[8*c +: 8] = (d > m) ? d : m;
      out_data[32*c +: 32] = {24'd0, m_n[8*c +: 8]};
    end
  end
  always_ff @(posedge clk) begin
    if (!rst_n) m_q <= '0;
    else if (valid) m_q <= m_n;
  end
  assign out_we  = valid && last;
  assign out_row = row;
endmodule

// PE array (docs/ACCELERATOR.md, GEMM): ROWS x COLS output-stationary int8 x uint8 ->
// int32 multiply-accumulate, one reduction step per cycle.
//
// act carries NM_M activation rows of COLS bytes (row j at [8*COLS*j +: 8*COLS]). In
// dense mode every PE row uses row 0; in N:M mode (nm) PE row r's activation
// multiplexer picks row idx[r] of the group, so one step consumes one kept weight per
// row. first: this step overwrites the accumulator (GEMM without ACC); clear: zero all
// accumulators (GEMM without ACC and K = 0). Sums wrap at 32 bits.
module kiln_pe_array
  import kiln_accel_pkg::*;
(
  input  logic                     clk,
  input  logic                     rst_n,
  input  logic                     clear,
  input  logic                     valid,
  input  logic                     first,
  input  logic                     nm,
  input  logic [8*ROWS-1:0]        w,
  input  logic [IDX_BITS*ROWS-1:0] idx,
  input  logic [8*NM_M*COLS-1:0]   act,
  output logic [32*ROWS*COLS-1:0]  acc
);
  for (genvar r = 0; r < ROWS; r++) begin : g_row
    logic [IDX_BITS-1:0] sel;
    logic [8*COLS-1:0]   arow;
    assign sel = nm ? idx[IDX_BITS*r +: IDX_BITS] : '0;
    always_comb begin
      arow = act[8*COLS-1:0];
      for (int j = 1; j < NM_M; j++)
        if (sel == IDX_BITS'(j)) arow = act[8*COLS*j +: 8*COLS];
    end
    for (genvar c = 0; c < COLS; c++) begin : g_col
      logic signed [16:0] prod;
      logic [31:0]        a_q;
      assign prod = 17'($signed(w[8*r +: 8])) * $signed({9'b0, arow[8*c +: 8]});
      always_ff @(posedge clk) begin
        if (!rst_n || clear) a_q <= '0;
        else if (valid) a_q <= (first ? 32'd0 : a_q) + 32'(prod);
      end
      assign acc[32*(r*COLS+c) +: 32] = a_q;
    end
  end
endmodule

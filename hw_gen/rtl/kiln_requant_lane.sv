// One requantisation lane (docs/ACCELERATOR.md, REQUANT): v = acc + bias (wrapping);
// RAW: v. Else p = int64(v) * int64(mult); q = shift ? (p + 2^(shift-1)) >>> shift : p
// (64-bit wrapping add, arithmetic shift: round half up); q += zp; clamp to [lo, hi]
// (lo tested first, as the reference model does).
module kiln_requant_lane (
  input  logic [31:0] acc,
  input  logic [31:0] bias,
  input  logic [31:0] mult,
  input  logic [5:0]  shift,
  input  logic [31:0] zp,
  input  logic [31:0] lo,
  input  logic [31:0] hi,
  input  logic        raw,
  output logic [31:0] out
);
  logic [31:0]        v;
  logic signed [63:0] p, q, qz, rnd;
  always_comb begin
    v   = acc + bias;
    p   = 64'($signed(v)) * 64'($signed(mult));
    rnd = 64'sd1 <<< (shift - 6'd1);
    q   = (shift != 6'd0) ? ((p + rnd) >>> shift) : p;
    qz  = q + 64'($signed(zp));
    if (raw) out = v;
    else if (qz < 64'($signed(lo))) out = lo;
    else if (qz > 64'($signed(hi))) out = hi;
    else out = qz[31:0];
  end
endmodule

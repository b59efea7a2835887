//===- Passes.td - Kiln pass declarations -----------------------*- tablegen -*-===//
#ifndef KILN_PASSES_TD
#define KILN_PASSES_TD

include "mlir/Pass/PassBase.td"

def KilnOutlineWeights : Pass<"kiln-outline-weights", "mlir::ModuleOp"> {
  let summary = "Move constant weights out of the code into the weights blob";
  let description = [{
    Runs on bufferized IR. Every constant `memref.global` read by the entry
    function and at least `min-bytes` large is copied into one `alignment`-aligned
    blob, stored on the module as `kiln.weights` (a dense_resource of i8), and
    its `memref.get_global` is replaced by a `memref.view` of a new first
    argument of the entry function (`kiln.role = "weights"`). The compiled code
    then reads weights from the memory-mapped weights file instead of carrying
    them in the object.

    Example: `%w = memref.get_global @c : memref<16x3xf32>` becomes
    `%w = memref.view %weights[%c128][] : memref<N x i8> to memref<16x3xf32>`.
  }];
  let options = [
    Option<"minBytes", "min-bytes", "int64_t", /*default=*/"64",
           "Constants smaller than this stay in the object">,
    Option<"alignment", "alignment", "int64_t", /*default=*/"64",
           "Byte alignment of every constant in the blob (a power of two)">,
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["mlir::memref::MemRefDialect", "mlir::arith::ArithDialect"];
}

def KilnUniqueResults : Pass<"kiln-unique-results", "mlir::ModuleOp"> {
  let summary = "Give every returned buffer of the entry function its own allocation";
  let description = [{
    Runs on bufferized IR before results become out-parameters. A buffer returned
    twice (two graph outputs that are the same value) or a function argument
    returned as a result is copied into a fresh allocation, so that each output
    parameter is written exactly once.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["mlir::memref::MemRefDialect"];
}

def KilnPlanArena : Pass<"kiln-plan-arena", "mlir::ModuleOp"> {
  let summary = "Place intermediate buffers in one caller-provided arena";
  let description = [{
    Runs on bufferized IR before deallocation is inserted. Every statically
    shaped `memref.alloc` in the entry function's top-level block gets a byte
    offset in one arena, reusing space between buffers whose live ranges do not
    overlap (first fit in program order; a buffer lives from its allocation to
    the last use of it or of any view of it). Allocations become `memref.view`s
    of a new argument (`kiln.role = "arena"`) inserted after the weights
    argument, and the arena size is recorded as `kiln.arena_size` on the module.
    Allocations the pass cannot place (dynamic shapes, inside loops) are left for
    the deallocation pipeline.
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t", /*default=*/"64",
           "Byte alignment of every buffer in the arena">,
    Option<"reuse", "reuse", "bool", /*default=*/"true",
           "Share arena space between buffers that are not live together">,
    Option<"byteBools", "byte-bools", "bool", /*default=*/"false",
           "Also place i1 buffers, one byte per element (the GPU target reads them as i8)">,
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["mlir::memref::MemRefDialect", "mlir::arith::ArithDialect"];
}

def KilnFuseElementwise : Pass<"kiln-fuse-elementwise", "mlir::func::FuncOp"> {
  let summary = "Fuse chains of elementwise linalg ops, leaving contractions alone";
  let description = [{
    Upstream elementwise fusion, restricted to consumers that are themselves
    elementwise (all loops parallel): a scale folded into a matmul or a
    convolution would turn it into a generic contraction that no longer matches
    the runtime's tuned kernels.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect", "mlir::tensor::TensorDialect"];
}

def KilnLinalgToLoops : Pass<"kiln-linalg-to-loops", "mlir::ModuleOp"> {
  let summary = "Lower linalg.generic/reduce to loops that LLVM can vectorise";
  let description = [{
    Runs on bufferized IR, before convert-linalg-to-loops (which lowers what is
    left: transposes, fills, copies, named ops, dynamic shapes). A linalg.generic
    or linalg.reduce with one output, static bounds and parallel loops followed by
    reduction loops becomes an scf.for nest in which each input is read in the
    outermost loop whose index it uses (a row's mean or maximum once per row, not
    once per element), and the reduction loops carry the accumulator as an
    iter_arg, loaded from the output once before and stored once after. Reading
    everything in the innermost loop, with all buffers views of one arena, makes
    LLVM see an unknown dependence between those reads and the store and leave the
    loop scalar. An input that is the output's own buffer is read in the innermost
    loop; a reduction that reads its output is left alone.

    With `parallel-work` N > 0, an op at the top level of a function that has at
    least N loop iterations in all is split over the runtime's threads: the body
    of its outermost parallel loop (of more than one iteration) moves into a new
    private function `kiln_parallel_<k>(ctx, begin, end)`, and the loop becomes a
    call of `kiln_parallel_for(trips, @kiln_parallel_<k>, ctx)`, ctx an array of
    the base pointers of the buffers the body reads and writes (their shapes and
    strides are static and rebuilt inside).
  }];
  let options = [
    Option<"parallelWork", "parallel-work", "int64_t", /*default=*/"0",
           "Split ops with at least this many loop iterations over threads (0: never)">,
  ];
  let dependentDialects = ["mlir::scf::SCFDialect", "mlir::memref::MemRefDialect", "mlir::func::FuncDialect",
                           "mlir::arith::ArithDialect", "mlir::affine::AffineDialect", "mlir::LLVM::LLVMDialect"];
}

def KilnApproximateMath : Pass<"kiln-approximate-math"> {
  let summary = "Replace math.erf and math.exp by polynomial approximations";
  let description = [{
    MLIR's polynomial approximations of erf and exp in plain arithmetic (f32),
    instead of scalar libm calls, so the loops that use them (GELU, softmax) can be
    vectorised by LLVM.
  }];
  let dependentDialects = ["mlir::math::MathDialect", "mlir::arith::ArithDialect",
                           "mlir::vector::VectorDialect"];
}

def KilnSplitFills : Pass<"kiln-split-fills", "mlir::func::FuncOp"> {
  let summary = "Give every use of a tensor linalg.fill a fill of its own";
  let description = [{
    Runs on tensors just before bufferization (after the last cse). A fill with
    several uses (CSE merges the zero initialisations of all matmul outputs of one
    shape) would bufferize to one filled buffer copied into each output (a memset
    and a memcpy per output); cloned next to each user, every output is filled in
    place. The fills' operands (a constant, an empty tensor) are cheap to share.
  }];
  let dependentDialects = ["mlir::linalg::LinalgDialect"];
}

def KilnQuantize : Pass<"kiln-quantize", "mlir::ModuleOp"> {
  let summary = "Choose, per convolution and matmul, int8 execution from a calibrated plan";
  let description = [{
    Runs on bufferized IR, before kiln-lower-to-kernels. The quantisable layers are
    the ops kiln-lower-to-kernels calls a packed kernel for: `linalg.conv_2d_nhwc_fhwc`
    and `linalg.batch_matmul` with a constant right operand. Each is named by the
    ONNX node it came from (its location), with `#k` appended when a node gives
    several.

    With `observe`, each gets `kiln.observe = <index>`: kiln-lower-to-kernels then
    records the range of its input at run time (a calibration build). With `plan`
    (a JSON file: per layer its name, `bits` and calibrated `input_range`), each
    layer planned at 8 bits gets `kiln.quant = {bits = 8, scale, zero_point}`: its
    activations are quantised asymmetrically to u8 with that scale and zero point, its
    weights symmetrically per output channel to s8 when lowered. The IR stays f32: the
    attribute says how to execute the op, and every target reads the same one.

    With `compare` (diagnostic builds), each quantised layer also gets
    `kiln.compare = <index>`: kiln-lower-to-kernels runs the fp32 kernel beside the
    int8 one on the same input and records the int8 output's error
    (`kiln_observe_error`), for the report's per-layer output SQNR.

    `report` names a JSON file written with every quantisable layer: index, name, op,
    shape, parameters, chosen bits, input range, activation scale and zero point, and
    the weight quantisation's signal-to-noise ratio (dB), or why it stays in float.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
    Option<"observe", "observe", "bool", /*default=*/"false",
           "Mark every quantisable layer for calibration">,
    Option<"planPath", "plan", "std::string", /*default=*/"\"\"",
           "JSON quantisation plan to apply">,
    Option<"defaultBits", "default-bits", "int", /*default=*/"32",
           "Precision of quantisable layers the plan does not name (32, or 16: bf16)">,
    Option<"compare", "compare", "bool", /*default=*/"false",
           "Diagnostic build: quantised layers also run in fp32 and record their output error">,
    Option<"reportPath", "report", "std::string", /*default=*/"\"\"",
           "Write the per-layer report (JSON) here">,
  ];
}

def KilnSparsifyNM : Pass<"kiln-sparsify-nm", "mlir::ModuleOp"> {
  let summary = "Keep N of every M weights per output channel, with calibration-based reconstruction";
  let description = [{
    Runs on bufferized IR, before kiln-quantize. Every layer kiln-lower-to-kernels runs
    with a packed kernel (`linalg.conv_2d_nhwc_fhwc`, `linalg.batch_matmul` by a
    constant) with a reduction of at least `min-reduction` gets `pattern` (N:M,
    M <= 16), or the pattern `layers` names for it ("NAME=2:4,NAME2=dense"; names as
    kiln-quantize gives them). Its weights become a `kiln.nm_weights` of two new
    constants (kept values, positions in their groups).

    With `gram` (the runner's `--observe-gram` file from a build with `observe`),
    pruning compensates each removed weight on the rest of its row through the
    Cholesky factor of the inverse input Gram matrix (one-shot OBS, as SparseGPT),
    minimising the change of the layer's output on the calibration data; otherwise the
    N largest magnitudes of each group are kept. `report` names a JSON file with, per
    layer, the pattern, method, relative weight error, relative output error on the
    calibration data, and bytes dense vs sparse.

    Example: `%w = memref.get_global @filter : memref<32x3x3x16xf32>` used by a
    convolution becomes `%w = kiln.nm_weights %values, %indices {n = 2, m = 4}`.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"", "Name of the entry function">,
    Option<"pattern", "pattern", "std::string", /*default=*/"\"2:4\"", "N:M for every eligible layer, or dense">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"", "Per-layer patterns: NAME=N:M|dense, comma separated">,
    Option<"minReduction", "min-reduction", "int64_t", /*default=*/"32",
           "Layers with a shorter reduction stay dense unless named in layers">,
    Option<"gramPath", "gram", "std::string", /*default=*/"\"\"", "Calibration Gram matrices (runner --observe-gram)">,
    Option<"observe", "observe", "bool", /*default=*/"false",
           "Calibration build: mark each layer to be sparsified for Gram observation instead">,
    Option<"dampening", "dampening", "double", /*default=*/"0.01",
           "Added to the Gram diagonal, as a fraction of its mean">,
    Option<"reportPath", "report", "std::string", /*default=*/"\"\"", "Write the per-layer report (JSON) here">,
  ];
  let dependentDialects = ["::kiln::KilnDialect", "mlir::memref::MemRefDialect"];
}

def KilnDecompose : Pass<"kiln-decompose", "mlir::ModuleOp"> {
  let summary = "SmartDeal weight decomposition (W ~ C x B) per layer, fitted to calibration inputs";
  let description = [{
    Runs on bufferized IR, after kiln-sparsify-nm and before kiln-quantize. Every layer
    a packed kernel runs (KernelMatch.h) with a reduction of at least `min-reduction`
    gets the SmartDeal setting `exponent-bits`/`density`, or the one `layers` names
    for it ("NAME=b3:d0.75,NAME2=b2:d0.35:g4,NAME3=dense"; names as kiln-quantize gives
    them; `g` fixes the basis group, 0 or absent picks it). Its weights become a
    `kiln.smartdeal_weights` of four new constants (mask, row starts, codes, bases),
    the format of docs/SMARTDEAL.md, fitted by codesign::decomposeSmartDeal.

    With `gram` (the runner's `--observe-gram` file from a build with `observe`), the
    fit minimises the change of the layer's output on the calibration inputs;
    otherwise the weight error. A layer kiln-sparsify-nm made N:M sparse stays so
    (an error when `layers` names it). `report` names a JSON file with, per layer, the
    setting, weight and output errors and the bytes of the format, of dense int8 and
    of fp32.

    Example: `%w = memref.get_global @filter : memref<32x3x3x16xf32>` used by a
    convolution becomes `%w = kiln.smartdeal_weights %mask, %row_start, %codes, %bases
    {exponent_bits = 3, exponent_offset = 0, group = 2, layout = "taps3"}`.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"", "Name of the entry function">,
    Option<"method", "method", "std::string", /*default=*/"\"smartdeal\"", "Decomposition (smartdeal)">,
    Option<"exponentBits", "exponent-bits", "int64_t", /*default=*/"3",
           "Exponent bits per coefficient (1..7) for layers layers does not name">,
    Option<"density", "density", "double", /*default=*/"0.75",
           "Fraction of chunks kept (0, 1] for layers layers does not name">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"",
           "Per-layer settings: NAME=bB:dD[:gG]|dense, comma separated">,
    Option<"iterations", "iterations", "int64_t", /*default=*/"8", "Alternating-projection rounds">,
    Option<"minReduction", "min-reduction", "int64_t", /*default=*/"32",
           "Layers with a shorter reduction stay dense unless named in layers">,
    Option<"onlyNamed", "only-named", "bool", /*default=*/"false",
           "Decompose only the layers layers names (the others stay dense): a plan's choice">,
    Option<"gramPath", "gram", "std::string", /*default=*/"\"\"", "Calibration Gram matrices (runner --observe-gram)">,
    Option<"observe", "observe", "bool", /*default=*/"false",
           "Calibration build: mark each layer to be decomposed for Gram observation instead">,
    Option<"reportPath", "report", "std::string", /*default=*/"\"\"", "Write the per-layer report (JSON) here">,
  ];
  let dependentDialects = ["::kiln::KilnDialect", "mlir::memref::MemRefDialect"];
}

def KilnButterfly : Pass<"kiln-butterfly", "mlir::ModuleOp"> {
  let summary = "Replace chosen linear layers' weights by fitted butterfly factors";
  let description = [{
    Runs on bufferized IR, before kiln-sparsify-nm, kiln-decompose and kiln-quantize
    (which leave its layers alone, and reject naming one). Each linear layer
    (`linalg.batch_matmul` by a constant 1 x K x N weight: ONNX MatMul/Gemm) that
    `layers` names ("NAME,NAME2", names as kiln-quantize gives them, or "all") gets its
    weight fitted by a butterfly of size n = the power of two >= max(K, N)
    (passes/codesign/ButterflyFit.h) and replaced by a `kiln.butterfly_weights` of one
    new constant, next to the weight's definition. Naming a convolution or a name the
    model does not have is an error.

    With `gram` (the runner's `--observe-gram` file from a build with `observe`), the
    fit minimises the layer's output error on the calibration inputs; otherwise the
    weight error. `report` names a JSON file with, per layer, K, N, n, the relative
    weight error, the relative output error on the calibration data, parameters dense
    vs butterfly, iterations and fit time.

    Example: `%w = memref.get_global @w : memref<1x64x128xf32>` read by a batch_matmul
    becomes `%w = kiln.butterfly_weights %f {rows_last} : memref<7x2x128xf32> -> ...`.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"", "Name of the entry function">,
    Option<"layers", "layers", "std::string", /*default=*/"\"\"", "Linear layers to factorise: NAME,NAME2 or all">,
    Option<"gramPath", "gram", "std::string", /*default=*/"\"\"", "Calibration Gram matrices (runner --observe-gram)">,
    Option<"observe", "observe", "bool", /*default=*/"false",
           "Calibration build: mark each chosen layer for Gram observation instead">,
    Option<"maxIterations", "max-iterations", "int64_t", /*default=*/"300", "L-BFGS iterations of each fit">,
    Option<"reportPath", "report", "std::string", /*default=*/"\"\"", "Write the per-layer report (JSON) here">,
  ];
  let dependentDialects = ["::kiln::KilnDialect", "mlir::memref::MemRefDialect"];
}

def KilnLowerToKernels : Pass<"kiln-lower-to-kernels", "mlir::ModuleOp"> {
  let summary = "Call the runtime's register-tiled kernels for convolutions and matmuls";
  let description = [{
    Runs on bufferized IR. A `linalg.conv_2d_nhwc_fhwc`, or a `linalg.batch_matmul`
    whose right operand is one constant matrix, with dense f32 operands and a
    constant filter becomes a call to `kiln_conv2d_nhwc_f32_packed`; the filter is
    re-laid-out at compile time into 16-wide panels (a new constant global, which
    kiln-outline-weights then moves to the weights file), so nothing is repacked at
    run time. A `linalg.depthwise_conv_2d_nhwc_hwcm` with channel multiplier 1
    becomes a call to `kiln_dwconv2d_nhwc_f32`. The kernels accumulate into the
    output, as the linalg ops do. A `linalg.batch_matmul` of two activations
    (attention) becomes a call to `kiln_batch_matmul_f32`. Ops that do not match
    stay as they are and are lowered to loops.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["mlir::memref::MemRefDialect", "mlir::arith::ArithDialect",
                           "mlir::func::FuncDialect", "mlir::LLVM::LLVMDialect",
                           "mlir::linalg::LinalgDialect"];
}

def KilnGpuPackWeights : Pass<"kiln-gpu-pack-weights", "mlir::ModuleOp"> {
  let summary = "Store convolution filters with the output channel innermost, for GPU kernels";
  let description = [{
    Runs on bufferized IR before kiln-outline-weights. Each float
    `linalg.conv_2d_nhwc_fhwc` whose filter is a constant `memref.global` becomes a
    `linalg.conv_2d_nhwc_hwcf` over a new global holding the filter transposed to
    [KH, KW, C, F]: neighbouring GPU invocations compute neighbouring output
    channels, so their filter loads become contiguous instead of C elements apart.
  }];
  let dependentDialects = ["mlir::memref::MemRefDialect", "mlir::linalg::LinalgDialect"];
}

def KilnGpuOutlineDispatches : Pass<"kiln-gpu-outline-dispatches", "mlir::ModuleOp"> {
  let summary = "Turn every compute op of the entry function into a GPU kernel and its launch";
  let description = [{
    Runs on bufferized IR after kiln-outline-weights and kiln-plan-arena. Each
    linalg op (and memref.copy) of the entry function becomes a `gpu.func` in
    `gpu.module @kiln_kernels`, launched by a `gpu.launch_func` in its place:
    one invocation per point of the op's parallel iteration space, a loop over
    its reduction dimensions with the accumulators in registers. An op that
    only initialises the next op's output (a fill, a bias broadcast) folds into
    that op's accumulator, and elementwise ops that read an op's result at its
    own point (bias add, activation, residual add) run on it in registers
    before the one store (`fuse`). Contractions and convolutions with one
    output-column dimension (matmuls, batch matmuls, convolutions as implicit
    GEMMs: rows n*h*w, columns f, depth kh*kw*c; 1x1 stride-1 convolutions are
    rewritten as matmuls first) run as 16x16 output tiles per workgroup, the
    operands staged 16 deep through workgroup memory between barriers (`tile`; off by
    default: on lavapipe, a CPU, the barriers cost more than the staging saves).
    Otherwise an invocation of a kernel with a reduction computes 4 (or 2)
    neighbouring points along its longest parallel dimension that 4 (or 2)
    divides, other than the fastest, so operands
    that do not depend on that dimension are loaded once for all 4. Kernel
    arguments are root buffers (views of the weights or arena, or inputs and
    outputs); subviews and reshapes are cloned into the kernel. Anything else in
    the entry function is an error naming the op and its ONNX node.
  }];
  let options = [
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
    Option<"workgroupSize", "workgroup-size", "int64_t", /*default=*/"64",
           "Invocations per workgroup">,
    Option<"tile", "tile", "bool", /*default=*/"false",
           "Run contractions (matmuls, 1x1 convolutions) as 16x16 tiles staged through workgroup memory">,
    Option<"fuse", "fuse", "bool", /*default=*/"true",
           "Fold an op that initialises the next op's accumulator, and elementwise ops on an op's result, into its kernel">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::scf::SCFDialect", "mlir::memref::MemRefDialect",
                           "mlir::arith::ArithDialect", "mlir::affine::AffineDialect",
                           "mlir::linalg::LinalgDialect", "mlir::spirv::SPIRVDialect"];
}

def KilnLowerToAccel : Pass<"kiln-lower-to-accel", "mlir::ModuleOp"> {
  let summary = "Compile a quantised model into the accelerator's instruction stream (accel dialect)";
  let description = [{
    Runs on bufferized IR after kiln-quantize (and the compression passes). Every
    int8 convolution and matmul by a constant (`kiln.quant`, bits 8) becomes a
    tiled GEMM program for the configured PE array: im2col gathers of `cols`
    output pixels (`accel.load_win`, padding included), weight tiles of `rows`
    output channels quantised per channel to int8 (N:M sparse weights whose group
    size is the accelerator's `nm_m` keep their packed form and run in N:M mode),
    requantisation to the next layer's input scale in fixed point (bias, zero
    point and ReLU/clip folded), and stores. Max pooling runs as a gather and the
    pool unit; an NHWC -> NCHW transpose (the flatten before a classifier) as an
    identity GEMM. Weights stay resident in the buffers when they fit, else the
    loop order that moves fewer bytes is chosen. The model output is written as
    raw int32 accumulators with their per-channel scale. The entry function is
    replaced by `accel.layer`, `accel.data`, `accel.input` and `accel.output` ops;
    an op the accelerator cannot run is an error naming it.
  }];
  let options = [
    Option<"config", "config", "std::string", /*default=*/"\"\"",
           "Accelerator description (JSON, docs/ACCELERATOR.md); empty: the default">,
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["::kiln::accel::AccelDialect"];
}

#endif // KILN_PASSES_TD

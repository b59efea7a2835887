#!/usr/bin/env bash
# End-to-end check of kiln-runner linked with the fake model: outputs, stdout format, errors.
# usage: runner_test.sh WORK_DIR RUNNER FIXTURE [EMULATOR...]
# The emulator prefix (e.g. qemu-aarch64 -L /usr/aarch64-linux-gnu) runs cross-built binaries.
set -u
work=$1 runner=$2 fixture=$3
shift 3
emu=("$@")
rm -rf "$work" && mkdir -p "$work" || exit 1
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

"${emu[@]}" "$fixture" write "$work" || { echo "FAIL: fixture could not write inputs" >&2; exit 1; }

# Happy path: exact stdout, both .npy files with the right contents.
expected='y: shape [1, 10] dtype f32 values [0, 2.5, 5, 7.5, 10, 12.5, 15, 17.5, 20, 22.5] argmax [9]
stats/sum: shape [] dtype f32 values [112.5]'
out=$("${emu[@]}" "$runner" --weights "$work/model.kw" --input "x=$work/x.npy" \
      --output "$work/out" --repeat 3 2>"$work/stderr")
rc=$?
[ $rc -eq 0 ] || fail "happy path exited $rc: $(cat "$work/stderr")"
[ "$out" = "$expected" ] || fail "happy path stdout differs:
--- got
$out
--- expected
$expected"
"${emu[@]}" "$fixture" check "$work/out" || fail "output files wrong"

# Each bad invocation must exit 1 with one "error: ..." line naming the problem.
expect_error() { # NAME PATTERN ARGS...
  local name=$1 pattern=$2
  shift 2
  "${emu[@]}" "$runner" "$@" >"$work/stdout" 2>"$work/stderr"
  local rc=$?
  if [ $rc -ne 1 ]; then fail "$name: exit code $rc, expected 1"; return; fi
  grep -q "^error: .*$pattern" "$work/stderr" ||
    fail "$name: stderr lacks 'error: ...$pattern': $(cat "$work/stderr")"
}
W=(--weights "$work/model.kw")
O=(--output "$work/out2")
expect_error missing_input "input 'x' of the model was not given" "${W[@]}" "${O[@]}"
expect_error unknown_input "no input named 'nope' (inputs: 'x')" "${W[@]}" "${O[@]}" \
  --input "x=$work/x.npy" --input "nope=$work/x.npy"
expect_error duplicate_input "given twice" "${W[@]}" "${O[@]}" \
  --input "x=$work/x.npy" --input "x=$work/x.npy"
expect_error missing_weights_flag "missing --weights" "${O[@]}" --input "x=$work/x.npy"
expect_error missing_output_flag "missing --output" "${W[@]}" --input "x=$work/x.npy"
expect_error no_such_weights "I/O error: .*cannot open" --weights "$work/none.kw" "${O[@]}" \
  --input "x=$work/x.npy"
expect_error other_model_weights "bad weights: .*another model" \
  --weights "$work/other_model.kw" "${O[@]}" --input "x=$work/x.npy"
expect_error wrong_shape "has shape \[1, 3\], the model expects \[1, 10\]" "${W[@]}" "${O[@]}" \
  --input "x=$work/x_short.npy"
expect_error wrong_dtype "holds <i4, the model expects f32" "${W[@]}" "${O[@]}" \
  --input "x=$work/x_i32.npy"
expect_error not_npy "invalid argument: .*bad magic" "${W[@]}" "${O[@]}" \
  --input "x=$work/model.kw"
expect_error bad_repeat "--repeat expects" "${W[@]}" "${O[@]}" --input "x=$work/x.npy" \
  --repeat 0
expect_error unknown_flag "unknown argument '--frobnicate'" --frobnicate

"${emu[@]}" "$runner" --help >"$work/help" 2>&1 || fail "--help exited nonzero"
grep -q "input  x: f32 \[1, 10\]" "$work/help" || fail "--help does not list input x"

[ $failures -eq 0 ] && echo "runner test passed" || exit 1

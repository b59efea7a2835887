# Sourced by scripts/test-asan.sh and scripts/fuzz.sh: the sanitizer settings for Kiln's
# sanitizer builds. Every report aborts, so a `not kiln ...` lit line cannot pass on a
# sanitizer error, and leaks are checked with the suppressions in tests/sanitizer/.
_kiln_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:abort_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$_kiln_root/tests/sanitizer/lsan.supp:print_suppressions=0}
unset _kiln_root

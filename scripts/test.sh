#!/usr/bin/env bash
# Installs what is missing, then builds and runs every test three ways:
#   1. build/        gcc, -Werror: unit, command-line and example tests;
#   2. build-asan/   clang with AddressSanitizer + UndefinedBehaviorSanitizer
#                    (LeakSanitizer included): the same suite;
#   3. build-fuzz/   clang libFuzzer targets, each for CMICRO_FUZZ_SECONDS;
# and finally checks that an installed cmicro is found by pkg-config and by
# CMake's find_package.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/bootstrap.sh

jobs=$(nproc)
fuzz_seconds=${CMICRO_FUZZ_SECONDS:-20}
summary=()

run_suite() {
  local dir=$1; shift
  local label=$1; shift
  echo "== configure $dir ($label)"
  cmake -S . -B "$dir" -G Ninja -DCMICRO_WERROR=ON "$@" >/dev/null
  echo "== build $dir"
  cmake --build "$dir" -j "$jobs"
  echo "== test $dir"
  local log="$dir/ctest.log"
  if ctest --test-dir "$dir" --output-on-failure -j "$jobs" 2>&1 |
    tee "$log"; then
    summary+=("$label: $(grep -E 'tests passed' "$log" | tail -n 1)")
  else
    summary+=("$label: FAILED")
    return 1
  fi
}

status=0
run_suite build gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=gcc || status=1

# halt_on_error stops at the first report, so a leak or overflow fails the test.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
run_suite build-asan asan+ubsan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
  -DCMICRO_SANITIZE=address,undefined || status=1

run_suite build-fuzz fuzz -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang \
  -DCMICRO_FUZZ=ON -DCMICRO_BUILD_TESTS=OFF -DCMICRO_FUZZ_SECONDS="$fuzz_seconds" || status=1

echo "== install check"
if bash scripts/install-check.sh build; then
  summary+=("install: pkg-config and find_package consumers built and ran")
else
  summary+=("install: FAILED")
  status=1
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
# One closing line over every ctest run, in the plain form CI reads.
passed=0
failed=0
for dir in build build-asan build-fuzz; do
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of' "$dir/ctest.log" 2>/dev/null | tail -n 1 || true)
  [ -n "$line" ] || continue
  total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  bad=$(sed -E 's/.*tests passed, ([0-9]+) tests failed.*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
done
echo "$passed passed, $failed failed"
exit $status

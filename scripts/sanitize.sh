#!/usr/bin/env bash
# Builds and runs the tests under sanitizers:
#   AddressSanitizer + UndefinedBehaviorSanitizer: every ctest test, plus the engine and errors
#   acceptance groups with the instrumented binary;
#   ThreadSanitizer: the concurrent parts (the loop, processes, the thread pool and the modules
#   that use it, the event bus and its writer thread).
# Needs the packages scripts/setup.sh installs. Build trees: build-asan/, build-tsan/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
status=0

cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLOTH_SANITIZE=ON >/dev/null
ninja -C build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j2 || status=1
if [ -d ../shared/acceptance ]; then
  for group in engine errors; do
    bash ../shared/acceptance/run.sh -k "$group" build-asan/sloth-runner || status=1
  done
fi

cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLOTH_TSAN=ON >/dev/null
ninja -C build-tsan exec_test lua_test events_test
export TSAN_OPTIONS=halt_on_error=1
build-tsan/src/exec/exec_test || status=1
build-tsan/src/events/events_test || status=1
build-tsan/src/lua/lua_test --gtest_filter='Exec*:Http*:Crypto*:Fs*:Time*' || status=1
exit $status

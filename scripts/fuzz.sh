#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs them.
#   scripts/fuzz.sh              a fixed seed and a fixed number of runs per target: the same inputs
#                                every time, so CI is repeatable (what .ci/run uses)
#   scripts/fuzz.sh SECONDS      explore: a random seed for SECONDS per target
# Crashers are written to build-fuzz/crashes/; turn each into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then limit=(-max_total_time="$1"); else limit=(-seed=1 -runs=300000); fi
export CCACHE_BASEDIR="$PWD"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLOTH_FUZZ=ON >/dev/null
ninja -C build-fuzz fuzz_duration fuzz_values fuzz_cron fuzz_event
mkdir -p build-fuzz/crashes build-fuzz/corpus/duration build-fuzz/corpus/values build-fuzz/corpus/cron build-fuzz/corpus/event
printf '1h30m' >build-fuzz/corpus/duration/seed1
printf '500ms' >build-fuzz/corpus/duration/seed2
printf 'a:\n  b: [1, "2", 3.5, true, ~]\n' >build-fuzz/corpus/values/seed1
printf 'servers.0.port=8080' >build-fuzz/corpus/values/seed2
printf 'CRON_TZ=Europe/Lisbon */15 1-3 * JAN-MAR,oct mon-fri' >build-fuzz/corpus/cron/seed1
printf '0 0 29 2 *' >build-fuzz/corpus/cron/seed2
printf '@every 1h30m' >build-fuzz/corpus/cron/seed3
printf '{"id":"a","type":"deploy.started","ts":1,"source":"task:x","stack":"s","agent":"","run_id":"r","depth":0,"data":{"v":[1,"\\u00e9"]}}' >build-fuzz/corpus/event/seed1
for target in duration values cron event; do
  echo "fuzz: $target ${limit[*]}"
  build-fuzz/fuzz/fuzz_$target "${limit[@]}" -artifact_prefix=build-fuzz/crashes/ \
    -print_final_stats=0 build-fuzz/corpus/$target 2>&1 | tail -n 3
done

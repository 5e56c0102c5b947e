#!/usr/bin/env bash
# Runs every test: unit and end-to-end tests (ctest), the documentation examples, the runnable
# examples, and the acceptance groups this project passes. Needs a build (scripts/setup.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
ctest --test-dir build --output-on-failure -j2 || status=1
acceptance=../shared/acceptance/run.sh
if [ -x "$acceptance" ] || [ -f "$acceptance" ]; then
  for group in ${SLOTH_ACCEPTANCE_GROUPS:-engine errors goroutines state hostconfig events remote distributed}; do
    bash "$acceptance" -k "$group" build/sloth-runner || status=1
  done
else
  echo "test: ../shared/acceptance not found; skipping the acceptance suite" >&2
fi
exit $status

#!/usr/bin/env bash
# Runs one example or documentation workflow the way a user would, in a fresh temporary
# directory with its own data dir, and fails unless it succeeds.
#   run_workflow_file.sh BINARY FILE
# Lines in FILE that start with "-- test:" adjust the run:
#   -- test: args ARGS...        extra arguments for `sloth-runner run`
#   -- test: http-server         start a local HTTP server (python3) on a free port serving a
#                                folder with hello.txt and data.json; passes --set base_url=URL
#   -- test: expect-exit N       the exit code the run must end with (default 0)
#   -- test: expect-json FILTER = VALUE
#                                runs with -o json; `jq -r FILTER` on the document must print VALUE
set -uo pipefail
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1") file=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
work=$(mktemp -d /tmp/sloth-example.XXXXXX)
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
server=""
args=() expect=0 checks=()
while IFS= read -r line; do
  case "$line" in
    "-- test: args "*) read -r -a more <<<"${line#-- test: args }"; args+=("${more[@]}") ;;
    "-- test: expect-exit "*) expect=${line#-- test: expect-exit } ;;
    "-- test: expect-json "*) checks+=("${line#-- test: expect-json }") ;;
    "-- test: http-server")
      mkdir -p "$work/www"
      echo "hello from http" >"$work/www/hello.txt"
      echo '{"name": "sloth", "items": [1, 2, 3]}' >"$work/www/data.json"
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
      python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
      server=$!
      for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/hello.txt" >/dev/null 2>&1 && break; sleep 0.1; done
      args+=(--set "base_url=http://127.0.0.1:$port") ;;
  esac
done <"$file"
[ ${#checks[@]} -gt 0 ] && args+=(-o json)
cd "$work" && mkdir -p home
SLOTH_RUNNER_HOME=$work/home NO_COLOR=1 timeout 120 "$bin" run -f "$file" "${args[@]}" >"$work/.run-output"
code=$?
cat "$work/.run-output"
if [ "$code" != "$expect" ]; then
  echo "run_workflow_file: $file exited $code, expected $expect" >&2
  exit 1
fi
for check in "${checks[@]}"; do
  filter=${check%% = *} want=${check#* = }
  got=$(jq -r "$filter" "$work/.run-output" 2>&1)
  if [ "$got" != "$want" ]; then
    echo "run_workflow_file: $file: jq '$filter' gave '$got', expected '$want'" >&2
    exit 1
  fi
done

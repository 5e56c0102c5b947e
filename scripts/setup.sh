#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and builds build/sloth-runner.
#   scripts/setup.sh            install packages (when root or with sudo), configure, build
#   SLOTH_BUILD_TYPE=Debug scripts/setup.sh
#   SLOTH_CMAKE_ARGS="-DSLOTH_SANITIZE=ON" scripts/setup.sh   (extra CMake flags)
set -euo pipefail
cd "$(dirname "$0")/.."

# Build tools and libraries (Debian package names), plus what the tests and benchmarks use.
packages=(
  g++ cmake ninja-build ccache pkg-config git
  liblua5.4-dev libsqlite3-dev sqlite3 nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcurl4-openssl-dev libssl-dev libsodium-dev libkainjow-mustache-dev libcrypt-dev libssh-dev
  libgtest-dev libgmock-dev libbenchmark-dev libhowardhinnant-date-dev
  jq python3 curl procps openssh-server openssh-client
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# ccache hits across fresh clones need the build directory inside the repo and this base dir.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${SLOTH_BUILD_TYPE:-RelWithDebInfo}" ${SLOTH_CMAKE_ARGS:-}
ninja -C build
echo "setup: built $(pwd)/build/sloth-runner"

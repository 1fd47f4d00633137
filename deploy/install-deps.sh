#!/usr/bin/env bash
# Installs with apt-get exactly what the build, the tests and the demo need. Quick and quiet
# when everything is already there. Works as root, or through sudo for an ordinary user.
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config      # compiler and build
    libcurl4-openssl-dev libuv1-dev libcjson-dev libpq-dev libsodium-dev   # the engine's libraries
    libcmocka-dev libmicrohttpd-dev       # unit tests, keapsim
    postgresql postgresql-client          # throwaway clusters for the demo and tests
    faketime jq curl procps bc            # day-boundary tests, test scripts
    time                                  # GNU time: tests/bench/bench_e2e.sh, robust_pages.sh
    clang libclang-rt-14-dev              # libFuzzer: tests/fuzz (KEAPSYNC_FUZZ=ON)
    valgrind                              # memcheck of an end-to-end sync (tests/fuzz/README.md)
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

#!/usr/bin/env bash
# Installs with apt-get exactly what the build, the tests and the demo need. Quick and quiet
# when everything is already there. Works as root, or through sudo for an ordinary user.
set -euo pipefail

pkgs=(
    build-essential cmake pkg-config      # compiler and build
    libcurl4-openssl-dev libuv1-dev libcjson-dev libpq-dev libsodium-dev libmicrohttpd-dev  # the engine's libraries
    libcmocka-dev                         # unit tests
    postgresql postgresql-client          # throwaway clusters for the demo and tests
    faketime jq curl procps bc            # day-boundary tests, test scripts
    time                                  # GNU time: tests/bench/bench_e2e.sh, robust_pages.sh
    clang libclang-rt-14-dev              # libFuzzer: tests/fuzz (KEAPSYNC_FUZZ=ON)
    valgrind                              # memcheck of an end-to-end sync (tests/fuzz/README.md)
)
# With --tests (deploy/test.sh): what only the tests of deploy/ need.
tests=0
[ "${1:-}" = "--tests" ] && tests=1
if [ "$tests" = 1 ]; then
    pkgs+=(
        systemd shellcheck                # systemd-analyze verify: tests/integration/systemd_units.sh
        nodejs                            # the Kubernetes schema check: tests/integration/k8s_manifests.sh
        chromium                          # renders keapsync report: tests/integration/ops_report.sh
        openssl                           # throwaway certificates: tests/integration/tls_verify.sh
    )
fi

# deploy/k8s/validate's npm packages (kubernetes-models, yaml), from its lock file, so that
# the tests need no network. Quiet when they are there.
npm_deps() {
    local dir
    dir="$(cd "$(dirname "$0")" && pwd)/k8s/validate"
    [ -d "$dir/node_modules/kubernetes-models" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && return 0
    command -v npm >/dev/null || {
        echo "install-deps: installing npm" >&2
        "${sudo[@]}" apt-get install -y -qq --no-install-recommends npm >/dev/null
    }
    echo "install-deps: npm ci in deploy/k8s/validate" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    if [ ${#sudo[@]} -gt 0 ] && ! command -v sudo >/dev/null; then
        echo "error: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$tests" = 1 ]; then
    npm_deps
fi

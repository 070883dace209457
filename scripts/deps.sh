#!/usr/bin/env bash
# deps.sh -- install the Debian packages grace needs, only those missing.
#
#   scripts/deps.sh [build|test|bench]...      (default: build)
#
#   build  compiler and build tools: gcc, make, cmake, pkg-config; libssl-dev,
#          libyaml-dev, liburing-dev (the io_uring backend); libcurl4-openssl-dev
#          and libcjson-dev (gracectl)
#   test   build + clang and lld (warning check, ASan, libFuzzer) + python3-pytest,
#          python3-pytest-xdist (two tests at a time), python3-requests
#          (black-box tests) + curl and wrk (real clients across restarts) +
#          valgrind (make test-valgrind) + systemd (systemd-socket-activate)
#          and util-linux (unshare) for the supervisor tests
#   bench  build + wrk (load generator) + nginx-light (the peer we compare
#          with) + python3-matplotlib (plots); linux-perf if it can be had
#
# Each package is checked with dpkg-query; apt-get update and apt-get install
# run only when something is missing, so a repeat run is instant and needs no
# network. Runs apt-get as root, or through sudo when not root.
#
# The Python packages are Debian's, for /usr/bin/python3: the python3 first on
# PATH may be another build that does not see them, so the Makefile calls
# /usr/bin/python3 by its full path.
set -euo pipefail

usage() {
    sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
    exit "${1:-2}"
}

build_pkgs=(build-essential gcc make cmake pkg-config libssl-dev openssl libyaml-dev liburing-dev
            libcurl4-openssl-dev libcjson-dev)
test_pkgs=("${build_pkgs[@]}" clang lld python3-pytest python3-pytest-xdist python3-requests curl wrk
           chromium libclang-rt-14-dev valgrind systemd util-linux)
bench_pkgs=("${build_pkgs[@]}" wrk nginx-light python3-matplotlib)
bench_optional=(linux-perf) # perf stat for the benchmark, when the kernel allows

want=()
optional=()
[ $# -gt 0 ] || set -- build
for set_name in "$@"; do
    case "$set_name" in
    build) want+=("${build_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}") ;;
    bench)
        want+=("${bench_pkgs[@]}")
        optional+=("${bench_optional[@]}")
        ;;
    -h | --help) usage 0 ;;
    *)
        echo "deps.sh: unknown set '$set_name'" >&2
        usage
        ;;
    esac
done

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

# Missing packages of a list, each once, in order.
missing_of() {
    local p seen=" "
    for p in "$@"; do
        case "$seen" in *" $p "*) continue ;; esac
        seen+="$p "
        is_installed "$p" || printf '%s\n' "$p"
    done
}

mapfile -t missing < <(missing_of "${want[@]}")
mapfile -t missing_opt < <(missing_of "${optional[@]+"${optional[@]}"}")

if [ ${#missing[@]} -eq 0 ]; then
    # Only optional packages are missing: go to the network only for those
    # apt already knows, so a machine that cannot have them (no candidate)
    # does not pay an apt-get update on every run.
    known=()
    for p in "${missing_opt[@]+"${missing_opt[@]}"}"; do
        if apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]'; then
            known+=("$p")
        else
            echo "deps.sh: optional package $p not available; going on without it" >&2
        fi
    done
    [ ${#known[@]} -gt 0 ] || exit 0
    missing_opt=("${known[@]}")
fi

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "deps.sh: not a Debian-like system; please install: ${missing[*]} ${missing_opt[*]}" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null; then
    as_root=(sudo)
else
    echo "deps.sh: need root (or sudo) to install: ${missing[*]} ${missing_opt[*]}" >&2
    exit 1
fi

apt_install() {
    "${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@"
}

# Installing a package must not start its service (nginx-light would start a
# system nginx on port 80). Docker images already carry a policy-rc.d that
# says so; elsewhere put one in place for the duration of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    "${as_root[@]+"${as_root[@]}"}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    trap '"${as_root[@]+"${as_root[@]}"}" rm -f "$policy"' EXIT
fi

echo "deps.sh: installing ${missing[*]} ${missing_opt[*]}" >&2
"${as_root[@]+"${as_root[@]}"}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi
for p in "${missing_opt[@]+"${missing_opt[@]}"}"; do
    apt_install "$p" || echo "deps.sh: optional package $p not installed; going on" >&2
done

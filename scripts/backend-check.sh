#!/usr/bin/env bash
# Can grace run on this event-loop backend here?
#
#   scripts/backend-check.sh BUILD_DIR BACKEND
#
# Starts BUILD_DIR/examples/hello with GRACE_BACKEND=BACKEND on a free
# loopback port, reads the line grace logs when its loops start, stops it.
# Exit 0 when the loops run on BACKEND; else prints grace's reason (e.g. a
# seccomp profile that forbids io_uring) and exits 1. make test runs it
# before each backend's black-box suite, so a machine without io_uring
# fails with one clear line instead of every test failing.
set -u
build=${1:?usage: backend-check.sh BUILD_DIR BACKEND}
backend=${2:?usage: backend-check.sh BUILD_DIR BACKEND}
hello=$build/examples/hello
[ -x "$hello" ] || { echo "backend-check: $hello is not built" >&2; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
GRACE_BACKEND=$backend "$hello" --port 0 --host 127.0.0.1 >"$log" 2>&1 &
pid=$!
line=""
for _ in $(seq 100); do # up to 10 s (an ASan build starts slowly)
    line=$(grep -m1 -E "event loops on|GRACE_BACKEND=" "$log")
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ -n "$line" ] || line=$(tail -n 3 "$log")
case $line in
*"event loops on $backend"*) exit 0 ;;
esac
echo "backend-check: grace cannot run on $backend here: ${line#*: }" >&2
exit 1

#!/usr/bin/env bash
# run.sh -- run the libFuzzer harnesses for a while (`make fuzz`, `make test`).
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [JOBS] [NAME...]
#
# Each harness BUILD_DIR/tests/fuzz/fuzz_NAME (all of them when no NAME is
# given) runs for SECONDS, starting from the committed seeds in
# tests/fuzz/corpus/NAME, which it only reads, and from BUILD_DIR/corpus/NAME,
# a scratch directory that receives every input it finds new (kept between
# runs, so the next run goes on from there; never the committed corpus).
# Crashes, failed invariants, leaks, timeouts and out-of-memory inputs are
# written to BUILD_DIR/crashes/NAME-<kind>-<sha1>; libFuzzer's output goes to
# BUILD_DIR/logs/NAME.log. JOBS harnesses (default 2) run at once, one core
# each. One summary line per harness; exit status 1 if any harness failed,
# with the end of its log.
set -uo pipefail

usage() {
    sed -n '4p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 2 ] || usage
build=$1
secs=$2
jobs=${3:-2}
shift $(($# >= 3 ? 3 : 2))
case "$secs$jobs" in *[!0-9]*) usage ;; esac

here=$(cd "$(dirname "$0")" && pwd)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in "$here"/fuzz_*.c; do
        n=${f##*/fuzz_}
        names+=("${n%.c}")
    done
fi

# Per harness: -max_len and dictionary (the file comments give the input
# layouts; these lengths cover every seed with room to grow).
opts_of() {
    case "$1" in
    parse) echo "-max_len=4096 -dict=$here/http.dict" ;;
    chunked) echo "-max_len=1024 -dict=$here/http.dict" ;;
    router) echo "-max_len=1024 -dict=$here/router.dict" ;;
    inherit) echo "-max_len=1024 -dict=$here/inherit.dict" ;;
    *) echo "-max_len=512" ;;
    esac
}

mkdir -p "$build/crashes" "$build/logs"
for n in "${names[@]}"; do
    exe="$build/tests/fuzz/fuzz_$n"
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe not built" >&2
        exit 2
    fi
    mkdir -p "$build/corpus/$n"
    rm -f "$build/logs/$n.log" "$build/logs/$n.rc"
done

run_one() {
    local n=$1
    # shellcheck disable=SC2046 # word splitting of the options is wanted
    "$build/tests/fuzz/fuzz_$n" $(opts_of "$n") -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/crashes/$n-" \
        "$build/corpus/$n" "$here/corpus/$n" >"$build/logs/$n.log" 2>&1
    echo $? >"$build/logs/$n.rc"
}

start=$(date +%s)
for n in "${names[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n
    done
    run_one "$n" &
done
wait

failed=0
for n in "${names[@]}"; do
    log="$build/logs/$n.log"
    rc=$(cat "$build/logs/$n.rc" 2>/dev/null || echo "?")
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    corpus=$(find "$build/corpus/$n" -type f | wc -l)
    if [ "$rc" = 0 ]; then
        printf 'fuzz_%-8s ok      %10s runs  cov %5s  scratch corpus %4s files\n' \
            "$n" "${runs:-?}" "${cov:-?}" "$corpus"
    else
        failed=1
        printf 'fuzz_%-8s FAILED  exit %s; artifacts: %s\n' "$n" "$rc" \
            "$(grep -o "$build/crashes/$n-[a-z-]*-[0-9a-f]\{40\}" "$log" | sort -u | tr '\n' ' ')"
        sed -n '/==[0-9]*==ERROR\|invariant failed\|SUMMARY\|Test unit written/p' "$log" | head -20 |
            sed 's/^/    /'
        echo "    (whole log: $log)"
    fi
done
echo "run.sh: ${#names[@]} harnesses, ${secs} s each, $jobs at a time, $(($(date +%s) - start)) s in all"
if [ $failed -ne 0 ]; then
    echo "run.sh: replay a crash with $build/tests/fuzz/fuzz_NAME FILE; then make it a unit test" \
        "(tests/fuzz/README.md)" >&2
fi
exit $failed

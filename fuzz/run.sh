#!/usr/bin/env bash
# Run every fuzz target for a bounded time; exit non-zero if any finds a crash.
#
# Needs the NIGHTLY toolchain and cargo-fuzz (libFuzzer instrumentation is
# nightly-only):
#   rustup toolchain install nightly
#   cargo install cargo-fuzz --locked
# The stable toolchain can stay the default; this uses `cargo +nightly`.
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 60)
#
# Builds into fuzz/target (never the root target/). New corpus entries go to
# fuzz/corpus/<target>/ (git-ignored; the seed-* files are tracked), crash
# inputs to fuzz/artifacts/<target>/, full logs to fuzz/logs/<target>.log.
# Reproduce a crash: cargo +nightly fuzz run --fuzz-dir fuzz <target> <file>
# Shrink it:         cargo +nightly fuzz tmin --fuzz-dir fuzz <target> <file>
set -uo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number; got '$secs')" >&2
    exit 2
fi

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
targets=(decision_id config space_file)

if ! command -v rustup >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
    echo "error: rustup and cargo are needed (https://rustup.rs), with the nightly toolchain and cargo-fuzz" >&2
    exit 2
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "error: the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

cd "$fuzz_dir/.." || exit 2
mkdir -p "$fuzz_dir/logs"

echo "building fuzz targets ($(rustup run nightly rustc --version))"
build_start=$SECONDS
if ! cargo +nightly fuzz build --fuzz-dir "$fuzz_dir"; then
    echo "error: building the fuzz targets failed" >&2
    exit 2
fi
echo "built in $((SECONDS - build_start)) s"

failed=0
summary=()
for t in "${targets[@]}"; do
    log="$fuzz_dir/logs/$t.log"
    echo "fuzzing $t for ${secs} s (log: $log)"
    start=$SECONDS
    # -timeout: one input running this long counts as a failure (a hang).
    cargo +nightly fuzz run --fuzz-dir "$fuzz_dir" "$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    runs="$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $2}')"
    [[ -z "$runs" ]] && runs="$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$log" | tail -1 | awk '{print $2}')"
    cov="$(grep -oE '^#[0-9]+[[:space:]]+DONE[[:space:]]+cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[^ ]+' "$log" | tail -1 | sed -E 's/^#[0-9]+[[:space:]]+DONE[[:space:]]+//')"
    if [[ $rc -eq 0 ]]; then
        status=ok
    else
        status="FAILED (exit $rc)"
        failed=1
        artifact="$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')"
        [[ -n "$artifact" ]] && status="$status, input: $artifact"
        echo "---- $t: last lines of $log ----" >&2
        tail -n 40 "$log" >&2
    fi
    summary+=("$(printf '%-12s runs=%s in %s s%s: %s' "$t" "${runs:-?}" "$took" "${cov:+ ($cov)}" "$status")")
done

echo
echo "fuzz summary (${secs} s per target):"
printf '  %s\n' "${summary[@]}"
if [[ $failed -ne 0 ]]; then
    echo "FAIL: at least one target found a crash, hang or out-of-memory input" >&2
    exit 1
fi
echo "OK: no crashes"

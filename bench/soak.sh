#!/usr/bin/env bash
# Soak: the service under steady load for a long time, on a private Redis.
#   bash bench/soak.sh [SECONDS] [RATE]      # default 600 s at 10,000 decisions/s
# Mixed load (Choose, then Reward each decision 100 ms later), open loop.
# Samples the server's resident memory every 10 s and reports the growth from
# the first sample after warm-up (60 s) to the last, and the load tester's
# error counts. Writes bench/results/soak.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
RATE=${2:-10000}
cargo build --release -q --workspace
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
gport=$(free_port)
./target/release/posterior serve --listen "127.0.0.1:$gport" --redis "redis://127.0.0.1:$rport/0" >"$dir/server.log" 2>&1 &
spid=$!
pids+=($spid)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null && break; sleep 0.05; done
rss() { awk '/VmRSS/{print $2}' "/proc/$spid/status"; }
./target/release/loadtest --target "http://127.0.0.1:$gport" --rpc mixed --mode open --rate "$RATE" \
  --concurrency 256 --requests $((SECS * RATE + RATE)) --duration "$SECS" --no-floor --json >"$dir/load.json" &
lpid=$!
samples=()
t=0
while kill -0 "$lpid" 2>/dev/null; do
  sleep 10; t=$((t + 10))
  kill -0 "$spid" 2>/dev/null || { echo "server died" >&2; exit 1; }
  samples+=("$t $(rss)")
done
wait "$lpid"
mkdir -p bench/results
python3 - "$dir/load.json" "$SECS" "$RATE" "${samples[@]}" <<'PY' | tee bench/results/soak.md
import json, sys
load = json.load(open(sys.argv[1]))
secs, rate = sys.argv[2], sys.argv[3]
samples = [tuple(map(int, s.split())) for s in sys.argv[4:]]
warm = [s for s in samples if s[0] >= 60] or samples
first, last, peak = warm[0][1], warm[-1][1], max(r for _, r in warm)
print(f"# Soak: {secs} s of mixed load at {rate} decisions/s (Redis store)\n")
print("| t (s) | server RSS (KiB) |\n| --- | --- |")
for t, r in samples:
    print(f"| {t} | {r} |")
print(f"\nRSS after warm-up {first} KiB, at the end {last} KiB, peak {peak} KiB: growth {100 * (last - first) / first:+.1f}% (target < 10%).\n")
errors = {}
rows = [r for r in load.get("rows", []) if "floor" not in r.get("rpc", "")]
for row in rows:
    for code, n in (row.get("errors") or {}).items():
        errors[code] = errors.get(code, 0) + n
sent = sum(row.get("requests", 0) for row in rows)
print(f"Requests: {sent}; errors by code: {errors or 'none'}; duplicates: {load.get('duplicates')}.")
q = load.get("quality") or {}
if q:
    print(f"Decisions {q.get('decisions')}, regret ratio to the fresh-posterior reference {q.get('regret_ratio', float('nan')):.2f}.")
PY

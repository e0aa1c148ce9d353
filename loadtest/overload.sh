#!/usr/bin/env bash
# Overload: offered 3x its capacity, does the server keep the latency of the
# requests it accepts bounded, by shedding the rest with RESOURCE_EXHAUSTED?
#
#   bash loadtest/overload.sh            # fails (exit 1) if the bound breaks
#   LIMIT=4 ARMS=2000 SECS=15 bash loadtest/overload.sh
#
# Setup: a release server on the memory store, pinned to core 0 (taskset),
# with server.max_concurrent_requests = LIMIT; the load tester pinned to
# core 1. The request is GetExperiment over ARMS arms: P(best) by Monte Carlo
# is tens of milliseconds of server CPU, while refusing a request costs tens
# of microseconds, so shedding can actually protect the admitted work, and one
# client core can offer 3x what one server core serves. (Choose, at ~40 us
# per call, costs about what HTTP/2 framing of a refusal costs: on these two
# shared cores the client cannot even offer 3x Choose capacity.
# docs/reliability.md says what that means.)
#
# 1. capacity: closed loop with LIMIT callers (every request admitted)
#    gives throughput C and the accepted p99 at capacity, P.
# 2. overload: open loop at 3C, client in-flight cap far above LIMIT, so
#    only the server's limit can hold requests back.
# 3. control: the same 3C against a server whose limit is effectively off
#    (1,000,000). This shows the check can fail: without shedding, open-loop
#    arrivals above capacity queue without bound and the latency grows with
#    the run's length.
#
# Bound, and why: with at most LIMIT requests in the server, an admitted
# request waits behind at most LIMIT-1 others, the same worst case as in the
# closed loop of step 1 (Little's law: latency ~ LIMIT / C in both). What
# overload adds is the CPU spent answering the shed requests, which lowers
# the server's effective rate; at 3x with cheap rejections that should cost
# well under half of it. So the accepted p99 under overload must stay within
# 3x of P (2x for the slower rate plus margin for the scheduler on a shared
# machine), and the accepted rate must stay at least half of C (goodput does
# not collapse). Any error other than RESOURCE_EXHAUSTED fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=${LIMIT:-4}
ARMS=${ARMS:-2000}
SECS=${SECS:-15}
cargo build --release -q --workspace
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
server_pid=""
stop_server() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; server_pid=""; }
trap 'stop_server; rm -rf "$dir"' EXIT
rates=$(python3 -c "print(','.join(f'{0.01 + 0.1 * i / $ARMS:.5f}' for i in range($ARMS)))")

start_server() { # $1 = max_concurrent_requests
  port=$(free_port)
  cat >"$dir/posterior.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
max_concurrent_requests = $1
[store]
backend = "memory"
EOF
  POSTERIOR_LOG=warn taskset -c 0 ./target/release/posterior serve --config "$dir/posterior.toml" >"$dir/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.05; done
  echo "server did not start" >&2; cat "$dir/server.log" >&2; exit 2
}
load() { # args for the load tester; prints its JSON
  taskset -c 1 ./target/release/loadtest --target "http://127.0.0.1:$port" --rpc get --no-floor \
    --rates "$rates" --duration "$SECS" --requests 100000000 --json "$@"
}

start_server "$LIMIT"
load --mode closed --concurrency "$LIMIT" >"$dir/capacity.json"
cap=$(python3 -c "import json; r=json.load(open('$dir/capacity.json'))['rows'][0]; print(r['accepted_per_s'])")
rate=$(python3 -c "print(round(3 * $cap))")
load --mode open --rate "$rate" --concurrency 100000 >"$dir/overload.json"
stop_server
start_server 1000000
load --mode open --rate "$rate" --concurrency 100000 >"$dir/control.json"
stop_server

python3 - "$dir" "$LIMIT" "$ARMS" "$SECS" <<'EOF'
import json, sys
d, limit, arms, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
row = lambda f: json.load(open(f"{d}/{f}.json"))["rows"][0]
cap, over, ctl = row("capacity"), row("overload"), row("control")
C, P = cap["accepted_per_s"], cap["accepted_latency_ms"]["p99"]
print(f"GetExperiment over {arms} arms, server on 1 core, limit {limit} in flight, {secs} s per phase")
print(f"{'phase':<34}{'offered/s':>10}{'accepted/s':>11}{'shed':>9}{'other err':>10}{'ok p50 ms':>10}{'ok p99 ms':>10}{'p99/P':>7}")
fails = []
for name, r, offered in [("capacity (closed, LIMIT callers)", cap, None),
                         ("3x capacity, shedding on", over, 3 * C),
                         ("3x capacity, limit off (control)", ctl, 3 * C)]:
    shed = r["errors"].get("ResourceExhausted", 0)
    other = sum(v for k, v in r["errors"].items() if k != "ResourceExhausted")
    lat = r["accepted_latency_ms"]
    print(f"{name:<34}{(f'{offered:.0f}' if offered else '-'):>10}{r['accepted_per_s']:>11.0f}{shed:>9}{other:>10}"
          f"{lat['p50']:>10.2f}{lat['p99']:>10.2f}{lat['p99'] / P:>7.1f}")
    if r is cap and (shed or other):
        fails.append(f"capacity phase saw errors {r['errors']}")
    if r is over and other:
        fails.append(f"overload phase: errors other than RESOURCE_EXHAUSTED: {r['errors']}")
op99 = over["accepted_latency_ms"]["p99"]
if op99 > 3 * P:
    fails.append(f"accepted p99 at 3x = {op99:.2f} ms > 3 x {P:.2f} ms")
if over["accepted_per_s"] < 0.5 * C:
    fails.append(f"goodput at 3x = {over['accepted_per_s']:.0f}/s < half of capacity {C:.0f}/s")
if over["errors"].get("ResourceExhausted", 0) == 0:
    fails.append("nothing was shed at 3x capacity: the run did not overload the server")
print("control p99 / shedding p99 = %.1f" % (ctl["accepted_latency_ms"]["p99"] / max(op99, 1e-9)))
for f in fails:
    print("FAIL:", f)
print("PASS" if not fails else "FAILED")
sys.exit(1 if fails else 0)
EOF

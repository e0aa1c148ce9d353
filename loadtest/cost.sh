#!/usr/bin/env bash
# Instructions per request, server side: Choose against the empty-RPC floor
# (grpc.health.v1.Health/Check), counted by valgrind's callgrind, so the
# figure does not depend on what else the machine is running.
#
#   loadtest/cost.sh redis|memory|embedded [N]        # N calls per phase (default 5000)
#   SERVER=path/to/posterior loadtest/cost.sh redis   # another build (before/after)
#   CLIENT=1 loadtest/cost.sh redis                   # also count the client side
#
# Phases, against one server under callgrind: warm-up (create the 10-arm
# experiment `loadtest`, 500 calls of each RPC), then counters zeroed,
# idle for IDLE seconds (background tasks alone), N Health/Check, N Choose;
# each phase dumped on its own. Every phase's instructions are reported per
# call, and per second for the idle phase (so its share in the others can be
# subtracted: it is small).
#
# The snapshot bound is raised to a minute (POSTERIOR_CHOOSE_MAX_STALENESS_MS,
# unless set), so few refreshes fall into a phase: under valgrind the server
# runs ~50x slower, and a refresh per 50 ms of *wall* time would be charged
# to ~50x fewer calls than at full speed. A refresh that does fall into a
# phase (the background one at half the bound) is taken out of its per-call
# figure and reported on its own (loadtest/callgrind_calls.py): at full
# speed its cost per second is the refresh rate (20/s per experiment in
# steady Choose traffic at the 100 ms default bound) times that.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:?usage: loadtest/cost.sh redis|memory|embedded [N]}
n=${2:-5000}
idle=${IDLE:-5}
server=${SERVER:-./target/release/posterior}
client=./target/release/rpc_cost
export POSTERIOR_CHOOSE_MAX_STALENESS_MS=${POSTERIOR_CHOOSE_MAX_STALENESS_MS:-60000}
source loadtest/lib.sh
start_store "$store"
gport=$(free_port)
target="http://127.0.0.1:$gport"
valgrind --tool=callgrind --callgrind-out-file="$dir/server.%p" \
  "$server" serve --listen "127.0.0.1:$gport" "${server_args[@]}" >"$dir/server.log" 2>&1 &
vpid=$!
pids+=($vpid)
wait_port "$gport" 60
"$server" experiment create loadtest --arms a0,a1,a2,a3,a4,a5,a6,a7,a8,a9 --server "$target" --timeout 120 >/dev/null
"$client" --target "$target" --rpc choose --requests 500 >/dev/null
"$client" --target "$target" --rpc health --requests 500 >/dev/null
# Counters are per dump: -z zeroes, -d dumps (and zeroes).
callgrind_control -z "$vpid" >/dev/null 2>&1
sleep "$idle"
callgrind_control -d idle "$vpid" >/dev/null 2>&1
run_client() {
  if [ -n "${CLIENT:-}" ]; then
    valgrind --tool=callgrind --callgrind-out-file="$dir/client.$1" "$client" --target "$target" --rpc "$1" --requests "$n" 2>/dev/null
  else
    "$client" --target "$target" --rpc "$1" --requests "$n"
  fi
}
run_client health
callgrind_control -d health "$vpid" >/dev/null 2>&1
run_client choose
callgrind_control -d choose "$vpid" >/dev/null 2>&1
calls() { python3 loadtest/callgrind_calls.py "$@"; }
file_of() { grep -l "^desc: Trigger: .*$1" "$dir"/server.*.* | head -1; }
refresh_fns=("Snapshot::warm" "snapshot::Inner::refresh::{{closure}}")
echo "server instructions per call (callgrind; N = $n per phase):"
for phase in health choose; do
  # total, then warm (calls = refreshes, inclusive) and the refresh's async part
  read -r total warms warm_ir refresh_ir < <(calls "$(file_of "$phase")" "${refresh_fns[@]}" |
    awk '/^total/ { t = $2 } /warm/ { c = $3; w = $5 } /refresh/ { r = $5 } END { print t, c, w, r }')
  per_call=$(( (total - warm_ir - refresh_ir) / n ))
  line="  $phase: $per_call per call"
  if [ "$warms" -gt 0 ]; then
    line+=" (without the $warms snapshot refresh(es) in the phase, $(( (warm_ir + refresh_ir) / warms )) instructions each)"
  fi
  echo "$line"
  eval "${phase}_per_call=$per_call"
done
echo "  idle: $(( $(calls "$(file_of idle)" | awk '/^total/ { print $2 }') / idle )) per second"
printf '  Choose/Health: %s\n' "$(python3 -c "print(f'{$choose_per_call / $health_per_call:.3f}')")"
if [ -n "${CLIENT:-}" ]; then
  ch=$(calls "$dir/client.health" | awk '/^total/ { print $2 }')
  cc=$(calls "$dir/client.choose" | awk '/^total/ { print $2 }')
  printf 'client instructions (rpc_cost, whole process): Health/Check %s per call; Choose %s per call\n' \
    "$(( ch / n ))" "$(( cc / n ))"
fi
if [ -n "${KEEP:-}" ]; then
  mkdir -p "$KEEP" && cp "$dir"/server.* "$dir"/client.* "$KEEP"/ 2>/dev/null || true
  echo "callgrind files in $KEEP"
fi

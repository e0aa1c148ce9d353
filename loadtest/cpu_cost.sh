#!/usr/bin/env bash
# CPU time per request at full speed: Choose against the empty-RPC floor
# (grpc.health.v1.Health/Check), server and client processes together, from
# /proc (server) and getrusage (client). Unlike req/s, CPU per request barely
# depends on how much of the machine other processes take, and it includes
# the server's background work (snapshot refreshes) at its real rate.
#
#   loadtest/cpu_cost.sh redis|memory|embedded [N] [ROUNDS]   # default 100000 calls, 3 rounds
#   SERVER=path/to/posterior loadtest/cpu_cost.sh redis   # another build
#
# Each round: N Health/Check, then N Choose (rpc_cost: closed loop, 64
# callers, 4 connections, the loadtest's shape). Prints per round the µs of
# CPU per call of each, and Health ÷ Choose: the throughput ratio the two
# would have on an equal share of the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:?usage: loadtest/cpu_cost.sh redis|memory|embedded [N] [ROUNDS]}
n=${2:-100000}
rounds=${3:-3}
server=${SERVER:-./target/release/posterior}
client=./target/release/rpc_cost
source loadtest/lib.sh
start_store "$store"
gport=$(free_port)
target="http://127.0.0.1:$gport"
"$server" serve --listen "127.0.0.1:$gport" "${server_args[@]}" >"$dir/server.log" 2>&1 &
spid=$!
pids+=($spid)
wait_port "$gport"
"$server" experiment create loadtest --arms a0,a1,a2,a3,a4,a5,a6,a7,a8,a9 --server "$target" >/dev/null
"$client" --target "$target" --rpc choose --requests 2000 >/dev/null
hz=$(getconf CLK_TCK)
# utime + stime of a process, in clock ticks (fields 14 and 15 of stat).
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# µs of CPU per call: server ticks over the phase plus the client's own.
phase() {
  local before after
  before=$(ticks "$spid")
  /usr/bin/time -f '%U %S' -o "$dir/time" "$client" --target "$target" --rpc "$1" --requests "$n" >/dev/null
  after=$(ticks "$spid")
  python3 -c "
u, s = map(float, open('$dir/time').read().split()[-2:])
server = ($after - $before) / $hz
print(f'{(server + u + s) / $n * 1e6:.2f} {server / $n * 1e6:.2f} {(u + s) / $n * 1e6:.2f}')"
}
echo "round  load  Health µs/call (server+client)  Choose µs/call (server+client)  Health/Choose"
for r in $(seq "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  read -r h hs hc < <(phase health)
  read -r c cs cc < <(phase choose)
  printf '%s  %s  %s (%s+%s)  %s (%s+%s)  %s\n' "$r" "$load" "$h" "$hs" "$hc" "$c" "$cs" "$cc" \
    "$(python3 -c "print(f'{$h / $c:.3f}')")"
done

#!/usr/bin/env bash
# Run the load tester against a fresh release server, as separate processes:
#   loadtest/run.sh redis  [loadtest args...]   # private redis-server on a free port
#   loadtest/run.sh memory [loadtest args...]   # in-process volatile store
#   loadtest/run.sh embedded [loadtest args...] # durable redb file in a temp dir
# Server settings come from the environment (e.g.
# POSTERIOR_CHOOSE_MAX_STALENESS_MS=0). Never touches the machine's 6379.
# SERVER=path and LOADTEST=path run other builds (a before/after comparison
# with a copy of the old binaries); the build step is then skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:?usage: loadtest/run.sh redis|memory|embedded [loadtest args...]}
shift
server=${SERVER:-./target/release/posterior}
loadtest=${LOADTEST:-./target/release/loadtest}
if [ -z "${SERVER:-}${LOADTEST:-}" ]; then
  cargo build --release -q --workspace
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
redis_args=()
server_args=()
if [ "$store" = redis ]; then
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
  url="redis://127.0.0.1:$rport/0"
  redis_args=(--redis "$url")
  server_args=(--redis "$url")
fi
case "$store" in
  memory) export POSTERIOR_STORE=memory ;;
  embedded) export POSTERIOR_STORE=embedded POSTERIOR_DATA="$dir/posterior.redb" ;;
  redis) ;;
  *) echo "unknown store $store (redis, memory, embedded)" >&2; exit 2 ;;
esac
gport=$(free_port)
"$server" serve --listen "127.0.0.1:$gport" "${server_args[@]}" >"$dir/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$gport") 2>/dev/null && break; sleep 0.05; done
"$loadtest" --target "http://127.0.0.1:$gport" "${redis_args[@]}" "$@"

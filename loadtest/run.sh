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
source loadtest/lib.sh
start_store "$store"
gport=$(free_port)
"$server" serve --listen "127.0.0.1:$gport" "${server_args[@]}" >"$dir/server.log" 2>&1 &
pids+=($!)
wait_port "$gport"
"$loadtest" --target "http://127.0.0.1:$gport" "${redis_args[@]}" "$@"

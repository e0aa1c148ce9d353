# Shared by run.sh, cost.sh and cpu_cost.sh (sourced): a temporary directory,
# the processes to stop on exit, and a private store for one server.
# Never touches the machine's Redis on 6379.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

# start_store redis|memory|embedded: for redis, a redis-server on a free
# port (stopped on exit) and server_args / redis_args naming it; for the
# others, the environment the server reads.
start_store() {
  server_args=()
  redis_args=()
  case "$1" in
    redis)
      local rport
      rport=$(free_port)
      redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
      pids+=($!)
      for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
      server_args=(--redis "redis://127.0.0.1:$rport/0")
      redis_args=(--redis "redis://127.0.0.1:$rport/0") ;;
    memory) export POSTERIOR_STORE=memory ;;
    embedded) export POSTERIOR_STORE=embedded POSTERIOR_DATA="$dir/posterior.redb" ;;
    *) echo "unknown store $1 (redis, memory, embedded)" >&2; exit 2 ;;
  esac
}

# wait_port PORT [SECONDS]: until something listens there (default 5 s;
# a server under valgrind takes longer to start).
wait_port() {
  for _ in $(seq $(( ${2:-5} * 20 ))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
}

#!/usr/bin/env bash
# Bayesian-optimization benchmark: posterior vs Optuna GP / TPE / Random (and
# NSGA-II with several objectives).
#
#   bash bench/bo.sh            # both tables, 10 seeds
#   TABLES=single bash bench/bo.sh   # only bo.md: budgets 10/20/30/50, timing at n = 10/50/100/500
#   TABLES=issue12 bash bench/bo.sh  # only bo_mo.md: several objectives, known prices, instance choice
#   SEEDS=3 bash bench/bo.sh    # quicker
#
# Environment knobs: SEEDS (default 10), GP_SEEDS (seeds for Optuna's GPSampler,
# default = SEEDS), BUDGETS, FUNCTIONS, TIMING_N, TIMING_REPS, SKIP_INSTALL=1;
# TABLES (single,issue12), MO_FUNCTIONS (zdt1,serverless_mo), MO_BUDGET (50),
# MO_GP_SEEDS (seeds for GPSampler with two objectives, the slowest peer:
# 2-5 s per step on this loaded machine; default = GP_SEEDS), ISSUE12_BUDGETS,
# VENV, RES.
#
# Creates bench/.venv if missing and installs the Python peers into it, runs the
# Optuna peers, then the Rust example (sequentially: never both at once, so the
# timings are not disturbed by each other), and writes bench/results/bo.md and
# bench/results/bo_mo.md plus the raw JSON next to them.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# VENV: another checkout's venv may be reused (torch is ~4 GB); RES: where the
# tables and JSON go (a scratch directory for a trial run).
VENV=${VENV:-bench/.venv}
RES=${RES:-bench/results}
mkdir -p "$RES"

SEEDS=${SEEDS:-10}
GP_SEEDS=${GP_SEEDS:-$SEEDS}
BUDGETS=${BUDGETS:-10,20,30,50}
FUNCTIONS=${FUNCTIONS:-branin,hartmann6,ackley5,rosenbrock4,serverless}
TIMING_N=${TIMING_N:-10,50,100,500}
TIMING_REPS=${TIMING_REPS:-7}
TABLES=${TABLES:-single,issue12}
MO_FUNCTIONS=${MO_FUNCTIONS:-zdt1,serverless_mo}
MO_BUDGET=${MO_BUDGET:-50}
MO_GP_SEEDS=${MO_GP_SEEDS:-$GP_SEEDS}
# Known prices @30/@50, instance choice @20/@40.
ISSUE12_BUDGETS=${ISSUE12_BUDGETS:-20,30,40,50}

# Optuna 5.0.0 (newest on PyPI when this was written). greenlet is required:
# without it GPSampler falls back to a slower sequential L-BFGS-B. torch comes
# from PyPI as is (on Linux x86_64 that is the CUDA build with its nvidia-*
# wheels, ~4 GB installed; only the CPU is used).
PEER_PKGS=(optuna==5.0.0 greenlet torch scipy)

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV" >&2
    python3 -m venv "$VENV"
fi
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    echo "== pip install ${PEER_PKGS[*]}" >&2
    "$VENV/bin/pip" install -q "${PEER_PKGS[@]}"
fi
INSTALLED=$("$VENV/bin/python" - <<'EOF'
import importlib.metadata as m
print(", ".join(f"{p} {m.version(p)}" for p in ("optuna", "torch", "scipy", "numpy", "greenlet")))
EOF
)
echo "== peers: $INSTALLED" >&2

echo "== building examples/bo_benchmark (release)" >&2
cargo build --release --example bo_benchmark

load() { cut -d' ' -f1-3 /proc/loadavg; }
LOADS="before Optuna: $(load)"
# One BLAS/OpenMP thread for the peers, like posterior (single-threaded). Optuna's
# GPSampler means to do the same (torch.set_num_threads(1), OPENBLAS_NUM_THREADS=1
# while it optimizes), but the environment variable is read when OpenBLAS loads,
# and on this shared 2-core machine a 2-thread BLAS made ask+tell 3-5x slower
# under load. PEER_THREADS=default keeps the libraries' defaults.
PEER_THREADS=${PEER_THREADS:-1}
if [ "$PEER_THREADS" != default ]; then
    export OMP_NUM_THREADS=$PEER_THREADS OPENBLAS_NUM_THREADS=$PEER_THREADS MKL_NUM_THREADS=$PEER_THREADS
fi
if [[ ,$TABLES, == *,single,* ]]; then
echo "== Optuna peers (BLAS/OpenMP threads: $PEER_THREADS)" >&2
"$VENV/bin/python" bench/optuna_peer.py --seeds "$SEEDS" --gp-seeds "$GP_SEEDS" --budgets "$BUDGETS" \
    --functions "$FUNCTIONS" --timing-n "$TIMING_N" --timing-reps "$TIMING_REPS" --out "$RES/bo_optuna.json"

LOADS="$LOADS; after Optuna: $(load)"
echo "== posterior" >&2
"$ROOT/target/release/examples/bo_benchmark" --seeds "$SEEDS" --budgets "$BUDGETS" --functions "$FUNCTIONS" \
    --timing-n "$TIMING_N" --timing-reps "$TIMING_REPS" --out "$RES/bo_posterior.json" >/dev/null

# Same, with the 10-point initial design the peers use (the service default is
# max(10, d + 1)): regret only.
"$ROOT/target/release/examples/bo_benchmark" --seeds "$SEEDS" --budgets "$BUDGETS" --functions "$FUNCTIONS" \
    --n-initial 10 --label posterior-init10 --no-timing --out "$RES/bo_posterior_init10.json" >/dev/null

LOADS="$LOADS; after posterior: $(load)"
wall=$(( $(date +%s) - start ))
"$VENV/bin/python" bench/bo_report.py "$RES/bo_posterior.json" "$RES/bo_posterior_init10.json" "$RES/bo_optuna.json" \
    --out "$RES/bo.md" --wall "$wall" \
    --load-note "$LOADS" \
    --threads-note "$PEER_THREADS" \
    --install-note "pip install ${PEER_PKGS[*]} into bench/.venv -> $INSTALLED"
echo "== wrote $RES/bo.md (${wall} s)" >&2
fi

# Issue 12: several objectives (hypervolume), known prices (serverless with
# and without the LAMBDA cost model), instance choice under a latency SLO
# (level features against a plain categorical). Optuna sees the black-box
# problems (serverless, instances); bo_report.py computes every hypervolume.
if [[ ,$TABLES, == *,issue12,* ]]; then
start=$(date +%s)
LOADS="before Optuna: $(load)"
"$VENV/bin/python" bench/optuna_peer.py --seeds "$SEEDS" --gp-seeds "$MO_GP_SEEDS" --budgets "$ISSUE12_BUDGETS" \
    --functions serverless,instances --samplers gp,tpe --mo-functions "$MO_FUNCTIONS" --mo-samplers gp,tpe,nsga2 \
    --mo-budget "$MO_BUDGET" --no-timing --out "$RES/bo_mo_optuna.json"
LOADS="$LOADS; after Optuna: $(load)"
"$ROOT/target/release/examples/bo_benchmark" --seeds "$SEEDS" --budgets "$ISSUE12_BUDGETS" \
    --functions serverless,serverless_known_prices,instances_plain,instances_features,instances_known_prices \
    --mo-functions "$MO_FUNCTIONS" --mo-budget "$MO_BUDGET" --no-timing --out "$RES/bo_mo_posterior.json" >/dev/null
LOADS="$LOADS; after posterior: $(load)"
wall=$(( $(date +%s) - start ))
"$VENV/bin/python" bench/bo_report.py "$RES/bo_mo_posterior.json" "$RES/bo_mo_optuna.json" \
    --out "$RES/bo_mo.md" --wall "$wall" --load-note "$LOADS" --threads-note "$PEER_THREADS" \
    --install-note "pip install ${PEER_PKGS[*]} into bench/.venv -> $INSTALLED"
echo "== wrote $RES/bo_mo.md (${wall} s)" >&2
fi

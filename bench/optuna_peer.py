#!/usr/bin/env python3
"""Optuna peers (GPSampler, TPESampler, RandomSampler, NSGAIISampler) on the BO benchmark.

Same problems, seeds, budgets and definitions as examples/bo_benchmark.rs
(shared/BENCHMARKS.md): simple regret after k evaluations = noise-free value of
the evaluated point with the best *observed* value, minus f*. One run per seed up
to the largest budget; smaller budgets are read off the same run. GP and TPE
start from n_startup_trials = 10 random trials.

Suggestion time at n (6-D Hartmann6): n uniform random trials are added with
study.add_trials, one ask+tell warms the sampler up (GPSampler caches the
kernel parameters of the previous fit), then several ask+tell pairs are timed
(objective evaluation excluded) and the median is reported.

Instance choice ("instances"): a batch job on 40 instance types with a
thread count, cost under a latency SLO (duration <= 2 h). The constraint
reaches the samplers as trial.set_constraint("slo", duration - SLO) before
tell (Optuna 5's way; constraints_func is deprecated; <= 0 is feasible). Regret: among the
evaluated points that meet the SLO noise-free, the one with the lowest observed
cost; its noise-free cost minus the feasible optimum (before any such point:
the costliest feasible configuration's regret).

Several objectives (--mo-functions zdt1,serverless_mo): each run writes the
objective vectors it evaluated, in order ("mo_runs"); bench/bo_report.py
computes every optimizer's hypervolume from them with one implementation.

Writes JSON with the schema of examples/bo_benchmark.rs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

# ---------------------------------------------------------------- problems


def branin(x):
    x1, x2 = x["x0"], x["x1"]
    b = 5.1 / (4.0 * math.pi**2)
    return (x2 - b * x1 * x1 + 5.0 / math.pi * x1 - 6.0) ** 2 + 10.0 * (1.0 - 1.0 / (8.0 * math.pi)) * math.cos(x1) + 10.0


H_ALPHA = [1.0, 1.2, 3.0, 3.2]
H_A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
H_P = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
]


def hartmann6(x):
    xs = [x[f"x{j}"] for j in range(6)]
    total = 0.0
    for i in range(4):
        s = sum(H_A[i][j] * (xs[j] - H_P[i][j] * 1e-4) ** 2 for j in range(6))
        total += H_ALPHA[i] * math.exp(-s)
    return -total


def ackley5(x):
    xs = [x[f"x{j}"] for j in range(5)]
    n = len(xs)
    s2 = sum(v * v for v in xs) / n
    sc = sum(math.cos(2.0 * math.pi * v) for v in xs) / n
    return -20.0 * math.exp(-0.2 * math.sqrt(s2)) - math.exp(sc) + 20.0 + math.e


def rosenbrock4(x):
    xs = [x[f"x{j}"] for j in range(4)]
    return sum(100.0 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1.0 - xs[i]) ** 2 for i in range(3))


def serverless_duration_ms(mem, arch, eps):
    """The serverless toy's measured duration in ms (noise exp(eps))."""
    slow = {"x86": 1.00, "arm": 1.10}[arch]
    vcpu = mem / 1769.0
    cpu_s = 1.2 * slow * (0.75 / min(vcpu, 1.0) + 0.25 / vcpu)
    pressure = 1.0 + (400.0 / mem) ** 3
    return 1000.0 * (cpu_s * pressure + 0.25) * math.exp(eps)


def serverless_cost(mem, arch, eps):
    price = {"x86": 1.66667e-5, "arm": 1.33334e-5}[arch]
    billed_ms = math.ceil(serverless_duration_ms(mem, arch, eps))
    return (price * mem / 1024.0 * billed_ms / 1000.0 + 0.20e-6) * 1e6


# Serverless with two objectives: one evaluation is INVOCATIONS invocations,
# each with its own eps ~ Normal(0, 0.05); objectives = mean cost per
# invocation (µUSD) and the 95th percentile of the durations (ms, numpy's
# linear interpolation).
INVOCATIONS = 50


def serverless_mo(mem, arch, rng):
    eps = rng.normal(0.0, 0.05, INVOCATIONS)
    costs = [serverless_cost(mem, arch, e) for e in eps]
    durations = [serverless_duration_ms(mem, arch, e) for e in eps]
    return [float(np.mean(costs)), float(np.percentile(durations, 95))]


def zdt1(x):
    xs = [x[f"x{j}"] for j in range(6)]
    g = 1.0 + 9.0 * sum(xs[1:]) / 5.0
    return [xs[0], g * (1.0 - math.sqrt(xs[0] / g))]


# Instance choice: (family, GiB per vCPU, $ per vCPU-hour x86_64, speed);
# arm64 20% cheaper and 10% slower; sizes 2..32 vCPU: 4 x 2 x 5 = 40 types.
FAMILIES = [("c", 2.0, 0.0425, 1.1), ("m", 4.0, 0.048, 1.0), ("r", 8.0, 0.063, 1.0), ("x", 16.0, 0.0835, 1.0)]
SIZES = [2, 4, 8, 16, 32]
# The latency SLO: the job must finish within 2 hours.
SLO_MS = 2.0 * 3_600_000.0
CATALOG = {}
for fam, gib, per_vcpu, speed in FAMILIES:
    for arm in (False, True):
        for v in SIZES:
            CATALOG[f"{fam}{'g' if arm else ''}.{v}"] = dict(
                vcpu=float(v), memory_gib=gib * v, price_per_hour=per_vcpu * v * (0.8 if arm else 1.0),
                speed=speed * (0.9 if arm else 1.0))
assert len(CATALOG) == 40


def job_hours(t, threads, eps):
    """16 vCPU-hours of work over min(threads, vcpu) cores, 3 minutes of
    coordination per thread, swapping below the 24 GiB the job needs."""
    cores = min(threads, t["vcpu"])
    swap = max(24.0 / t["memory_gib"], 1.0) ** 2
    return (16.0 / (t["speed"] * cores) + 0.05 * threads) * swap * math.exp(eps)


def _instances_feasible_costs():
    return [t["price_per_hour"] * job_hours(t, n, 0.0) for t in CATALOG.values() for n in range(1, 65)
            if job_hours(t, n, 0.0) * 3_600_000.0 <= SLO_MS]


MEMS = list(range(128, 10240 + 1, 64))
assert len(MEMS) == 159


def floats(names, low, high):
    return {n: FloatDistribution(low, high) for n in names}


PROBLEMS = {
    "branin": dict(dists={"x0": FloatDistribution(-5.0, 10.0), "x1": FloatDistribution(0.0, 15.0)},
                   f=branin, optimum=0.397887357729738, noisy=False),
    "hartmann6": dict(dists=floats([f"x{j}" for j in range(6)], 0.0, 1.0), f=hartmann6,
                      optimum=-3.322368011415515, noisy=False),
    "ackley5": dict(dists=floats([f"x{j}" for j in range(5)], -32.768, 32.768), f=ackley5, optimum=0.0,
                    noisy=False),
    "rosenbrock4": dict(dists=floats([f"x{j}" for j in range(4)], -5.0, 10.0), f=rosenbrock4, optimum=0.0,
                        noisy=False),
    "serverless": dict(
        dists={"memory_mb": IntDistribution(128, 10240, step=64), "arch": CategoricalDistribution(["x86", "arm"])},
        f=None,
        optimum=min(serverless_cost(m, a, 0.0) for m in MEMS for a in ("x86", "arm")),
        noisy=True,
    ),
    "instances": dict(
        dists={"instance_type": CategoricalDistribution(list(CATALOG)), "threads": IntDistribution(1, 64, log=True)},
        f=None,
        optimum=min(_instances_feasible_costs()),
        # Regret before any feasible point was evaluated.
        worst=max(_instances_feasible_costs()),
        noisy=True,
        constrained=True,
    ),
}

MO_PROBLEMS = {
    "zdt1": dict(dists=floats([f"x{j}" for j in range(6)], 0.0, 1.0), reference=[1.1, 11.0]),
    "serverless_mo": dict(
        dists={"memory_mb": IntDistribution(128, 10240, step=64), "arch": CategoricalDistribution(["x86", "arm"])},
        reference=[200.0, 10_000.0],
    ),
}


def evaluate_mo(name, params, rng):
    if name == "zdt1":
        return zdt1(params)
    return serverless_mo(params["memory_mb"], params["arch"], rng)


def evaluate(name, params, rng):
    """(observed value, noise-free value, observed duration in ms or None,
    meets the SLO noise-free)."""
    if name == "serverless":
        eps = rng.normal(0.0, 0.05)
        m, a = params["memory_mb"], params["arch"]
        return serverless_cost(m, a, eps), serverless_cost(m, a, 0.0), None, True
    if name == "instances":
        eps = rng.normal(0.0, 0.05)
        t, n = CATALOG[params["instance_type"]], params["threads"]
        h = job_hours(t, n, eps)
        h0 = job_hours(t, n, 0.0)
        return t["price_per_hour"] * h, t["price_per_hour"] * h0, h * 3_600_000.0, h0 * 3_600_000.0 <= SLO_MS
    v = PROBLEMS[name]["f"](params)
    return v, v, None, True


# ---------------------------------------------------------------- samplers

OPTIMIZER_NAMES = {"gp": "optuna-gp", "tpe": "optuna-tpe", "random": "random", "nsga2": "optuna-nsga2"}


def make_sampler(kind, seed):
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=10)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=10, seed=seed)
    raise ValueError(kind)


def drive(study, dists, budget, step):
    """`budget` ask/tell pairs; step(trial, params) evaluates the objective
    (and may set constraints) and returns what to tell. Returns the
    optimizer's seconds per step (ask + tell, the evaluation excluded)."""
    step_s = []
    for _ in range(budget):
        t0 = time.perf_counter()
        trial = study.ask(dists)
        params = dict(trial.params)
        t1 = time.perf_counter()
        v = step(trial, params)
        t2 = time.perf_counter()
        study.tell(trial, v)
        t3 = time.perf_counter()
        step_s.append((t1 - t0) + (t3 - t2))
    return step_s


def run(kind, name, budget, seed):
    p = PROBLEMS[name]
    study = optuna.create_study(direction="minimize", sampler=make_sampler(kind, seed))
    rng = np.random.default_rng(seed ^ 0xA5A55A5A)
    best = {"obs": math.inf, "true": math.nan}
    regret_after = []

    def step(trial, params):
        v, v_true, duration_ms, feasible = evaluate(name, params, rng)
        if p.get("constrained", False):
            trial.set_constraint("slo", duration_ms - SLO_MS)
        if feasible and v < best["obs"]:
            best["obs"], best["true"] = v, v_true
        regret_after.append((p["worst"] if math.isnan(best["true"]) else best["true"]) - p["optimum"])
        return v

    return regret_after, drive(study, p["dists"], budget, step)


def run_mo(kind, name, budget, seed):
    """The objective vectors evaluated, in order, and the optimizer time per step."""
    p = MO_PROBLEMS[name]
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=make_sampler(kind, seed))
    rng = np.random.default_rng(seed ^ 0xA5A55A5A)
    points = []

    def step(_trial, params):
        points.append(evaluate_mo(name, params, rng))
        return points[-1]

    return points, drive(study, p["dists"], budget, step)


def timing(kind, n, reps, seed=0):
    """Median ask+tell time with n trials known (6-D Hartmann6, uniform random trials)."""
    p = PROBLEMS["hartmann6"]
    rng = np.random.default_rng(0x7153 + 1000 * n)
    study = optuna.create_study(direction="minimize", sampler=make_sampler(kind, seed))
    trials = []
    for _ in range(n - 1):
        params = {k: float(rng.random()) for k in p["dists"]}
        trials.append(optuna.trial.create_trial(params=params, distributions=p["dists"], value=hartmann6(params)))
    study.add_trials(trials)
    samples = []
    for r in range(reps + 1):  # the first ask+tell (at n-1 -> n) is a warm-up
        t0 = time.perf_counter()
        trial = study.ask(p["dists"])
        params = dict(trial.params)
        t1 = time.perf_counter()
        v = hartmann6(params)
        t2 = time.perf_counter()
        study.tell(trial, v)
        t3 = time.perf_counter()
        if r > 0:
            samples.append(1e3 * ((t1 - t0) + (t3 - t2)))
    return {
        "optimizer": OPTIMIZER_NAMES[kind],
        "function": "hartmann6",
        "dims": 6,
        "n": n,
        "reps": reps,
        "median_ms": float(np.median(samples)),
        "samples_ms": samples,
        "note": f"{n - 1} random trials via add_trials, one warm-up ask+tell, then {reps} timed ask+tell at n..n+{reps - 1}",
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--gp-seeds", type=int, default=None, help="fewer seeds for GPSampler (slowest peer)")
    ap.add_argument("--budgets", default="10,20,30,50")
    ap.add_argument("--functions", default="branin,hartmann6,ackley5,rosenbrock4,serverless")
    ap.add_argument("--samplers", default="gp,tpe,random")
    ap.add_argument("--timing-n", default="10,50,100,500")
    ap.add_argument("--timing-reps", type=int, default=7)
    ap.add_argument("--timing-reps-large", type=int, default=3, help="timed asks when n >= 500")
    ap.add_argument("--mo-functions", default="", help="several objectives: zdt1,serverless_mo")
    ap.add_argument("--mo-samplers", default="gp,tpe,nsga2")
    ap.add_argument("--mo-budget", type=int, default=50)
    ap.add_argument("--no-regret", action="store_true")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    started = time.perf_counter()
    budgets = [int(b) for b in args.budgets.split(",")]
    max_budget = max(budgets)
    functions = [f for f in args.functions.split(",") if f]
    samplers = args.samplers.split(",")
    results, step_times, timings, mo_runs = [], [], [], []

    # The slowest part (GPSampler with two objectives) first; seeds outside,
    # problems inside, the JSON rewritten after each run: stopped early, a
    # run keeps the same seeds for every problem.
    for kind in (k for k in args.mo_samplers.split(",") if args.mo_functions):
        n_seeds = args.gp_seeds if (kind == "gp" and args.gp_seeds) else args.seeds
        names = args.mo_functions.split(",")
        all_s = {name: [] for name in names}
        for s in range(args.first_seed, args.first_seed + n_seeds):
            for name in names:
                t = time.perf_counter()
                points, st = run_mo(kind, name, args.mo_budget, s)
                all_s[name] += st
                mo_runs.append({"optimizer": OPTIMIZER_NAMES[kind], "function": name, "seed": s,
                                "reference": MO_PROBLEMS[name]["reference"], "points": points})
                print(f"{OPTIMIZER_NAMES[kind]} {name} seed {s}: {args.mo_budget} steps in "
                      f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
                write_out(args, samplers, budgets, started, results, step_times, timings, mo_runs,
                          complete=False)
        for name in names:
            step_times.append({
                "optimizer": OPTIMIZER_NAMES[kind], "function": name, "budget": args.mo_budget,
                "mean_ms": 1e3 * float(np.mean(all_s[name])), "median_ms": 1e3 * float(np.median(all_s[name])),
            })

    if not args.no_regret:
        for kind in samplers:
            n_seeds = args.gp_seeds if (kind == "gp" and args.gp_seeds) else args.seeds
            seeds = list(range(args.first_seed, args.first_seed + n_seeds))
            for name in functions:
                p = PROBLEMS[name]
                t = time.perf_counter()
                runs = [run(kind, name, max_budget, s) for s in seeds]
                all_s = [s for _, st in runs for s in st]
                print(f"{OPTIMIZER_NAMES[kind]} {name}: {len(runs)} runs x {max_budget} in "
                      f"{time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
                step_times.append({
                    "optimizer": OPTIMIZER_NAMES[kind], "function": name, "budget": max_budget,
                    "mean_ms": 1e3 * float(np.mean(all_s)), "median_ms": 1e3 * float(np.median(all_s)),
                })
                for b in budgets:
                    regrets = [r[b - 1] for r, _ in runs]
                    q25, med, q75 = (float(v) for v in np.percentile(regrets, [25, 50, 75]))
                    results.append({
                        "optimizer": OPTIMIZER_NAMES[kind], "function": name, "dims": len(p["dists"]),
                        "noisy": p["noisy"], "optimum": p["optimum"], "budget": b,
                        "n_initial": 10 if kind in ("gp", "tpe") else None, "seeds": seeds,
                        "regrets": regrets, "median": med, "q25": q25, "q75": q75,
                    })

    if not args.no_timing:
        for kind in samplers:
            for n in (int(v) for v in args.timing_n.split(",")):
                reps = args.timing_reps_large if n >= 500 else args.timing_reps
                t = time.perf_counter()
                timings.append(timing(kind, n, reps))
                print(f"{OPTIMIZER_NAMES[kind]} timing n={n}: {timings[-1]['median_ms']:.2f} ms "
                      f"({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)

    write_out(args, samplers, budgets, started, results, step_times, timings, mo_runs, complete=True)


def write_out(args, samplers, budgets, started, results, step_times, timings, mo_runs, complete):
    """The JSON; also written after every multi-objective run (complete =
    False), so that a run stopped for time keeps the seeds it finished."""
    versions = {"python": platform.python_version(), "optuna": optuna.__version__, "numpy": np.__version__}
    for mod in ("torch", "scipy", "greenlet"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            versions[mod] = f"unavailable: {e}"
    try:
        import torch

        versions["torch_cuda_available"] = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        pass
    out = {
        "schema": "bo-bench/1",
        "producer": "bench/optuna_peer.py",
        "meta": {
            "optimizers": [OPTIMIZER_NAMES[k] for k in samplers],
            "mo_optimizers": [OPTIMIZER_NAMES[k] for k in args.mo_samplers.split(",")] if args.mo_functions else [],
            "complete": complete,
            "versions": versions,
            "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
            "gp_seeds": args.gp_seeds,
            "budgets": budgets,
            "n_initial": "n_startup_trials=10 (GP, TPE)",
            "driver": "study.ask(distributions) / study.tell per step; time = ask + tell",
            "wall_s": time.perf_counter() - started,
        },
        "results": results,
        "step_times": step_times,
        "timing": timings,
        "mo_runs": mo_runs,
    }
    with open(args.out + ".tmp", "w") as fh:
        json.dump(out, fh, indent=1)
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()

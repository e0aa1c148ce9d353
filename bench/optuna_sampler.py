#!/usr/bin/env python3
"""posterior's Optuna sampler (posterior_client.optuna.PosteriorSampler) against
posterior driven directly through the client, and against Optuna's TPESampler,
in one run; then the per-trial overhead of the sampler's ask/tell loop.

    cargo build --release --bin posterior
    target/test-venv/bin/python bench/optuna_sampler.py --out bench/results/optuna_sampler.json

Problems, seeds and regret as bench/optuna_peer.py (imported, not copied):
simple regret after k trials = noise-free value of the trial with the best
observed value, minus f*. One run per seed up to the largest budget; the
smaller budget is read off the same run (the sampler does not know the budget).

- sampler: optuna.create_study(sampler=PosteriorSampler(client, seed=seed)),
  study.ask(distributions) / study.tell. Optuna samples the first trial
  (RandomSampler, seeded) before the search space is known; it is imported.
- direct: client.create_study(seed=seed) with the same space, study.ask() /
  study.tell(): posterior's own Suggest/Observe.
- tpe: optuna.samplers.TPESampler(seed=seed, n_startup_trials=10), as in
  bench/optuna_peer.py.

"No worse within noise" is judged on log10(regret) (regret spans decades, so
the mean of its logarithm is the stable summary): met when
mean_log10(sampler) - mean_log10(other) <= 2 * SE of that difference.

Overhead: in the sampler runs, the time of each trial's ask + tell minus the
time spent inside the client's Study.ask / Study.tell (posterior's own
Suggest / Observe, timed by wrapping those two methods): what the sampler and
Optuna's bookkeeping add per trial, including the sampler's other calls
(CreateStudy, GetStudy, AddTrial of the first trial). The direct runs' step
times (the same Suggest/Observe with their GP fits) are reported beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "clients" / "python" / "tests"))

import optuna  # noqa: E402
from optuna.distributions import FloatDistribution  # noqa: E402

from optuna_peer import PROBLEMS  # noqa: E402  (Branin, Hartmann6: definitions and f*)
from posterior_client import Client, Study as PosteriorStudy  # noqa: E402
from posterior_client.optuna import PosteriorSampler  # noqa: E402


def space_of(dists: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for name, d in dists.items():
        assert isinstance(d, FloatDistribution) and not d.log and d.step is None
        params.append({"name": name, "float": {"low": d.low, "high": d.high}})
    return params


# Time spent inside posterior's Suggest/Observe through the client.
IN_CLIENT = [0.0]


def _timed(f: Any) -> Any:
    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            IN_CLIENT[0] += time.perf_counter() - t

    return wrapper


PosteriorStudy.ask = _timed(PosteriorStudy.ask)  # type: ignore[method-assign]
PosteriorStudy.tell = _timed(PosteriorStudy.tell)  # type: ignore[method-assign]


def run_sampler(client: Client, fn: str, budget: int, seed: int, tag: str) -> dict[str, Any]:
    p = PROBLEMS[fn]
    sampler = PosteriorSampler(client, f"{tag}-s-{fn}-{seed}", seed=seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    return loop(lambda: study.ask(p["dists"]), lambda t: dict(t.params), study.tell, fn, budget)


def run_direct(client: Client, fn: str, budget: int, seed: int, tag: str) -> dict[str, Any]:
    p = PROBLEMS[fn]
    study = client.create_study(
        f"{tag}-d-{fn}-{seed}",
        parameters=space_of(p["dists"]),
        objective={"name": "value", "goal": "MINIMIZE"},
        seed=seed,
    )
    return loop(lambda: study.ask(1)[0], lambda t: dict(t.params), study.tell, fn, budget)


def run_tpe(fn: str, budget: int, seed: int) -> dict[str, Any]:
    p = PROBLEMS[fn]
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    )
    return loop(lambda: study.ask(p["dists"]), lambda t: dict(t.params), study.tell, fn, budget)


def loop(ask: Any, params_of: Any, tell: Any, fn: str, budget: int) -> dict[str, Any]:
    p = PROBLEMS[fn]
    best_obs, best_true = math.inf, math.nan
    regret: list[float] = []
    step_s: list[float] = []
    outside_s: list[float] = []  # step time outside Study.ask/tell
    for _ in range(budget):
        IN_CLIENT[0] = 0.0
        t0 = time.perf_counter()
        trial = ask()
        x = params_of(trial)
        t1 = time.perf_counter()
        v = p["f"](x)  # Branin and Hartmann6 are noise-free
        t2 = time.perf_counter()
        tell(trial, v)
        t3 = time.perf_counter()
        step_s.append((t1 - t0) + (t3 - t2))
        outside_s.append(step_s[-1] - IN_CLIENT[0])
        if v < best_obs:
            best_obs, best_true = v, v
        regret.append(best_true - p["optimum"])
    return {"regret": regret, "step_s": step_s, "outside_s": outside_s}


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan
    return m, se


def log10r(r: float) -> float:
    return math.log10(max(r, 1e-12))  # Branin can be hit to ~1e-9; a floor keeps logs finite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "posterior"))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budgets", default="30,50")
    ap.add_argument("--functions", default="branin,hartmann6")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import conftest  # the tests' `posterior serve` fixture class (embedded store, port 0)

    conftest.BIN = Path(args.bin)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    budgets = [int(b) for b in args.budgets.split(",")]
    top = max(budgets)
    seeds = list(range(args.seeds))
    functions = args.functions.split(",")
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="optuna-sampler-bench-"))
    server = conftest.Server(tmp, "embedded")
    out: dict[str, Any] = {"regret": [], "comparisons": [], "steps": [], "overhead": {}}
    try:
        client = Client(server.target, timeout=60.0)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for fn in functions:
            for method in ("sampler", "direct", "tpe"):
                t = time.perf_counter()
                rs = []
                for s in seeds:
                    if method == "sampler":
                        rs.append(run_sampler(client, fn, top, s, "bench"))
                    elif method == "direct":
                        rs.append(run_direct(client, fn, top, s, "bench"))
                    else:
                        rs.append(run_tpe(fn, top, s))
                runs[(fn, method)] = rs
                print(f"{method} {fn}: {len(rs)} x {top} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
                steps = [x for r in rs for x in r["step_s"]]
                out["steps"].append({
                    "function": fn, "method": method,
                    "mean_ms": 1e3 * statistics.fmean(steps), "median_ms": 1e3 * statistics.median(steps),
                })
                for b in budgets:
                    regs = [r["regret"][b - 1] for r in rs]
                    m, se = mean_se(regs)
                    lm, lse = mean_se([log10r(x) for x in regs])
                    out["regret"].append({
                        "function": fn, "method": method, "budget": b, "seeds": seeds, "regrets": regs,
                        "median": statistics.median(regs), "mean": m, "se": se,
                        "mean_log10": lm, "se_log10": lse,
                    })
        by = {(r["function"], r["method"], r["budget"]): r for r in out["regret"]}
        for fn in functions:
            for b in budgets:
                s = by[(fn, "sampler", b)]
                for other in ("direct", "tpe"):
                    o = by[(fn, other, b)]
                    diff = s["mean_log10"] - o["mean_log10"]
                    se = math.hypot(s["se_log10"], o["se_log10"])
                    out["comparisons"].append({
                        "function": fn, "budget": b, "against": other,
                        "median_ratio": s["median"] / o["median"] if o["median"] > 0 else math.inf,
                        "mean_ratio": s["mean"] / o["mean"] if o["mean"] > 0 else math.inf,
                        "diff_mean_log10": diff, "se_diff_log10": se, "met": diff <= 2 * se,
                    })

        # Overhead: the sampler runs' time outside posterior's Suggest/Observe.
        overhead = {}
        for fn in functions:
            added = [1e3 * x for r in runs[(fn, "sampler")] for x in r["outside_s"]]
            direct_outside = [1e3 * x for r in runs[(fn, "direct")] for x in r["outside_s"]]
            overhead[fn] = {
                "trials": len(added), "added_mean_ms": statistics.fmean(added),
                "added_median_ms": statistics.median(added), "added_p95_ms": sorted(added)[int(0.95 * len(added))],
                "added_max_ms": max(added), "direct_outside_mean_ms": statistics.fmean(direct_outside),
                "met": statistics.fmean(added) <= 5.0,
            }
        out["overhead"] = overhead
    finally:
        server.stop()

    out["meta"] = {
        "binary": args.bin, "seeds": seeds, "budgets": budgets, "functions": functions,
        "versions": {"python": platform.python_version(), "optuna": optuna.__version__},
        "wall_s": time.perf_counter() - started,
        "load": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(report(out))


def report(out: dict[str, Any]) -> str:
    lines = ["| problem @ trials | sampler median [mean ± SE] | direct median [mean ± SE] | TPE median [mean ± SE] |",
             "| --- | --- | --- | --- |"]
    by = {(r["function"], r["method"], r["budget"]): r for r in out["regret"]}
    for fn in out["meta"]["functions"]:
        for b in out["meta"]["budgets"]:
            cells = []
            for m in ("sampler", "direct", "tpe"):
                r = by[(fn, m, b)]
                cells.append(f"{r['median']:.3g} [{r['mean']:.3g} ± {r['se']:.2g}]")
            lines.append(f"| {fn} @{b} | " + " | ".join(cells) + " |")
    lines += ["", "| problem @ trials | vs | median ratio | mean ratio | Δ mean log10 regret ± SE | no worse within noise (Δ ≤ 2 SE) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in out["comparisons"]:
        lines.append(
            f"| {c['function']} @{c['budget']} | {c['against']} | {c['median_ratio']:.3g} | {c['mean_ratio']:.3g} | "
            f"{c['diff_mean_log10']:+.2f} ± {c['se_diff_log10']:.2f} | {'met' if c['met'] else 'missed'} |"
        )
    lines += ["", "| step time (ask + tell, ms/trial) | mean | median |", "| --- | --- | --- |"]
    for s in out["steps"]:
        lines.append(f"| {s['function']} {s['method']} | {s['mean_ms']:.2f} | {s['median_ms']:.2f} |")
    lines += ["", "| sampler overhead per trial (outside Suggest/Observe), ms | mean | median | p95 | max | direct loop, same measure (mean) | target mean <= 5 ms |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for fn, o in out["overhead"].items():
        lines.append(f"| {fn} ({o['trials']} trials) | {o['added_mean_ms']:.2f} | {o['added_median_ms']:.2f} | "
                     f"{o['added_p95_ms']:.2f} | {o['added_max_ms']:.2f} | {o['direct_outside_mean_ms']:.3f} | "
                     f"{'met' if o['met'] else 'missed'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

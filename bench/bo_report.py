#!/usr/bin/env python3
"""Side-by-side markdown report from the JSON of examples/bo_benchmark.rs and
bench/optuna_peer.py (schema bo-bench/1). Standard library only."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess

COLUMNS = [("posterior", "posterior"), ("posterior-init10", "posterior, 10 initial"), ("optuna-gp", "Optuna GP"), ("optuna-tpe", "Optuna TPE"),
           ("optuna-nsga2", "Optuna NSGA-II"), ("random", "Random")]

# Issue 12's targets across problems: (title, posterior's problem, [(peer,
# problem), ...], budgets). The peers' problem is the black-box one (Optuna
# knows no prices nor level features; "instances" is the plain categorical).
CROSS_TARGETS = [
    ("Known prices: serverless with the LAMBDA cost model", ("posterior", "serverless_known_prices"),
     [("posterior", "serverless"), ("optuna-gp", "serverless"), ("optuna-tpe", "serverless")], (30, 50)),
    ("Instance choice under a latency SLO: level features", ("posterior", "instances_features"),
     [("posterior", "instances_plain"), ("optuna-gp", "instances"), ("optuna-tpe", "instances")], (20, 40)),
    ("Instance choice under a latency SLO: level features and INSTANCE_HOURS (not an issue target)",
     ("posterior", "instances_known_prices"),
     [("posterior", "instances_plain"), ("optuna-gp", "instances"), ("optuna-tpe", "instances")], (20, 40)),
]
MO_BUDGETS = (20, 30, 50)


def fmt(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.3g}"
    if a >= 0.001:
        return f"{v:.3g}"
    return f"{v:.2e}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bootstrap_ratio_ci(a, b, reps=4000, seed=7):
    """95% percentile-bootstrap interval of median(a) / median(b), resampling
    each group's seeds independently (the two optimizers' runs are not
    paired: their random streams differ). Fixed seed: the report is
    reproducible from the JSON."""
    rng = random.Random(seed)
    ratios = []
    for _ in range(reps):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        ratios.append(math.inf if mb == 0 else ma / mb)
    ratios.sort()
    return ratios[int(0.025 * reps)], ratios[int(0.975 * reps) - 1]


def mann_whitney_p(a, b):
    """Two-sided p-value of the Mann-Whitney U test, normal approximation
    with tie correction (adequate from about 8 runs per group; standard
    library only, so the report needs no SciPy)."""
    pooled = sorted((v, g) for g, xs in ((0, a), (1, b)) for v in xs)
    ranks, i, n = [0.0] * len(pooled), 0, len(pooled)
    ties = 0.0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    n1, n2 = len(a), len(b)
    u = r1 - n1 * (n1 + 1) / 2
    mu = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - mu) - 0.5) / math.sqrt(var)
    return max(0.0, min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2))))


def against_best(mine, theirs, key="regrets", higher_is_better=False):
    """The subject's median against the best median among `theirs`: (best,
    ratio, interval low, high, Mann-Whitney p, verdict). The ratio is
    mine / best; the target is ratio <= 1 (>= 1 when higher is better).
    *within noise*: the target is not met but the interval reaches 1."""
    pick = max if higher_is_better else min
    best = pick(theirs, key=lambda r: r["median"])
    ratio = math.inf if best["median"] == 0 else mine["median"] / best["median"]
    lo, hi = bootstrap_ratio_ci(mine[key], best[key])
    p = mann_whitney_p(mine[key], best[key])
    if (ratio >= 1) if higher_is_better else (ratio <= 1):
        verdict = "met"
    elif (hi >= 1) if higher_is_better else (lo <= 1):
        verdict = "within noise"
    else:
        verdict = "missed"
    return best, ratio, lo, hi, p, verdict


def target_rows(results, functions, budgets, subject="posterior", peers=("optuna-gp", "optuna-tpe")):
    """Per function @ budget: the subject's median regret against the better
    (lower median) of the peers, the ratio with its bootstrap interval, the
    Mann-Whitney p, and met / within noise / missed."""
    rows = []
    for f in functions:
        for b in budgets:
            mine = results.get((subject, f, b))
            theirs = [results[(p, f, b)] for p in peers if (p, f, b) in results]
            if not mine or not theirs:
                continue
            rows.append((f, b, mine, *against_best(mine, theirs)))
    return rows


def hypervolume_2d(points, reference):
    """Hypervolume (area) dominated by `points` (both objectives minimized)
    and bounded by `reference`: points not strictly better than the
    reference in both objectives add nothing. The staircase of the points
    sorted by the first objective, each adding the strip up to the next."""
    inside = sorted((p for p in points if p[0] < reference[0] and p[1] < reference[1]))
    area, best2, stairs = 0.0, math.inf, []
    for p in inside:
        if p[1] < best2:
            stairs.append(p)
            best2 = p[1]
    for i, p in enumerate(stairs):
        next_x = stairs[i + 1][0] if i + 1 < len(stairs) else reference[0]
        area += (next_x - p[0]) * (reference[1] - p[1])
    return area


def mo_results(mo_runs):
    """{(optimizer, function, budget): {"hvs", "median", "q25", "q75"}}: the
    hypervolume of each run's first `budget` evaluated points."""
    by = {}
    for r in mo_runs:
        for b in sorted(set(MO_BUDGETS) | {len(r["points"])}):
            if len(r["points"]) >= b:
                by.setdefault((r["optimizer"], r["function"], b), []).append(
                    hypervolume_2d(r["points"][:b], r["reference"]))
    out = {}
    for k, hvs in by.items():
        q = statistics.quantiles(hvs, n=4, method="inclusive") if len(hvs) > 1 else [hvs[0]] * 3
        out[k] = {"optimizer": k[0], "function": k[1], "budget": k[2], "hvs": hvs,
                  "median": statistics.median(hvs), "q25": q[0], "q75": q[2]}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--wall", default=None, help="total wall time of the run, seconds")
    ap.add_argument("--install-note", default="")
    ap.add_argument("--threads-note", default="", help="OMP/OPENBLAS/MKL threads of the Python peers")
    ap.add_argument("--load-note", default="", help="1/5/15-min load averages around the phases")
    ap.add_argument("--note", default="", help="a paragraph under the title (what was run, the commands)")
    ap.add_argument("--overlapped", action="store_true", help="the peers and posterior ran at the same time")
    args = ap.parse_args()

    docs = [json.load(open(p)) for p in args.inputs]
    results, timings, steps, metas, mo_runs = {}, {}, {}, {}, []
    for path, d in zip(args.inputs, docs):
        for r in d["results"]:
            results[(r["optimizer"], r["function"], r["budget"])] = r
        for t in d["timing"]:
            timings[(t["optimizer"], t["n"])] = t
        for s in d.get("step_times", []):
            steps[(s["optimizer"], s["function"])] = s
        mo_runs += d.get("mo_runs", [])
        opts = d["meta"].get("optimizers", [])
        name = d["producer"] if opts != ["posterior-init10"] else d["producer"] + " --n-initial 10"
        metas[f"{name}` → `{os.path.basename(path)}"] = d["meta"]
    present = {k[0] for k in results} | {k[0] for k in timings} | {k[0] for k in steps}
    columns = [c for c in COLUMNS if c[0] in present]

    functions, budgets = [], []
    for (_, f, b) in results:
        if f not in functions:
            functions.append(f)
        if b not in budgets:
            budgets.append(b)
    order = ["branin", "hartmann6", "ackley5", "rosenbrock4", "serverless", "serverless_known_prices",
             "instances", "instances_plain", "instances_features", "instances_known_prices"]
    functions.sort(key=lambda f: order.index(f) if f in order else 99)
    budgets.sort()

    L = []
    L.append("# Bayesian optimization: posterior vs Optuna")
    L.append("")
    L.append("Generated by `bench/bo.sh` (do not edit by hand). Definitions: shared/BENCHMARKS.md.")
    L.append("")
    if args.note:
        L.append(args.note)
        L.append("")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = "?"
    L.append(f"- machine: {os.cpu_count()} cores, {cpu_model()}; run at commit `{commit}`"
             + (f"; total wall time {float(args.wall) / 60:.1f} min" if args.wall else ""))
    for prod, m in metas.items():
        extra = ""
        if "versions" in m:
            extra = "; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        if m.get("gp_seeds") and m["gp_seeds"] < len(m["seeds"]):
            extra += f"; GPSampler with {m['gp_seeds']} seeds only"
        if m.get("complete") is False:
            extra += "; stopped before all its seeds ran (the n in each cell says how many did)"
        L.append(f"- `{prod}`: seeds {m['seeds'][0]}..{m['seeds'][-1]} ({len(m['seeds'])}), "
                 f"initial design {m['n_initial']}, {m.get('wall_s', 0):.0f} s{extra}")
    if args.install_note:
        L.append(f"- install: {args.install_note}")
    if args.load_note:
        L.append(f"- load average (1/5/15 min; the machine is shared, so timings carry that noise): "
                 f"{args.load_note}")
    L.append(("- The Python peers and the Rust example overlapped in time (see the note above): step times carry "
              "each other's load; regrets and hypervolumes do not depend on time. " if args.overlapped else
              "- The Python peers and the Rust example ran one after the other, never at the same time. ") +
             "posterior is single-threaded; the peers ran with OMP/OPENBLAS/MKL_NUM_THREADS="
             + (args.threads_note or "(library defaults)") + " (Optuna's GPSampler also sets torch to one "
             "thread while it optimizes).")
    L.append("")

    L.append("## Simple regret, median [IQR] over seeds (lower is better; best median in bold)")
    L.append("")
    L.append("| function @ budget | " + " | ".join(c for _, c in columns) + " |")
    L.append("| --- |" + " --- |" * len(columns))
    for f in functions:
        for b in budgets:
            cells, meds = [], []
            for key, _ in columns:
                r = results.get((key, f, b))
                meds.append(r["median"] if r else None)
            best = min((m for m in meds if m is not None), default=None)
            for key, _ in columns:
                r = results.get((key, f, b))
                if not r:
                    cells.append("-")
                    continue
                s = f"{fmt(r['median'])} [{fmt(r['q25'])}, {fmt(r['q75'])}]"
                if r["median"] == best:
                    s = f"**{fmt(r['median'])}** [{fmt(r['q25'])}, {fmt(r['q75'])}]"
                cells.append(s)
            L.append(f"| {f} @{b} | " + " | ".join(cells) + " |")
    L.append("")

    rows = target_rows(results, functions, budgets)
    if rows:
        L.append("## Target: posterior at most the better of Optuna GP / TPE")
        L.append("")
        L.append("Ratio of median regrets (posterior / the better peer at that budget); 95% bootstrap "
                 "interval of that ratio (4,000 resamples of each side's seeds, unpaired); two-sided "
                 "Mann-Whitney p. *met*: ratio <= 1; *within noise*: ratio > 1 but the interval "
                 "reaches 1; *missed*: the whole interval above 1.")
        L.append("")
        L.append("| function @ budget | posterior | better peer | ratio | 95% interval | p | target |")
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for f, b, mine, best, ratio, lo, hi, p, verdict in rows:
            L.append(f"| {f} @{b} | {fmt(mine['median'])} (n={len(mine['regrets'])}) | "
                     f"{fmt(best['median'])} {best['optimizer']} (n={len(best['regrets'])}) | "
                     f"{ratio:.2f} | [{lo:.2f}, {hi:.2f}] | {p:.2f} | {verdict} |")
        L.append("")

    cross = [(title, subject, peers, b) for title, subject, peers, budgets in CROSS_TARGETS for b in budgets
             if (*subject, b) in results and any((*p, b) in results for p in peers)]
    if cross:
        L.append("## Issue 12 targets: known prices and instance choice")
        L.append("")
        L.append("posterior with what only it can use (the price list, the catalog's level features) "
                 "against the best of posterior without it and Optuna GP / TPE on the black-box problem. "
                 "Ratio of median regrets (subject / the best of the others at that budget), 95% bootstrap "
                 "interval, Mann-Whitney p, as above.")
        L.append("")
        L.append("| target @ budget | subject | best of the others | ratio | 95% interval | p | target |")
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for title, subject, peers, b in cross:
            mine = results[(*subject, b)]
            theirs = [results[(*p, b)] for p in peers if (*p, b) in results]
            best, ratio, lo, hi, p, verdict = against_best(mine, theirs)
            L.append(f"| {title} @{b} | {fmt(mine['median'])} {subject[1]} (n={len(mine['regrets'])}) | "
                     f"{fmt(best['median'])} {best['optimizer']} {best['function']} (n={len(best['regrets'])}) | "
                     f"{ratio:.3f} | [{lo:.2f}, {hi:.2f}] | {p:.2f} | {verdict} |")
        L.append("")

    mo = mo_results(mo_runs)
    if mo:
        mo_functions = sorted({k[1] for k in mo}, key=lambda f: ["zdt1", "serverless_mo"].index(f)
                              if f in ("zdt1", "serverless_mo") else 99)
        mo_columns = [c for c in COLUMNS if any(k[0] == c[0] for k in mo)]
        refs = {r["function"]: r["reference"] for r in mo_runs}
        mo_budgets = sorted({k[2] for k in mo})
        L.append("## Several objectives: hypervolume, median [IQR] over seeds (higher is better; best median in bold)")
        L.append("")
        L.append("Hypervolume of all evaluated points (both objectives minimized) against the reference "
                 "point, computed here by `hypervolume_2d` from the objective vectors each optimizer's run "
                 "wrote: one implementation for every optimizer. " +
                 "; ".join(f"{f}: reference {tuple(refs[f])}" for f in mo_functions) + ".")
        L.append("")
        L.append("| function @ budget | " + " | ".join(c for _, c in mo_columns) + " |")
        L.append("| --- |" + " --- |" * len(mo_columns))
        for f in mo_functions:
            for b in mo_budgets:
                row = [mo.get((key, f, b)) for key, _ in mo_columns]
                if not any(row):
                    continue
                best = max(r["median"] for r in row if r)
                cells = []
                for r in row:
                    if not r:
                        cells.append("-")
                        continue
                    m = f"**{fmt(r['median'])}**" if r["median"] == best else fmt(r["median"])
                    cells.append(f"{m} [{fmt(r['q25'])}, {fmt(r['q75'])}] (n={len(r['hvs'])})")
                L.append(f"| {f} @{b} | " + " | ".join(cells) + " |")
        L.append("")
        L.append("### Target: posterior's median hypervolume at least the best of Optuna GP / TPE / NSGA-II")
        L.append("")
        L.append("Ratio of median hypervolumes (posterior / the best peer; >= 1 meets the target); 95% "
                 "bootstrap interval; two-sided Mann-Whitney p. *within noise*: ratio < 1 but the interval "
                 "reaches 1; *missed*: the whole interval below 1.")
        L.append("")
        L.append("| function @ budget | posterior | best peer | ratio | 95% interval | p | target |")
        L.append("| --- | --- | --- | --- | --- | --- | --- |")
        for f in mo_functions:
            for b in mo_budgets:
                mine = mo.get(("posterior", f, b))
                theirs = [mo[(k, f, b)] for k in ("optuna-gp", "optuna-tpe", "optuna-nsga2") if (k, f, b) in mo]
                if not mine or not theirs:
                    continue
                best, ratio, lo, hi, p, verdict = against_best(mine, theirs, key="hvs", higher_is_better=True)
                L.append(f"| {f} @{b} | {fmt(mine['median'])} (n={len(mine['hvs'])}) | {fmt(best['median'])} "
                         f"{best['optimizer']} (n={len(best['hvs'])}) | {ratio:.3f} | [{lo:.3f}, {hi:.3f}] | "
                         f"{p:.2f} | {verdict} |")
        L.append("")

    ns = sorted({n for (_, n) in timings})
    if ns:
        L.append("## Suggestion time in 6-D (Hartmann6, n uniform random observations), ms")
        L.append("")
        L.append("posterior: `suggest` with the previous step's `FitState` (steady state: short warm refit "
                 "for n <= 200, hyperparameter reuse above), median over calls; full fit = the cold call "
                 "(multi-start fit), done again once max(n/4, 5) new points arrived; amortized = (warm x "
                 "(period - 1) + full) / period. Optuna: median ask + tell after one warm-up ask + tell "
                 "(objective excluded). In parentheses: the fastest call, less sensitive to the load of the "
                 "shared machine. Ratios use the medians.")
        L.append("")
        L.append("| n | posterior (warm) | posterior full fit | posterior amortized | Optuna GP | Optuna TPE | "
                 "Random | GP / posterior (warm) | GP / posterior (amortized) |")
        L.append("| --- |" + " --- |" * 8)
        for n in ns:
            p = timings.get(("posterior", n))
            g = timings.get(("optuna-gp", n))
            t = timings.get(("optuna-tpe", n))
            r = timings.get(("random", n))

            def ms(x, k="median_ms"):
                if not x or x.get(k) is None:
                    return "-"
                v = f"{x[k]:.0f}" if x[k] >= 100 else f"{x[k]:.3g}"
                samples = x.get("samples_ms" if k == "median_ms" else "full_fit_samples_ms" if k.startswith("full") else "")
                if samples:
                    lo = min(samples)
                    v += f" ({lo:.0f})" if lo >= 100 else f" ({lo:.3g})"
                return v

            ratio_w = f"{g['median_ms'] / p['median_ms']:.1f}x" if p and g else "-"
            ratio_a = f"{g['median_ms'] / p['amortized_ms']:.1f}x" if p and g else "-"
            L.append(f"| {n} | {ms(p)} | {ms(p, 'full_fit_median_ms')} | {ms(p, 'amortized_ms')} | {ms(g)} | "
                     f"{ms(t)} | {ms(r)} | {ratio_w} | {ratio_a} |")
        L.append("")

    if steps:
        nb = max(s["budget"] for s in steps.values())
        L.append(f"## Mean optimizer time per step during the regret runs (all steps, n = 0..{nb - 1}), ms")
        L.append("")
        L.append("| function | " + " | ".join(c for _, c in columns) + " |")
        L.append("| --- |" + " --- |" * len(columns))
        for f in functions + sorted({k[1] for k in steps} - set(functions)):
            cells = []
            for key, _ in columns:
                s = steps.get((key, f))
                cells.append(f"{s['mean_ms']:.3g}" if s else "-")
            L.append(f"| {f} | " + " | ".join(cells) + " |")
        L.append("")

    with open(args.out, "w") as fh:
        fh.write("\n".join(L))
    print("\n".join(L))


if __name__ == "__main__":
    main()

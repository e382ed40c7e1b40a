"""Which runs next: sequential ``suggest_runs`` against an IsoFLOP grid, on simulated campaigns.

    PYTHONPATH=. .venv/bin/python bench/bench_design_campaigns.py --truth joint --campaigns 20 \\
        --out docs/validation/design_campaigns_joint.csv
    PYTHONPATH=. .venv/bin/python bench/bench_design_campaigns.py --summarise docs/validation/design_campaigns_*.csv

Setup (issue 16): the truth is the joint law at the paper's Table 3 coefficients (``--truth joint``)
or a misspecified one (``--truth broken``: the same law whose data exponent flattens by 0.02 above
3e9 tokens, continuous at the break, which no fitted joint law can represent). Every campaign
starts from the same 12 small runs (N_act ∈ {5e7, 1e8, 2e8} × E ∈ {1, 4, 16, 64}, D = 20·N, 2.5e19
FLOPs together) with fresh 1 % noise (seeded by the campaign number). The target is 1e22 FLOPs
with E ∈ {1, 2, 4, …, 256}; the extra budget is 1e20 FLOPs (1 % of the target).

Arms:
- ``suggest``: sequential ``suggest_runs`` with k = 1 on the default candidate grid (E × 6 sizes
  × 6 token counts, up to 4× beyond the fitted runs), until the budget is spent, nothing is worth
  a run, or 8 runs; between refits the posterior is updated by importance reweighting and
  refitted when its effective sample size falls below 25 %.
- ``grid``: the usual recipe: an IsoFLOP grid of 18 runs (two compute levels 3× apart, three
  sizes 4× apart around N = sqrt(C/120), E ∈ {1, 8, 64}) spending the same 1e20 FLOPs, fitted once.

Fits are short (2 chains × 300/300 NUTS, literature priors, the extrapolation term from its
shipped prior); suggest_runs uses 400 of the 600 draws (thinned evenly) and 100 simulated truths. Each row of the CSV is
one scoring of the decision (true regret at the target: the true loss of the chosen E, N_act, D
minus the true optimum's, and whether the chosen E is the true E*).

Options for other settings of the ``suggest`` arm (stored under their own arm names, so several
settings can share one summary): ``--max-runs N`` (default 8), ``--refit-each`` (a full refit after
every run instead of reweighting), ``--rank cost_cooled``; ``--discrepancy none`` fits both arms
without the extrapolation-error term (arms ``*_tau0``, compared with each other).

The target (issue 16): ``suggest`` reaches the grid's final median regret with at most 50 % of the
grid's FLOPs, read as the median regret after spending at most 50 % against the grid's final
median, with a paired bootstrap interval of the difference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpyro

numpyro.set_host_device_count(2)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bayesmoe.design import isoflop_grid, law_truth, simulate_campaign  # noqa: E402
from bayesmoe.laws import e_hat  # noqa: E402
from bayesmoe.testing import TRUTH  # noqa: E402

TARGET = 1e22
BUDGET = 1e20
EXPERTS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FIT = dict(num_chains=2, num_warmup=300, num_samples=300)
SUGGEST = dict(n_outer=100, max_draws=400)
BREAK_TOKENS, FLATTEN = 3e9, 0.02


def start_design() -> pd.DataFrame:
    n = np.array([5e7, 1e8, 2e8])
    rows = [{"n_active": x, "tokens": 20 * x, "experts": float(e)} for x in n for e in (1, 4, 16, 64)]
    return pd.DataFrame(rows)


def broken_truth():
    """The joint law whose data term's exponent ν(E) = β + ζ ln Ê flattens by 0.02 above 3e9
    tokens: n(E)·D^ν below the break, n(E)·B^ν·(D/B)^(ν+0.02) above it (continuous)."""
    p = TRUTH["joint"]
    base = law_truth("joint", p)

    def truth(table: pd.DataFrame) -> np.ndarray:
        d = table["tokens"].to_numpy(dtype="float64")
        le = np.log(np.asarray(e_hat(table["experts"].to_numpy(dtype="float64"), p["e_start"], p["e_max"])))
        nu = p["beta"] + p["zeta"] * le
        data = p["b"] * np.exp(p["omega"] * le) * d ** nu
        bent = p["b"] * np.exp(p["omega"] * le) * BREAK_TOKENS ** nu * (d / BREAK_TOKENS) ** (nu + FLATTEN)
        return base(table) + np.where(d > BREAK_TOKENS, bent - data, 0.0)

    return truth


def run(truth_name: str, campaigns: int, out: Path, arms: list[str], first: int = 0, rank: str = "per_flop",
        max_runs: int = 8, refit_each: bool = False, discrepancy: str = "prior") -> None:
    truth = law_truth("joint", TRUTH["joint"]) if truth_name == "joint" else broken_truth()
    done = set()
    if out.exists():
        old = pd.read_csv(out)
        done = set(zip(old["arm"], old["campaign"]))
    plan = isoflop_grid(BUDGET, levels=2, sizes=3, experts=(1, 8, 64))
    suggest_arm = suggest_label(max_runs, refit_each)
    grid_arm = "grid"
    if discrepancy != "prior":  # both arms fitted without the extrapolation-error term (τ = 0)
        suggest_arm, grid_arm = f"{suggest_arm}_tau0", "grid_tau0"
    for c in range(first, first + campaigns):
        for arm in arms:
            arm = suggest_arm if arm == "suggest" else grid_arm if arm == "grid" else arm
            if (arm, c) in done:
                continue
            t0 = time.time()
            camp = simulate_campaign(truth, start_design(), TARGET, budget_flops=BUDGET, law="joint",
                                     arm="suggest" if arm.startswith("suggest") else plan, experts=EXPERTS,
                                     noise_sd=0.01, fit_kwargs=FIT | {"discrepancy": discrepancy},
                                     suggest_kwargs=SUGGEST | {"rank": rank},
                                     max_steps=max_runs, score_each=False, seed=c,
                                     # a minimum ESS no reweighting reaches: a full refit after every run
                                     min_ess=np.inf if refit_each else None)
            h = camp.history.assign(truth=truth_name, arm=arm, campaign=c, seconds=time.time() - t0,
                                    true_e=camp.truth_optimum["experts"],
                                    true_n=camp.truth_optimum["n_active"])
            h.to_csv(out, mode="a", header=not out.exists(), index=False)
            # every fit of a new table size compiles new programs, which JAX keeps in memory: two
            # processes of 10 campaigns each died of "LLVM compilation error: Cannot allocate memory"
            jax.clear_caches()
            last = h.iloc[-1]
            print(f"{truth_name} {arm:8s} campaign {c:2d}: {int(last.step):2d} runs, {last.flops_spent:.2e} FLOPs, "
                  f"regret {last.true_regret:.2e}, E {last.chosen_experts:g} (true {camp.truth_optimum['experts']:g}), "
                  f"{time.time() - t0:.0f} s", flush=True)


def suggest_label(max_runs: int, refit_each: bool) -> str:
    """The arm's name in the CSV: ``suggest`` for the first benchmark's settings (8 runs at most,
    reweighting between refits), else the settings spelled out."""
    if max_runs == 8 and not refit_each:
        return "suggest"
    return f"suggest_max{max_runs}" + ("_refit_each" if refit_each else "")


def scoring_at(h: pd.DataFrame, flops: float) -> pd.Series:
    """A campaign's last scoring of the decision after spending at most ``flops``."""
    return h[h["flops_spent"] <= flops * (1 + 1e-9)].iloc[-1]


def summarise(paths: list[Path]) -> str:
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    lines = []
    for truth, t in df.groupby("truth"):
        for name in sorted(a for a in t.arm.unique() if a.startswith("suggest")):
            lines += _summarise_arm(t, truth, name, "grid_tau0" if name.endswith("_tau0") else "grid")
    return "\n".join(lines)


def _summarise_arm(t: pd.DataFrame, truth: str, name: str, grid_name: str) -> list[str]:
    grid = t[t.arm == grid_name].groupby("campaign").last()
    sug = t[t.arm == name]
    if grid.empty or sug.empty:
        return []
    camps = sorted(set(grid.index) & set(sug.campaign))
    grid = grid.loc[camps]
    sug = sug[sug.campaign.isin(camps)]
    g_med = float(grid["true_regret"].median())
    start = sug[sug.step == 0].groupby("campaign")["true_regret"].first()
    lines = [f"\ntruth: {truth}, arm {name} ({len(camps)} campaigns per arm; target {TARGET:.0e} FLOPs, "
             f"budget {BUDGET:.0e})",
             "| arm | FLOPs spent (share of grid) | median true regret | mean | P(chosen E = true E*) | runs |",
             "|---|---|---|---|---|---|",
             f"| start (12 runs) | 0 | {start.median():.2e} | {start.mean():.2e} | "
             f"{sug[sug.step == 0].groupby('campaign')['correct_experts'].first().mean():.2f} | 12 |"]
    first_hit, at = None, {}
    for share in (0.1, 0.25, 0.5, 0.75, 1.0):
        upto = [scoring_at(sug[sug.campaign == c], share * BUDGET) for c in camps]
        per = np.array([float(r["true_regret"]) for r in upto])
        at[share] = per
        med = float(np.median(per))
        if first_hit is None and med <= g_med:
            first_hit = share
        lines.append(f"| {name}, k=1 | ≤ {share:.0%} | {med:.2e} | {np.mean(per):.2e} | "
                     f"{np.mean([bool(r['correct_experts']) for r in upto]):.2f} | "
                     f"{np.median([int(r['step']) for r in upto]):.0f} (median) |")
    lines.append(f"| IsoFLOP {grid_name} | 100 % | {g_med:.2e} | {grid['true_regret'].mean():.2e} | "
                 f"{grid['correct_experts'].mean():.2f} | {int(grid['step'].median())} |")
    # The target, read as what a user who stops at half the grid's FLOPs gets: the median true
    # regret after spending at most 50 % against the grid's final median. The campaigns are paired
    # (same seed, same starting runs), so the uncertainty of the difference of medians is a paired
    # bootstrap over campaigns (2000 resamples, fixed seed).
    half, g = at[0.5], grid["true_regret"].to_numpy()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(camps), (2000, len(camps)))
    diff = np.median(half[idx], axis=1) - np.median(g[idx], axis=1)
    lo, hi = np.quantile(diff, [0.05, 0.95])
    ok = float(np.median(half)) <= g_med
    reached = ("never reached" if first_hit is None else f"first reached at ≤ {first_hit:.0%} of its FLOPs")
    lines.append(f"\n{name} at ≤ 50 % of the grid's FLOPs: median regret {np.median(half):.2e} vs the grid's final "
                 f"{g_med:.2e} (difference of medians, 90 % paired bootstrap: {lo:+.1e} to {hi:+.1e}) "
                 f"-> target {'MET' if ok else 'MISSED'}; the grid's median was {reached}")
    lines.append(f"median wall time per campaign: {name} {sug.groupby('campaign')['seconds'].first().median():.0f} s,"
                 f" {grid_name} {t[t.arm == grid_name].groupby('campaign')['seconds'].first().median():.0f} s")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--truth", choices=["joint", "broken"], default="joint")
    ap.add_argument("--campaigns", type=int, default=20)
    ap.add_argument("--first", type=int, default=0, help="first campaign number (seed)")
    ap.add_argument("--arms", default="grid,suggest")
    ap.add_argument("--out", type=Path, default=Path("design_campaigns.csv"),
                    help="CSV appended per campaign; campaigns already in it are skipped")
    ap.add_argument("--rank", choices=["per_flop", "cost_cooled"], default="per_flop",
                    help="suggest_runs' ranking (cost_cooled: experimental)")
    ap.add_argument("--max-runs", type=int, default=8, help="suggest: runs per campaign at most")
    ap.add_argument("--refit-each", action="store_true",
                    help="suggest: a full refit after every run (default: reweight until the ESS falls below 25 %%)")
    ap.add_argument("--discrepancy", choices=["prior", "none"], default="prior",
                    help="the fits' extrapolation-error term: its shipped prior (default) or none (τ = 0, "
                         "arms named *_tau0)")
    ap.add_argument("--summarise", nargs="+", type=Path, help="only print the summary of these CSVs")
    a = ap.parse_args(argv)
    if a.summarise:
        print(summarise(a.summarise))
        return 0
    run(a.truth, a.campaigns, a.out, a.arms.split(","), a.first, a.rank, a.max_runs, a.refit_each, a.discrepancy)
    print(summarise([a.out]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

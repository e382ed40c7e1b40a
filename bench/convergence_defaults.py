"""Does NUTS converge at ``fit``'s defaults? Every real table, no per-table override.

    PYTHONPATH=. .venv/bin/python bench/convergence_defaults.py                 # every case
    PYTHONPATH=. .venv/bin/python bench/convergence_defaults.py reference epoch # some cases
    PYTHONPATH=. .venv/bin/python bench/convergence_defaults.py --summarise
    PYTHONPATH=. .venv/bin/python bench/convergence_defaults.py moduleformer-pooled --seeds 0 1 2 3 4 5

Each case is one ``bayesmoe.fit(runs, law=...)`` with nothing but the table, the law and a seed
(4 chains × 1000 warmup / 1000 draws, the law's own ``target_accept``, the extrapolation-error
term at its default ``"auto"``, whose backtest refits are inside the wall time). One row per case
goes to ``docs/validation/convergence_defaults.csv`` (a rerun replaces the case's row): divergences,
max R-hat, min bulk / tail ESS over the law's parameters (``FitResult.diagnostics``), mean leapfrog
steps per draw, draws per chain (1000, or more where ``fit`` extended the sampling, its
``max_extensions``), wall seconds, and whether it passes the issue's bar (0 divergences,
R-hat ≤ 1.01, bulk and tail ESS ≥ 400). ``--seeds`` refits the cases at other seeds too, as rows
``<case>@seed<k>``.

Cases (the tables of issue 15; third-party ones read in place from ``../shared/data``, skipped
with a message where that folder is absent):

- ``reference``: the README main job (shipped runs, G = 1, without the held-out 289k runs), joint law;
- ``epoch``: Epoch's Chinchilla runs (docs/validation/run_holdout.py's table), chinchilla law;
- ``porian-<setup>``: each of the four Porian et al. setups on its own, and ``porian-hierarchical``;
- ``isoflops-hierarchical``: the Open-Athena IsoFLOP union, one group per experiment;
- ``moduleformer-pooled`` and ``moduleformer-per-model``: ModuleFormer checkpoints (ColPret),
  chinchilla law on active parameters and ln(wikitext perplexity); the model without an active
  parameter count (ST-k2) and checkpoints without a token count are left out, and the script says
  how many;
- ``grid-seed<k>``: the joint law on the paper's 270-run design, Table 3 losses at the paper's RMSE
  (bench_joint_nuts_vs_bootstrap.py's table), seeds 0-7.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpyro  # noqa: E402

numpyro.set_host_device_count(4)

import argparse  # noqa: E402

import jax  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bayesmoe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "validation" / "convergence_defaults.csv"
sys.path[:0] = [str(ROOT / "docs" / "validation"), str(ROOT / "bench")]


def reference():
    runs = pd.read_csv(ROOT / "data" / "reference_runs.csv")
    return runs.query("granularity == 1 and split != 'heldout'").reset_index(drop=True), "joint"


def epoch():
    from run_holdout import epoch_table

    return epoch_table(), "chinchilla"


def porian(setup: str | None):
    from run_holdout import porian_table

    runs = porian_table()
    if setup is None:
        return runs, "chinchilla"
    return runs[runs["group"] == setup].drop(columns="group").reset_index(drop=True), "chinchilla"


def isoflops():
    from run_holdout import isoflops_table

    return isoflops_table(), "chinchilla"


def moduleformer(per_model: bool):
    raw = pd.read_csv(SHARED / "colpret-hitchhiker" / "moduleformer_moe_checkpoints_tidy.csv")
    keep = raw["N_active"].notna() & raw["tokens_seen"].notna() & raw["wikitext_ppl"].notna()
    print(f"moduleformer: {int((~keep).sum())} of {len(raw)} checkpoints left out (no active parameter "
          f"count: {sorted(raw.loc[raw['N_active'].isna(), 'model'].unique())}; or no tokens / perplexity)")
    sel = raw[keep]
    runs = pd.DataFrame({"n_active": sel["N_active"], "tokens": sel["tokens_seen"],
                         "loss": np.log(sel["wikitext_ppl"])})
    if per_model:
        runs["group"] = sel["model"]
    else:  # pooled, two models with the same active size and token count are two runs, not a duplicate
        runs["seed"] = sel["model"].astype("category").cat.codes
    return runs.reset_index(drop=True), "chinchilla"


def grid(seed: int):
    from bench_joint_nuts_vs_bootstrap import DEFAULT_DATA, load_runs

    return load_runs(DEFAULT_DATA, seed), "joint"


PORIAN_SETUPS = ["owt2-base-chinchilla", "owt2-tuned-const", "rw-base-chinchilla", "rw-tuned-const"]
CASES = {
    "reference": (reference, False),
    "epoch": (epoch, True),
    **{f"porian-{s}": ((lambda s=s: porian(s)), True) for s in PORIAN_SETUPS},
    "porian-hierarchical": ((lambda: porian(None)), True),
    "isoflops-hierarchical": (isoflops, True),
    "moduleformer-pooled": ((lambda: moduleformer(False)), True),
    "moduleformer-per-model": ((lambda: moduleformer(True)), True),
    **{f"grid-seed{k}": ((lambda k=k: grid(k)), True) for k in range(8)},
}


def run_case(name: str, seed: int | None = None) -> dict:
    """One fit at the defaults; ``seed`` (not for the grid cases, whose seed is their name's)
    other than 0 is recorded as ``<case>@seed<k>``."""
    make, needs_shared = CASES[name]
    runs, law = make()
    grid_case = name.startswith("grid-seed")
    seed = int(name.removeprefix("grid-seed")) if grid_case else (seed or 0)
    label = name if grid_case or seed == 0 else f"{name}@seed{seed}"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = bayesmoe.fit(runs, law=law, seed=seed, progress=False, on_bad_fit="warn")
    wall = time.perf_counter() - t0
    d = r.diagnostics
    timings = json.loads(r.tree.attrs["timings"])
    row = {"case": label, "law": law, "runs": len(runs), "groups": len(r.groups),
           "target_accept": float(r.tree.attrs.get("target_accept", np.nan)),
           "divergences": int(d.divergences), "max_rhat": float(d.max_rhat),
           "min_ess_bulk": float(d.min_ess_bulk), "min_ess_tail": float(d.min_ess_tail),
           "mean_leapfrog_steps": float(timings["mean_leapfrog_steps"]), "wall_s": wall,
           "draws_per_chain": int(d.num_draws), "extensions": int(timings.get("extensions", 0)),
           "discrepancy": json.loads(r.tree.attrs["discrepancy"])["source"]}
    row["passes"] = bool(row["divergences"] == 0 and row["max_rhat"] <= 1.01
                         and min(row["min_ess_bulk"], row["min_ess_tail"]) >= 400)
    return row


def summarise() -> str:
    df = pd.read_csv(OUT)
    order = {name: i for i, name in enumerate(CASES)}  # the cases' own order, whichever ran last
    df = df.sort_values("case", key=lambda c: c.map(lambda n: (order.get(n.split("@")[0], len(order)), n)))
    df = df.reset_index(drop=True)
    # rows from before fit could extend its sampling had the default 1000 draws per chain
    for col, before in (("draws_per_chain", 1000), ("extensions", 0)):
        df[col] = df[col].fillna(before) if col in df else before
    lines = ["| case | law | runs | groups | target_accept | divergences | max R-hat | min bulk / tail ESS "
             "| leapfrog steps | draws per chain | wall (s) | passes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in df.itertuples():
        lines.append(f"| {r.case} | {r.law} | {r.runs} | {r.groups} | {r.target_accept:g} | {r.divergences} | "
                     f"{r.max_rhat:.3f} | {r.min_ess_bulk:.0f} / {r.min_ess_tail:.0f} | "
                     f"{r.mean_leapfrog_steps:.1f} | {r.draws_per_chain:.0f} | {r.wall_s:.0f} | "
                     f"{'yes' if r.passes else '**no**'} |")
    main = ~df["case"].str.contains("@")
    lines.append(f"\n{int(df.passes[main].sum())} of {int(main.sum())} cases pass at seed 0."
                 + (f" Other seeds: {int(df.passes[~main].sum())} of {int((~main).sum())} pass." if (~main).any() else ""))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=list(CASES), help=f"of {list(CASES)}")
    ap.add_argument("--summarise", action="store_true", help="only print the table of the CSV")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0],
                    help="fit seeds for the cases other than grid-seed<k> (rows <case>@seed<k> beside seed 0's)")
    a = ap.parse_args(argv)
    if a.summarise:
        print(summarise())
        return 0
    unknown = [c for c in a.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown cases {unknown}; choose from {list(CASES)}")
    jobs = [(name, seed) for name in a.cases
            for seed in ([0] if name.startswith("grid-seed") else a.seeds)]
    for name, seed in jobs:
        if CASES[name][1] and not SHARED.is_dir():
            print(f"{name}: skipped ({SHARED} is absent)")
            continue
        row = run_case(name, seed)
        old = pd.read_csv(OUT) if OUT.exists() else pd.DataFrame()
        if not old.empty:
            old = old[old["case"] != row["case"]]
        pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(OUT, index=False)
        print(f"{row['case']}: {row['divergences']} divergences, R-hat {row['max_rhat']:.3f}, ESS "
              f"{row['min_ess_bulk']:.0f}/{row['min_ess_tail']:.0f}, {row['mean_leapfrog_steps']:.1f} steps, "
              f"{row['draws_per_chain']} draws per chain, {row['wall_s']:.0f} s -> {'ok' if row['passes'] else 'FAILS'}", flush=True)
        # each table compiles its own programs; after 15 cases in one process XLA's JIT could no
        # longer map code memory ("LLVM ERROR: Unable to allocate section memory", 2026-12-02)
        jax.clear_caches()
    print(summarise())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ordered extrapolation hold-outs and PSIS-LOO comparisons behind docs/validation.md.

    python docs/validation/run_holdout.py                      # every case, 4 chains x 1000/1000 (fit's defaults)
    python docs/validation/run_holdout.py epoch loo            # some cases
    python docs/validation/run_holdout.py --num-warmup 500 --num-samples 500   # shorter chains
    python docs/validation/run_holdout.py --markdown            # the docs' tables from the saved CSVs
    python docs/validation/run_holdout.py --figure              # figures/holdout.png from them

Writes docs/validation/holdout_summary.csv (one row per case; a rerun replaces its row),
docs/validation/holdout_<case>.csv (one row per held-out run) and docs/validation/loo_reference.csv.
The third-party tables are read in place from ../shared/data (never copied into the repository);
cases that need them are skipped, with a message, where that folder is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from bayesmoe.discrepancy import use_cpu_devices  # noqa: E402  (no JAX start: numpy and pandas)

use_cpu_devices()  # a CPU device per chain (the backtests': all at once), before JAX starts

import pandas as pd  # noqa: E402

import bayesmoe  # noqa: E402
from bayesmoe.errors import ConvergenceWarning  # noqa: E402
from bayesmoe.validation import compare_laws, extrapolation_holdout  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
OUT = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- tables
def reference_table() -> pd.DataFrame:
    """The shipped calibration table, G = 1 rows (the joint law has no granularity)."""
    runs = pd.read_csv(ROOT / "data" / "reference_runs.csv")
    return runs[runs["granularity"] == 1].reset_index(drop=True)


def epoch_table() -> pd.DataFrame:
    """Epoch's digitised Chinchilla runs, D = C/(6N), the 5 highest losses dropped (as Epoch did)."""
    raw = pd.read_csv(SHARED / "epoch-chinchilla" / "svg_extracted_data.csv")
    runs = pd.DataFrame({"n_active": raw["Model Size"],
                         "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]), "loss": raw["loss"]})
    return runs.drop(index=runs["loss"].nlargest(5).index).reset_index(drop=True)


def porian_table() -> pd.DataFrame:
    """Porian et al. 2024 IsoFLOP points: standard parameter count, validation loss, the paper's
    first (base hparams, short warmup, Chinchilla cosine decay) and last (tuned hparams, short
    warmup, constant LR) setups on both RefinedWeb and OpenWebText2: four groups."""
    raw = pd.read_csv(SHARED / "porian-rsld" / "porian_isoflop_points.csv")
    keep = ((raw["param_count"] == "standard") & (raw["loss_split"] == "val") & (raw["warmup"] == "short")
            & (((raw["hparams"] == "base") & (raw["decay"] == "chinchilla"))
               | ((raw["hparams"] == "tuned") & (raw["decay"] == "const"))))
    sel = raw[keep]
    return pd.DataFrame({
        "n_active": sel["N"], "tokens": sel["D_tokens"], "loss": sel["loss"], "budget": sel["flops_budget"],
        "group": sel["dataset"] + "-" + sel["hparams"] + "-" + sel["decay"],
    }).reset_index(drop=True)


def isoflops_table() -> pd.DataFrame:
    """The Open-Athena IsoFLOP union, one group per experiment, with two sources left out:
    ml_scalefit repeats Epoch's Chinchilla extraction (the same runs twice), and Llama 3's
    raw_loss condition is the same points as exp_loss (kept: its 2.0-2.5 range is nats per token
    like the other sources; raw_loss is its logarithm)."""
    raw = pd.read_csv(SHARED / "open-athena-isoflops" / "extract__isoflops.csv")
    sel = raw[~raw["experiment"].isin(["ml_scalefit__massivetext__chinchilla", "llama_3__raw_loss"])]
    return pd.DataFrame({"n_active": sel["params"], "tokens": sel["tokens"], "loss": sel["loss"],
                         "budget": sel["budget"], "group": sel["experiment"]}).reset_index(drop=True)


# ----------------------------------------------------------------------------- cases
# name: (table, law, holdout keywords, fit keywords)
CASES = {
    "reference": (reference_table, "joint", dict(by="compute", quantile=0.8), dict(target_accept=0.95)),
    "epoch": (epoch_table, "chinchilla", dict(by="compute", quantile=0.8), {}),
    "porian-hierarchical": (porian_table, "chinchilla", dict(by="budget", quantile=0.8, per_group=True), {}),
    "porian-pooled": (porian_table, "chinchilla",
                      dict(by="budget", quantile=0.8, per_group=True, hierarchical=False), {}),
    "isoflops-hierarchical": (isoflops_table, "chinchilla", dict(by="budget", quantile=0.8, per_group=True), {}),
    "isoflops-pooled": (isoflops_table, "chinchilla",
                        dict(by="budget", quantile=0.8, per_group=True, hierarchical=False), {}),
}
NEEDS_SHARED = {"epoch", "porian-hierarchical", "porian-pooled", "isoflops-hierarchical", "isoflops-pooled"}


#: The discrepancy prior of each case: distilled without the case's own tables
#: (docs/validation/discrepancy_prior_loto.json, written by distill_discrepancy.py).
LOTO_KEY = {"reference": "reference", "epoch": "epoch", "porian-hierarchical": "porian-union",
            "porian-pooled": "porian-union", "isoflops-hierarchical": "isoflops-union",
            "isoflops-pooled": "isoflops-union"}


def loto_prior(name: str) -> dict | None:
    """The case's leave-its-tables-out discrepancy prior, or None (the shipped one) where the
    distillation has none for it."""
    path = OUT / "discrepancy_prior_loto.json"
    loto = json.loads(path.read_text()) if path.exists() else {}
    return loto.get(LOTO_KEY.get(name, name))


def run_case(name: str, draws: dict) -> dict:
    table_fn, law, ho_kw, fit_kw = CASES[name]
    prior = loto_prior(name)
    if prior is not None:
        fit_kw = {**fit_kw, "discrepancy_prior": prior}
    runs = table_fn()
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ho = extrapolation_holdout(runs, law=law, **ho_kw,
                                   fit_kwargs={**draws, **fit_kw, "on_bad_fit": "warn", "progress": False})
    seconds = time.perf_counter() - t0
    ho.table.to_csv(OUT / f"holdout_{name}.csv")
    per_group = ho.table.groupby("group").agg(n=("loss", "size"), max_abs=("abs_error", "max"),
                                              cov50=("in50", "mean"), cov90=("in90", "mean"),
                                              cov90_law=("in90_law", "mean"))
    print(f"\n== {name}: {len(runs)} runs, {seconds:.0f} s\n{per_group.round(4).to_string()}")
    disc = ho.summary["discrepancy"]
    row = {"case": name, "n_runs": len(runs), "groups": runs.get("group", pd.Series(["all"])).nunique(),
           **{k: v for k, v in ho.summary.items() if k != "discrepancy"},
           "tau_source": disc["source"], "tau_median": disc["tau_median"], "tau_lo90": disc["tau_lo90"],
           "tau_hi90": disc["tau_hi90"], "prior_mu": None if prior is None else prior["mu"],
           "prior_sigma": None if prior is None else prior["sigma"],
           "w90_over_rmse": ho.summary["median_width_90"] / ho.summary["rmse"],
           "covers_85": ho.summary["coverage_90"] >= 0.85,
           "sigma_median": float(ho.fit.posterior["sigma"].median()), "seconds": round(seconds, 1),
           "convergence_warnings": len([w for w in caught if issubclass(w.category, ConvergenceWarning)]),
           **{k: v for k, v in draws.items()}}
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return row


def run_loo(draws: dict) -> pd.DataFrame:
    """Joint law vs the same law without the E interaction (gamma = zeta = 0), and the default
    Student-t(4) likelihood vs a near-normal one (nu = 1000: Student-t(1000) differs from the
    normal by < 0.02 nats within 3 sigma, while larger nu loses float32 precision in lgamma)."""
    runs = reference_table()
    runs = runs[runs["split"] == "train"]
    fits = {}
    variants = {"joint (t, nu=4)": {}, "joint, gamma=zeta=0": {"gamma": 0.0, "zeta": 0.0},
                "joint, nu=1000 (~normal)": {"nu": 1000.0}}
    accept = {}
    for label, priors in variants.items():
        # a LOO of an unconverged fit is not a result: a fit that fails its checks at the joint
        # law's default step size is fitted again at a smaller one, and each row says how it ended
        for target_accept in (0.95, 0.99):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                fits[label] = bayesmoe.fit(runs, law="joint", priors={"family": "literature", **priors},
                                           **draws, target_accept=target_accept, on_bad_fit="warn", progress=False)
            accept[label] = target_accept
            print(label, f"target_accept={target_accept}", fits[label])
            if fits[label].diagnostics.ok:
                break
    table = compare_laws(fits)
    for label, f in fits.items():
        d = f.diagnostics
        table.loc[label, ["fit_ok", "max_rhat", "divergences", "target_accept"]] = [
            d.ok, d.max_rhat, d.divergences, accept[label]]
    print("\n== LOO on the shipped table (G = 1, split == 'train')\n" + table.round(3).to_string())
    table.to_csv(OUT / "loo_reference.csv")
    return table


METHODS = (("with the term", ""), ("law only", "_law"), ("split-conformal", "_conformal"))


def _column(t: pd.DataFrame, name: str) -> pd.Series:
    """A column of a hold-out table, NaN where the method has none (no backtests: no conformal)."""
    return t[name] if name in t else pd.Series(float("nan"), index=t.index)


def _method_cells(t: pd.DataFrame, suffix: str, rmse: float) -> str:
    """50 %, 90 % covered, the median 90 % width and width / RMSE of one interval method over
    held-out runs."""
    w90 = _column(t, f"width90{suffix}").median()
    return (f"{_column(t, f'in50{suffix}').astype(float).mean():.0%} | "
            f"{_column(t, f'in90{suffix}').astype(float).mean():.0%} | {w90:.3f} | {w90 / rmse:.1f}")


def markdown() -> str:
    """The docs' tables from the saved results: one block per case (three interval methods on the
    same posterior and the same point errors), and per group for the cases with groups."""
    summary = pd.read_csv(OUT / "holdout_summary.csv").set_index("case")
    head = ("| {first} | held out | method | 50 % covered | 90 % covered | median 90 % width | width / RMSE | "
            "max abs error | RMSE | τ median (90 %) | diagnostics |")
    lines = [head.format(first="case"), "|---" * 11 + "|"]
    per_group = [head.format(first="case, group"), "|---" * 11 + "|"]
    for case in [c for c in CASES if c in summary.index]:
        r = summary.loc[case]
        t = pd.read_csv(OUT / f"holdout_{case}.csv")
        diag = (f"ok (R-hat {r.max_rhat:.3f}, {int(r.divergences)} divergences)" if r.diagnostics_ok else
                f"**failed** (R-hat {r.max_rhat:.3f}, {int(r.divergences)} divergences)")
        blocks = [(case, t, lines, f"{r.tau_median:.3g} ({r.tau_lo90:.2g}–{r.tau_hi90:.2g})", diag)]
        if t["group"].nunique() > 1:
            blocks += [(f"{case}: {g}", tg, per_group, "", "") for g, tg in t.groupby("group", sort=False)]
        for name, tt, out, tau, dg in blocks:
            rmse = float((tt["error"] ** 2).mean() ** 0.5)
            for i, (method, suffix) in enumerate(METHODS):
                first = i == 0
                out.append(f"| {name if first else ''} | {len(tt) if first else ''} | {method} | "
                           f"{_method_cells(tt, suffix, rmse)} | "
                           f"{f'{tt.abs_error.max():.3f}' if first else ''} | {f'{rmse:.3f}' if first else ''} | "
                           f"{tau if first else ''} | {dg if first else ''} |")
    return "\n".join(lines) + "\n\nPer group:\n\n" + "\n".join(per_group) + "\n"


FIGURE_CASES = {"reference": ("reference (joint)", "compute"), "epoch": ("Epoch Chinchilla", "compute"),
                "porian-hierarchical": ("Porian, hierarchical", "budget"),
                "isoflops-hierarchical": ("IsoFLOP union, hier.", "budget")}


def figure(path: Path) -> None:
    """docs/validation/figures/holdout.png from the saved per-run CSVs: each held-out run's error
    and where its new-run 90 % interval (with the term) lies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesmoe.plots import plot_holdout

    summary = pd.read_csv(OUT / "holdout_summary.csv").set_index("case")
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for ax, (case, (title, by)) in zip(axes.flat, FIGURE_CASES.items()):
        r = summary.loc[case]
        plot_holdout(pd.read_csv(OUT / f"holdout_{case}.csv"), by=by, ax=ax)
        ax.set_title(f"{title}: {int(r.n_held)} held out, max |err| {r.max_abs_error:.3f}, 90 % covers "
                     f"{r.coverage_90:.0%} ({r.coverage_90_law:.0%} law only)", fontsize=8.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", default=[*CASES, "loo"], help=f"of {[*CASES, 'loo']}")
    parser.add_argument("--num-chains", type=int, default=4)
    # fit's defaults: at 500/500 the reference table's fit failed its checks (R-hat 1.0145, 2
    # divergent transitions, 2026-12-03), and a hold-out of an unconverged fit is not a result
    parser.add_argument("--num-warmup", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the docs' tables from the saved CSVs; fit nothing")
    parser.add_argument("--figure", action="store_true", help="draw figures/holdout.png from the saved CSVs; fit nothing")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown())
        return
    if args.figure:
        figure(OUT / "figures" / "holdout.png")
        return
    unknown = [c for c in args.cases if c not in CASES and c != "loo"]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {[*CASES, 'loo']}")
    draws = {"num_chains": args.num_chains, "num_warmup": args.num_warmup, "num_samples": args.num_samples,
             "seed": args.seed}
    os.environ.setdefault("CI", "1")
    summary_path = OUT / "holdout_summary.csv"
    for name in args.cases:
        if name == "loo":
            run_loo(draws)
            continue
        if name in NEEDS_SHARED and not SHARED.is_dir():
            print(f"skipping {name}: {SHARED} is absent (third-party data, not shipped)", file=sys.stderr)
            continue
        row = run_case(name, draws)
        old = pd.read_csv(summary_path) if summary_path.exists() else pd.DataFrame()
        if len(old):
            old = old[old["case"] != name]
        pd.concat([old, pd.DataFrame([row])], ignore_index=True).to_csv(summary_path, index=False)


if __name__ == "__main__":
    main()

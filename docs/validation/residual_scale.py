"""Does the run-to-run noise on ln loss change with scale? The hold-out fits' training residuals.

    PYTHONPATH=. .venv/bin/python docs/validation/residual_scale.py        # about 30 s

Reads the ordered hold-out fits that ``run_discrepancy_holdout.py`` keeps in
``$BAYESMOE_HOLDOUT_FITS`` (default /tmp/bayesmoe_holdout_fits; run that script first where the
folder is missing). For each table: the fitted runs' residuals r = ln L − ln L(x; θ̂), θ̂ the
posterior median of the law's mean at each run, split into thirds by compute (6·N·D); the
robust scale of each third (1.4826 × median absolute deviation), and the slope of ln |r| against
log10 compute by least squares with its standard error. For residuals r = σ(x)·ε with ε of
one distribution, ln |r| = ln σ(x) + ln |ε|, so that slope estimates d ln σ / d decade whatever
ε's law. It also takes up the law's own misfit, which is not noise: a slope below zero means
the small runs scatter more around the law, or the law fits them worse.

bayesmoe's likelihood has one σ per table (``models.py``): these numbers say whether a σ that
moves with compute would be worth its parameter. Written to ``residual_scale.csv``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import bayesmoe

OUT = Path(__file__).resolve().parent
FITS = Path(os.environ.get("BAYESMOE_HOLDOUT_FITS", "/tmp/bayesmoe_holdout_fits"))


def robust_scale(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def table_row(path: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a saved fit that failed its checks warns on load
        fit = bayesmoe.load(path)
    runs = fit.runs
    inputs = runs[[k for k in ("n_active", "tokens", "experts", "group") if k in runs]]
    if "group" in inputs and inputs["group"].nunique() == 1:
        inputs = inputs.drop(columns="group")
    mean = fit.predict(inputs)
    draw_dims = [d for d in mean.dims if d in ("chain", "draw")]
    residual = np.log(runs["loss"].to_numpy()) - np.log(mean.median(dim=draw_dims).values)
    compute = np.log10(6 * runs["n_active"].to_numpy() * runs["tokens"].to_numpy())
    cuts = np.quantile(compute, [1 / 3, 2 / 3])
    thirds = [residual[compute <= cuts[0]], residual[(compute > cuts[0]) & (compute <= cuts[1])],
              residual[compute > cuts[1]]]
    coef, cov = np.polyfit(compute, np.log(np.abs(residual) + 1e-12), 1, cov=True)
    return {
        "table": path.stem, "law": fit.law.name, "runs": len(residual),
        "decades": float(compute.max() - compute.min()),
        "sigma": float(fit.posterior["sigma"].median()),
        "scale_low": robust_scale(thirds[0]), "scale_mid": robust_scale(thirds[1]),
        "scale_high": robust_scale(thirds[2]),
        "slope": float(coef[0]), "slope_se": float(np.sqrt(cov[0, 0])),
    }


def main() -> int:
    paths = sorted(FITS.glob("*.nc"))
    if not paths:
        raise SystemExit(f"no hold-out fits in {FITS}: run docs/validation/run_discrepancy_holdout.py first")
    table = pd.DataFrame([table_row(p) for p in paths]).set_index("table")
    table.to_csv(OUT / "residual_scale.csv", float_format="%.5g")
    pd.set_option("display.width", 220)
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {OUT / 'residual_scale.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

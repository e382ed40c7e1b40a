"""Ordered hold-out on Muennighoff et al. 2023's single-epoch runs, which nothing in bayesmoe was
tuned on.

    PYTHONPATH=. .venv/bin/python docs/validation/run_datablations.py     # about 30 s on 2 cores

"Scaling Data-Constrained Language Models" (Muennighoff et al. 2023) trained GPT-2-style models on
C4; its final-loss contour grid (229 runs, 7M-8.7B parameters, 100M-178B tokens) is in
../shared/data/colpret-hitchhiker/datablations_contour_losses.csv (IBM/ColPret, MIT; read in
place, never copied here). The 33 runs that saw every token once (``epochs == 1``) are a dense
table for the Chinchilla law: N = ``num_params``, D = ``token_num``, loss = ``openLM_loss``. The
repeated-data runs are left out: the law has no term for repetition.

The table was first read in session 23 (2026-12-04), after every default and the distilled
discrepancy prior were fixed, so like StepLaw's (``run_steplaw.py``) it is an out-of-sample check.
Same protocol: fit the runs at or below the 80 % compute quantile (6 N D) at ``fit``'s defaults
(4 chains x 1000/1000, seed 0, the term learned from the fit's own backtests and the shipped
prior), predict the rest. Writes docs/validation/datablations_holdout.csv (one row per held-out
run) and datablations_holdout_summary.csv (the docs' row: coverage, widths, τ, diagnostics), and
prints the docs' row.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bayesmoe.discrepancy import use_cpu_devices  # noqa: E402  (no JAX start: numpy and pandas)

use_cpu_devices()  # a CPU device per chain (the backtests': all at once), before JAX starts

import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_steplaw  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT.parent / "shared" / "data" / "colpret-hitchhiker" / "datablations_contour_losses.csv"
OUT = Path(__file__).resolve().parent / "datablations_holdout.csv"
SUMMARY = Path(__file__).resolve().parent / "datablations_holdout_summary.csv"


def single_epoch_table() -> pd.DataFrame:
    """The runs that saw each of their tokens once."""
    raw = pd.read_csv(SOURCE)
    once = raw[raw["epochs"] == 1]
    return pd.DataFrame({"n_active": once["num_params"], "tokens": once["token_num"],
                         "loss": once["openLM_loss"]}).reset_index(drop=True)


CASES = {"datablations-1-epoch": (single_epoch_table, dict(law="chinchilla", by="compute", quantile=0.8))}


def main() -> int:
    if not SOURCE.exists():
        print(f"{SOURCE} is absent: nothing to run")
        return 0
    row, table = run_steplaw.run("datablations-1-epoch", CASES)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    table.to_csv(OUT, index=False)
    pd.DataFrame([row]).to_csv(SUMMARY, index=False)
    print(table[["n_active", "tokens", "loss", "predicted", "error", "distance", "width90", "in90",
                 "in90_law"]].round(4).to_string())
    print("\n" + run_steplaw.markdown([row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

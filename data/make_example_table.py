"""Simulate the example run table shipped in data/ (until reference_runs' calibration table
replaces it in the README's main job).

    python data/make_example_table.py

Losses come from the joint law with the published coefficients of Ludziejewski et al. 2025
(arXiv:2502.05172, Table 3) plus Gaussian noise of sd 0.0062 on ln loss (the paper's training
RMSE), on a random design spanning the paper's ranges. These are NOT measured runs.
"""

from pathlib import Path

from bayesmoe.testing import TRUTH, synthetic_runs

OUT = Path(__file__).with_name("example_runs_simulated_joint.csv")

if __name__ == "__main__":
    runs = synthetic_runs("joint", TRUTH["joint"], n_runs=270, noise_sd=0.0062, seed=0)
    runs["n_active"] = runs["n_active"].round()
    runs["tokens"] = runs["tokens"].round()
    runs.to_csv(OUT, index=False, float_format="%.6g")
    print(f"wrote {len(runs)} rows to {OUT}")

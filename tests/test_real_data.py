"""Real data: the dense law on Epoch AI's digitised Chinchilla runs (read in place, never copied)."""

import pandas as pd

import bayesmoe

# Epoch's 95 % bootstrap percentile intervals (LAWS.md §5.2, authors' notebook output)
EPOCH_95 = {"a": (285.214, 743.626), "b": (1042.357, 5810.344), "e": (1.769, 1.871),
            "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}


def epoch_runs(shared_data):
    raw = pd.read_csv(shared_data / "epoch-chinchilla" / "svg_extracted_data.csv")
    runs = pd.DataFrame({
        "n_active": raw["Model Size"],
        "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]),  # D = C / 6N, as Epoch did
        "loss": raw["loss"],
    })
    # Explicit, counted exclusion: Epoch dropped the 5 highest-loss runs as outliers.
    outliers = runs["loss"].nlargest(5).index
    return runs.drop(index=outliers).reset_index(drop=True), outliers


def test_epoch_chinchilla_medians_inside_epoch_bootstrap_intervals(shared_data):
    runs, outliers = epoch_runs(shared_data)
    assert len(outliers) == 5 and len(runs) == 240
    result = bayesmoe.fit(runs, law="chinchilla", num_chains=4, num_warmup=500, num_samples=500, seed=0, progress=False)
    assert result.diagnostics.ok, result.diagnostics.problems
    med = result.posterior.median()
    outside = {k: (float(med[k]), lo, hi) for k, (lo, hi) in EPOCH_95.items() if not lo <= float(med[k]) <= hi}
    assert outside == {}

"""Write the simulated example table the way papers and spreadsheets write runs, for the README's
"your own table" example: ``data/example_runs_paper_style.csv``.

    python data/make_paper_style_table.py

Same runs as ``example_runs_simulated_joint.csv`` (simulated, NOT measured), with the columns a
third-party table tends to have: ``ActiveParams`` and ``Tokens`` written as "634M" and "16.6B",
``Experts``, the loss as perplexity ``ppl``, and a text ``data`` column naming the corpus. Reading
it needs ``--columns n_active=ActiveParams,loss=ppl --loss-unit perplexity``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

SOURCE = Path(__file__).with_name("example_runs_simulated_joint.csv")
OUT = Path(__file__).with_name("example_runs_paper_style.csv")


def paper_number(x: float) -> str:
    """634512000 -> '634.512M': three significant decimals, as papers print counts."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if x >= scale:
            return f"{x / scale:.6g}{suffix}"
    return f"{x:.6g}"


if __name__ == "__main__":
    runs = pd.read_csv(SOURCE)
    out = pd.DataFrame({
        "ActiveParams": [paper_number(v) for v in runs["n_active"]],
        "Tokens": [paper_number(v) for v in runs["tokens"]],
        "Experts": runs["experts"].astype(int),
        "data": "simulated",
        "ppl": np.exp(runs["loss"]).round(5),
    })
    out.to_csv(OUT, index=False)
    print(f"wrote {len(out)} rows to {OUT}")

"""The SBC runs behind docs/validation (resumable: rows already in the CSV are skipped).

    .venv/bin/python docs/validation/run_sbc.py joint 200
    .venv/bin/python docs/validation/run_sbc.py chinchilla 200
"""

import sys
from pathlib import Path

import numpyro

numpyro.set_host_device_count(4)  # one CPU device per chain, before JAX starts

from bayesmoe.validation import sbc, sbc_coverage  # noqa: E402

law, n = sys.argv[1], int(sys.argv[2])
out = Path(__file__).with_name(f"sbc_{law}.csv")
table = sbc(law, n_datasets=n, n_runs=120 if law == "joint" else 100, out=out)
print(sbc_coverage(table).to_string())

"""The SBC runs behind docs/validation (resumable: rows already in the CSV are skipped).

    .venv/bin/python docs/validation/run_sbc.py joint 200
    .venv/bin/python docs/validation/run_sbc.py chinchilla 200

The same as ``bayesmoe validate sbc --law LAW --datasets N --runs R --out docs/validation/sbc_LAW.csv
--figure docs/validation/figures/sbc_LAW.png`` with R = 120 for the joint law and 100 otherwise.
"""

import sys

from bayesmoe.cli import main

law, n = sys.argv[1], sys.argv[2]
sys.exit(main(["validate", "sbc", "--law", law, "--datasets", n, "--runs", "120" if law == "joint" else "100",
               "--out", f"docs/validation/sbc_{law}.csv", "--figure", f"docs/validation/figures/sbc_{law}.png"]))

"""The SBC runs behind docs/validation (resumable: rows already in the CSV are skipped).

    .venv/bin/python docs/validation/run_sbc.py joint 200
    .venv/bin/python docs/validation/run_sbc.py chinchilla 200

The same as ``bayesmoe validate sbc --law LAW --datasets N --out docs/validation/sbc_LAW.csv
--figure docs/validation/figures/sbc_LAW.png`` (whose default table size is 120 runs for the joint
law, 100 otherwise).
"""

import sys

from bayesmoe.cli import main

law, n = sys.argv[1], sys.argv[2]
sys.exit(main(["validate", "sbc", "--law", law, "--datasets", n, "--out", f"docs/validation/sbc_{law}.csv",
               "--figure", f"docs/validation/figures/sbc_{law}.png"]))

"""The SBC runs behind docs/validation (resumable: rows already in the CSV are skipped).

    .venv/bin/python docs/validation/run_sbc.py joint 200
    .venv/bin/python docs/validation/run_sbc.py chinchilla 200

The same as ``bayesmoe validate sbc --law LAW --datasets N --out docs/validation/sbc_LAW_current.csv
--figure docs/validation/figures/sbc_LAW_current.png`` (whose default table size is 120 runs for the
joint law, 100 otherwise). The ``_current`` files record, in every row, the table size, prior hash,
seed, target_accept, warmup and package version, and a resumed run refuses a file whose rows differ
in any of them; the older ``sbc_LAW.csv`` / ``sbc_LAW_shares.csv`` files (without those columns)
are the runs docs/validation.md quotes and are never appended to.
"""

import sys

from bayesmoe.cli import main

law, n = sys.argv[1], sys.argv[2]
sys.exit(main(["validate", "sbc", "--law", law, "--datasets", n, "--out", f"docs/validation/sbc_{law}_current.csv",
               "--figure", f"docs/validation/figures/sbc_{law}_current.png"]))

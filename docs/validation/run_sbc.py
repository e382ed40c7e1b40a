"""The SBC runs behind docs/validation at today's defaults (resumable: rows already in the CSV are skipped).

    .venv/bin/python docs/validation/run_sbc.py joint 200
    .venv/bin/python docs/validation/run_sbc.py chinchilla 200

The same as ``bayesmoe validate sbc --law LAW --datasets N --out docs/validation/sbc_LAW_trend.csv
--figure docs/validation/figures/sbc_LAW_trend.png`` (whose default table size is 120 runs for the
joint law, 100 otherwise): the files of session 21, whose defaults (the noise's trend in compute,
the joint law's slope coordinates with 8 start candidates, target_accept 0.95) are today's. Every
row records the table size, prior hash, seed, target_accept, warmup, start candidates and package
version, and a resumed run refuses a file whose rows differ in any of them; the older
``sbc_LAW*.csv`` files are the runs docs/validation.md quotes for earlier code and are never
appended to (their commands there name the settings they were run with).
"""

import sys

from bayesmoe.cli import main

law, n = sys.argv[1], sys.argv[2]
sys.exit(main(["validate", "sbc", "--law", law, "--datasets", n, "--out", f"docs/validation/sbc_{law}_trend.csv",
               "--figure", f"docs/validation/figures/sbc_{law}_trend.png"]))

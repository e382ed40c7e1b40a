#!/bin/sh
# Fetch and clean the English text for the reference runs (offline afterwards).
# Nothing here is committed: reference_runs/text/ is git-ignored (GCIDE is GPL-2+).
#
#   sh reference_runs/prepare_text.sh            # from the repository root
#
# Produces reference_runs/text/gcide.txt (~29 MB) and reference_runs/text/austen.txt (~4 MB).
# `apt-get download` fetches the .deb files without installing them (installing dict-gcide would
# also start a dictd server); `dpkg-deb -x` unpacks them; the .dict.dz file reads as gzip.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/text"
cd "$here/text"
apt-get update
apt-get download dict-gcide r-cran-janeaustenr
for deb in dict-gcide_*.deb r-cran-janeaustenr_*.deb; do
    dpkg-deb -x "$deb" unpacked
done
cd "$here/.."
python -m reference_runs.data --text-dir "$here/text"

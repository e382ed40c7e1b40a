"""Re-save result files of schema ``bayesmoe-fit/1`` as ``bayesmoe-fit/2``, draws unchanged.

Schema 1 hashed only the run table; schema 2 adds a SHA-256 over every group's arrays and every
provenance attribute, which ``bayesmoe.load`` requires. This script applies schema 1's checks
(groups, law, parameters, run-table hash), then writes the same tree through
``FitResult.save``. It was run once on models/reference_joint.nc:

    .venv/bin/python models/resave_schema1.py models/reference_joint.nc
"""

import sys
from pathlib import Path

import xarray as xr

from bayesmoe.laws import get_law
from bayesmoe.priors import spec_from_json
from bayesmoe.results import FitResult, _check_contents


def resave(path: Path) -> None:
    tree = xr.open_datatree(path, engine="h5netcdf")
    tree.load()
    tree.close()
    if tree.attrs.get("schema") != "bayesmoe-fit/1":
        raise SystemExit(f"{path}: schema {tree.attrs.get('schema')!r}, not 'bayesmoe-fit/1'; nothing to do")
    _check_contents(path, tree)  # schema 1's checks
    tree.attrs["resaved_from_schema"] = "bayesmoe-fit/1"
    FitResult(tree, get_law(tree.attrs["law"]), spec_from_json(tree.attrs["priors"])).save(path)
    print(f"{path}: re-saved as schema 2")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        resave(Path(arg))

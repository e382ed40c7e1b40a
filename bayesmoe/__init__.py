"""bayesmoe: Bayesian inference of Mixture-of-Experts scaling laws.

>>> import bayesmoe
>>> result = bayesmoe.fit(runs, law="joint")          # doctest: +SKIP
>>> result.summary()                                   # doctest: +SKIP

The public names load on first use (PEP 562 module ``__getattr__``): ``import bayesmoe`` and the
CLI's ``--help`` and input validation do not pay for importing JAX and NumPyro (about 2 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from bayesmoe.errors import (  # noqa: E402  (cheap: no third-party imports)
    BayesMoEError,
    ConvergenceError,
    ConvergenceWarning,
    DataValidationError,
    InputError,
    LoadError,
    PriorError,
)

#: public name -> module that defines it, imported when the name is first read
_LAZY = {
    "fit": "bayesmoe.fitting",
    "load": "bayesmoe.results",
    "FitResult": "bayesmoe.results",
    "Budget": "bayesmoe.optima",
    "ModelShape": "bayesmoe.shape",
    "validate_runs": "bayesmoe.data",
    "Law": "bayesmoe.laws",
    "Term": "bayesmoe.laws",
    "Prior": "bayesmoe.priors",
    "get_law": "bayesmoe.laws",
    "register_law": "bayesmoe.laws",
}
_SUBMODULES = ("cli", "data", "design", "errors", "fitting", "inference", "laws", "models", "optima", "plots",
               "priors", "report", "results", "shape", "testing", "validation", "compile_cache")

if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from bayesmoe.data import validate_runs
    from bayesmoe.fitting import fit
    from bayesmoe.laws import Law, Term, get_law, register_law
    from bayesmoe.optima import Budget
    from bayesmoe.priors import Prior
    from bayesmoe.results import FitResult, load
    from bayesmoe.shape import ModelShape


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later reads skip this hook
        return value
    if name in _SUBMODULES:  # `import bayesmoe; bayesmoe.laws.register_law(...)` as before
        return importlib.import_module(f"bayesmoe.{name}")
    raise AttributeError(f"module 'bayesmoe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


__all__ = [
    "__version__",
    "fit",
    "load",
    "FitResult",
    "Budget",
    "ModelShape",
    "validate_runs",
    "Law",
    "Term",
    "Prior",
    "get_law",
    "register_law",
    "BayesMoEError",
    "DataValidationError",
    "InputError",
    "PriorError",
    "ConvergenceError",
    "ConvergenceWarning",
    "LoadError",
]

"""bayesmoe: Bayesian inference of Mixture-of-Experts scaling laws.

>>> import bayesmoe
>>> result = bayesmoe.fit(runs, law="joint")          # doctest: +SKIP
>>> result.summary()                                   # doctest: +SKIP
"""

__version__ = "0.1.0"

from bayesmoe.data import validate_runs
from bayesmoe.errors import (
    BayesMoEError,
    ConvergenceError,
    ConvergenceWarning,
    DataValidationError,
    InputError,
    LoadError,
    PriorError,
)
from bayesmoe.fitting import fit
from bayesmoe.laws import Law, Term, get_law, register_law
from bayesmoe.optima import Budget
from bayesmoe.priors import Prior
from bayesmoe.results import FitResult, load
from bayesmoe.shape import ModelShape

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

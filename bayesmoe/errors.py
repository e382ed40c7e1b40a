"""Exceptions and warnings raised by bayesmoe.

Each subclass also inherits the builtin a caller would naturally catch.
"""

__all__ = [
    "BayesMoEError",
    "DataValidationError",
    "PriorError",
    "InputError",
    "ConvergenceError",
    "ConvergenceWarning",
    "LoadError",
]


class BayesMoEError(Exception):
    """Base class of every bayesmoe error."""


class DataValidationError(BayesMoEError, ValueError):
    """The run table does not match the schema; the message lists every problem."""


class InputError(BayesMoEError, ValueError):
    """An argument of a call is out of range or inconsistent (a budget, ci_prob, a query); the
    message says what was given and what is expected. The CLI prints these without a traceback;
    any other exception is a bug and keeps its traceback."""


class PriorError(BayesMoEError, ValueError):
    """A prior specification is malformed or names unknown parameters."""


class ConvergenceError(BayesMoEError, RuntimeError):
    """NUTS did not converge (R-hat, ESS or divergences); the message names the parameters.

    ``result`` holds the fit that failed (a :class:`~bayesmoe.results.FitResult` whose
    ``tree.attrs["convergence"]`` is ``"failed"``), so the draws are never lost: inspect or
    ``save`` it. ``None`` when no draws exist (e.g. no finite starting point).
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class ConvergenceWarning(UserWarning):
    """A bad fit kept on purpose with ``on_bad_fit="warn"``; also stored on the result."""


class LoadError(BayesMoEError, ValueError):
    """A saved result is not a bayesmoe file, or its contents do not match its provenance."""

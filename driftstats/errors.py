"""Named exceptions and warnings.

Every error subclasses :class:`DriftstatsError` *and* the builtin that fits, so
``except ValueError`` keeps working for callers that do not know driftstats.
Messages follow one shape: what was received, what is allowed, how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ColumnTypeError",
    "ConvergenceWarning",
    "DriftstatsError",
    "DriftstatsWarning",
    "DuplicateKeyError",
    "EmptyArmError",
    "EmptyLogError",
    "IncompleteLogError",
    "InsufficientDataError",
    "InvalidAnswersWarning",
    "InvalidArgumentError",
    "InvalidValueError",
    "LogNotFoundError",
    "LogValidationError",
    "MissingColumnError",
    "MonteCarloErrorWarning",
    "PersonaValueWarning",
    "SingleOptionItemError",
    "UnknownOptionError",
    "UnreadableLogError",
    "WeakProxyWarning",
    "format_rows",
]


class DriftstatsError(Exception):
    """Base class of every driftstats error."""


class InvalidArgumentError(DriftstatsError, ValueError):
    """An argument has a value that is not allowed."""


class InsufficientDataError(DriftstatsError, ValueError):
    """The data are too few for the requested computation."""


class LogValidationError(DriftstatsError, ValueError):
    """A simulation log does not satisfy the schema (``docs/schema.md``)."""


class MissingColumnError(LogValidationError, KeyError):
    """A required column is absent."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ColumnTypeError(LogValidationError, TypeError):
    """A column holds values of the wrong type."""


class InvalidValueError(LogValidationError):
    """A column holds values outside their allowed set or range."""


class UnknownOptionError(LogValidationError):
    """A valid answer is not one of its item's options."""


class DuplicateKeyError(LogValidationError):
    """Two rows share the same key."""


class EmptyArmError(LogValidationError):
    """A declared arm has no rows."""


class SingleOptionItemError(LogValidationError):
    """A categorical item declares fewer than two options."""


class EmptyLogError(LogValidationError):
    """The log has no rows."""


class UnreadableLogError(LogValidationError):
    """The file cannot be read as a log of its format (not a DuckDB / Parquet / CSV / JSONL file, empty, corrupt)."""


class LogNotFoundError(UnreadableLogError, FileNotFoundError):
    """The log file (or a side table file) does not exist; also a :class:`FileNotFoundError`."""


class IncompleteLogError(LogValidationError):
    """The log is a collector store whose run is still in progress, or stopped before every unit was done."""


# --------------------------------------------------------------------------- warnings
class DriftstatsWarning(UserWarning):
    """Base class of every driftstats warning."""


class InvalidAnswersWarning(DriftstatsWarning):
    """Rows flagged ``valid = false`` were left out of an analysis (counts in the message)."""


class MonteCarloErrorWarning(DriftstatsWarning):
    """A Monte Carlo p-value or interval is too coarse for the requested decision."""


class ConvergenceWarning(DriftstatsWarning):
    """An optimiser did not report convergence."""


class PersonaValueWarning(DriftstatsWarning):
    """Specified persona values that are not options of their fidelity item were left out (counts in the message)."""


class WeakProxyWarning(DriftstatsWarning):
    """First-stage strength of a proximal proxy is weak (partial F below the threshold)."""


def format_rows(index: Sequence[object], *, limit: int = 5) -> str:
    """Describe offending rows: the first few positions and the total count."""
    shown = ", ".join(str(i) for i in list(index)[:limit])
    more = "" if len(index) <= limit else ", ..."
    return f"{len(index)} row(s) (first: {shown}{more})"

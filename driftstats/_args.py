"""Argument validation shared by every public function.

Option strings are ``Literal`` aliases checked at run time from the same alias, so the
type and the check cannot drift apart. Messages: argument -> value -> allowed -> fix.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from driftstats.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_N_BOOT",
    "DEFAULT_N_PERM",
    "DEFAULT_SEED",
    "as_columns",
    "check_by",
    "check_choice",
    "check_conf_level",
    "check_margin",
    "check_positive_int",
    "rng_from",
    "seed_value",
]

SeedLike = int | np.random.Generator | None

#: Every randomised verb defaults to this seed, so two identical calls give identical numbers.
#: ``seed=None`` asks for fresh OS entropy (then ``glance()["seed"]`` is NA: not reproducible).
DEFAULT_SEED: int = 0
#: Permutations per test and bootstrap resamples per interval: one default everywhere.
DEFAULT_N_PERM: int = 2000
DEFAULT_N_BOOT: int = 2000


def check_choice(name: str, value: Any, alias: Any) -> Any:
    allowed = typing.get_args(alias)
    if value not in allowed:
        raise InvalidArgumentError(
            f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}."
        )
    return value


def check_conf_level(conf_level: float, name: str = "conf_level") -> float:
    try:
        ok = 0.0 < float(conf_level) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidArgumentError(
            f"{name} must be a number strictly between 0 and 1 (e.g. 0.95); got {conf_level!r}."
        )
    return float(conf_level)


def check_margin(margin: float, name: str = "margin") -> float:
    """A TVD equivalence margin: strictly between 0 and 1."""
    try:
        ok = 0.0 < float(margin) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InvalidArgumentError(
            f"{name} must be a TVD strictly between 0 and 1, the largest drift you would call negligible "
            f"(e.g. 0.05); got {margin!r}.")
    return float(margin)


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def rng_from(seed: SeedLike) -> np.random.Generator:
    """``seed`` as a Generator: an int seeds a new PCG64, a Generator is used as is."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise InvalidArgumentError(
        f"seed must be an int, a numpy.random.Generator or None; got {type(seed).__name__}."
    )


def seed_value(seed: SeedLike) -> int | None:
    """The seed to record in ``glance()`` (only ints are reproducible from the record)."""
    return int(seed) if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) else None


def as_columns(name: str, value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    out = tuple(value)
    if not all(isinstance(v, str) for v in out):
        raise InvalidArgumentError(f"{name} must be a column name or a list of names; got {value!r}.")
    return out


def check_by(by: str | Iterable[str] | None, available: Iterable[str], *, arg: str = "by") -> tuple[str, ...]:
    """Grouping columns, each checked against ``available``: an unknown column is an error everywhere.

    One rule for every verb's ``by=``: a name that is not a column raises
    :class:`InvalidArgumentError` naming it and listing what is available (nothing is dropped
    silently). ``by=()`` / ``None`` means no grouping.
    """
    cols = as_columns(arg, by)
    avail = list(dict.fromkeys(str(a) for a in available))
    unknown = [c for c in cols if c not in avail]
    if unknown:
        raise InvalidArgumentError(
            f"{arg}={list(cols)!r} names {unknown}, which {'is' if len(unknown) == 1 else 'are'} not a column here; "
            f"available: {sorted(avail)}. Fix: pass {arg}=() for no grouping, or one of the available columns."
        )
    return cols


def check_in(name: str, value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InvalidArgumentError(
            f"{name}={value!r} is not a {what} of this log; available: {sorted(map(str, allowed))}."
        )
    return value

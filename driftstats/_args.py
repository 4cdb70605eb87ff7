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

__all__ = ["as_columns", "check_choice", "check_conf_level", "check_positive_int", "rng_from", "seed_value"]

SeedLike = int | np.random.Generator | None


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


def check_in(name: str, value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InvalidArgumentError(
            f"{name}={value!r} is not a {what} of this log; available: {sorted(map(str, allowed))}."
        )
    return value

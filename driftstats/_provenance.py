"""Provenance of a result: the call, the seed and a fingerprint of the data it was computed from.

``provenance(call, data, seed=...)`` gives the :class:`~driftstats._result.Provenance` every
public verb attaches to its result. The data fingerprint is the log's
:meth:`~driftstats.SimLog.fingerprint` (content hash of its four tables, independent of row
order) or, for a plain DataFrame, a hash of its values; arrays are hashed by their bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from driftstats._args import SeedLike, seed_value
from driftstats._result import Provenance

__all__ = ["data_fingerprint", "provenance"]


def data_fingerprint(data: Any) -> str | None:
    """A short content hash of ``data`` (a log, a DataFrame, or arrays); None when unknown."""
    fp = getattr(data, "fingerprint", None)
    if callable(fp):
        return str(fp())
    if isinstance(data, pd.DataFrame):
        h = hashlib.sha256()
        h.update(",".join(map(str, data.columns)).encode())
        h.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]
    if isinstance(data, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(data, dtype=float)
        except (TypeError, ValueError):
            return None
        return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]
    return None


def provenance(call: str, data: Any = None, *, seed: SeedLike = None,
               extra: tuple[tuple[str, str], ...] = ()) -> Provenance:
    """The provenance record of a result computed by ``call`` from ``data``."""
    fp = data_fingerprint(data) if data is not None else None
    fields = ((("data_sha256", fp),) if fp else ()) + tuple(extra)
    return Provenance(call=call, seed=seed_value(seed), data=fields)

"""Figures of the audit (matplotlib; ``pip install 'driftstats[plot]'``).

Every function returns a ``matplotlib.figure.Figure`` built without pyplot's global state
(so figures are deterministic and safe in scripts, reports and notebooks) and accepts
``ax=`` to draw into an existing axes where it makes one panel. The figure types follow
the motivating paper: NCO TVD over adjustment iterations with interval and permutation-null
bands (Fig. 3), the observed effect over iterations (Fig. 4), NCO distributions by arm and
iteration (Figs. 5-6), persona fidelity by attribute and arm (Fig. 7); plus forest plots of
excess TVD, calibration plots and corrected-vs-naive estimates. The ``plot_adjustment_*``
figures draw an adjustment study (:func:`driftstats.adjustment_path`), faceted per model with
one line per adjustment path.

Names from a log (arms, items, options, terms) are drawn literally: a ``$`` is a dollar sign,
never mathtext. Rows that carry no test (a ``note``, a NaN estimate) are never drawn as findings.
"""

from driftstats.plot.adjustment import (
    plot_adjustment_distributions,
    plot_adjustment_drift,
    plot_adjustment_effect,
    plot_adjustment_outcome,
)
from driftstats.plot.figures import (
    plot_calibration,
    plot_corrections,
    plot_distributions,
    plot_effect,
    plot_fidelity,
    plot_forest,
    plot_iterations,
    plot_nco,
)

__all__ = [
    "plot_adjustment_distributions",
    "plot_adjustment_drift",
    "plot_adjustment_effect",
    "plot_adjustment_outcome",
    "plot_calibration",
    "plot_corrections",
    "plot_distributions",
    "plot_effect",
    "plot_fidelity",
    "plot_forest",
    "plot_iterations",
    "plot_nco",
]

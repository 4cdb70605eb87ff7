"""The persona-augmentation loop (methods.md section 4.1): drift and effect over adjustment iterations."""

from driftstats.adjust.path import ADJUSTMENT_ASSUMPTIONS, AdjustmentResult, adjustment_path

__all__ = ["ADJUSTMENT_ASSUMPTIONS", "AdjustmentResult", "adjustment_path"]

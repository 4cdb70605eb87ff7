"""The audit a person reads: :func:`audit` runs every analysis, :meth:`Audit.write_html` writes a
self-contained report (``pip install 'driftstats[report]'``)."""

from driftstats.report.audit import Audit, audit

__all__ = ["Audit", "audit"]

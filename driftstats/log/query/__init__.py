"""The log's query layer: the one home of data access.

Statistics code (``driftstats.nco``, ``effects``, ``persona``, ``correct``, the audit) never
writes SQL. It asks these functions, which run parametrised, identifier-quoted queries
against a :class:`~driftstats.SimLog` and return numpy arrays or pandas frames. One module
per consumer keeps the queries next to each other without a god module:

* :mod:`~driftstats.log.query.design` - arms, pairing, counts shared by every verb.
* :mod:`~driftstats.log.query.units` - unit-level tables of item codes and persona attributes (effects, corrections).
* :mod:`~driftstats.log.query.fidelity` - specified persona values matched with their re-asked answers.
* :mod:`~driftstats.log.query.audit` - the audit's size checks.
* :mod:`~driftstats.log.query.adjustment` - per-run answer shares, unit counts and NCO answers with their true values (``adjustment_path``).
* :mod:`~driftstats.log.query.dialogue` - the units' dialogues: sizes, turns and end reasons per arm, transcripts to show.
"""

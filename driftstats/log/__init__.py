"""The simulation-log schema and its validated I/O (see ``docs/schema.md``)."""

from driftstats.log.schema import ANSWER_KEYS, ROLES, SCALES, SCHEMA_VERSION
from driftstats.log.simlog import ItemInfo, SimLog, as_log, read_log
from driftstats.log.summary import LogSummary

__all__ = ["ANSWER_KEYS", "ROLES", "SCALES", "SCHEMA_VERSION", "ItemInfo", "LogSummary", "SimLog", "as_log", "read_log"]

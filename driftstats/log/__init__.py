"""The simulation-log schema and its validated I/O (see ``docs/schema.md``)."""

from driftstats.log.build import MAX_OPTIONS
from driftstats.log.io import LogNotFoundError
from driftstats.log.schema import ANSWER_KEYS, ROLES, SCALES, SCHEMA_VERSION
from driftstats.log.simlog import ItemInfo, SimLog, as_log, importer_formats, read_log
from driftstats.log.summary import LogSummary
from driftstats.log.wide import from_wide

__all__ = [
    "ANSWER_KEYS",
    "MAX_OPTIONS",
    "ROLES",
    "SCALES",
    "SCHEMA_VERSION",
    "ItemInfo",
    "LogNotFoundError",
    "LogSummary",
    "SimLog",
    "as_log",
    "from_wide",
    "importer_formats",
    "read_log",
]

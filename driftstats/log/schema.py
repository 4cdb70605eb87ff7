"""The simulation-log schema: the one contract shared by ``driftstats`` and ``collectors``.

Documented in ``docs/schema.md`` (a test keeps the two in sync). Every table is declared once,
in :data:`SCHEMA`; the readers, writers, :class:`~driftstats.SimLog` and the collectors' store
derive their table lists from it. A log is four tables, plus three optional ones:

* ``answers`` - one row per elicited answer (long format); required.
* ``items``   - one row per item: text, ordered options, scale, role.
* ``personas``- one row per (unit, attribute): the persona, long format.
* ``arms``    - one row per arm: kind (control / treatment / placebo) and intervention text.
* ``iterations`` - one row per (model, adjustment path, iteration): the persona spec and the
  stopping rules (adjustment studies only).
* ``adjustments`` - one row per (model, path, iteration, attribute): each attribute of the spec
  or candidate, where it came from and why it was chosen (adjustment studies only).
* ``transcripts`` - one row per message of a unit's intervention dialogue (multi-turn studies and
  imported agent evaluations only).

Only ``answers`` is required on read; the others are inferred (and the inference is
recorded in the log's diagnostics) when absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = [
    "ADJUSTMENTS",
    "ADJUSTMENT_SOURCES",
    "ADJUSTMENT_STATUSES",
    "ANSWERS",
    "ANSWER_KEYS",
    "ARMS",
    "ARM_KINDS",
    "CORE_SIDE_TABLES",
    "DIALOGUE_ENDS",
    "DIALOGUE_END_ITEM",
    "DIALOGUE_TURNS_ITEM",
    "ITEMS",
    "ITERATIONS",
    "MESSAGE_ROLES",
    "MODES",
    "OPTIONAL_TABLES",
    "PERSONAS",
    "ROLES",
    "SCALES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SIDE_TABLES",
    "STOP_RULES",
    "TABLES",
    "TABLE_KEYS",
    "TRANSCRIPTS",
    "ArmKind",
    "Field",
    "Mode",
    "Role",
    "Scale",
    "Table",
    "TableName",
]

SCHEMA_VERSION = "1"

Role = Literal["primary", "nco", "fidelity", "confounder", "covariate", "proxy", "other"]
Scale = Literal["ordinal", "nominal", "numeric"]
Mode = Literal["sample", "dist"]
ArmKind = Literal["control", "treatment", "placebo"]

#: The values of the aliases above, for run-time checks (the aliases are their one declaration).
ROLES: tuple[str, ...] = get_args(Role)
SCALES: tuple[str, ...] = get_args(Scale)
MODES: tuple[str, ...] = get_args(Mode)
ARM_KINDS: tuple[str, ...] = get_args(ArmKind)
ADJUSTMENT_STATUSES: tuple[str, ...] = ("specified", "added", "candidate", "invalid")
ADJUSTMENT_SOURCES: tuple[str, ...] = ("base", "population", "analyst", "model")
STOP_RULES: tuple[str, ...] = ("equivalence", "no_change", "max_iterations", "no_candidates")
#: Who wrote a message of a dialogue (transcripts.role).
MESSAGE_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
#: Why a collected dialogue ended (the options of the item ``dialogue_end``): the simulated user emitted its
#: stop marker, the assistant emitted its own end, the turn limit was reached, or generation failed.
#: Imported logs keep their own tool's labels (e.g. tau2-bench's ``user_stop``, ``agent_stop``, ``max_steps``).
DIALOGUE_ENDS: tuple[str, ...] = ("user_stop", "assistant_stop", "max_turns", "error")
#: Items every dialogue unit carries (so stopping behaviour is tested like any outcome):
#: the number of turns (numeric) and why the dialogue ended (nominal).
DIALOGUE_TURNS_ITEM = "dialogue_turns"
DIALOGUE_END_ITEM = "dialogue_end"

SqlType = Literal["VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMPTZ"]


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a log table.

    ``default`` is the SQL expression used when an optional column is absent
    (``None``: the column is required).
    """

    name: str
    sql: SqlType
    default: str | None
    nullable: bool
    description: str

    @property
    def required(self) -> bool:
        return self.default is None


def _f(name: str, sql: SqlType, default: str | None, nullable: bool, description: str) -> Field:
    return Field(name, sql, default, nullable, description)


ANSWERS: tuple[Field, ...] = (
    # --- keys
    _f("study", "VARCHAR", "'study'", False, "study name"),
    _f("run_id", "VARCHAR", "'run'", False, "one execution of a study (collector run)"),
    _f("iteration", "BIGINT", "0", False, "adjustment iteration; 0 = base persona spec"),
    _f("model", "VARCHAR", "'unknown'", False, "model name (file name of the GGUF for collectors)"),
    _f("unit_id", "VARCHAR", None, False, "one simulated user (one persona instance in one arm); unique in the log"),
    _f("arm", "VARCHAR", None, False, "arm (intervention) the unit was assigned to"),
    _f("item", "VARCHAR", None, False, "question id"),
    _f("replicate", "BIGINT", "0", False, "repeated elicitation of the same item for the same unit"),
    # --- design
    _f("persona_id", "VARCHAR", "NULL", True, "persona spec shared by units matched across arms (paired designs); NULL when independent"),
    _f("role", "VARCHAR", "NULL", True, "role of the item (primary, nco, fidelity, confounder, ...); taken from items when NULL"),
    _f("mode", "VARCHAR", "'sample'", False, "'sample': one sampled answer per row; 'dist': one row per option with its probability"),
    # --- the answer
    _f("response", "VARCHAR", None, True, "answer label, one of the item's options (NULL only when valid is false)"),
    _f("response_code", "BIGINT", "NULL", True, "0-based position of response in the item's options; derived when NULL"),
    _f("response_value", "DOUBLE", "NULL", True, "numeric value for numeric items (e.g. stated age); derived from response when NULL"),
    _f("prob", "DOUBLE", "NULL", True, "probability of the option in mode 'dist' (sums to 1 per answer); NULL in mode 'sample'"),
    _f("option_order", "VARCHAR", "NULL", True, "order in which options were shown, as positions joined by '|' (e.g. '2|0|1'); NULL = canonical"),
    _f("valid", "BOOLEAN", "TRUE", False, "false when the answer failed validation; such rows are kept, never dropped"),
    _f("error", "VARCHAR", "NULL", True, "why the answer is invalid (generator or validation error text)"),
    # --- provenance
    _f("model_sha256", "VARCHAR", "NULL", True, "sha256 of the model file"),
    _f("prompt_sha256", "VARCHAR", "NULL", True, "sha256 of the exact prompt text"),
    _f("dialogue_sha256", "VARCHAR", "NULL", True, "for units whose intervention is a dialogue: sha256 of the transcript the answer was asked after (transcripts.dialogue_sha256 of its last message)"),
    _f("grammar_sha256", "VARCHAR", "NULL", True, "sha256 of the constraint (grammar / regex / JSON schema)"),
    _f("seed", "BIGINT", "NULL", True, "seed of the generation"),
    _f("temperature", "DOUBLE", "NULL", True, "sampling temperature"),
    _f("top_p", "DOUBLE", "NULL", True, "nucleus sampling parameter"),
    _f("sampling", "VARCHAR", "NULL", True, "other sampling parameters as a JSON object"),
    _f("backend", "VARCHAR", "NULL", True, "generation backend (e.g. llama.cpp, openai-http, edsl)"),
    _f("backend_version", "VARCHAR", "NULL", True, "versions of the backend stack (JSON object)"),
    _f("created_at", "TIMESTAMPTZ", "NULL", True, "when the answer was generated (UTC)"),
)

ITEMS: tuple[Field, ...] = (
    _f("item", "VARCHAR", None, False, "question id"),
    _f("text", "VARCHAR", "NULL", True, "question text as shown to the model"),
    _f("options", "VARCHAR", None, True, "options in order, as a JSON array of strings; NULL for numeric items"),
    _f("scale", "VARCHAR", "'nominal'", False, "ordinal, nominal or numeric"),
    _f("role", "VARCHAR", "'other'", False, "primary, nco, fidelity, confounder, covariate, proxy or other"),
    _f("attribute", "VARCHAR", "NULL", True, "for fidelity items: the persona attribute the item re-asks"),
)

PERSONAS: tuple[Field, ...] = (
    _f("unit_id", "VARCHAR", None, False, "the unit"),
    _f("attribute", "VARCHAR", None, False, "persona attribute name"),
    _f("value", "VARCHAR", None, True, "its value, as text (for fidelity: a label of the matching item's options)"),
    _f("specified", "BOOLEAN", "TRUE", False, "true if stated in the persona prompt; false for latent values known from the source population"),
)

ARMS: tuple[Field, ...] = (
    _f("arm", "VARCHAR", None, False, "arm name"),
    _f("kind", "VARCHAR", "'treatment'", False, "control, treatment or placebo"),
    _f("intervention", "VARCHAR", "NULL", True, "the intervention text"),
)

ITERATIONS: tuple[Field, ...] = (
    _f("study", "VARCHAR", "'study'", False, "study name"),
    _f("model", "VARCHAR", None, False, "model name, as in answers.model"),
    _f("path", "VARCHAR", None, False, "adjustment path (e.g. 'targeted', 'untargeted'; 'reference' = full-information reference spec)"),
    _f("iteration", "BIGINT", None, False, "adjustment iteration; 0 = base persona spec (shared by every path of a model)"),
    _f("run_id", "VARCHAR", None, False, "answers.run_id of this iteration's units (iteration 0 of every path of a model: the same run_id)"),
    _f("select", "VARCHAR", "NULL", True, "how attributes were chosen: targeted, untargeted, random, reference, or NULL at iteration 0"),
    _f("spec", "VARCHAR", None, False, "the persona attributes stated in the prompt at this iteration, as a JSON array"),
    _f("units", "BIGINT", "NULL", True, "units run at this iteration"),
    _f("rules_fired", "VARCHAR", "'[]'", False, "stopping rules that hold after this iteration, as a JSON array (equivalence, no_change, max_iterations, no_candidates)"),
    _f("stopped_by", "VARCHAR", "NULL", True, "the rule that ended the path after this iteration (one of rules_fired that the study stops on); NULL when the path went on"),
    _f("stop_detail", "VARCHAR", "NULL", True, "the numbers behind rules_fired, as a JSON object"),
)

ADJUSTMENTS: tuple[Field, ...] = (
    _f("study", "VARCHAR", "'study'", False, "study name"),
    _f("model", "VARCHAR", None, False, "model name, as in answers.model"),
    _f("path", "VARCHAR", None, False, "adjustment path, as in iterations.path"),
    _f("iteration", "BIGINT", None, False, "the iteration whose persona spec this row describes"),
    _f("attribute", "VARCHAR", None, False, "persona attribute (a candidate confounder, or a base attribute)"),
    _f("status", "VARCHAR", None, False, "specified (in the spec before this iteration), added (entered the spec at this iteration), candidate (considered, not added), invalid (a proposal that failed validation, kept)"),
    _f("source", "VARCHAR", None, False, "where the attribute came from: base (the study's spec), population (a column of the population table), analyst (the study file), model (proposed by the model)"),
    _f("score", "DOUBLE", "NULL", True, "selection score computed from the previous iteration (see score_detail); NULL when not scored"),
    _f("score_detail", "VARCHAR", "NULL", True, "the numbers behind score (drift across arms, association with the outcome in the control arm), as a JSON object"),
    _f("values_from", "VARCHAR", "NULL", True, "how values are set by design: population (the real respondent's value) or model_control (sampled from the model's own control-arm distribution for that persona at iteration 0)"),
    _f("item", "VARCHAR", "NULL", True, "the probe item that asks this attribute (answers.item)"),
    _f("question", "VARCHAR", "NULL", True, "the probe's question text"),
    _f("options", "VARCHAR", "NULL", True, "the probe's options, as a JSON array"),
    _f("raw", "VARCHAR", "NULL", True, "for source = model: the model's raw answer text, kept even when invalid"),
    _f("note", "VARCHAR", "NULL", True, "why a proposal is invalid or was dropped (duplicate, a diagnostic NCO, ...)"),
)

TRANSCRIPTS: tuple[Field, ...] = (
    _f("unit_id", "VARCHAR", None, False, "the unit whose intervention dialogue this message belongs to (answers.unit_id)"),
    _f("message", "BIGINT", None, False, "0-based position of the message in the unit's dialogue"),
    _f("turn", "BIGINT", None, False, "0-based turn: one round in which each role speaks once (tool messages share the turn of the call)"),
    _f("role", "VARCHAR", None, False, "system, user (the simulated user), assistant (the agent under evaluation) or tool"),
    _f("text", "VARCHAR", None, True, "the message text exactly as generated or imported (NULL: no text, e.g. a pure tool call)"),
    _f("tokens", "BIGINT", "NULL", True, "tokens generated for the message (NULL when unknown)"),
    _f("finish_reason", "VARCHAR", "NULL", True, "why generation of the message stopped: eos, stop_marker, max_tokens, error, or the importing tool's label"),
    _f("tool_calls", "VARCHAR", "NULL", True, "tool calls the message makes, as a JSON array (imported agent logs)"),
    _f("valid", "BOOLEAN", "TRUE", False, "false when the message is empty or failed (kept and flagged, never dropped)"),
    _f("error", "VARCHAR", "NULL", True, "why the message is invalid"),
    _f("model", "VARCHAR", "NULL", True, "the model that wrote the message (for user messages: the simulated user's model)"),
    _f("seed", "BIGINT", "NULL", True, "seed of the message's generation"),
    _f("sha256", "VARCHAR", "NULL", True, "sha256 of text (UTF-8)"),
    _f("dialogue_sha256", "VARCHAR", "NULL", True, "running sha256 of the dialogue up to and including this message; the last message's value is answers.dialogue_sha256 of the unit's answers"),
    _f("created_at", "TIMESTAMPTZ", "NULL", True, "when the message was generated (UTC)"),
)

ANSWER_KEYS: tuple[str, ...] = (
    "study",
    "run_id",
    "iteration",
    "model",
    "unit_id",
    "arm",
    "item",
    "mode",
    "replicate",
)

TableName = Literal["answers", "items", "personas", "arms", "iterations", "adjustments", "transcripts"]


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the log: the single declaration every reader, writer and store derives from.

    ``optional``: an optional table is empty when absent, is written (sidecar file, DuckDB table)
    only when it holds rows, is stored and returned in the order of its ``keys``, and enters the
    log's fingerprint only when it holds rows. The other side tables (``items``, ``personas``,
    ``arms``) are inferred from the answers when absent. ``json_arrays``: columns holding a JSON
    array of strings; ``json_values``: columns holding any JSON array (e.g. objects); a frame may
    give both as Python lists.
    """

    name: str
    fields: tuple[Field, ...]
    keys: tuple[str, ...]
    optional: bool = False
    json_arrays: tuple[str, ...] = ()
    json_values: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


#: Every table of the log, in the order they are read, written and documented.
SCHEMA: dict[str, Table] = {t.name: t for t in (
    Table("answers", ANSWERS, ANSWER_KEYS),  # plus `response` in mode 'dist'
    Table("items", ITEMS, ("item",), json_arrays=("options",)),
    Table("personas", PERSONAS, ("unit_id", "attribute")),
    Table("arms", ARMS, ("arm",)),
    Table("iterations", ITERATIONS, ("study", "model", "path", "iteration"), optional=True,
          json_arrays=("spec", "rules_fired")),
    Table("adjustments", ADJUSTMENTS, ("study", "model", "path", "iteration", "attribute"), optional=True,
          json_arrays=("options",)),
    Table("transcripts", TRANSCRIPTS, ("unit_id", "message"), optional=True, json_values=("tool_calls",)),
)}

TABLES: dict[str, tuple[Field, ...]] = {name: t.fields for name, t in SCHEMA.items()}
TABLE_KEYS: dict[str, tuple[str, ...]] = {name: t.keys for name, t in SCHEMA.items()}
#: The side tables (every table but ``answers``), the optional ones among them, and those inferred when absent.
SIDE_TABLES: tuple[str, ...] = tuple(n for n in SCHEMA if n != "answers")
OPTIONAL_TABLES: tuple[str, ...] = tuple(n for n, t in SCHEMA.items() if t.optional)
CORE_SIDE_TABLES: tuple[str, ...] = tuple(n for n in SIDE_TABLES if n not in OPTIONAL_TABLES)

if get_args(TableName) != tuple(SCHEMA):  # pragma: no cover - a declaration error, caught by any import
    raise RuntimeError(f"schema: TableName {get_args(TableName)} does not list the tables of SCHEMA {tuple(SCHEMA)}")

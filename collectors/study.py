"""A study: population, arms, items, model and design (TOML or YAML file, or Python).

Validated with pydantic; a bad field raises :class:`StudyError` naming the field path,
the value and what is allowed. Study files are data: nothing in them is evaluated.
Templates use ``{name}`` placeholders substituted from a fixed set of names.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftstats.log.schema import ArmKind, Role

__all__ = ["AdjustmentSpec", "ArmSpec", "AssistantModelSpec", "CandidateSpec", "DesignSpec", "DialogueSpec", "ItemSpec",
           "ModelSpec", "PopulationSpec", "Study", "StudyError", "load_study", "parse_study"]


class StudyError(ValueError):
    """A study file or study object is invalid; the message names the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PopulationSpec(_Strict):
    """Where personas come from and which of their attributes the prompt states."""

    source: str = Field("anes96", description="'anes96' (statsmodels) or a path to a CSV/Parquet table")
    specified: list[str] = Field(default_factory=lambda: ["age", "party"], min_length=0)
    latent: list[str] = Field(default_factory=list, description="attributes kept as known truth, not stated")
    sample: Literal["without_replacement", "with_replacement"] = "without_replacement"

    @model_validator(mode="after")
    def _disjoint(self) -> PopulationSpec:
        both = sorted(set(self.specified) & set(self.latent))
        if both:
            raise ValueError(f"attributes {both} are both specified and latent")
        return self


class ArmSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    kind: ArmKind = "treatment"
    text: str | None = Field(None, min_length=1, description="the intervention the simulated user reads "
                                                             "(required unless the study has a [dialogue])")
    assistant: str | None = Field(None, min_length=1, description="in a dialogue study: the assistant's "
                                                                  "instructions in this arm")

    @property
    def intervention(self) -> str:
        """What the arm does to the simulated user: its text, or in a dialogue its assistant's instructions."""
        return self.text if self.text is not None else (self.assistant or "")


class ItemSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    role: Role
    text: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    scale: Literal["ordinal", "nominal"] = "ordinal"
    attribute: str | None = Field(None, description="for fidelity items: the persona attribute re-asked")

    @field_validator("options")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("options must be distinct")
        if len(v) > 26:
            raise ValueError("at most 26 options (they are labelled A-Z)")
        return v

    @model_validator(mode="after")
    def _fidelity_attr(self) -> ItemSpec:
        if self.role == "fidelity" and not self.attribute:
            raise ValueError("fidelity items need 'attribute': the persona attribute they re-ask")
        return self


class ModelSpec(_Strict):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-]+$",
                             description="the log's model name (default: the model file's name)")
    path: str = Field("gemma3-270m", description="'gemma3-270m', 'smollm2-135m' or a GGUF path")
    backend: Literal["llama.cpp", "http"] = "llama.cpp"
    url: str | None = Field(None, description="base URL of an OpenAI-compatible server (backend = 'http')")
    http_constraint: Literal["grammar", "guided_choice"] = Field(
        "grammar", description="server-side constraint: GBNF grammar (llama.cpp) or guided_choice (vLLM)")
    prompt_style: Literal["auto", "completion", "chat"] = "auto"
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = Field(None, ge=1, description="default: all cores")
    n_gpu_layers: int = 0
    distribution: bool = Field(True, description="also log each option's exact probability")

    @model_validator(mode="after")
    def _url(self) -> ModelSpec:
        if self.backend == "http" and not self.url:
            raise ValueError("backend 'http' needs 'url', e.g. http://127.0.0.1:8000")
        return self


class AssistantModelSpec(_Strict):
    """The assistant's own local model in a dialogue (default: the simulated user's model)."""

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.\-]+$",
                             description="the assistant model's name in transcripts.model (default: the file name)")
    path: str = Field(description="'gemma3-270m', 'smollm2-135m' or a GGUF path")
    prompt_style: Literal["auto", "completion", "chat"] = "auto"
    n_ctx: int = Field(2048, ge=256)
    n_threads: int | None = Field(None, ge=1, description="default: all cores")


class DialogueSpec(_Strict):
    """The intervention as a dialogue between an assistant (instructed per arm) and the simulated user."""

    first: Literal["assistant", "user"] = Field("assistant", description="who speaks first")
    max_turns: int = Field(ge=1, le=50, description="turns at most; in one turn each role speaks once")
    user_stop: str | None = Field(None, min_length=1, description="a marker the simulated user may write to end "
                                                                 "the dialogue (dialogue_end = 'user_stop')")
    assistant_stop: str | None = Field(None, min_length=1, description="the assistant's own end marker "
                                                                       "(dialogue_end = 'assistant_stop')")
    max_tokens: int = Field(64, ge=1, le=2048, description="tokens per message at most")
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    batch_size: int = Field(1, ge=1, le=64, description="units generated in lockstep in one llama.cpp batch "
                                                        "(1: one at a time)")
    assistant_model: AssistantModelSpec | None = Field(None, description="the assistant's model (default: the "
                                                                         "simulated user's)")
    user_label: str = Field("Respondent", min_length=1, pattern=r"^[^\n:]+$",
                            description="the simulated user's name in completion-style transcripts")
    assistant_label: str = Field("Assistant", min_length=1, pattern=r"^[^\n:]+$",
                                 description="the assistant's name in completion-style transcripts")
    intro: str = Field("\n\nBefore the interview, the respondent talked with an assistant:",
                       description="introduces the dialogue in the simulated user's view (after the preamble)")
    assistant_frame: str = Field(
        "The following is a conversation between an assistant and a member of the public.\n"
        "The assistant's instructions: {instructions}\n",
        description="opens the assistant's view; {instructions} is the arm's assistant text")

    @model_validator(mode="after")
    def _markers(self) -> DialogueSpec:
        for name in ("user_stop", "assistant_stop"):
            v = getattr(self, name)
            if v is not None and not v.strip():
                raise ValueError(f"dialogue.{name} must not be blank: {v!r}")
        if self.user_stop is not None and self.user_stop == self.assistant_stop:
            raise ValueError("dialogue.user_stop and dialogue.assistant_stop must differ (the end reason is read "
                             "from which role wrote its marker)")
        if self.user_label == self.assistant_label:
            raise ValueError(f"dialogue.user_label and dialogue.assistant_label must differ: {self.user_label!r}")
        if "{instructions}" not in self.assistant_frame:
            raise ValueError("dialogue.assistant_frame must contain {instructions}")
        return self


class DesignSpec(_Strict):
    units_per_arm: int = Field(ge=1)
    paired: bool = Field(True, description="the same persona specs in every arm")
    replicates: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)
    counterbalance: Literal["none", "reverse"] = Field(
        "reverse", description="show options reversed for a random half of personas (same in every arm)")
    iteration: int = Field(0, ge=0, description="adjustment iteration this run belongs to")


class CandidateSpec(_Strict):
    """A candidate confounder named by the analyst: asked as a probe, set by design once chosen."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="attribute name (also the probe item's name)")
    question: str = Field(min_length=1, description="the probe question that asks it")
    options: list[str] = Field(min_length=2, max_length=26)

    @field_validator("options")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("options must be distinct")
        return v


StopRule = Literal["equivalence", "no_change"]
Select = Literal["targeted", "untargeted", "random"]


class AdjustmentSpec(_Strict):
    """The persona-augmentation loop (methods.md section 4.1): diagnose, add confounders, re-run."""

    iterations: int = Field(ge=1, le=20, description="the maximum K; iteration 0 is the base spec")
    per_iteration: int = Field(1, ge=1, description="attributes added per iteration")
    paths: list[Select] = Field(default_factory=lambda: ["targeted"], min_length=1,
                                description="one adjustment path per selection rule")
    diagnostic: list[str] = Field(min_length=1, description="NCO items used as diagnostics (never adjusted)")
    margin: float = Field(0.05, gt=0.0, lt=1.0, description="equivalence margin of the 'equivalence' stopping rule")
    stop_on: list[StopRule] = Field(default_factory=lambda: ["equivalence", "no_change"],
                                    description="rules that end a path early (max_iterations always does)")
    population: list[str] | None = Field(
        None, description="candidates from the population table (default: population.latent minus diagnostics)")
    candidates: list[CandidateSpec] = Field(default_factory=list, description="candidates named by the analyst")
    propose: int = Field(0, ge=0, le=5, description="candidates each model is asked to propose (0: none)")
    propose_max_tokens: int = Field(400, ge=32, le=2000)
    reference: bool = Field(False, description="also run the full-information reference spec (every known "
                                               "latent candidate stated)")
    n_perm: int = Field(1000, ge=19, description="permutations of the loop's drift tests")

    @model_validator(mode="after")
    def _distinct(self) -> AdjustmentSpec:
        for name, values in (("paths", self.paths), ("diagnostic", self.diagnostic), ("stop_on", self.stop_on),
                             ("candidates", [c.name for c in self.candidates]), ("population", self.population or [])):
            if len(set(values)) != len(values):
                raise ValueError(f"adjustment.{name} must not repeat a name: {values}")
        return self


class Study(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    population: PopulationSpec = PopulationSpec()
    arms: list[ArmSpec] = Field(min_length=2)
    items: list[ItemSpec] = Field(min_length=1)
    model: ModelSpec = ModelSpec()
    models: list[ModelSpec] = Field(default_factory=list, description="several models: one run of the study each")
    design: DesignSpec
    adjustment: AdjustmentSpec | None = None
    dialogue: DialogueSpec | None = Field(None, description="the intervention is a dialogue (see docs/study.md)")
    preamble: str = Field(
        "The following is an interview with a survey respondent.\n{persona}",
        description="opens every conversation; {persona} is the persona description")
    intervention: str = Field(
        "\n\nBefore the interview, the respondent read the following text:\n\"{text}\"",
        description="introduces the arm's text; {text} is the intervention")
    question: str = Field(
        "\n\nInterviewer: {question}\n{options}\nRespondent (answer with one letter):",
        description="asks one item in its own branch; {question}, {options}")

    @model_validator(mode="after")
    def _consistency(self) -> Study:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct: {names}")
        if sum(a.kind == "control" for a in self.arms) != 1:
            raise ValueError("exactly one arm must have kind = 'control'")
        items = [i.name for i in self.items]
        if len(set(items)) != len(items):
            raise ValueError(f"item names must be distinct: {items}")
        self._check_dialogue()
        for i in self.items:
            if i.role == "fidelity" and i.attribute not in self.population.specified:
                raise ValueError(
                    f"fidelity item {i.name!r} re-asks {i.attribute!r}, which is not a specified attribute "
                    f"({self.population.specified})")
        for field_name, needed in (("preamble", "{persona}"), ("intervention", "{text}"), ("question", "{question}")):
            if needed not in getattr(self, field_name):
                raise ValueError(f"{field_name} must contain {needed}")
        if self.models and "model" in self.model_fields_set:
            raise ValueError("give either [model] or [[models]], not both")
        names = [m.name or m.path for m in self.all_models]
        if len(set(names)) != len(names):
            raise ValueError(f"models must have distinct names (set models.name): {names}")
        if self.adjustment is not None:
            self._check_adjustment(self.adjustment)
        return self

    def _check_dialogue(self) -> None:
        from driftstats.log.schema import DIALOGUE_END_ITEM, DIALOGUE_TURNS_ITEM

        for k, a in enumerate(self.arms):
            if self.dialogue is None and a.text is None:
                raise ValueError(f"arms.{k}.text: arm {a.name!r} has no text (the intervention it reads); "
                                 "give text, or add a [dialogue] section and the arm's assistant instructions")
            if self.dialogue is None and a.assistant is not None:
                raise ValueError(f"arms.{k}.assistant: arm {a.name!r} gives assistant instructions but the study "
                                 "has no [dialogue] section: add one (max_turns at least)")
            if self.dialogue is not None and a.assistant is None:
                raise ValueError(f"arms.{k}.assistant: arm {a.name!r} needs the assistant's instructions in a "
                                 "dialogue study (assistant = \"...\")")
            if self.dialogue is not None and a.text is not None:
                raise ValueError(f"arms.{k}.text: arm {a.name!r} is a dialogue (assistant = ...); its text would "
                                 "never be shown: drop text")
        if self.dialogue is None:
            return
        taken = sorted({i.name for i in self.items} & {DIALOGUE_TURNS_ITEM, DIALOGUE_END_ITEM})
        if taken:
            raise ValueError(f"items: {taken} are the names of the dialogue's own items (every dialogue unit "
                             "carries them): rename the item")
        if any(m.backend != "llama.cpp" for m in self.all_models):
            raise ValueError("dialogue: generation runs in-process; every model needs backend = 'llama.cpp'")

    def _check_adjustment(self, adj: AdjustmentSpec) -> None:
        roles = {i.name: i.role for i in self.items}
        if not self.design.paired:
            raise ValueError("adjustment needs design.paired = true: added attributes are set identically across "
                             "arms, which pairs the personas")
        if self.design.iteration != 0:
            raise ValueError("adjustment: leave design.iteration at 0 (the loop numbers its iterations itself)")
        if sum(i.role == "primary" for i in self.items) != 1:
            raise ValueError("adjustment needs exactly one item with role = 'primary' (the outcome the "
                             "candidates are scored against)")
        for d in adj.diagnostic:
            if roles.get(d) != "nco":
                raise ValueError(f"adjustment.diagnostic: {d!r} is not an item with role = 'nco' "
                                 f"(NCO items: {[n for n, r in roles.items() if r == 'nco']})")
        adjusted = {*self.population.specified, *self.adjustment_population, *(c.name for c in adj.candidates)}
        both = sorted(set(adj.diagnostic) & adjusted)
        if both:
            raise ValueError(
                f"diagnostic NCOs must stay disjoint from the adjusted attributes: {both} would be both (an "
                "attribute in the persona spec has TVD ~0 by construction; it becomes a fidelity check, never a "
                "diagnostic). Drop it from adjustment.diagnostic or from the candidates.")
        taken = sorted({c.name for c in adj.candidates} & set(roles))
        if taken:
            raise ValueError(f"adjustment.candidates: {taken} are item names already; a candidate's probe item is "
                             "named after it: rename the candidate or the item")
        clash = sorted(set(self.adjustment_population) & set(self.population.specified))
        if clash:
            raise ValueError(f"adjustment.population: {clash} are already specified in population.specified")
        clash = sorted(set(self.adjustment_population) & {c.name for c in adj.candidates})
        if clash:
            raise ValueError(f"adjustment: {clash} are both population and analyst candidates")

    @property
    def all_models(self) -> list[ModelSpec]:
        """The models the study runs on (``[[models]]``, or the single ``[model]``)."""
        return list(self.models) or [self.model]

    @property
    def adjustment_population(self) -> list[str]:
        """Candidates from the population table (default: the latent attributes that are not diagnostics)."""
        if self.adjustment is None:
            return []
        if self.adjustment.population is not None:
            return list(self.adjustment.population)
        return [a for a in self.population.latent if a not in self.adjustment.diagnostic]


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid study {source}:"]
    for e in exc.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        value = e.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        lines.append(f"  - {path}: {e['msg']} (got {shown[:80]})")
    return "\n".join(lines)


def parse_study(data: dict, *, source: str = "<dict>") -> Study:
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        raise StudyError(_format_errors(exc, source)) from None


def load_study(path: str | Path) -> Study:
    """Read a study from TOML (``.toml``) or YAML (``.yaml``/``.yml``)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no study file at {str(p)!r}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            data = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)  # safe_load: no Python object construction
        else:
            raise StudyError(f"study files are .toml or .yaml; got {p.suffix!r}")
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        if isinstance(exc, StudyError):
            raise
        raise StudyError(f"cannot parse {p}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError
        raise StudyError(f"cannot parse {p}: {exc}") from None
    if not isinstance(data, dict):
        raise StudyError(f"{p}: the top level must be a table/mapping")
    return parse_study(data, source=str(p))

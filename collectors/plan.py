"""Plan: which units, personas, seeds and prompts one iteration of a study runs (no model needed).

The collector is plan -> elicit -> record. A plan is a pure function of the study, the population,
the model's prompt style and the persona spec of the iteration; everything random in it (which
respondents, the option order, every answer's seed) is drawn from the study seed and the *names*
of what it decides: ``study``, ``model``, ``iteration``, ``persona``, ``arm``, ``item``,
``replicate``. Never from an execution order or a list position, so that adding an item, a model or
an iteration leaves every other draw as it was, and a resumed run writes exactly the rows of an
uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from collectors.population import Persona, Population
from collectors.prompts import ItemPrompt, Prompts
from collectors.study import ArmSpec, ItemSpec, Study

__all__ = [
    "DialoguePlan",
    "ItemTask",
    "IterationPlan",
    "SpecState",
    "UnitPlan",
    "derive_rng",
    "derive_seed",
    "persona_rows",
    "plan_iteration",
]


def _word(name: str) -> list[int]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def _entropy(seed: int, purpose: str, keys: Mapping[str, object]) -> list[int]:
    words = [int(seed) & 0xFFFFFFFF, int(seed) >> 32, *_word(purpose)]
    for k in sorted(keys):
        words += _word(f"{k}={keys[k]}")
    return words


def derive_rng(seed: int, purpose: str, **keys: object) -> np.random.Generator:
    """A generator seeded by the study seed, what it is for and the names it decides (order-free)."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, purpose, keys)))


def derive_seed(seed: int, purpose: str, **keys: object) -> int:
    """A 63-bit integer seed (for one generation) from the same keys as :func:`derive_rng`."""
    state = np.random.SeedSequence(_entropy(seed, purpose, keys)).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))


@dataclass(frozen=True)
class ItemTask:
    """One item asked in its own branch after the unit's prefix, ``replicates`` times."""

    item: ItemSpec
    role: str  # the answers' role at this iteration
    prompt: ItemPrompt
    seeds: tuple[int, ...]  # one per replicate


@dataclass(frozen=True)
class DialoguePlan:
    """The intervention dialogue of one unit: who speaks when, and the seed of every message.

    ``seeds[(turn, role)]`` is drawn from the study seed and the names (study, model, iteration,
    persona, arm, turn, role), so a resumed run generates the same transcript.
    """

    instructions: str  # the arm's assistant instructions
    order: tuple[str, str]  # (first speaker, second speaker)
    max_turns: int
    seeds: Mapping[tuple[int, str], int]

    def speaker(self, message: int) -> tuple[int, str]:
        """(turn, role) of the 0-based ``message``."""
        return message // 2, self.order[message % 2]


@dataclass(frozen=True)
class UnitPlan:
    unit_id: str
    persona_id: str
    persona_key: str  # the persona's name in seeds (p0000, p0001, ...)
    arm: ArmSpec
    persona: Persona
    prefix: str  # for a dialogue unit: the persona prefix before the dialogue (items follow the transcript)
    tasks: tuple[ItemTask, ...]
    dialogue: DialoguePlan | None = None


@dataclass(frozen=True)
class SpecState:
    """The persona spec of one iteration: attributes stated after the base ones, and their values.

    ``values[persona_key][attribute]`` holds the value set by design for attributes that are not
    population columns (the same in every arm).
    """

    added: tuple[str, ...] = ()
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class IterationPlan:
    study: str
    model: str
    path: str
    iteration: int
    run_id: str
    spec: tuple[str, ...]  # every stated attribute, base first
    units: tuple[UnitPlan, ...]

    def __iter__(self) -> Iterator[UnitPlan]:
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)


def persona_rows(study: Study, population: Population) -> dict[str, np.ndarray]:
    """Population rows of the personas of each arm (the same rows in every arm when paired).

    Drawn once per study (keyed by the study alone): every model and iteration sees the same
    respondents, so iterations are compared on the same people.
    """
    d = study.design
    if d.paired:
        shared = population.sample_rows(d.units_per_arm, study.population,
                                        derive_rng(d.seed, "personas", study=study.name))
        return {a.name: shared for a in study.arms}
    return {a.name: population.sample_rows(d.units_per_arm, study.population,
                                           derive_rng(d.seed, "personas", study=study.name, arm=a.name))
            for a in study.arms}


def _reverse(study: Study, persona_key: str, arm: str, item: str) -> bool:
    d = study.design
    if d.counterbalance != "reverse":
        return False
    keys = {"persona": persona_key, "item": item} | ({} if d.paired else {"arm": arm})
    return bool(derive_rng(d.seed, "option_order", study=study.name, **keys).random() < 0.5)


def _dialogue_plan(study: Study, model: str, iteration: int, persona_key: str, arm: ArmSpec) -> DialoguePlan | None:
    dlg = study.dialogue
    if dlg is None:
        return None
    order = ("assistant", "user") if dlg.first == "assistant" else ("user", "assistant")
    seeds = {(t, r): derive_seed(study.design.seed, "message", study=study.name, model=model, iteration=iteration,
                                 persona=persona_key, arm=arm.name, turn=t, role=r)
             for t in range(dlg.max_turns) for r in order}
    return DialoguePlan(instructions=arm.assistant or "", order=order, max_turns=dlg.max_turns, seeds=seeds)


def plan_iteration(
    study: Study,
    population: Population,
    prompts: Prompts,
    rows: Mapping[str, np.ndarray],
    *,
    model: str,
    items: Sequence[tuple[ItemSpec, str]],
    path: str = "",
    iteration: int = 0,
    spec: SpecState | None = None,
    tag: str = "",
    run_id: str | None = None,
) -> IterationPlan:
    """Every unit of one iteration of ``study`` on ``model``, in persona-major order.

    Parameters
    ----------
    items
        ``(item, role)`` pairs asked of every unit (the role is the answers' role at this iteration).
    path
        The adjustment path ('' for a plain study; iteration 0 is shared by every path).
    spec
        Attributes added to the base spec (adjustment iterations) and their values.
    tag
        Inserted in unit and persona ids (``<study>-<tag>-i<k>-p<nnnn>-<arm>``) so that one store holds
        every model and path of a study ('' for a plain single-model study).
    """
    spec = spec or SpecState()
    d = study.design
    base = f"{study.name}-{tag}" if tag else study.name
    units: list[UnitPlan] = []
    for p in range(d.units_per_arm):
        persona_key = f"p{p:04d}"
        for arm in study.arms:
            row = int(rows[arm.name][p])
            unit_id = f"{base}-i{iteration}-{persona_key}-{arm.name}"
            persona = population.persona(row, study.population, added=spec.added,
                                         values=spec.values.get(persona_key, {}))
            prefix = prompts.prefix(persona, arm)
            tasks = []
            for item, role in items:
                k = len(item.options)
                order = tuple(range(k - 1, -1, -1)) if _reverse(study, persona_key, arm.name, item.name) \
                    else tuple(range(k))
                seeds = tuple(derive_seed(d.seed, "answer", study=study.name, model=model, iteration=iteration,
                                          persona=persona_key, arm=arm.name, item=item.name, replicate=r)
                              for r in range(d.replicates))
                tasks.append(ItemTask(item=item, role=role, prompt=prompts.item(persona, arm, item, order),
                                      seeds=seeds))
            units.append(UnitPlan(unit_id=unit_id, persona_id=f"{base}-i{iteration}-{persona_key}"
                                  if d.paired else unit_id, persona_key=persona_key, arm=arm, persona=persona,
                                  prefix=prefix, tasks=tuple(tasks),
                                  dialogue=_dialogue_plan(study, model, iteration, persona_key, arm)))
    spec_names = (*study.population.specified, *spec.added)
    return IterationPlan(study=study.name, model=model, path=path, iteration=iteration,
                         run_id=run_id or (f"{base}-i{iteration}" if tag else study.name),
                         spec=tuple(spec_names), units=tuple(units))

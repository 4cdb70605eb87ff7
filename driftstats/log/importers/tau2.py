"""Import tau2-bench ``Results`` files (``format="tau2"``).

A ``Results`` file (``Results.save(path)``, checked against ``src/tau2/data_model/simulation.py``
and ``message.py`` of sierra-research/tau2-bench; see ``docs/importers.md``) holds ``info``
(the agent, the user simulator, ``num_trials``), ``tasks`` and ``simulations``: one
``SimulationRun`` per task x trial with ``termination_reason``, ``reward_info`` and the
``messages`` of the dialogue. The directory format (``results.json`` plus ``simulations/*.json``)
is read too.

Mapping: one file per agent version is one arm; each simulation is a unit, paired across arms
by its task (``persona_id`` = ``task_id``, plus the trial when any file ran several trials).
``answers.model`` is the user simulator's LLM: the simulated user is what driftstats audits and
the agent is the intervention, so arms that share a simulator are compared within one run.
Items: ``reward`` (numeric, primary), one ``reward_<component>`` per entry of
``reward_info.reward_breakdown`` (numeric, other), ``dialogue_turns`` and ``dialogue_end``
(tau2's termination reasons).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from driftstats.errors import UnreadableLogError
from driftstats.log.importers import register
from driftstats.log.importers._common import (
    Message,
    Unit,
    arm_kinds,
    as_number,
    assemble,
    bad_field,
    check_arms,
    get,
    load_json,
    role_of,
)

__all__ = ["TAU2_TERMINATIONS", "read_tau2"]

FMT = "tau2"
#: ``TerminationReason`` of tau2-bench (src/tau2/data_model/simulation.py), in its order.
TAU2_TERMINATIONS: tuple[str, ...] = (
    "user_stop", "agent_stop", "max_steps", "timeout", "too_many_errors", "agent_error", "user_error",
    "infrastructure_error", "context_window_exceeded", "unexpected_error",
)
_FIX = "pass a tau2-bench Results file (the JSON that `tau2 run` saves, or its results.json directory)."


def _load(path: Path) -> dict[str, Any]:
    """The Results object; the directory format is assembled from results.json and simulations/*.json."""
    sims_dir = None
    if path.is_dir():
        path, sims_dir = path / "results.json", path / "simulations"
    elif (path.parent / "simulations").is_dir():
        sims_dir = path.parent / "simulations"
    data = load_json(path, FMT, _FIX)
    if not isinstance(data, dict):
        raise UnreadableLogError(f"tau2 import: {str(path)!r} holds a JSON {type(data).__name__}, not a Results "
                                 f"object. Fix: {_FIX}")
    if data.get("simulations") is None and sims_dir is not None:
        data = {**data, "simulations": [load_json(p, FMT, _FIX) for p in sorted(sims_dir.glob("*.json"))]}
    if "simulations" not in data or "info" not in data:
        missing = [k for k in ("info", "simulations") if k not in data]
        raise UnreadableLogError(f"tau2 import: {str(path)!r} has no {' or '.join(missing)} (keys: "
                                 f"{sorted(data)[:8]}): not a tau2-bench Results file. Fix: {_FIX}")
    return data


def _messages(sim: dict[str, Any], *, path: Path, record: str, agent_llm: str | None,
              user_llm: str | None) -> list[Message]:
    raw = sim.get("messages")
    if raw is None:
        if sim.get("ticks") is not None:
            raise bad_field(FMT, path, record, "messages", "null (a full-duplex voice run stores ticks, not messages)",
                            "import half-duplex (text) runs; voice runs have no message list to import.")
        raw = []
    if not isinstance(raw, list):
        raise bad_field(FMT, path, record, "messages", f"expected an array, got {type(raw).__name__}",
                        "check that the file is a complete tau2-bench export.")
    out = []
    for k, m in enumerate(raw):
        if not isinstance(m, dict):
            raise bad_field(FMT, path, record, f"messages[{k}]", "expected a JSON object",
                            "check that the file is a complete tau2-bench export.")
        role = role_of(m.get("role"), fmt=FMT, path=path, record=record, index=k)
        text = get(m, "content", (str,), fmt=FMT, path=path, record=record, fld=f"messages[{k}].content",
                   required=False)
        calls = get(m, "tool_calls", (list,), fmt=FMT, path=path, record=record, fld=f"messages[{k}].tool_calls",
                    required=False)
        requestor = m.get("requestor") if role == "tool" else None
        usage = m.get("usage") if isinstance(m.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens")
        out.append(Message(
            role=role, text=text, tool_calls=calls or None,
            speaker=requestor if requestor in ("user", "assistant") else None,
            model=agent_llm if role == "assistant" else user_llm if role == "user" else None,
            tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
        ))
    return out


@register(FMT)
def read_tau2(sources: Sequence[Path], *, arms: Sequence[str | None], control: str | None = None,
              **options: Any) -> dict[str, pd.DataFrame]:
    """Read tau2-bench Results files, one arm per file.

    ``arms``: one name per file (``None``: the agent's LLM from ``info.agent_info``, else its
    implementation, else the file stem). ``control``: the control arm (default: the first
    file's arm; every other arm is a treatment).
    """
    if options:
        from driftstats.errors import InvalidArgumentError
        raise InvalidArgumentError(f"tau2 import: unknown option(s) {sorted(options)}; known: control.")
    sources = [Path(s) for s in sources]
    arm_names = check_arms(arms, len(sources), FMT)
    files = []
    for path, given in zip(sources, arm_names, strict=True):
        data = _load(path)
        info = get(data, "info", (dict,), fmt=FMT, path=path, record="the Results object")
        agent = info.get("agent_info") if isinstance(info.get("agent_info"), dict) else {}
        user = info.get("user_info") if isinstance(info.get("user_info"), dict) else {}
        sims = get(data, "simulations", (list,), fmt=FMT, path=path, record="the Results object")
        arm = given or agent.get("llm") or agent.get("implementation") or path.stem
        files.append((path, str(arm), agent, user, info, sims))
    trials_seen = any((isinstance(f[4].get("num_trials"), int) and f[4]["num_trials"] > 1) for f in files) or any(
        isinstance(s, dict) and s.get("trial") not in (None, 0) for f in files for s in f[5])
    units: list[Unit] = []
    components: list[str] = []
    ends = list(TAU2_TERMINATIONS)
    interventions: dict[str, str | None] = {}
    where: dict[str, str] = {}
    for path, arm, agent, user, _info, sims in files:
        agent_llm = agent.get("llm") if isinstance(agent.get("llm"), str) else None
        user_llm = user.get("llm") if isinstance(user.get("llm"), str) else None
        interventions.setdefault(arm, f"tau2-bench agent {agent.get('implementation') or 'unknown'}"
                                 + (f" (LLM {agent_llm})" if agent_llm else ""))
        for i, sim in enumerate(sims):
            sid = sim.get("id") if isinstance(sim, dict) else None
            record = f"simulations[{i}]" + (f" (id {sid!r})" if isinstance(sid, str) else "")
            task = get(sim, "task_id", (str, int), fmt=FMT, path=path, record=record)
            trial = get(sim, "trial", (int,), fmt=FMT, path=path, record=record, required=False, default=0)
            seed = get(sim, "seed", (int,), fmt=FMT, path=path, record=record, required=False)
            end = get(sim, "termination_reason", (str,), fmt=FMT, path=path, record=record)
            if end not in ends:
                ends.append(end)
            unit_id = f"{arm}/{task}/{trial}"
            if unit_id in where:
                raise bad_field(FMT, path, record, "task_id", f"task {task!r} trial {trial} occurs twice in arm {arm!r} "
                                f"(also {where[unit_id]})",
                                "pass each file once, or give the files different arm names (arms=[...]).")
            where[unit_id] = f"{str(path)!r} {record}"
            answers: dict[str, tuple[str | None, bool, str | None]] = {}
            reward_info = get(sim, "reward_info", (dict,), fmt=FMT, path=path, record=record, required=False)
            if reward_info is None:
                answers["reward"] = (None, False, "no reward_info: the simulation was not evaluated")
            else:
                reward = as_number(reward_info.get("reward"))
                if reward is None:
                    raise bad_field(FMT, path, record, "reward_info.reward",
                                    f"expected a number, got {reward_info.get('reward')!r}",
                                    "check that the file is a complete tau2-bench export.")
                answers["reward"] = (_num(reward), True, None)
                breakdown = reward_info.get("reward_breakdown")
                if isinstance(breakdown, dict):
                    for comp, value in breakdown.items():
                        item = f"reward_{comp}"
                        if item not in components:
                            components.append(item)
                        v = as_number(value)
                        answers[item] = (_num(v), True, None) if v is not None else (
                            None, False, f"reward_breakdown[{comp!r}] is not a number: {value!r}")
            units.append(Unit(
                unit_id=unit_id, arm=arm, end=end, seed=seed, model=user_llm,
                persona_id=f"{task}/{trial}" if trials_seen else str(task),
                messages=_messages(sim, path=path, record=record, agent_llm=agent_llm, user_llm=user_llm),
                answers=answers,
            ))
    items = [{"item": "reward", "text": "tau2-bench reward of the simulation (reward_info.reward)", "options": None,
              "scale": "numeric", "role": "primary", "attribute": None}]
    items += [{"item": c, "text": f"tau2-bench reward component {c[len('reward_'):]} (reward_info.reward_breakdown)",
               "options": None, "scale": "numeric", "role": "other", "attribute": None} for c in components]
    names = list(dict.fromkeys(f[1] for f in files))
    return assemble(units, items, ends=ends, arms=interventions, kinds=arm_kinds(names, control, FMT), fmt=FMT,
                    answer_values={i["item"]: "numeric" for i in items})


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))

"""Import tau-bench (v1) result files (``format="tau1"``).

``run.py`` of sierra-research/tau-bench writes a JSON list of ``EnvRunResult``
(``tau_bench/types.py``): ``{task_id, reward, info, traj, trial}``, where ``traj`` holds the
OpenAI-style messages (system / user / assistant / tool, with ``tool_calls``) and ``info`` the
environment's last ``EnvInfo`` (``task``, ``source``, ``user_cost``, ``reward_info``) or, for a
task that raised, ``{error, traceback}`` with an empty ``traj``. See ``docs/importers.md``.

Mapping, as for tau2: one file is one arm, each result a unit, paired across arms by
``task_id`` (plus ``trial`` when a file holds several trials). Items: ``reward`` (numeric,
primary), the numeric parts of ``info.reward_info.info`` (``r_actions``, ``r_outputs``:
numeric, other), ``dialogue_turns`` and ``dialogue_end``.

v1 records no termination reason; ``dialogue_end`` is derived from what ``Env.step`` leaves in
``info`` (:data:`TAU1_ENDS`): ``user_stop`` (``reward_info`` set and ``source`` is ``'user'``:
the simulated user wrote ``###STOP###``), ``agent_stop`` (``reward_info`` set by a terminating
tool, ``source`` names it, e.g. ``transfer_to_human_agents``), ``max_steps`` (no
``reward_info``: the agent loop ran out of steps before the episode was done), ``error``
(``info.error``: the task raised) and ``unknown`` (``info`` lacks the keys that tell).
The files do not name the agent or the user simulator: arm names default to the file stem
(tau-bench names the file after the agent model) and ``answers.model`` is ``user_model=``
(default ``'unknown'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from driftstats.errors import InvalidArgumentError, UnreadableLogError
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

__all__ = ["TAU1_ENDS", "read_tau1"]

FMT = "tau1"
#: The dialogue_end labels derived from a v1 result (see the module docstring).
TAU1_ENDS: tuple[str, ...] = ("user_stop", "agent_stop", "max_steps", "error", "unknown")
_FIX = "pass a tau-bench results file (the JSON list that run.py writes to its log_dir)."
_REWARD_PARTS = ("r_actions", "r_outputs")


def _end(info: dict[str, Any]) -> str:
    if info.get("error") is not None:
        return "error"
    if "reward_info" not in info or "source" not in info:
        return "unknown"
    if info["reward_info"] is None:
        return "max_steps"
    return "user_stop" if info["source"] == "user" else "agent_stop"


def _traj(traj: list[Any], *, path: Path, record: str, user_model: str | None) -> list[Message]:
    out = []
    for k, m in enumerate(traj):
        if not isinstance(m, dict):
            raise bad_field(FMT, path, record, f"traj[{k}]", "expected a JSON object",
                            "check that the file is a complete tau-bench results file.")
        role = role_of(m.get("role"), fmt=FMT, path=path, record=record, index=k)
        text = get(m, "content", (str,), fmt=FMT, path=path, record=record, fld=f"traj[{k}].content", required=False)
        calls = get(m, "tool_calls", (list,), fmt=FMT, path=path, record=record, fld=f"traj[{k}].tool_calls",
                    required=False)
        out.append(Message(role=role, text=text, tool_calls=calls or None,
                           model=user_model if role == "user" else None))
    return out


@register(FMT)
def read_tau1(sources: Sequence[Path], *, arms: Sequence[str | None], control: str | None = None,
              user_model: str | None = None, **options: Any) -> dict[str, pd.DataFrame]:
    """Read tau-bench v1 result files, one arm per file (default arm name: the file stem).

    ``control``: the control arm (default: the first file's arm). ``user_model``: the user
    simulator's model (``RunConfig.user_model``; the results file does not record it).
    """
    if options:
        raise InvalidArgumentError(f"tau1 import: unknown option(s) {sorted(options)}; known: control, user_model.")
    if user_model is not None and not isinstance(user_model, str):
        raise InvalidArgumentError(f"tau1 import: user_model must be a string; got {user_model!r}.")
    sources = [Path(s) for s in sources]
    arm_names = check_arms(arms, len(sources), FMT)
    files = []
    for path, given in zip(sources, arm_names, strict=True):
        data = load_json(path, FMT, _FIX)
        if not isinstance(data, list):
            raise UnreadableLogError(f"tau1 import: {str(path)!r} holds a JSON {type(data).__name__}, not the list of "
                                     f"results tau-bench writes. Fix: {_FIX}")
        files.append((path, given or path.stem, data))
    several = any(isinstance(r, dict) and r.get("trial") not in (None, 0) for f in files for r in f[2])
    units: list[Unit] = []
    parts: list[str] = []
    where: dict[str, str] = {}
    for path, arm, records in files:
        for i, rec in enumerate(records):
            tid = rec.get("task_id") if isinstance(rec, dict) else None
            record = f"record {i}" + (f" (task_id {tid!r})" if tid is not None else "")
            task = get(rec, "task_id", (int, str), fmt=FMT, path=path, record=record)
            trial = get(rec, "trial", (int,), fmt=FMT, path=path, record=record, required=False, default=0)
            info = get(rec, "info", (dict,), fmt=FMT, path=path, record=record, required=False, default={})
            traj = get(rec, "traj", (list,), fmt=FMT, path=path, record=record)
            raw_reward = rec.get("reward")
            reward = as_number(raw_reward)
            if raw_reward is not None and reward is None:
                raise bad_field(FMT, path, record, "reward", f"expected a number, got {raw_reward!r}",
                                "check that the file is a complete tau-bench results file.")
            end = _end(info)
            answers: dict[str, tuple[str | None, bool, str | None]] = {}
            if end == "error":
                answers["reward"] = (None, False, f"the task raised: {str(info.get('error'))[:200]}")
            elif reward is None:
                answers["reward"] = (None, False, "no reward")
            else:
                answers["reward"] = (_num(reward), True, None)
            reward_info = info.get("reward_info") if isinstance(info.get("reward_info"), dict) else {}
            detail = reward_info.get("info") if isinstance(reward_info.get("info"), dict) else {}
            for part in _REWARD_PARTS:
                v = as_number(detail.get(part))
                if v is not None:
                    if part not in parts:
                        parts.append(part)
                    answers[part] = (_num(v), True, None)
            unit_id = f"{arm}/{task}/{trial}"
            if unit_id in where:
                raise bad_field(FMT, path, record, "task_id", f"task {task!r} trial {trial} occurs twice in arm {arm!r} "
                                f"(also {where[unit_id]})",
                                "pass each file once, or give the files different arm names (arms=[...]).")
            where[unit_id] = f"{str(path)!r} {record}"
            units.append(Unit(unit_id=unit_id, arm=arm, end=end, model=user_model,
                              persona_id=f"{task}/{trial}" if several else str(task),
                              messages=_traj(traj, path=path, record=record, user_model=user_model),
                              answers=answers))
    items = [{"item": "reward", "text": "tau-bench reward of the task (EnvRunResult.reward)", "options": None,
              "scale": "numeric", "role": "primary", "attribute": None}]
    items += [{"item": p, "text": f"tau-bench reward part {p} (info.reward_info.info.{p})", "options": None,
               "scale": "numeric", "role": "other", "attribute": None} for p in _REWARD_PARTS if p in parts]
    names = list(dict.fromkeys(f[1] for f in files))
    return assemble(units, items, ends=TAU1_ENDS, arms={a: f"tau-bench agent ({a})" for a in names},
                    kinds=arm_kinds(names, control, FMT), fmt=FMT,
                    answer_values={i["item"]: "numeric" for i in items})


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))

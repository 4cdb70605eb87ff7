"""Write an edsl-shaped ``Results`` export for tests and the foreign-log notebook.

The file imitates what ``Results.to_csv()`` writes (column prefixes ``agent.``,
``scenario.``, ``answer.``, ``model.``, ``iteration.``, ``question_options.`` as
Python-repr lists, ``validated.``, ``generated_tokens.``; CRLF line ends; multi-line
quoted free-text cells). The answers are *synthetic*, drawn with a known drift on
``nc_age`` in the treatment arm; no LLM produced them. Run:
``python data/edsl_example/make_example.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("results.csv")
AGE = ["18-29", "30-44", "45-64", "65+"]
REGION = ["Northeast", "Midwest", "South", "West"]
SUPPORT = ["Strongly oppose", "Oppose", "Neither", "Support", "Strongly support"]
PARTY = ["Democrat", "Independent", "Republican"]


def main(seed: int = 20261126, n_agents: int = 80) -> None:
    rng = np.random.default_rng(seed)
    questions = {
        "support": ("multiple_choice", "How much do you support raising taxes on the rich?", SUPPORT),
        "nc_age": ("multiple_choice", "What is your age group?", AGE),
        "nc_region": ("multiple_choice", "Which region do you live in?", REGION),
        "news_days": ("linear_scale", "On how many days a week do you watch TV news?", list(range(8))),
        "why": ("free_text", "Why do you feel that way?", None),
    }
    header = ["agent.age", "agent.party", "agent.agent_name", "agent.agent_instruction", "scenario.arm",
              "scenario.scenario_index", "model.model", "model.temperature", "model.inference_service",
              "iteration.iteration"]
    for q in questions:
        header += [f"answer.{q}", f"question_text.{q}_question_text", f"question_options.{q}_question_options",
                   f"question_type.{q}_question_type", f"validated.{q}_validated",
                   f"generated_tokens.{q}_generated_tokens", f"comment.{q}_comment", f"prompt.{q}_user_prompt"]
    rows = []
    for a in range(n_agents):
        age = int(rng.integers(22, 80))
        party = PARTY[int(rng.integers(3))]
        for arm_i, arm in enumerate(["control", "treatment"]):
            row = {"agent.age": age, "agent.party": party, "agent.agent_name": f"Agent_{a}",
                   "agent.agent_instruction": "You are answering questions as if you were a human.",
                   "scenario.arm": arm, "scenario.scenario_index": arm_i, "model.model": "gpt-4o-mini",
                   "model.temperature": 0.5, "model.inference_service": "openai", "iteration.iteration": 0}
            # treatment drifts the implied age distribution younger (a known, planted drift)
            p_age = np.array([0.2, 0.3, 0.3, 0.2]) if arm == "control" else np.array([0.35, 0.3, 0.23, 0.12])
            for q, (qtype, text, options) in questions.items():
                failed = rng.random() < 0.04
                if qtype == "free_text":
                    ans = f"Because taxes matter.\nSecond line, with a comma, and \"quotes\" ({arm})."
                elif q == "nc_age":
                    ans = AGE[int(rng.choice(4, p=p_age))]
                elif q == "support":
                    shift = 0.6 if arm == "treatment" else 0.0
                    ans = SUPPORT[int(np.clip(np.round(rng.normal(2 + shift, 1.1)), 0, 4))]
                elif q == "news_days":
                    ans = int(rng.integers(0, 8))
                else:
                    ans = str(rng.choice(options))
                row[f"answer.{q}"] = "" if failed else ans
                row[f"question_text.{q}_question_text"] = text
                row[f"question_options.{q}_question_options"] = repr(options) if options is not None else "None"
                row[f"question_type.{q}_question_type"] = qtype
                row[f"validated.{q}_validated"] = not failed
                row[f"generated_tokens.{q}_generated_tokens"] = (
                    "I'd rather not say,\nit depends." if failed else str(ans))
                row[f"comment.{q}_comment"] = "" if failed else "This reflects my views."
                row[f"prompt.{q}_user_prompt"] = f"{text}\nOptions: {options}"
            rows.append(row)
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()

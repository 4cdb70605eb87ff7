"""Personas from a table of real respondents (default: ANES 1996 from statsmodels).

Each attribute has a *label* (the value stored in the log's personas table, and the option
a fidelity item expects) and a *phrase* (how the persona prompt states it). ANES 1996
attributes come with labels from the ANES codebook (``statsmodels.datasets.anes96.NOTE``);
a user table's columns are used as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from collectors.study import PopulationSpec, StudyError

__all__ = ["ANES96", "Attribute", "Persona", "Population", "load_population"]

AGE_BANDS = ["18-29", "30-44", "45-64", "65+"]
PARTY7 = ["a strong Democrat", "a weak Democrat", "an independent who leans Democrat", "an independent",
          "an independent who leans Republican", "a weak Republican", "a strong Republican"]
PARTY3 = ["Democrat", "Independent", "Republican"]
EDUC = ["High school or less", "High school or less", "High school or less", "Some college", "College degree",
        "Graduate degree", "Graduate degree"]
IDEOLOGY = ["Extremely liberal", "Liberal", "Slightly liberal", "Moderate", "Slightly conservative",
            "Conservative", "Extremely conservative"]
INCOME = ["Under $15,000", "$15,000 to $29,999", "$30,000 to $49,999", "$50,000 to $74,999", "$75,000 or more"]


def _age_band(v: float) -> str:
    a = int(v)
    return AGE_BANDS[0] if a < 30 else AGE_BANDS[1] if a < 45 else AGE_BANDS[2] if a < 65 else AGE_BANDS[3]


def _income(v: float) -> str:
    c = int(v)
    return INCOME[0] if c <= 10 else INCOME[1] if c <= 15 else INCOME[2] if c <= 19 else INCOME[3] if c <= 21 else INCOME[4]


def _party3(v: float) -> str:
    c = int(v)
    return PARTY3[0] if c <= 1 else PARTY3[1] if c <= 4 else PARTY3[2]


@dataclass(frozen=True)
class Attribute:
    name: str
    column: str
    label: Callable[[object], str]
    phrase: Callable[[object], str]
    question: str | None = None  # how a probe item asks it (candidate confounders)
    options: tuple[str, ...] | None = None  # the labels, in order


def label_phrase(name: str, label: str) -> str:
    """How the persona prompt states an attribute that is not a population column (analyst or model candidate)."""
    return f"gives \"{label}\" as their {name.replace('_', ' ')}"


ANES96: dict[str, Attribute] = {
    "age": Attribute("age", "age", _age_band, lambda v: f"is {int(v)} years old", "How old are you?",
                     tuple(AGE_BANDS)),
    "party": Attribute("party", "PID", _party3, lambda v: f"identifies as {PARTY7[int(v)]}",
                       "Generally speaking, do you think of yourself as a Democrat, a Republican or an Independent?",
                       tuple(PARTY3)),
    "education": Attribute("education", "educ", lambda v: EDUC[int(v) - 1],
                           lambda v: f"has this level of education: {EDUC[int(v) - 1].lower()}",
                           "What is the highest level of education you have completed?", tuple(dict.fromkeys(EDUC))),
    "income": Attribute("income", "income", _income, lambda v: f"has a household income of {_income(v).lower()}",
                        "What was your total household income last year?", tuple(INCOME)),
    "ideology": Attribute("ideology", "selfLR", lambda v: IDEOLOGY[int(v) - 1],
                          lambda v: f"describes their politics as {IDEOLOGY[int(v) - 1].lower()}",
                          "How would you describe your political views?", tuple(IDEOLOGY)),
    "tv_news": Attribute("tv_news", "TVnews", lambda v: str(int(v)),
                         lambda v: f"watches TV news on {int(v)} days a week",
                         "On how many days in a typical week do you watch the news on TV?",
                         tuple(str(i) for i in range(8))),
    "vote_1996": Attribute("vote_1996", "vote", lambda v: "Dole" if int(v) else "Clinton",
                           lambda v: f"expects to vote for {'Dole' if int(v) else 'Clinton'}",
                           "In the 1996 presidential election, who do you expect to vote for?", ("Clinton", "Dole")),
}


@dataclass(frozen=True)
class Persona:
    index: int  # row of the population table
    specified: dict[str, str]  # attribute -> label (stated in the prompt)
    latent: dict[str, str]  # attribute -> label (known, not stated)
    description: str


class Population:
    def __init__(self, table: pd.DataFrame, attributes: dict[str, Attribute], source: str) -> None:
        self.table = table.reset_index(drop=True)
        self.attributes = attributes
        self.source = source

    def persona(self, row: int, spec: PopulationSpec, *, added: Sequence[str] = (),
                values: Mapping[str, str] | None = None) -> Persona:
        """The persona of population row ``row``.

        ``added``: attributes stated after the spec's own (adjustment iterations), in order; a population
        column is stated from the respondent's value, any other from ``values`` (set by design).
        """
        r = self.table.iloc[row]
        values = values or {}
        specified = {a: self.attributes[a].label(r[self.attributes[a].column]) for a in spec.specified}
        phrases = [self.attributes[a].phrase(r[self.attributes[a].column]) for a in spec.specified]
        for a in added:
            if a in self.attributes:
                specified[a] = self.attributes[a].label(r[self.attributes[a].column])
                phrases.append(self.attributes[a].phrase(r[self.attributes[a].column]))
            else:
                specified[a] = values[a]
                phrases.append(label_phrase(a, values[a]))
        latent = {a: self.attributes[a].label(r[self.attributes[a].column]) for a in spec.latent if a not in specified}
        if not phrases:
            text = "Respondent profile: an adult living in the United States."
        else:
            text = "Respondent profile: an adult living in the United States who " + ", ".join(phrases[:-1])
            text += (" and " if len(phrases) > 1 else "") + phrases[-1] + "."
        return Persona(index=row, specified=specified, latent=latent, description=text)

    def sample_rows(self, n: int, spec: PopulationSpec, rng: np.random.Generator) -> np.ndarray:
        size = len(self.table)
        replace = spec.sample == "with_replacement"
        if not replace and n > size:
            raise StudyError(
                f"design.units_per_arm = {n} personas but the population {self.source!r} has {size} rows; "
                "set population.sample = 'with_replacement' or lower units_per_arm."
            )
        return rng.choice(size, size=n, replace=replace)


def _generic_attribute(col: str, values: pd.Series) -> Attribute:
    labels = sorted({str(v) for v in values.dropna()})
    return Attribute(col, col, lambda v: str(v), lambda v, c=col: f"has {c.replace('_', ' ')} {v}",
                     f"What is your {col.replace('_', ' ')}?", tuple(labels) if 2 <= len(labels) <= 26 else None)


def load_population(spec: PopulationSpec, *, base_dir: Path | None = None, extra: Sequence[str] = ()) -> Population:
    """The population table of ``spec``; ``extra``: further attributes it must hold (adjustment candidates)."""
    if spec.source == "anes96":
        from statsmodels.datasets import anes96

        table = anes96.load_pandas().data
        attributes = ANES96
    else:
        path = Path(spec.source)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.exists():
            raise StudyError(f"population.source: no file {str(path)!r} (use 'anes96' or a CSV/Parquet path)")
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        attributes = {c: _generic_attribute(c, table[c]) for c in table.columns}
    unknown = [a for a in [*spec.specified, *spec.latent, *extra] if a not in attributes]
    if unknown:
        raise StudyError(
            f"population: attributes {unknown} are not in {spec.source!r}; available: {sorted(attributes)}"
        )
    needed = [attributes[a].column for a in [*spec.specified, *spec.latent, *extra]]
    table = table.dropna(subset=needed)
    return Population(table, attributes, spec.source)

"""Standard Likert-type response scales, recognised only when asked (``read_log(..., likert=True)``).

A log read without an items table does not know the order of an item's options. With
``likert=True`` an item whose valid answers are all labels of one scale family below
(compared case-insensitively, surrounding blanks ignored) gets its options in that family's
order and scale ``'ordinal'``. The families cover the usual 4-, 5- and 7-point wordings:

* ``agree``: strongly disagree < disagree < somewhat disagree < neither agree nor disagree
  (neutral) < somewhat agree < agree < strongly agree;
* ``support``: strongly oppose < oppose < somewhat oppose < neither support nor oppose < somewhat
  support < support < strongly support;
* ``favor``: the same with favor / favour (the ANES wording: neither favor nor oppose);
* ``approve``: strongly disapprove < disapprove < somewhat disapprove < neither approve nor
  disapprove < somewhat approve < approve < strongly approve;
* ``frequency``: never < rarely < sometimes < often < very often < always.

Variants at one position (``slightly``, ``tend to``, ``mildly`` for ``somewhat``; ``neutral``,
``undecided`` for the midpoint; ``seldom``, ``occasionally``, ``frequently``, ``usually``) are
synonyms: two answers of one item at the same position mean the item is not one of these
scales, and it stays nominal. Only the observed labels become options (in the family's order,
spelled as in the data): the log does not claim points of the scale that nobody answered.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LIKERT_FAMILIES", "match_likert"]

_MID = ("neutral", "undecided")


def _family(*positions: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for rank, labels in enumerate(positions):
        for label in labels:
            out[label] = rank
    return out


#: family name -> {normalised label: rank}
LIKERT_FAMILIES: dict[str, dict[str, int]] = {
    "agree": _family(
        ("strongly disagree", "completely disagree"),
        ("disagree",),
        ("somewhat disagree", "slightly disagree", "mildly disagree", "tend to disagree"),
        ("neither agree nor disagree", "neither agree or disagree", "neither disagree nor agree", *_MID),
        ("somewhat agree", "slightly agree", "mildly agree", "tend to agree"),
        ("agree",),
        ("strongly agree", "completely agree"),
    ),
    "support": _family(
        ("strongly oppose",),
        ("oppose",),
        ("somewhat oppose", "slightly oppose"),
        ("neither support nor oppose", "neither support or oppose", "neither oppose nor support", *_MID),
        ("somewhat support", "slightly support"),
        ("support",),
        ("strongly support",),
    ),
    "favor": _family(
        ("strongly oppose",),
        ("oppose",),
        ("somewhat oppose", "slightly oppose"),
        ("neither favor nor oppose", "neither favour nor oppose", "neither favor or oppose",
         "neither oppose nor favor", *_MID),
        ("somewhat favor", "somewhat favour", "slightly favor", "slightly favour"),
        ("favor", "favour"),
        ("strongly favor", "strongly favour"),
    ),
    "approve": _family(
        ("strongly disapprove",),
        ("disapprove",),
        ("somewhat disapprove", "slightly disapprove"),
        ("neither approve nor disapprove", "neither approve or disapprove", *_MID),
        ("somewhat approve", "slightly approve"),
        ("approve",),
        ("strongly approve",),
    ),
    "frequency": _family(
        ("never",),
        ("rarely", "seldom"),
        ("sometimes", "occasionally"),
        ("often", "frequently"),
        ("very often", "usually", "most of the time"),
        ("always",),
    ),
}


def _norm(label: str) -> str:
    return " ".join(label.replace("\u2019", "'").strip().lower().split())


def match_likert(labels: Iterable[str]) -> tuple[str, list[str]] | None:
    """``(family, labels in scale order)`` when every label belongs to one family at distinct positions.

    Examples
    --------
    >>> match_likert(["Agree", "Strongly disagree", "Neutral"])
    ('agree', ['Strongly disagree', 'Neutral', 'Agree'])
    >>> match_likert(["Yes", "No"]) is None
    True
    """
    labels = list(labels)
    if len(labels) < 2:
        return None
    normed = [_norm(v) for v in labels]
    for family, ranks in LIKERT_FAMILIES.items():
        if not all(n in ranks for n in normed):
            continue
        positions = [ranks[n] for n in normed]
        if len(set(positions)) != len(positions):
            continue  # two labels at one position: not this scale
        order = sorted(range(len(labels)), key=lambda i: positions[i])
        return family, [labels[i] for i in order]
    return None

"""Parse Python-repr lists of scalars (as found in edsl CSV exports) without evaluating anything.

``parse_list("['Yes', \"No\", 3, None]")`` -> ``['Yes', 'No', '3', None]``. Only lists
of string/number/bool/None literals are accepted; anything else raises ``ValueError``.
This is a small tokenizer, not ``eval``: logs are untrusted input.
"""

from __future__ import annotations

import json
import re

__all__ = ["parse_list"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<open>\[) | (?P<close>\]) | (?P<comma>,) |
        (?P<sq>'(?:[^'\\]|\\.)*') | (?P<dq>"(?:[^"\\]|\\.)*") |
        (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?) |
        (?P<word>True|False|None|true|false|null)
    )""",
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "0": "\0"}


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body) + 1:
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            if nxt == "x":
                out.append(chr(int(body[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_list(text: str) -> list[str | None]:
    """Parse a Python- or JSON-style list of scalar literals into strings (None kept)."""
    s = text.strip()
    if s.startswith("[") and '"' in s:
        try:  # JSON lists are the common, fast case
            value = json.loads(s)
            if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) or v is None for v in value):
                return [None if v is None else _scalar(v) for v in value]
        except json.JSONDecodeError:
            pass
    pos = 0
    items: list[str | None] = []
    expect = "open"
    while True:
        m = _TOKEN.match(s, pos)
        if not m:
            if s[pos:].strip() == "" and expect == "end":
                return items
            raise ValueError(f"not a list literal at position {pos}: {s[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if expect == "open":
            if kind != "open":
                raise ValueError("a list literal must start with '['")
            expect = "value_or_close"
        elif expect in ("value_or_close", "value"):
            if kind == "close" and expect == "value_or_close":
                expect = "end"
            elif kind in ("sq", "dq"):
                items.append(_unescape(m.group(kind)[1:-1]))
                expect = "comma_or_close"
            elif kind == "num":
                items.append(m.group(kind))
                expect = "comma_or_close"
            elif kind == "word":
                w = m.group(kind)
                items.append(None if w in ("None", "null") else w.lower())
                expect = "comma_or_close"
            else:
                raise ValueError(f"unexpected {m.group(0).strip()!r} in list literal")
        elif expect == "comma_or_close":
            if kind == "comma":
                expect = "value_or_close"
            elif kind == "close":
                expect = "end"
            else:
                raise ValueError(f"expected ',' or ']' but found {m.group(0).strip()!r}")
        else:
            raise ValueError("trailing characters after the list literal")


def _scalar(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)

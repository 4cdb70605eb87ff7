"""Shared fixtures: a small hand-built valid log in all four tables."""

from __future__ import annotations

import importlib
import os
import shutil

import numpy as np
import pandas as pd
import pytest

REQUIRE_ALL = os.environ.get("DRIFTSTATS_REQUIRE_ALL_DEPS") == "1"


def require(module: str):
    """importorskip that fails instead of skipping when DRIFTSTATS_REQUIRE_ALL_DEPS=1 (CI full job)."""
    if REQUIRE_ALL:
        return importlib.import_module(module)
    return pytest.importorskip(module)


def require_program(*names: str, hint: str) -> str:
    """The path of the first program found on PATH; skips (fails under DRIFTSTATS_REQUIRE_ALL_DEPS=1) when none is."""
    for name in names:
        if path := shutil.which(name):
            return path
    message = f"{' / '.join(names)} is not installed ({hint})"
    if REQUIRE_ALL:
        pytest.fail(message)
    pytest.skip(message)


AGE = ["18-29", "30-44", "45-64", "65+"]
PARTY = ["Democrat", "Independent", "Republican"]
SUPPORT = ["Oppose", "Neutral", "Support"]


def small_tables(n_per_arm: int = 6, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A paired two-arm log: 1 primary (ordinal), 2 NCOs, 1 fidelity item, dist rows for the primary."""
    rng = np.random.default_rng(seed)
    rows = []
    personas = []
    arms = ["control", "treatment"]
    for p in range(n_per_arm):
        spec_party = PARTY[p % 3]
        for arm in arms:
            unit = f"p{p}-{arm}"
            personas.append({"unit_id": unit, "attribute": "party", "value": spec_party, "specified": True})
            personas.append({"unit_id": unit, "attribute": "age_true", "value": AGE[p % 4], "specified": False})
            base = {
                "study": "toy", "run_id": "r1", "iteration": 0, "model": "m.gguf", "unit_id": unit, "arm": arm,
                "replicate": 0, "persona_id": f"p{p}", "valid": True, "seed": 7, "model_sha256": "ab" * 32,
                "prompt_sha256": "cd" * 32, "grammar_sha256": "ef" * 32, "temperature": 1.0,
                "backend": "llama.cpp", "created_at": pd.Timestamp("2026-11-26 12:00:00", tz="UTC"),
            }
            rows.append({**base, "item": "support", "response": SUPPORT[rng.integers(3)], "mode": "sample"})
            rows.append({**base, "item": "age", "response": AGE[rng.integers(4)], "mode": "sample"})
            rows.append({**base, "item": "news", "response": str(rng.integers(0, 8)), "mode": "sample"})
            rows.append({**base, "item": "party", "response": PARTY[rng.integers(3)], "mode": "sample"})
            probs = rng.dirichlet(np.ones(3))
            probs = probs / probs.sum()
            for k, opt in enumerate(SUPPORT):
                rows.append({**base, "item": "support", "mode": "dist", "response": opt,
                             "prob": float(probs[k])})
    answers = pd.DataFrame(rows)
    items = pd.DataFrame([
        {"item": "support", "text": "Do you support taxing the rich? \"quoted\", <b>", "options": SUPPORT,
         "scale": "ordinal", "role": "primary"},
        {"item": "age", "text": "How old are you?", "options": AGE, "scale": "ordinal", "role": "nco"},
        {"item": "news", "text": "Days a week you watch TV news", "options": [str(i) for i in range(8)],
         "scale": "ordinal", "role": "nco"},
        {"item": "party", "text": "Party?", "options": PARTY, "scale": "nominal", "role": "fidelity",
         "attribute": "party"},
    ])
    arms_t = pd.DataFrame({"arm": arms, "kind": ["control", "treatment"],
                           "intervention": ["Library hours notice.", "Essay: tax the rich."]})
    return {"answers": answers, "items": items, "personas": pd.DataFrame(personas), "arms": arms_t}


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return small_tables()


@pytest.fixture
def small_log(tables):
    from driftstats import read_log

    return read_log(tables["answers"], items=tables["items"], personas=tables["personas"], arms=tables["arms"])


def shared_path(*parts: str):
    """A file under the workspace's shared/ folder (reference data with published analyses).

    Looked up in $DRIFTSTATS_SHARED, then next to the repository (``../shared``, where the
    project documents it), then /work/shared.
    """
    from pathlib import Path

    repo = Path(__file__).parents[1]
    candidates = [Path(p) for p in (os.environ.get("DRIFTSTATS_SHARED"),) if p]
    candidates += [repo.parent / "shared", Path("/work/shared")]
    for base in candidates:
        path = base.joinpath(*parts)
        if path.exists():
            return path
    raise FileNotFoundError(f"{'/'.join(parts)} not found under {[str(c) for c in candidates]}; set DRIFTSTATS_SHARED")


def headless_chromium(playwright):
    """Debian's chromium, headless and offline, launched through playwright (the report's browser tests)."""
    return playwright.chromium.launch(
        executable_path=require_program("chromium", "chromium-browser", hint="make browser installs Debian's chromium"),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"])

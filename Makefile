# Two entry points for a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data
# `import avalanche` writes ~/.avalanche/config.json: fall back to a private HOME if needed.
export HOME := $(shell [ -w "$$HOME" ] && echo "$$HOME" || mktemp -d)

.PHONY: install demo test test-fast docs clean

# One line before each step, and pip's own lines (no -q): torch alone is minutes of
# download on a slow link, and a silent step looks like a hung one.
$(VENV)/.installed: setup.cfg pyproject.toml
	@echo "[install 1/3] virtual environment in $(VENV)"
	python3 -m venv $(VENV)
	@echo "[install 2/3] torch and torchvision (the largest download: minutes on a slow link)"
	$(PY) -m pip install torch==2.14.1 torchvision==0.29.1
	@echo "[install 3/3] avalanche-litelora and its dependencies (avalanche-lib, timm, ..., mkdocs for the docs)"
	$(PY) -m pip install -e '.[test,docs]'
	@echo "[install] done: 'make demo' or 'make test' next"
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

# The documentation site into site/: mkdocs in strict mode, so a broken link or API reference
# fails. The install step (shared with demo and test) includes the docs extra; the build itself
# needs no network.
docs: install
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site
	@echo "[docs] open site/index.html, or serve it: $(VENV)/bin/mkdocs serve"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

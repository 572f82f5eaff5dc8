# Every target creates .venv and installs what it needs when missing, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: serve test lint bench bench-quick docs-screenshot browser clean

$(VENV)/.base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml $(VENV)/.base
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $@

$(VENV)/.bench: pyproject.toml $(VENV)/.test
	$(PY) -m pip install -q -e '.[bench]'
	touch $@

serve: $(VENV)/.base
	PYTHONPATH=examples $(PY) -m asgiserve summarizer:Summarization --host $(HOST) --port $(PORT)

# The docs page tests drive Debian's chromium through its matching chromedriver (tests/browser.py).
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -q && apt-get install -y -q chromium chromium-driver)

test: $(VENV)/.test browser
	command -v openssl >/dev/null && command -v curl >/dev/null || (apt-get update -q && apt-get install -y -q openssl curl)
	$(PY) -m pytest -q

docs-screenshot: $(VENV)/.test browser
	PYTHONPATH=.$(if $(PYTHONPATH),:$(PYTHONPATH)) $(PY) tests/docs_screenshot.py docs/docs-page.png

lint: $(VENV)/.test
	$(VENV)/bin/ruff check asgiserve tests examples benchmarks
	$(VENV)/bin/ruff format --check asgiserve
	$(VENV)/bin/mypy
	$(PY) tests/unasync.py --check

bench: $(VENV)/.bench
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	command -v valgrind >/dev/null || (apt-get update -q && apt-get install -y -q valgrind)
	$(PY) benchmarks/run.py

bench-quick: $(VENV)/.bench
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	command -v valgrind >/dev/null || (apt-get update -q && apt-get install -y -q valgrind)
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

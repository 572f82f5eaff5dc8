# Every target creates .venv and installs what it needs when missing, so each works on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 3000

.PHONY: serve test test-ray test-torch bench-batch deploy-check lint bench bench-scale bench-quick docs-screenshot browser clean

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

# The Kubernetes manifests against the Kubernetes schemas, the Dockerfile linted (make test runs both
# through tests/test_scale_deploy.py, with a broken copy of each that must fail).
deploy-check: $(VENV)/.test
	$(VENV)/bin/kubernetes-validate --strict --quiet deploy/kubernetes/*.yaml
	$(VENV)/bin/hadolint deploy/Dockerfile

# Ray Serve is large: its test runs in a virtualenv of its own, not in `make test`.
.venv-ray/.ok: pyproject.toml
	test -x .venv-ray/bin/python || $(PYTHON) -m venv .venv-ray
	.venv-ray/bin/python -m pip install -q -e '.[test]' 'ray[serve]'
	touch $@

test-ray: .venv-ray/.ok
	.venv-ray/bin/python -m pytest -q tests_ray -o filterwarnings=ignore::DeprecationWarning

# The PyTorch example's tests, in a virtualenv of their own, not in `make test`. torch is pinned: that
# release's CPU build is installed from this machine's wheels, an unpinned one would download gigabytes.
.venv-torch/.ok: pyproject.toml
	test -x .venv-torch/bin/python || $(PYTHON) -m venv .venv-torch
	.venv-torch/bin/python -m pip install -q -e . pytest pytest-timeout httpx numpy prometheus_client 'torch==2.13.0'
	touch $@

test-torch: .venv-torch/.ok
	.venv-torch/bin/python -m pytest -q tests_torch

lint: $(VENV)/.test
	$(VENV)/bin/ruff check asgiserve tests tests_ray tests_torch examples benchmarks
	$(VENV)/bin/ruff format --check asgiserve
	$(VENV)/bin/mypy
	$(PY) tests/unasync.py --check

# Requests/s by worker count (shared socket, --reuse-port, uvicorn --workers): the counts this machine's
# CPUs fit; benchmarks/README.md says how to add the Ray Serve rows.
bench-scale: $(VENV)/.bench
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(PY) benchmarks/scale.py

# make bench BASELINE=<git rev> [ROUTES="predict stream"] [ROUNDS=5]: that revision's own server as one
# more peer, reported as now / before per route (benchmarks/README.md).
BASELINE ?=
ROUTES ?=
ROUNDS ?=
BENCH_ARGS := $(if $(BASELINE),--baseline $(BASELINE)) $(if $(ROUTES),--routes $(ROUTES)) $(if $(ROUNDS),--rounds $(ROUNDS))

# Adaptive batching against BentoML, LitServe and Ray Serve (benchmarks/batching.py; about 5 minutes).
bench-batch: $(VENV)/.bench .venv-ray/.ok
	$(PY) benchmarks/batching.py --out benchmarks/results/batching.md

bench: $(VENV)/.bench
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	command -v valgrind >/dev/null || (apt-get update -q && apt-get install -y -q valgrind)
	$(PY) benchmarks/run.py $(strip $(BENCH_ARGS))

bench-quick: $(VENV)/.bench
	command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	command -v valgrind >/dev/null || (apt-get update -q && apt-get install -y -q valgrind)
	$(PY) benchmarks/run.py --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The two commands of the README: `make search` and `make test`.
# Both create the virtual environment and install everything on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SPACE ?= spaces/quick.yaml
PYTEST_ARGS ?=

.PHONY: search test test-fast lint install chromium bench clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# The demo search on the CPU: generates data/synthetic-small if missing, runs
# spaces/quick.yaml with Ray Tune, writes runs/quick/ and runs/quick/report.html.
search: $(STAMP)
	$(PY) run_search.py --space $(SPACE)

# The test suite (what CI runs): ruff (lint and import order) first, then pytest.
# Headless Chromium is installed for the browser test when it is missing and we
# may use apt-get.
test: $(STAMP) chromium lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing headless Chromium for the browser test (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "warning: chromium missing and apt-get not usable; the browser test will be skipped"; fi; }

bench: $(STAMP)
	$(PY) bench/train_step.py
	$(PY) bench/overhead.py
	$(PY) bench/efficiency.py

clean-runs:
	rm -rf runs/

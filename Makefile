# aloop — the README's two commands: `make demo` (set up + run the demo), `make test` (set up + run the tests).
# Both create .venv on first use (torch==2.13.0 CPU first, then aloop with its test extras) and
# reuse it afterwards; editing pyproject.toml triggers a reinstall.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
# Tests and CI read the real datasets from the shared folder beside the clone, unless
# ALOOP_DATA_DIR says otherwise; tests that need a missing file skip and say which.
# The demo uses the embedded dataset and leaves ALOOP_DATA_DIR alone.
TEST_DATA_DIR := $(abspath ../shared/data)

.PHONY: demo test setup bench clean

setup: $(STAMP)

# -qq: pip shows errors only (the first install takes a few minutes).
$(STAMP): pyproject.toml
	@echo "Setting up $(VENV): torch==2.13.0 (CPU), then aloop[test] — a few minutes the first time"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	# The CPU build of torch must be installed first: any other torch request pulls CUDA.
	$(PY) -m pip install -qq torch==2.13.0
	$(PY) -m pip install -qq -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

demo: setup
	$(PY) examples/demo.py

test: setup
	ALOOP_DATA_DIR="$${ALOOP_DATA_DIR:-$(TEST_DATA_DIR)}" $(PY) -m pytest tests --durations=10

bench: setup
	ALOOP_DATA_DIR="$${ALOOP_DATA_DIR:-$(TEST_DATA_DIR)}" $(PY) benchmarks/bench_featurize.py

clean:
	rm -rf $(VENV) .pytest_cache

# Spike Workbench -- every target sets up what it needs.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
PORT    ?= 5006
ADDRESS ?= 127.0.0.1
PYTEST_ARGS ?=
#: processes for the non-browser tests (pytest-xdist; `auto` = one per CPU core)
JOBS ?= auto
#: what `make test` runs: the test suite and the example notebooks (nbmake)
TEST_PATHS ?= tests docs/examples

.PHONY: run setup test test-fast test-ui test-load bench bench-quick warm soak clean browser reproduce reproduce-table docs examples

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

## run: set up and serve the workbench on the embedded default data (http://localhost:$(PORT))
run: $(STAMP)
	$(BIN)/spikewb serve --port $(PORT) --address $(ADDRESS)

## browser: Debian's Chromium for the real-browser tests (installed with apt-get when root)
browser:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing chromium (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install chromium' (needed by the ui tests)"; \
	  fi; \
	fi

## test: set up and run the whole test suite: unit, numeric and learning tests and the example
## notebooks on JOBS processes (pytest-xdist; they are CPU-bound), then the real-browser tests: those
## that only check what a page shows on JOBS processes (one test file per process: a file shares its
## server), and those marked `timed` (they bound latency, CPU use or stop times) one at a time
test: $(STAMP) browser
	$(BIN)/spikewb warm
	$(BIN)/python -m pytest -m "not ui and not bench and not load" -n $(JOBS) --timeout=900 --durations=20 --nbmake $(TEST_PATHS) $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m "ui and not load and not timed" -n $(JOBS) --dist loadfile --timeout=900 --durations=20 $(TEST_PATHS) $(PYTEST_ARGS)
	$(BIN)/python -m pytest -m "ui and timed and not load" --timeout=900 --durations=20 $(TEST_PATHS) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not ui and not bench" $(PYTEST_ARGS)

test-ui: $(STAMP) browser
	$(BIN)/python -m pytest -m "ui and not load" $(PYTEST_ARGS)

## test-nojit: engine tests with numba off (readable tracebacks, kernel coverage)
test-nojit: $(STAMP)
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest tests/engine/neurons/test_neurons.py tests/engine/data/test_encoding.py tests/engine/rules/test_desire.py

## examples: run the example notebooks top to bottom (quick mode; SPIKEWB_FULL=1 for full size)
examples: $(STAMP)
	$(BIN)/python -m pytest --nbmake docs/examples $(PYTEST_ARGS)

## docs: the API reference (Sphinx + numpydoc) in build/docs/index.html; warnings are errors
docs: $(STAMP)
	$(BIN)/python -m sphinx -b html -W --keep-going -q docs/api build/docs
	@echo "API reference: build/docs/index.html"

warm: $(STAMP)
	$(BIN)/spikewb warm

## bench: every benchmark, full size, results in bench-results/
bench: $(STAMP) browser
	$(BIN)/spikewb bench

bench-quick: $(STAMP) browser
	$(BIN)/spikewb bench --quick

## test-load: 20 headless browsers against one server with 2 training slots (~10 min)
test-load: $(STAMP) browser
	$(BIN)/python -m pytest -m load --timeout=1800 $(PYTEST_ARGS)

## soak: the long stability run (not part of `make test`)
soak: $(STAMP) browser
	$(BIN)/python -m pytest -m soak --run-soak $(PYTEST_ARGS)

## reproduce NAME=desire-fashion [EPOCHS=72]: a paper setting end to end, resumable (see `spikewb reproduce --list`);
## official datasets are looked up in $$SPIKEWB_DATA (default: ../shared/data beside the checkout) before the cache
SPIKEWB_DATA ?= $(abspath ../shared/data)
reproduce: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make reproduce NAME=<name> [EPOCHS=N]"; $(BIN)/spikewb reproduce --list; exit 2; }
	SPIKEWB_DATA="$(SPIKEWB_DATA)" $(BIN)/spikewb reproduce $(NAME) $(if $(EPOCHS),--epochs $(EPOCHS))

## reproduce-table: the README's reproduction table, from reproductions/*/result.json
reproduce-table: $(STAMP)
	$(BIN)/spikewb reproduce --table reproductions --readme

clean:
	rm -rf $(VENV) .pytest_cache bench-results test-artifacts

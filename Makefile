# The commands the README gives: `make demo`, `make test` and `make test-fast`. Each builds .venv with pip first.
# `make test` (what CI runs, through .ci/run) = `make check` (ruff, mypy, vulture) + the whole test suite on 2
# pytest-xdist workers + the wheel check, both on one wheel built once (`make dist`). `make test-fast`: the inner
# loop, without the slow, end-to-end, browser, PostgreSQL and process tests (markers in pyproject.toml).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PYTHONDONTWRITEBYTECODE emptied: the suite starts about a hundred Python processes (commands, pool workers, the
# leaderboard's children); each compiled polypbench's modules again when bytecode writing was off (~0.5 s of CPU).
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q --durations=15
FAST := not (slow or e2e or browser or postgres or process)
DIST := build/dist
# Two pytest-xdist workers, each given whole test files in the order tests/conftest.py sets (longest first)
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: install demo check test test-fast wheel-check dist splits clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned to the wheels that lie on local disk (pip's cap here), so no CUDA download happens
	$(BIN)/pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install --quiet -e ".[test]"
	# Chromium for tests/leaderboard/test_browser.py (driven by the playwright package; never `playwright install`)
	command -v chromium >/dev/null || { SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/polypbench demo --out demo_out

check: $(STAMP)
	$(BIN)/ruff check polypbench tests benchmarks vulture_whitelist.py
	$(BIN)/mypy
	$(BIN)/vulture

test: check dist
	POLYPBENCH_DIST=$(CURDIR)/$(DIST) $(PYTEST) $(XDIST)
	POLYPBENCH_DIST=$(CURDIR)/$(DIST) bash .ci/wheel_smoke

test-fast: $(STAMP)
	$(PYTEST) $(XDIST) -m "$(FAST)"

# Install the wheel non-editable into a clean venv, run every dataset end to end (tests/test_packaging.py checks
# the same wheel's contents).
wheel-check: dist
	POLYPBENCH_DIST=$(CURDIR)/$(DIST) bash .ci/wheel_smoke

# The wheel and sdist of this checkout, built once for the packaging test and the wheel check.
dist: $(STAMP)
	rm -rf $(DIST) && mkdir -p $(DIST)
	$(BIN)/python -m build --no-isolation --wheel --sdist --outdir $(DIST) . >build/dist.log 2>&1 \
		|| { tail -20 build/dist.log; exit 1; }

# Regenerate the committed public splits (byte-for-byte reproducible; tests compare against them).
splits: $(STAMP)
	$(BIN)/polypbench splits generate --out split_manifests

clean:
	rm -rf demo_out .pytest_cache

# The two commands the README gives: `make demo` and `make test`. Both build .venv with pip first.
# `make test` (what CI runs, through .ci/run) = `make check` (ruff, mypy) + the test suite + `make wheel-check`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo check test wheel-check splits clean

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
	$(BIN)/ruff check polypbench tests benchmarks
	$(BIN)/mypy

test: check $(STAMP)
	$(BIN)/python -m pytest -q
	$(MAKE) wheel-check

# Build the wheel and sdist, install the wheel non-editable into a clean venv, run every dataset end to end.
wheel-check: $(STAMP)
	bash .ci/wheel_smoke

# Regenerate the committed public splits (byte-for-byte reproducible; tests compare against them).
splits: $(STAMP)
	$(BIN)/polypbench splits generate --out split_manifests

clean:
	rm -rf demo_out .pytest_cache

# The two commands of the README:
#   make demo   # the main job: generate ListOps, train LaS and the softmax baseline, compare (a few CPU minutes)
#   make test   # the test suite (CPU only, well under 30 minutes on 2 cores)
# and the style of the code, as transformers' `make quality` / `make style` (CI runs `make check` before the tests):
#   make check  # ruff check, ruff format --check and one docstring markup (scripts/check_docstrings.py); changes nothing
#   make style  # rewrites what those can fix: ruff check --fix, ruff format, check_docstrings.py --fix
# All create .venv on first use with scripts/bootstrap_venv.sh (also used by examples/quickstart.sh), which holds the
# torch pin and installs torch first (`make TORCH_SPEC=torch==X venv` overrides the pin).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast check style venv clean

venv:
	PYTHON=$(PYTHON) VENV=$(VENV) TORCH_SPEC=$(TORCH_SPEC) bash scripts/bootstrap_venv.sh >/dev/null

demo: venv
	PYTHON=$(BIN)/python bash examples/quickstart.sh

test: venv
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow"

check: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/check_docstrings.py

style: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/python scripts/check_docstrings.py --fix

clean:
	rm -rf $(VENV) outputs

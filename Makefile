# The two commands of the README:
#   make demo   # the main job: generate ListOps, train LaS and the softmax baseline, compare (a few CPU minutes)
#   make test   # the test suite (CPU only, well under 30 minutes on 2 cores)
# Both create .venv on first use. torch is installed first and pinned: on our machines `torch==2.13.0` is the CPU
# build from local disk, while an unpinned torch would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	PYTHON=$(BIN)/python SKIP_INSTALL=1 bash examples/quickstart.sh

test: venv
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) outputs

#!/usr/bin/env bash
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
#
# Create (or bring up to date) the virtual environment that `make demo`, `make test` and examples/quickstart.sh use:
#
#   bash scripts/bootstrap_venv.sh            # .venv
#   VENV=/path/to/venv bash scripts/bootstrap_venv.sh
#
# torch is installed first and pinned exactly: on our machines `torch==2.13.0` is the CPU
# build from local disk, while an unpinned torch would pull a multi-GB CUDA build. Then this package with its test
# extra (`pip install -e ".[test]"`: pytest, ruff for `make check`, and the Hub client releases the tests were checked
# with). A stamp in the venv records what was installed, so a rerun skips pip unless the pin or pyproject.toml changed.
# Prints the venv's python on the last line of stdout.
set -euo pipefail

TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> Creating the virtual environment $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
STAMP="$VENV/.las-installed"
WANTED="$TORCH_SPEC $(sha256sum pyproject.toml | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANTED" ]]; then
    echo "==> $VENV is up to date" >&2
else
    echo "==> Installing $TORCH_SPEC first, then this package (pip install -e \".[test]\")" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
    "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" >&2   # first, so that the package's torch requirement is met
    "$VENV/bin/python" -m pip install --quiet -e ".[test]" >&2
    echo "$WANTED" > "$STAMP"
fi
echo "$VENV/bin/python"

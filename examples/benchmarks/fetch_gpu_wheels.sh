#!/usr/bin/env bash
# Download, HERE, the wheels that gpu_check.sh needs on the GPU machine and that its image lacks, into ./.whl.
#
#   bash examples/benchmarks/fetch_gpu_wheels.sh        # from the repository root, before the device run
#   then: run(command="bash examples/benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# The GPU image (Python 3.12, torch 2.11, transformers 5.17, huggingface_hub 1.33, pyarrow, pandas, xxhash, accelerate,
# tokenizers, pillow, matplotlib) has everything the model, the benchmarks and the CUDA tests import; only the short
# run_lra.py stage needs `datasets` and `evaluate`, and those two need `dill` and `multiprocess` (gpu_wheels.txt).
# gpu_check.sh installs whatever is in .whl into /tmp/site first. About 1 MB; `WITH_PYARROW=1` adds pyarrow (~40 MB)
# in case the image's is older than datasets' floor (24.0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

PY=${PYTHON:-python3}
PACKAGES=(-r examples/benchmarks/gpu_wheels.txt)
[[ "${WITH_PYARROW:-0}" == 1 ]] && PACKAGES+=("pyarrow>=24.0.0")

# .whl travels with `carry`, so it must be ignored by git (never committed).
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
rm -rf .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${PACKAGES[@]}"
ls -la .whl

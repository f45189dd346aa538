#!/usr/bin/env bash
# Rehearse, on CPU, the package versions of the GPU image that gpu_check.sh runs on, so that a scarce device run is
# not spent finding a version incompatibility. Builds a venv with the image's torch / transformers / huggingface_hub
# (below our tested floors) plus the packages fetch_gpu_wheels.sh carries (gpu_wheels.txt), then runs the test suite
# (which rehearses gpu_check.sh's lra_listops_gpu stage at toy size: run_lra.py with the image's transformers) and the
# attention benchmark in gpu_check.sh's setting (bf16, head_dim 64, forward+backward, its methods, --check) at small L.
#
#   bash examples/benchmarks/gpu_image_stack_on_cpu.sh   # from the repository root; 9 minutes on 2 cores in a
#                                                        # fresh venv, download included
#
# torch 2.11.0 from PyPI is a CUDA build (about 4.5 GB in the venv); it runs on the CPU. Three tests are known to fail
# with these versions and are deselected (KNOWN_FAILURES below); gpu_check.sh runs none of them. So exit status 0 means
# no new incompatibility: every other test passes and the benchmark's --check holds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

VENV=${VENV:-/tmp/las-gpu-image-venv}
PY=${PYTHON:-python3}
# The image's versions, as listed in the device tool's KINDS.md (2026-11).
IMAGE_PACKAGES=(torch==2.11.0 transformers==5.17.0 huggingface_hub==1.33.0 accelerate==1.15.0 tokenizers==0.23.2
    safetensors==0.8.0 pyarrow pandas xxhash pillow matplotlib pytest tqdm requests pyyaml)

[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q "${IMAGE_PACKAGES[@]}"
"$VENV/bin/pip" install -q --no-deps -r examples/benchmarks/gpu_wheels.txt  # as gpu_check.sh installs them
"$VENV/bin/python" -c "import torch, transformers, huggingface_hub as hub, datasets
print('torch', torch.__version__, '| transformers', transformers.__version__, '| huggingface_hub', hub.__version__,
      '| datasets', datasets.__version__)"

# Known failures with the image's versions, none of them among gpu_check.sh's `-k cuda` tests:
KNOWN_FAILURES=(
    # calls `activation_checkpointing_enable`, a name transformers added in 5.24
    tests/test_modeling_common.py::test_gradient_checkpointing_gives_the_same_gradients
    # huggingface_hub 1.33 validates card YAML at a hard-coded huggingface.co address, not the loopback endpoint
    tests/test_lra_data.py::test_export_pushes_to_the_hub
    tests/test_model_card.py::test_card_roundtrips_through_the_hub
)
status=0
"$VENV/bin/python" -m pytest tests -q -p no:cacheprovider "${KNOWN_FAILURES[@]/#/--deselect=}" || status=$?
"$VENV/bin/python" examples/benchmarks/attention.py --device cpu --dtype bfloat16 --head-dims 64 --batch 1 --heads 2 \
    --lengths 256 512 --methods las_sdpa las_eager las_flex_attention las_chunk naive sdpa --mode fwd_bwd --repeats 1 --warmup 1 --check --out "$(mktemp -d)" --tag gpu-image-stack-cpu || status=$?
exit "$status"

"""examples/run_lra.py under `torchrun --nproc_per_node 2` on CPU (gloo) matches a 1-process run.

Same seed, same global batch (2 processes x 2 = 1 process x 4), `--dataloader_drop_last`. The runs see the same data
in the same order: accelerate's seedable sampler draws one permutation per epoch whatever the world size, and each
global batch is split over the ranks. DDP averages the gradients of the two halves, which is the gradient of the
whole batch (a LaS model with LayerNorm has no statistic across examples; padding does not change a sequence's
outputs). So the logged losses may differ only by float summation order, and the tolerance below is tight: a run
whose processes did not synchronise, saw other data, or scaled the loss by the world size is far outside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from tests.utils import REPO_ROOT, import_example, make_listops_release, tiny_run_args, training_logs

run_lra = import_example("run_lra")

GLOBAL_BATCH = 4
STEPS = 4


def _args(data_dir: Path, cache_dir: Path, output_dir: Path, per_device_batch: int) -> list[str]:
    return tiny_run_args(
        "listops",
        data_dir,
        output_dir,
        cache_dir,
        "--max_steps",
        str(STEPS),
        "--per_device_train_batch_size",
        str(per_device_batch),
        "--dataloader_drop_last",
        "True",
    )


@pytest.mark.slow  # two torchrun processes and a 1-process run
def test_two_process_run_matches_one_process_run(tmp_path):
    data_dir = make_listops_release(tmp_path / "data")
    cache_dir = tmp_path / "datasets-cache"

    two = tmp_path / "two-processes"
    # One thread per process: the two ranks share the machine's cores. This checkout's modules, even where the
    # interpreter has another copy installed (editable).
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(REPO_ROOT / "examples" / "run_lra.py"),
            *_args(data_dir, cache_dir, two, GLOBAL_BATCH // 2),
            "--ddp_backend",
            "gloo",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    one = tmp_path / "one-process"
    run_lra.main(_args(data_dir, cache_dir, one, GLOBAL_BATCH))

    # Both ranks trained, in step: one output, one set of checkpoints, written once, by rank 0.
    assert sorted(p.name for p in two.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert "2 processes" in (two / "README.md").read_text()  # the card records the world size

    expected, measured = training_logs(one), training_logs(two)
    assert [e["step"] for e in measured] == [e["step"] for e in expected] == list(range(1, STEPS + 1))
    assert [e["learning_rate"] for e in measured] == [e["learning_rate"] for e in expected]
    assert [e["loss"] for e in measured] == pytest.approx([e["loss"] for e in expected], rel=1e-5)
    assert [e["grad_norm"] for e in measured] == pytest.approx([e["grad_norm"] for e in expected], rel=1e-4)

    # The checkpoint of the distributed run loads, and holds (up to float noise) the weights of the 1-process run.
    reference = AutoModelForSequenceClassification.from_pretrained(one).state_dict()
    for path in (two, two / "checkpoint-4"):
        loaded = AutoModelForSequenceClassification.from_pretrained(path).state_dict()
        assert loaded.keys() == reference.keys()
        for name, tensor in loaded.items():
            torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-6, msg=name)

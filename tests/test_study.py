"""examples/study/run_study.py: cells, commands, the smoke study end to end, and resuming."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils import EXAMPLES, REPO_ROOT, import_example, make_mnist_release

STUDY = EXAMPLES / "study" / "run_study.py"
run_study = import_example("study/run_study")


def test_default_study_has_the_same_budget_for_every_variant_and_size() -> None:
    config = run_study.load_config(run_study.parse_args([]))
    cells = run_study.study_cells(config)
    assert config["seeds"] == [0, 1, 2] and config["train_sizes"] == [1000, 4000, 16000]
    assert {cell.variant for cell in cells if cell.task == "pathfinder32"} == set(run_study.VARIANTS)
    assert "las_chunk" not in {cell.variant for cell in cells if cell.task != "pathfinder32"}
    assert len(cells) == 3 * 3 * (4 + 4 + 5)
    data = {task: ["--data_dir", "D"] for task in config["tasks"]}
    for task in config["tasks"]:
        commands = [
            run_study.run_command(cell, config, data[task], Path("out"), "eager")
            for cell in cells
            if cell.task == task
        ]
        # Everything after the cell's own flags (the training budget) is identical within a task.
        budgets = {" ".join(command[command.index("--seed") + 2 :]) for command in commands}
        assert len(budgets) == 1 and "--max_steps" in budgets.pop()
    smoothing = next(cell for cell in cells if cell.variant == "smoothing_only")
    command = run_study.run_command(smoothing, config, ["--data_dir", "D"], Path("out"), "eager")
    assert "las_alphas=[0,0,0,0]" in command[command.index("--config_overrides") + 1]
    assert command[:3] == ["env", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1"]


@pytest.mark.slow  # imports run_lra and builds a model: about 10 s on a busy machine
def test_detected_backend_is_one_run_lra_accepts() -> None:
    run_lra = import_example("run_lra")
    UsageError = import_example("lra_training").UsageError

    backend = run_study.detect_attn_implementation()
    assert backend in ("sdpa", "eager")
    run_lra.parse_arguments(["--task", "listops", "--attn_implementation", backend, "--use_cpu"])
    if backend == "eager":  # the fallback is taken only where sdpa is refused
        with pytest.raises(UsageError):
            run_lra.parse_arguments(["--task", "listops", "--attn_implementation", "sdpa", "--use_cpu"])


def _study(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STUDY), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow  # a subprocess
def test_missing_mnist_dir_names_the_debian_package(tmp_path: Path) -> None:
    result = _study(
        "--tasks",
        "fashion_smnist",
        "--mnist_dir",
        str(tmp_path / "nowhere"),
        "--out",
        str(tmp_path),
        "--work_dir",
        str(tmp_path / "work"),
        "--attn_implementation",
        "eager",
    )
    assert result.returncode == 2
    assert "apt-get install dataset-fashion-mnist" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_smoke_study_runs_end_to_end_and_a_rerun_skips_finished_cells(tmp_path: Path) -> None:
    data_dir = make_mnist_release(tmp_path / "data")
    args = (
        "--smoke",
        "--mnist_dir",
        str(data_dir),
        "--mnist_labels",
        "digits",
        "--out",
        str(tmp_path / "out"),
        "--work_dir",
        str(tmp_path / "work"),
        "--attn_implementation",
        "eager",
    )
    first = _study(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "2 cells: 0 finished (skipped), 2 to run" in first.stdout

    out = tmp_path / "out"
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(run_study.CSV_COLUMNS)
    assert [(row["task"], row["variant"], row["train_size"], row["seed"], row["steps"]) for row in rows] == [
        ("smnist", "softmax", "8", "0", "2"),
        ("smnist", "las", "8", "0", "2"),
    ]
    for row in rows:
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and 0.0 <= float(row["best_validation_accuracy"]) <= 1.0
        assert float(row["train_seconds"]) > 0
        assert "--max_train_samples 8 --max_eval_samples 2 --max_test_samples 5" in row["command"]
        assert f"--attention_type {row['variant']}" in row["command"]
    table = (out / "results.md").read_text()
    assert "| sequential MNIST (fixture) | las |" in table and "as transcribed, not re-read from the PDF" in table
    assert (out / "accuracy_vs_train_size.png").stat().st_size > 1000
    cells = sorted((out / "cells").glob("*.json"))
    assert [cell.name for cell in cells] == ["smnist__las__n8__seed0.json", "smnist__softmax__n8__seed0.json"]

    mtimes = [cell.stat().st_mtime_ns for cell in cells]
    second = _study(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 cells: 2 finished (skipped), 0 to run" in second.stdout
    assert [cell.stat().st_mtime_ns for cell in cells] == mtimes
    with open(out / "results.csv", newline="") as file:
        assert list(csv.DictReader(file)) == rows

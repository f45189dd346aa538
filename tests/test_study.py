"""examples/study/run_study.py: cell identity, integrity of the results folder, the paired analysis, and the
smoke study end to end (two invocations, a changed setting, a corrupt cell, a busy folder, SIGTERM)."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.utils import EXAMPLES, REPO_ROOT, import_example, make_mnist_release

STUDY = EXAMPLES / "study" / "run_study.py"
run_study = import_example("study/run_study")
study_support = import_example("study_support")


def default_cells():
    args = run_study.parse_args([])
    config = run_study.load_config(args)
    data = {task: {"dir": "D", "labels": "fashion", "checksum": "c", "cache_dir": "C"} for task in config["tasks"]}
    return config, args, run_study.study_cells(config, args, data, "code")


def test_default_study_pairs_variants_and_gives_every_cell_one_budget_per_size() -> None:
    config, _, cells = default_cells()
    assert {cell.task for cell in cells} == {"fashion_smnist14", "fashion_pmnist14"}
    first = [cell for cell in cells if (cell.task, cell.train_size) == ("fashion_smnist14", 1000)]
    assert {cell.variant for cell in first} == {"softmax", "las", "decay_only", "alibi"}
    assert {cell.seed for cell in first} == set(range(10))
    # Run order: seed by seed, all variants of a seed together, so every finished seed is a complete pair.
    assert [cell.seed for cell in first[:8]] == [0] * 4 + [1] * 4
    for cell in cells:
        command = run_study.run_command(cell, "runs/x")
        assert command[:5] == ["env", "OMP_NUM_THREADS=1", "MKL_NUM_THREADS=1", "python", "examples/run_lra.py"]
        assert "--pixel_pool_size 2" in " ".join(command) and "--early_stopping_patience 5" in " ".join(command)
        assert f"--seed {cell.seed}" in " ".join(command)
    budgets = {
        (cell.train_size, json.dumps({k: v for k, v in cell.settings["training"].items() if k != "seed"}))
        for cell in cells
    }
    assert len(budgets) == 2  # one budget per training-set size, whatever the variant, task or seed


def test_identity_changes_with_every_setting_and_only_with_settings() -> None:
    _, _, cells = default_cells()
    assert len({cell.identity for cell in cells}) == len(cells)
    _, _, again = default_cells()
    assert [cell.identity for cell in again] == [cell.identity for cell in cells]
    config, args, _ = default_cells()
    args.max_steps = 7
    data = {task: {"dir": "D", "labels": "fashion", "checksum": "c", "cache_dir": "C"} for task in config["tasks"]}
    capped = run_study.study_cells(config, args, data, "code")
    assert not {cell.identity for cell in capped} & {cell.identity for cell in cells}
    other_data = {task: {**value, "checksum": "other"} for task, value in data.items()}
    args.max_steps = None
    assert not {c.identity for c in run_study.study_cells(config, args, other_data, "code")} & {
        cell.identity for cell in cells
    }
    assert not {c.identity for c in run_study.study_cells(config, args, data, "new code")} & {
        cell.identity for cell in cells
    }


def test_code_version_follows_the_training_code(tmp_path: Path) -> None:
    for name in run_study.CODE_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    before = run_study.code_version(tmp_path)
    (tmp_path / "modeling_las.py").write_text("y")
    assert run_study.code_version(tmp_path) != before


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--max_steps", "0"], "--max_steps must be at least 1"),
        (["--max_steps", "-3"], "--max_steps must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--train_sizes", "0"], "--train_sizes must be positive"),
        (["--seeds", "-1"], "--seeds must be >= 0"),
        (["--variants", "lass"], "unknown variant(s) lass"),
        (["--phases", "nope"], "unknown phase(s) nope"),
        (["--attn_implementation", "paged"], "--attn_implementation must be one of"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(flags, message, tmp_path, capsys) -> None:
    code = run_study.main([*flags, "--out", str(tmp_path / "out"), "--mnist_dir", str(tmp_path / "none")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out" / "cells").exists() or not any((tmp_path / "out" / "cells").iterdir())


def record(task, variant, size, seed, accuracy, **settings):
    cell_settings = {"task": task, "variant": variant, "train_size": size, "seed": seed, "training": {"seed": seed}}
    cell_settings.update(settings)
    identity = study_support.settings_hash(cell_settings)
    return {
        "task": task,
        "variant": variant,
        "train_size": size,
        "seed": seed,
        "identity": identity,
        "settings": cell_settings,
        "results": {
            "test_accuracy": accuracy,
            "best_validation_accuracy": accuracy,
            "steps": 10,
            "best_step": 5,
            "train_seconds": 1.0,
        },
    }


def test_paired_differences_and_their_interval() -> None:
    las = [0.81, 0.82, 0.815]
    softmax = [0.79, 0.80, 0.80]
    records = [record("t", "las", 100, s, a) for s, a in enumerate(las)]
    records += [record("t", "softmax", 100, s, a) for s, a in enumerate(softmax)]
    records.append(record("t", "softmax", 100, 3, 0.5))  # unpaired: no las run with seed 3
    (row,) = run_study.paired_differences(records)
    differences = [100 * (a - b) for a, b in zip(las, softmax)]
    assert row["comparison"] == "las - softmax" and row["seeds"] == [0, 1, 2]
    assert row["differences"] == pytest.approx(differences)
    mean = sum(differences) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / 2)
    assert row["mean"] == pytest.approx(mean)
    assert row["half_width"] == pytest.approx(4.303 * sd / math.sqrt(3))  # t_{0.975, 2}
    assert row["verdict"] == "above zero"
    assert study_support.verdict(0.5, 1.0) == "not distinguishable from zero"
    assert study_support.verdict(-2.0, 1.0) == "below zero"
    # Another design (another budget) is never paired with this one.
    other = [record("t", "las", 100, s, 0.9, budget="other") for s in range(3)]
    assert len(run_study.paired_differences(records + other)) == 1


def test_invalid_cell_files_are_named_and_set_aside(tmp_path: Path) -> None:
    cells = tmp_path / "cells"
    cells.mkdir()
    good = record("t", "las", 100, 0, 0.8)
    (cells / f"t__las__n100__seed0__{good['identity']}.json").write_text(json.dumps(good))
    (cells / "t__las__n100__seed1__aaaaaaaaaaaa.json").write_text(json.dumps(good)[:50])  # truncated
    edited = {**good, "results": {**good["results"], "test_accuracy": 7}}
    (cells / f"t__las__n100__seed2__{good['identity']}x.json").write_text(json.dumps(edited))
    records, problems = run_study.read_cells(cells)
    assert [r["identity"] for r in records] == [good["identity"]]
    assert len(problems) == 2 and all("moved to" in problem for problem in problems)
    assert any("seed1" in problem and "unreadable" in problem for problem in problems)
    assert sorted(p.name for p in (cells / "invalid").iterdir()) == sorted(
        ["t__las__n100__seed1__aaaaaaaaaaaa.json", f"t__las__n100__seed2__{good['identity']}x.json"]
    )


def test_a_second_invocation_on_the_same_out_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    with study_support.FolderLock(out, ".study.lock"):
        code = run_study.main(["--dry_run", "--out", str(out), "--mnist_dir", str(tmp_path)])
    assert code == 2
    assert f"{out} is in use by pid {os.getpid()}" in capsys.readouterr().err


def smoke_args(data_dir: Path, root: Path) -> list[str]:
    """The smoke study on the idx fixture in `data_dir`, writing under `root`."""
    return [
        "--smoke",
        "--mnist_dir",
        str(data_dir),
        "--mnist_labels",
        "digits",
        "--out",
        str(root / "out"),
        "--work_dir",
        str(root / "work"),
    ]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Two invocations of the smoke study with different selections, on one --out."""
    root = tmp_path_factory.mktemp("study")
    common = smoke_args(make_mnist_release(root / "data"), root)
    outputs = []
    for variant in ("softmax", "las"):
        result = _study(*common, "--variants", variant)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout)
    return root, common, outputs


def _study(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(STUDY), *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow  # two subprocess studies of one short run each
def test_tables_come_from_every_cell_file_whatever_the_selection(smoke) -> None:
    root, _, outputs = smoke
    assert "1 cells selected: 0 finished (skipped), 1 to run" in outputs[1]
    out = root / "out"
    with open(out / "results.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(run_study.CSV_COLUMNS)
    assert sorted(row["variant"] for row in rows) == ["las", "softmax"]  # the first invocation's cell is kept
    for row in rows:
        assert row["command"].startswith("env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python examples/run_lra.py")
        assert str(REPO_ROOT) not in row["command"]
        assert len(row["commit"]) == 40 and row["code_version"] == run_study.code_version()
        cell = json.loads((out / "cells" / f"smnist__{row['variant']}__n8__seed0__{row['identity']}.json").read_text())
        assert cell["provenance"]["torch"] and cell["provenance"]["transformers"]
        predictions = out / cell["predictions"]
        assert predictions.is_file()
    table = (out / "results.md").read_text()
    assert "| sequential MNIST (fixture) | 8 | las - softmax | 1 |" in table
    assert (out / "study.png").stat().st_size > 1000


@pytest.mark.slow
def test_finished_cells_are_skipped_a_changed_setting_or_a_corrupt_cell_reruns(smoke) -> None:
    root, common, _ = smoke
    again = _study(*common, "--dry_run")
    assert "2 cells selected: 2 finished (skipped), 0 to run" in again.stdout, again.stdout + again.stderr
    changed = _study(*common, "--dry_run", "--max_steps", "1")
    assert "2 cells selected: 0 finished (skipped), 2 to run" in changed.stdout
    cell = next((root / "out" / "cells").glob("smnist__las__*.json"))
    cell.write_text(cell.read_text()[:40])
    corrupt = _study(*common, "--dry_run")
    assert "2 cells selected: 1 finished (skipped), 1 to run" in corrupt.stdout
    assert cell.name in corrupt.stderr and "moved to" in corrupt.stderr


@pytest.mark.slow
def test_sigterm_stops_the_running_cell(tmp_path: Path) -> None:
    data_dir = make_mnist_release(tmp_path / "data")
    study = subprocess.Popen(
        [sys.executable, str(STUDY), *smoke_args(data_dir, tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    children: list[int] = []
    while time.monotonic() < deadline and not children:
        time.sleep(0.5)
        listing = subprocess.run(["pgrep", "-f", str(tmp_path / "work")], capture_output=True, text=True).stdout
        children = [int(pid) for pid in listing.split() if int(pid) != study.pid]
    assert children, "no run_lra.py child started"
    study.send_signal(signal.SIGTERM)
    assert study.wait(timeout=60) == 130
    time.sleep(1)
    for pid in children:  # gone, or a zombie waiting to be reaped: no longer running
        status = Path(f"/proc/{pid}/status")
        assert not status.exists() or "State:\tZ" in status.read_text()
    assert not list((tmp_path / "out" / "cells").glob("*.json"))


def test_linear_baseline_standardises_pixels_and_reports_its_choice(tmp_path):
    # Ten classes, each a bright 4x4 patch at its own place over noise: linearly separable once the pixels are
    # standardised. 100 train images (90 train / 10 validation), 20 test.
    import gzip

    from tests.utils import MNIST_FILES, idx_bytes

    linear_baseline = import_example("study/linear_baseline")
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, count in (("train", 100), ("t10k", 20)):
        labels = (np.arange(count) % 10).astype(np.uint8)
        images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
        for index, label in enumerate(labels):
            row, column = divmod(int(label), 5)
            images[index, 4 + 8 * row : 8 + 8 * row, 2 + 5 * column : 6 + 5 * column] = 250
        for name, array in zip(MNIST_FILES[split], (images, labels)):
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array), mtime=0))
    result = linear_baseline.main(
        ["--mnist_dir", str(folder), "--mnist_labels", "digits", "--train_sizes", "60", "--max_eval_samples", "10"]
        + ["--penalties", "0.01", "0.1", "--out", str(tmp_path / "out"), "--cache_dir", str(tmp_path / "cache")]
    )
    assert result["test_accuracy"]["60"] == 1.0 and result["validation_accuracy"]["60"] == 1.0
    assert result["penalty"]["60"] in result["penalty_grid"]
    # Ties go to the strongest penalty: the largest one that still separates the classes on validation.
    assert result["penalty_at_grid_edge"]["60"] == (result["penalty"]["60"] == result["penalty_grid"][-1])
    assert json.loads((tmp_path / "out" / "linear_baseline.json").read_text()) == result
    features = torch.tensor([[0.0, 2.0, 5.0], [2.0, 2.0, 1.0], [4.0, 2.0, 3.0]], dtype=torch.float64)
    standardised = linear_baseline.standardiser(features)(features)
    assert torch.allclose(standardised.mean(0), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(standardised[:, 1], torch.zeros(3, dtype=torch.float64))  # a constant pixel stays finite

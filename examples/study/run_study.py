#!/usr/bin/env python
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Does LaS's locality-and-smoothness bias help? A seeded, resumable study over tasks, variants, data sizes and seeds.

Every cell (task, variant, training-set size, seed) is one `examples/run_lra.py` run in its own process, on one thread,
with the same budget (steps, schedule, batch size, evaluation points) for every variant and size of a task, so that
only the attention and the amount of unique training data change. A finished cell writes `cells/<cell>.json`; a rerun
skips those cells, so an interrupted study resumes where it stopped. At the end (and on every rerun) the cells are
collected into `results.csv`, `results.md` (mean +- std over seeds) and `accuracy_vs_train_size.png`.

    python examples/study/run_study.py                       # the study of examples/study/study_config.json
    python examples/study/run_study.py --workers 2 --seeds 0 1 2 --train_sizes 1000 4000 16000
    python examples/study/run_study.py --dry_run             # list the cells and their commands, run nothing
    python examples/study/run_study.py --smoke --mnist_dir DIR --mnist_labels digits --out OUT --work_dir WORK

See examples/study/README.md for the budgets, the columns and the calibration.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
# This checkout's modules, in this process and in every run: an installed las-transformers must not win.
sys.path[:0] = [str(REPO_ROOT), str(EXAMPLES)]

STUDY_CONFIG = Path(__file__).resolve().parent / "study_config.json"
DEFAULT_OUT = EXAMPLES / "results" / "study"
DEFAULT_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: The variants, in table order. `longest_only`: run on the study's longest task only.
VARIANTS: Mapping[str, Mapping[str, Any]] = {
    "softmax": {"attention_type": "softmax", "about": "plain softmax attention, same model and positions"},
    "las": {"attention_type": "las", "about": "LaS: decay and smoothing"},
    "decay_only": {"attention_type": "las", "model": {"las_pool_size": 1}, "about": "LaS without smoothing (P=1)"},
    "smoothing_only": {"attention_type": "las", "zero_alphas": True, "about": "LaS without decay (all alphas 0)"},
    "las_chunk": {"attention_type": "las_chunk", "longest_only": True, "about": "LaS inside chunks (linear cost)"},
}
CSV_COLUMNS = (
    "task",
    "variant",
    "train_size",
    "seed",
    "steps",
    "test_accuracy",
    "best_validation_accuracy",
    "train_seconds",
    "command",
)
from lra.tasks import PAPER_ACCURACY, PAPER_SOURCE, TASK_SPECS  # noqa: E402  (this checkout's, see sys.path)


def _paper_reference(
    tasks: Sequence[str] = ("smnist", "pmnist", "pathfinder"),
    models: Sequence[str] = ("Transformer (LRA paper)", "LaS (paper)"),
) -> str:
    """The paper's numbers for the study's tasks (lra.tasks.PAPER_ACCURACY), for orientation above the table."""
    numbers = "; ".join(
        f"{TASK_SPECS[task].full_title} "
        + ", ".join(f"{model.split()[0]} {PAPER_ACCURACY[model][task]:.2f}" for model in models)
        for task in tasks
    )
    return (
        f"Paper, for orientation only ({PAPER_SOURCE}; MNIST digits, full data, the paper's models and budgets, "
        f"so not comparable with this study): {numbers}."
    )


#: The paper's numbers, shown above the table for orientation only.
PAPER_REFERENCE = _paper_reference()
#: The smoke study of the test suite: seconds on the tiny idx fixture.
SMOKE_CONFIG: Mapping[str, Any] = {
    "seeds": [0],
    "train_sizes": [8],
    "max_eval_samples": 2,
    "max_test_samples": 5,
    "las_chunk_size": 256,
    "model": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
    "training": {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 8,
        "learning_rate": 0.001,
        "lr_scheduler_type": "cosine",
        "eval_strategy": "steps",
        "eval_steps": 1,
        "save_strategy": "steps",
        "save_steps": 1,
        "save_total_limit": 1,
        "load_best_model_at_end": True,
        "metric_for_best_model": "accuracy",
        "logging_steps": 1,
    },
    "tasks": {
        "smnist": {"task": "smnist", "title": "sequential MNIST (fixture)", "data": "mnist_dir", "training": {}}
    },
}
SMOKE_VARIANTS = ("softmax", "las")


class StudyError(Exception):
    """A bad setting or missing data: one line on stderr, exit code 2."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the study."""

    task: str  # the study's task key, e.g. fashion_smnist
    variant: str
    train_size: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.task}__{self.variant}__n{self.train_size}__seed{self.seed}"


# ---------------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=STUDY_CONFIG, help="the study settings (JSON)")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="results folder: cells/*.json, results.csv, results.md, the figure",
    )
    parser.add_argument(
        "--work_dir",
        type=Path,
        default=None,
        help="run folders, generated data and the datasets cache "
        "(default: $LAS_TRANSFORMERS_CACHE/study or ~/.cache/las-transformers/study)",
    )
    parser.add_argument(
        "--mnist_dir",
        default=DEFAULT_MNIST_DIR,
        help="folder of the four idx files (Debian/Ubuntu: apt-get install dataset-fashion-mnist)",
    )
    parser.add_argument(
        "--mnist_labels",
        default="fashion",
        choices=("digits", "fashion"),
        help="what --mnist_dir holds: MNIST digits or Fashion-MNIST",
    )
    parser.add_argument("--tasks", nargs="+", help="only these study tasks (keys of the config's 'tasks')")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), help="only these variants")
    parser.add_argument("--train_sizes", nargs="+", type=int, help="training-set sizes (the first N examples)")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (each cell runs once per seed)")
    parser.add_argument("--max_steps", type=int, help="override the steps of every task (same for all cells)")
    parser.add_argument("--workers", type=int, default=2, help="runs at the same time, one thread each")
    parser.add_argument(
        "--attn_implementation",
        default=None,
        help="backend of every run; default: 'sdpa' where this checkout supports it, else 'eager'",
    )
    parser.add_argument("--dry_run", action="store_true", help="print the cells and their commands, run nothing")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny study for the test suite: --mnist_dir's task smnist, 1 seed, 1 size, 2 variants, "
        "2 steps, a tiny model",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The study settings: the config file (or the smoke settings) with the command line's overrides."""
    if args.smoke:
        config = json.loads(json.dumps(SMOKE_CONFIG))  # a deep copy
        config["variants"] = list(SMOKE_VARIANTS)
    else:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise StudyError(f"study config {args.config}: {error}") from None
        config["variants"] = list(VARIANTS)
    config = {key: value for key, value in config.items() if not key.startswith("_")}
    if args.tasks:
        unknown = sorted(set(args.tasks) - set(config["tasks"]))
        if unknown:
            raise StudyError(
                f"unknown study task(s) {', '.join(unknown)}; the config has {', '.join(config['tasks'])}"
            )
        config["tasks"] = {key: spec for key, spec in config["tasks"].items() if key in args.tasks}
    for name in ("variants", "train_sizes", "seeds"):
        if getattr(args, name):
            config[name] = list(getattr(args, name))
    if args.max_steps is not None:
        config["training"]["max_steps"] = args.max_steps
        for spec in config["tasks"].values():
            spec.get("training", {}).pop("max_steps", None)
    if any(size < 1 for size in config["train_sizes"]):
        raise StudyError("training-set sizes must be positive")
    return config


def longest_task(config: Mapping[str, Any]) -> str | None:
    """The task marked `longest` (LaS-chunk runs there only); None if it is not part of this study."""
    return next((key for key, spec in config["tasks"].items() if spec.get("longest")), None)


def study_cells(config: Mapping[str, Any]) -> list[Cell]:
    """Every cell, in the order they are run: task, then size (small first), seed, variant."""
    longest = longest_task(config)
    cells = []
    for task in config["tasks"]:
        variants = [v for v in config["variants"] if not VARIANTS[v].get("longest_only") or task == longest]
        for size in sorted(config["train_sizes"]):
            for seed in config["seeds"]:
                cells.extend(Cell(task, variant, size, seed) for variant in variants)
    return cells


def detect_attn_implementation() -> str:
    """'sdpa' when this checkout's run_lra.py and LaS model accept it, else 'eager'.

    The sdpa backend is being added to modeling_las concurrently; asking both places keeps the study honest on a
    checkout that has only one of them.
    """
    import run_lra
    from lra_training import UsageError
    from transformers import AutoModelForSequenceClassification

    from configuration_las import LaSConfig

    with tempfile.TemporaryDirectory() as scratch:
        try:
            run_lra.parse_arguments(
                ["--task", "listops", "--attn_implementation", "sdpa", "--output_dir", scratch, "--use_cpu"]
            )
            config = LaSConfig(
                hidden_size=8,
                num_hidden_layers=1,
                num_attention_heads=2,
                intermediate_size=8,
                vocab_size=8,
                num_labels=2,
            )
            AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
        except (UsageError, ValueError, ImportError):
            return "eager"
    return "sdpa"


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def prepare_data(config: Mapping[str, Any], args: argparse.Namespace, work_dir: Path) -> dict[str, list[str]]:
    """Make every task's data ready once, before any run; return the data flags of run_lra.py per study task.

    Generated data are written once (a marker file says complete) with the config's seed; each task is then prepared
    as a `datasets` cache in this process, so that parallel runs only read it.
    """
    import datasets

    import lra

    datasets.disable_progress_bars()  # one line per task is enough here
    flags: dict[str, list[str]] = {}
    for key, spec in config["tasks"].items():
        options: dict[str, Any] = {}
        if spec["data"] == "mnist_dir":
            data_dir = Path(args.mnist_dir).expanduser()
            if not data_dir.is_dir():
                raise StudyError(
                    f"--mnist_dir {data_dir} does not exist: the study reads Fashion-MNIST's idx files there; on "
                    "Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs them in "
                    f"{DEFAULT_MNIST_DIR} (or pass --mnist_dir and --mnist_labels for another copy)"
                )
            options = {"labels": args.mnist_labels}
            task_flags = ["--data_dir", str(data_dir), "--mnist_labels", args.mnist_labels]
        elif spec["data"] == "generate_pathfinder":
            generate = spec["generate"]
            data_dir = generate_pathfinder_once(work_dir / "data", **generate)
            options = {"resolution": generate["resolution"], "difficulty": generate["difficulty"]}
            task_flags = [
                "--data_dir",
                str(data_dir),
                "--pathfinder_resolution",
                str(generate["resolution"]),
                "--pathfinder_difficulty",
                str(generate["difficulty"]),
            ]
        else:
            raise StudyError(f"study task {key}: unknown data source {spec['data']!r}")
        print(f"Preparing {key} ({spec['task']}) from {data_dir}", flush=True)
        try:
            sizes = {
                split: len(part)
                for split, part in lra.load_lra(
                    spec["task"], data_dir, cache_dir=work_dir / "datasets-cache", **options
                ).items()
            }
        except lra.LRADataError as error:
            raise StudyError(str(error).splitlines()[0] + " (see the full message with lra.load_lra)") from None
        largest = max(config["train_sizes"])
        if (
            sizes["train"] < largest
            or sizes["validation"] < config["max_eval_samples"]
            or (sizes["test"] < config["max_test_samples"])
        ):
            raise StudyError(
                f"study task {key}: splits {sizes} are smaller than the study asks for (train "
                f"{largest}, validation {config['max_eval_samples']}, test {config['max_test_samples']})"
            )
        flags[key] = [*task_flags, "--cache_dir", str(work_dir / "datasets-cache")]
    return flags


def generate_pathfinder_once(root: Path, *, num_images: int, seed: int, resolution: int, difficulty: int) -> Path:
    """Pathfinder images under `root`, generated on the first call only (one core; a marker says complete)."""
    from lra.pathfinder import generate_pathfinder

    folder = root / f"pathfinder{resolution}-difficulty{difficulty}-n{num_images}-seed{seed}"
    marker = folder / ".complete"
    if not marker.is_file():
        print(
            f"Generating {num_images:,} Pathfinder-{resolution} images (seed {seed}) into {folder}: done once",
            flush=True,
        )
        start = time.perf_counter()
        generate_pathfinder(folder, resolution=resolution, difficulty=difficulty, num_images=num_images, seed=seed)
        marker.write_text(
            json.dumps({"num_images": num_images, "seed": seed, "seconds": round(time.perf_counter() - start, 1)})
        )
    return folder


# ---------------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------------


def model_overrides(config: Mapping[str, Any], variant: str) -> dict[str, Any]:
    """The LaSConfig fields a variant's runs set on top of examples/configs/<task>.json."""
    spec = VARIANTS[variant]
    fields = {**config["model"], **spec.get("model", {})}
    if spec.get("zero_alphas"):
        fields["las_alphas"] = [0] * fields["num_attention_heads"]
    if spec["attention_type"] == "las_chunk":
        fields["las_chunk_size"] = config["las_chunk_size"]
    return fields


def _flag_value(value: Any) -> str:
    """A value as run_lra.py reads it: JSON for lists and booleans (`[0,0]`, `True`), str otherwise."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def run_command(
    cell: Cell, config: Mapping[str, Any], data_flags: Sequence[str], output_dir: Path, attn_implementation: str
) -> list[str]:
    """The exact command of a cell: one thread, low priority, this checkout's modules, from the repository root."""
    spec = config["tasks"][cell.task]
    training = {**config["training"], **spec.get("training", {})}
    overrides = ",".join(f"{key}={_flag_value(value)}" for key, value in model_overrides(config, cell.variant).items())
    argv = [
        "env",
        "OMP_NUM_THREADS=1",
        "MKL_NUM_THREADS=1",
        f"PYTHONPATH={REPO_ROOT}",
        "nice",
        "-n",
        "10",
        sys.executable,
        "examples/run_lra.py",
        "--task",
        spec["task"],
        *data_flags,
        "--output_dir",
        str(output_dir),
        "--attention_type",
        VARIANTS[cell.variant]["attention_type"],
        "--config_overrides",
        overrides,
        "--attn_implementation",
        attn_implementation,
        "--max_train_samples",
        str(cell.train_size),
        "--max_eval_samples",
        str(config["max_eval_samples"]),
        "--max_test_samples",
        str(config["max_test_samples"]),
        "--seed",
        str(cell.seed),
    ]
    for key, value in training.items():
        argv += [f"--{key}", _flag_value(value)]
    return [*argv, "--use_cpu", "--disable_tqdm", "True", "--report_to", "none"]


def read_run(output_dir: Path) -> dict[str, Any]:
    """Steps, accuracies and training time of a finished run_lra.py output folder."""
    results = json.loads((output_dir / "all_results.json").read_text())
    state = json.loads((output_dir / "trainer_state.json").read_text())
    validation = [entry["eval_accuracy"] for entry in state["log_history"] if "eval_accuracy" in entry]
    return {
        "steps": state["global_step"],
        "test_accuracy": results["test_accuracy"],
        "best_validation_accuracy": max(validation),
        "train_seconds": round(results["train_runtime"], 1),
    }


def run_cell(
    cell: Cell, argv: Sequence[str], output_dir: Path, cell_file: Path, attn_implementation: str
) -> dict[str, Any]:
    """Run one cell from scratch; write its JSON (atomically) only when the run succeeded."""
    if output_dir.exists():  # an interrupted earlier attempt: start again, so every cell is one clean run
        shutil.rmtree(output_dir)
    output_dir.mkdir(parents=True)
    log = output_dir.parent / f"{output_dir.name}.log"
    start = time.perf_counter()
    with open(log, "w") as log_file:
        process = subprocess.run(argv, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT)
    if process.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-8:])
        raise RuntimeError(f"{cell.name}: run_lra.py exited with {process.returncode}; log {log}:\n{tail}")
    row = {
        "task": cell.task,
        "variant": cell.variant,
        "train_size": cell.train_size,
        "seed": cell.seed,
        **read_run(output_dir),
        "command": shlex.join(argv),
    }
    for checkpoint in output_dir.glob("checkpoint-*"):  # optimizer states: not needed once the run is done
        shutil.rmtree(checkpoint)
    record = {
        **row,
        "attn_implementation": attn_implementation,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "log": str(log),
    }
    temporary = cell_file.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, cell_file)
    return record


def run_cells(
    pending: Sequence[tuple[Cell, list[str], Path, Path]],
    workers: int,
    attn_implementation: str,
    done_before: int,
    total: int,
) -> list[str]:
    """Run the pending cells `workers` at a time, printing progress; return the failures' messages."""
    failures: list[str] = []
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(run_cell, cell, argv, output_dir, cell_file, attn_implementation): cell
            for cell, argv, output_dir, cell_file in pending
        }
        for finished, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            cell = futures[future]
            elapsed = time.perf_counter() - start
            eta = elapsed / finished * (len(pending) - finished)
            progress = f"[{done_before + finished}/{total}] {cell.name}"
            try:
                record = future.result()
            except RuntimeError as error:
                failures.append(str(error))
                print(f"{progress} FAILED ({error})", flush=True)
                continue
            print(
                f"{progress}: test {record['test_accuracy']:.4f}, best validation "
                f"{record['best_validation_accuracy']:.4f}, {record['train_seconds']:.0f} s training "
                f"(elapsed {elapsed / 60:.1f} min, about {eta / 60:.1f} min left)",
                flush=True,
            )
    return failures


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------


def read_cells(cells: Sequence[Cell], cells_dir: Path) -> list[dict[str, Any]]:
    """The records of the finished cells, in study order."""
    return [
        json.loads((cells_dir / f"{cell.name}.json").read_text())
        for cell in cells
        if (cells_dir / f"{cell.name}.json").is_file()
    ]


def write_csv(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def summarize(records: Sequence[Mapping[str, Any]], key: str) -> dict[tuple[str, str, int], tuple[float, float, int]]:
    """(task, variant, size) -> (mean, std over seeds, number of seeds) of `key`, in percent; std NaN for one seed."""
    groups: dict[tuple[str, str, int], list[float]] = {}
    for record in records:
        groups.setdefault((record["task"], record["variant"], record["train_size"]), []).append(100 * record[key])
    return {
        group: (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan, len(values))
        for group, values in groups.items()
    }


def _mean_std(summary: tuple[float, float, int] | None) -> str:
    if summary is None:
        return "—"
    mean, std, count = summary
    return f"{mean:.2f} ± {std:.2f} ({count})" if count > 1 else f"{mean:.2f} (1)"


def write_markdown(
    records: Sequence[Mapping[str, Any]], config: Mapping[str, Any], attn_implementation: str, path: Path
) -> None:
    """The study table: test accuracy (mean ± std over seeds) per task, variant and training-set size."""
    sizes = sorted(config["train_sizes"])
    variants = [variant for variant in VARIANTS if variant in config["variants"]]
    test = summarize(records, "test_accuracy")
    validation = summarize(records, "best_validation_accuracy")
    training = {**config["training"]}
    lines = [
        "# Does LaS's locality-and-smoothness bias help? (examples/study)",
        "",
        f"Test accuracy in percent, mean ± std over seeds (number of seeds in brackets), on the first "
        f"{config['max_test_samples']:,} test examples; best validation accuracy "
        f"(first {config['max_eval_samples']:,} validation examples) in the second table. "
        "Each run trains on the first N training examples for "
        f"{training['max_steps']} steps of batch {training['per_device_train_batch_size']} (the same budget for every "
        f"variant and size; evaluation every {training.get('eval_steps')} steps, the best validation checkpoint is "
        f"tested), one thread, attn_implementation `{attn_implementation}`. Written by `examples/study/run_study.py` "
        f"from {len(records)} finished runs; every run's command is in results.csv.",
        "",
        PAPER_REFERENCE,
        "",
    ]
    for title, summary in (("Test accuracy (%)", test), ("Best validation accuracy (%)", validation)):
        lines += [
            f"## {title}",
            "",
            "| task | variant | " + " | ".join(f"N = {size:,}" for size in sizes) + " |",
            "|---|---|" + "---|" * len(sizes),
        ]
        for task, spec in config["tasks"].items():
            for variant in variants:
                cells = [summary.get((task, variant, size)) for size in sizes]
                if any(cells):
                    lines.append(f"| {spec['title']} | {variant} | " + " | ".join(map(_mean_std, cells)) + " |")
        lines.append("")
    lines += ["Variants: " + "; ".join(f"`{name}`: {VARIANTS[name]['about']}" for name in variants) + ".", ""]
    path.write_text("\n".join(lines))


def plot(records: Sequence[Mapping[str, Any]], config: Mapping[str, Any], path: Path) -> None:
    """Test accuracy against training-set size: one panel per task, one line per variant (mean ± std over seeds)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    summary = summarize(records, "test_accuracy")
    tasks = list(config["tasks"])
    figure, axes = plt.subplots(1, len(tasks), figsize=(4.8 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        for variant in VARIANTS:
            points = sorted((size, *summary[(t, v, size)][:2]) for t, v, size in summary if (t, v) == (task, variant))
            if points:
                sizes, means, stds = zip(*points)
                axis.errorbar(
                    sizes, means, yerr=[0 if math.isnan(s) else s for s in stds], marker="o", capsize=3, label=variant
                )
        axis.set(
            xscale="log",
            xlabel="training examples (first N)",
            ylabel="test accuracy (%)",
            title=config["tasks"][task]["title"],
        )
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = load_config(args)
        work_dir = (
            args.work_dir
            or Path(os.environ.get("LAS_TRANSFORMERS_CACHE", Path.home() / ".cache" / "las-transformers")) / "study"
        )
        work_dir = work_dir.expanduser().resolve()
        out = args.out.resolve()
        cells_dir = out / "cells"
        cells_dir.mkdir(parents=True, exist_ok=True)
        cells = study_cells(config)
        finished = {cell for cell in cells if (cells_dir / f"{cell.name}.json").is_file()}
        todo = [cell for cell in cells if cell not in finished]
        print(
            f"{len(cells)} cells: {len(finished)} finished (skipped), {len(todo)} to run, {args.workers} at a time",
            flush=True,
        )
        attn_implementation = args.attn_implementation
        if todo:
            if attn_implementation is None:
                attn_implementation = detect_attn_implementation()
                print(f"attn_implementation: {attn_implementation} (detected)", flush=True)
            data_flags = (
                prepare_data(config, args, work_dir)
                if not args.dry_run
                else {key: ["--data_dir", "DATA_DIR"] for key in config["tasks"]}
            )
            pending = []
            for cell in todo:
                output_dir = work_dir / "runs" / cell.task / cell.name
                argv = run_command(cell, config, data_flags[cell.task], output_dir, attn_implementation)
                pending.append((cell, argv, output_dir, cells_dir / f"{cell.name}.json"))
            if args.dry_run:
                for cell, argv, _, _ in pending:
                    print(f"{cell.name}: {shlex.join(argv)}")
                return 0
            failures = run_cells(pending, args.workers, attn_implementation, len(finished), len(cells))
        else:
            failures = []
    except StudyError as error:
        print(f"run_study.py: error: {error}", file=sys.stderr)
        return 2

    records = read_cells(cells, cells_dir)
    if records:
        implementations = sorted({record["attn_implementation"] for record in records})
        write_csv(records, out / "results.csv")
        write_markdown(records, config, "/".join(implementations), out / "results.md")
        plot(records, config, out / "accuracy_vs_train_size.png")
        print(
            f"Wrote {out / 'results.csv'}, {out / 'results.md'} and {out / 'accuracy_vs_train_size.png'} "
            f"({len(records)} of {len(cells)} cells)",
            flush=True,
        )
    if failures:
        print(f"{len(failures)} cell(s) failed; rerun to retry them:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Does LaS's locality-and-smoothness bias help? A paired, seeded, resumable study with 95% intervals.

Every cell (task, variant, training-set size, seed) is one `examples/run_lra.py` run in its own process, on one thread,
trained to early stopping on a fixed validation set and tested on the full test set. A seed gives every variant the
same data order and initial weights, so variants are compared seed by seed (paired differences). The study is a list
of phases (study_config.json); the command-line filters choose which of their cells run, never what is reported.

Integrity: a cell's identity is a hash of its full settings (task, variant, N, seed, model and training flags, data
source and checksum, attention implementation, a hash of the code that trains it), so a changed setting is a new cell;
cell files are written atomically and validated on read (a bad one is named, set aside and rerun); one invocation at a
time per `--out` (a lock); SIGTERM / Ctrl-C stop the running children. `results.csv`, `results.md` and the figure are
rebuilt from every valid cell file in `--out` after every invocation (`--dry_run` rebuilds them without running).

    python examples/study/run_study.py                          # every phase of examples/study/study_config.json
    python examples/study/run_study.py --phases sequential_n1000 --seeds 0 1 2
    python examples/study/run_study.py --dry_run                # list what would run; rebuild the tables
    python examples/study/run_study.py --smoke --mnist_dir DIR --mnist_labels digits --out OUT --work_dir WORK

See examples/study/README.md for the design, the analysis and the costs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import dataclasses
import gzip
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
STUDY_CONFIG = Path(__file__).resolve().parent / "study_config.json"
DEFAULT_OUT = Path("examples/results/study")
DEFAULT_WORK_DIR = Path("runs/study")
DEFAULT_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
sys.path[:0] = [str(REPO_ROOT), str(EXAMPLES)]  # this checkout's modules, not an installed copy

from study_support import (
    FolderBusyError,
    FolderLock,
    format_interval,
    mean_interval,
    settings_hash,
    verdict,
    welch_interval,
    write_atomically,
)
from study_support import (  # noqa: E402
    code_version as hash_code_files,
)

#: The variants. `attention_type` is run_lra's; `model` are LaSConfig fields on top of the study's model.
VARIANTS: Mapping[str, Mapping[str, Any]] = {
    "softmax": {"attention_type": "softmax", "about": "plain softmax attention, same model and positions"},
    "las": {"attention_type": "las", "about": "LaS: decay and smoothing"},
    "decay_only": {"attention_type": "las", "model": {"las_pool_size": 1}, "about": "LaS without smoothing (P=1)"},
    "smoothing_only": {"attention_type": "las", "zero_alphas": True, "about": "LaS without decay (all alphas 0)"},
    "alibi": {"attention_type": "alibi", "about": "softmax with ALiBi's additive bias -m_h |i-j| (Press et al.)"},
}
#: The paired comparisons of the analysis, (variant, baseline): fixed before any cell ran.
COMPARISONS = (
    ("las", "softmax"),
    ("decay_only", "softmax"),
    ("alibi", "softmax"),
    ("smoothing_only", "softmax"),
    ("las", "alibi"),
    ("las", "decay_only"),
)
#: The files whose content decides what a cell computes: their hash is part of every cell's identity.
CODE_FILES = (
    "configuration_las.py",
    "modeling_las.py",
    "las_attention.py",
    "image_processing_las.py",
    "examples/run_lra.py",
    "examples/lra_training.py",
)
CODE_GLOBS = ("lra/**/*.py", "examples/configs/*.json")
CSV_COLUMNS = (
    "task",
    "variant",
    "train_size",
    "seed",
    "test_accuracy",
    "best_validation_accuracy",
    "steps",
    "best_step",
    "epochs",
    "train_seconds",
    "pixel_pool_size",
    "learning_rate",
    "batch_size",
    "max_epochs",
    "max_steps",
    "early_stopping_patience",
    "eval_steps",
    "max_eval_samples",
    "max_test_samples",
    "attn_implementation",
    "data_checksum",
    "code_version",
    "commit",
    "identity",
    "command",
)
#: The results every cell file must hold, with their ranges.
RESULT_FIELDS = {
    "test_accuracy": (0.0, 1.0),
    "best_validation_accuracy": (0.0, 1.0),
    "steps": (1, math.inf),
    "best_step": (0, math.inf),
    "train_seconds": (0.0, math.inf),
}
#: The smoke study of the test suite: seconds on the tiny idx fixture.
SMOKE_CONFIG: Mapping[str, Any] = {
    "max_eval_samples": 2,
    "max_test_samples": 5,
    "model": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
    "training": {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 8,
        "learning_rate": 0.001,
        "eval_strategy": "steps",
        "eval_steps": 1,
        "save_strategy": "steps",
        "save_steps": 1,
        "save_total_limit": 1,
        "load_best_model_at_end": True,
        "metric_for_best_model": "accuracy",
        "logging_steps": 1,
    },
    "budgets": {},
    "early_stopping_patience": 2,
    "tasks": {
        "smnist": {
            "task": "smnist",
            "title": "sequential MNIST (fixture)",
            "data": "mnist_dir",
            "pixel_pool_size": 2,
        }
    },
    "phases": [{"name": "smoke", "task": "smnist", "train_sizes": [8], "variants": ["softmax", "las"], "seeds": [0]}],
}


class StudyError(Exception):
    """A bad setting, missing data or a busy `--out`: one line on stderr, exit code 2."""


@dataclasses.dataclass(frozen=True)
class Cell:
    """One run of the study: what it is (the four keys) and everything that decides its result (`settings`)."""

    task: str
    variant: str
    train_size: int
    seed: int
    settings_json: str  # canonical JSON of the full settings (hashable, so cells can be set members)

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(self.settings_json)

    @property
    def identity(self) -> str:
        return settings_hash(self.settings)

    @property
    def name(self) -> str:
        return f"{self.task}__{self.variant}__n{self.train_size}__seed{self.seed}__{self.identity}"


# ---------------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=STUDY_CONFIG, help="the study settings (JSON)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results: cells/, predictions/, tables, figure")
    parser.add_argument(
        "--work_dir", type=Path, default=DEFAULT_WORK_DIR, help="run folders and the datasets cache (not committed)"
    )
    parser.add_argument("--mnist_dir", default=DEFAULT_MNIST_DIR, help="folder of the four idx files")
    parser.add_argument("--mnist_labels", default="fashion", choices=("digits", "fashion"), help="what it holds")
    parser.add_argument("--phases", nargs="+", help="run only these phases (names in the config)")
    parser.add_argument("--tasks", nargs="+", help="run only these study tasks")
    parser.add_argument("--variants", nargs="+", help="run only these variants")
    parser.add_argument("--train_sizes", nargs="+", type=int, help="run only these training-set sizes")
    parser.add_argument("--seeds", nargs="+", type=int, help="run only these seeds")
    parser.add_argument(
        "--max_steps", type=int, help="cap every run at this many steps (a setting: such cells are new cells)"
    )
    parser.add_argument("--workers", type=int, default=1, help="runs at the same time, one thread each")
    parser.add_argument("--attn_implementation", default="sdpa", help="backend of every run")
    parser.add_argument("--dry_run", action="store_true", help="list the cells to run and rebuild the tables only")
    parser.add_argument("--smoke", action="store_true", help="the tiny study of the test suite")
    return parser.parse_args(argv)


def validate_args(args: argparse.Namespace) -> None:
    """Every command-line value checked before any work (one line each)."""
    for name in ("workers", "max_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise StudyError(f"--{name} must be at least 1, not {value}")
    if args.train_sizes and min(args.train_sizes) < 1:
        raise StudyError(f"--train_sizes must be positive, not {min(args.train_sizes)}")
    if args.seeds and min(args.seeds) < 0:
        raise StudyError(f"--seeds must be >= 0, not {min(args.seeds)}")
    if args.variants:
        unknown = sorted(set(args.variants) - set(VARIANTS))
        if unknown:
            raise StudyError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    from las_attention import LAS_IMPLEMENTATIONS

    if args.attn_implementation not in LAS_IMPLEMENTATIONS:
        raise StudyError(f"--attn_implementation must be one of {', '.join(LAS_IMPLEMENTATIONS)}")
    if args.out.exists() and not args.out.is_dir():
        raise StudyError(f"--out {args.out} exists and is not a folder")


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """The study settings (the config file or the smoke settings), checked: phases name known tasks and variants."""
    if args.smoke:
        config = json.loads(json.dumps(SMOKE_CONFIG))  # a deep copy
    else:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise StudyError(f"study config {args.config}: {error}") from None
    for phase in config.get("phases", []):
        where = f"study config phase {phase.get('name')!r}"
        if phase.get("task") not in config["tasks"]:
            raise StudyError(f"{where}: unknown task {phase.get('task')!r}")
        unknown = sorted(set(phase.get("variants", [])) - set(VARIANTS))
        if unknown:
            raise StudyError(f"{where}: unknown variant(s) {', '.join(unknown)}")
        if not phase.get("train_sizes") or min(phase["train_sizes"]) < 1 or not phase.get("seeds"):
            raise StudyError(f"{where}: needs positive train_sizes and at least one seed")
    names = [phase["name"] for phase in config.get("phases", [])]
    for flag, known in (("phases", names), ("tasks", list(config["tasks"]))):
        unknown = sorted(set(getattr(args, flag) or []) - set(known))
        if unknown:
            raise StudyError(f"unknown {flag[:-1]}(s) {', '.join(unknown)}; the config has {', '.join(known)}")
    return config


def code_version(root: Path = REPO_ROOT) -> str:
    """A hash of the code that trains a cell (`CODE_FILES`, `CODE_GLOBS`): any change to it makes new cells."""
    return hash_code_files(root, CODE_FILES, CODE_GLOBS)


def data_checksum(data_dir: Path) -> str:
    """A hash of the data files (name and content of every file directly in `data_dir`)."""
    digest = hashlib.sha256()
    files = sorted(path for path in data_dir.iterdir() if path.is_file())
    if not files:
        raise StudyError(f"--mnist_dir {data_dir} holds no files")
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def relative_to_repo(path: Path) -> str:
    """`path` relative to the repository root where it lies inside it (recorded commands run from the root)."""
    resolved = path.expanduser().resolve()
    try:
        return resolved.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(resolved)


def cell_settings(
    config: Mapping[str, Any],
    args: argparse.Namespace,
    task: str,
    variant: str,
    train_size: int,
    seed: int,
    data: Mapping[str, Any],
    code: str,
) -> dict[str, Any]:
    """Everything that decides a cell's result, as JSON values."""
    spec = config["tasks"][task]
    model = {**config["model"], **VARIANTS[variant].get("model", {})}
    if VARIANTS[variant].get("zero_alphas"):
        model["las_alphas"] = [0] * model["num_attention_heads"]
    training = {**config["training"], **config.get("budgets", {}).get(str(train_size), {}), "seed": seed}
    if args.max_steps is not None:
        training["max_steps"] = args.max_steps
    return {
        "task": task,
        "run_lra_task": spec["task"],
        "variant": variant,
        "attention_type": VARIANTS[variant]["attention_type"],
        "train_size": train_size,
        "seed": seed,
        "model": model,
        "training": training,
        "early_stopping_patience": config.get("early_stopping_patience"),
        "pixel_pool_size": spec.get("pixel_pool_size", 1),
        "max_eval_samples": config["max_eval_samples"],
        "max_test_samples": config["max_test_samples"],
        "data": dict(data),
        "attn_implementation": args.attn_implementation,
        "code_version": code,
    }


def study_cells(config: Mapping[str, Any], args: argparse.Namespace, data: Mapping[str, Any], code: str) -> list[Cell]:
    """The cells the filters select, in run order: phase by phase, then seed, then variant (pairs finish together)."""
    selected: list[Cell] = []
    for phase in config["phases"]:
        task = phase["task"]
        if (args.phases and phase["name"] not in args.phases) or (args.tasks and task not in args.tasks):
            continue
        for size in sorted(phase["train_sizes"]):
            for seed in phase["seeds"]:
                for variant in phase["variants"]:
                    if (args.variants and variant not in args.variants) or (
                        args.train_sizes and size not in args.train_sizes
                    ):
                        continue
                    if args.seeds is not None and seed not in args.seeds:
                        continue
                    settings = cell_settings(config, args, task, variant, size, seed, data[task], code)
                    cell = Cell(task, variant, size, seed, json.dumps(settings, sort_keys=True))
                    if cell not in selected:
                        selected.append(cell)
    return selected


def run_command(cell: Cell, output_dir: str) -> list[str]:
    """The cell's command, runnable as printed from the repository root (relative paths, `python`)."""
    settings = cell.settings
    data = settings["data"]
    overrides = ",".join(f"{key}={_flag_value(value)}" for key, value in settings["model"].items())
    argv = [
        "env",
        "OMP_NUM_THREADS=1",
        "MKL_NUM_THREADS=1",
        "python",
        "examples/run_lra.py",
        "--task",
        settings["run_lra_task"],
        "--data_dir",
        data["dir"],
        "--mnist_labels",
        data["labels"],
        "--cache_dir",
        data["cache_dir"],
        "--output_dir",
        output_dir,
        "--overwrite_output_dir",
        "True",
        "--attention_type",
        settings["attention_type"],
        "--config_overrides",
        overrides,
        "--attn_implementation",
        settings["attn_implementation"],
        "--max_train_samples",
        str(cell.train_size),
        "--max_eval_samples",
        str(settings["max_eval_samples"]),
        "--pixel_pool_size",
        str(settings["pixel_pool_size"]),
    ]
    if settings["max_test_samples"] is not None:
        argv += ["--max_test_samples", str(settings["max_test_samples"])]
    if settings["early_stopping_patience"] is not None:
        argv += ["--early_stopping_patience", str(settings["early_stopping_patience"])]
    for key, value in settings["training"].items():
        argv += [f"--{key}", _flag_value(value)]
    return [*argv, "--use_cpu", "--disable_tqdm", "True", "--report_to", "none", "--save_only_model", "True"]


def _flag_value(value: Any) -> str:
    """A value as run_lra.py reads it: JSON for lists, `True`/`False` for booleans, str otherwise."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def provenance() -> dict[str, Any]:
    """Where and with what a cell ran: the commit (and whether the tree differed), library versions, machine."""
    import datasets
    import numpy
    import torch
    import transformers

    def git(*command: str) -> str:
        try:
            return subprocess.run(
                ["git", *command], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "datasets": datasets.__version__,
        "numpy": numpy.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
    }


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def prepare_data(config: Mapping[str, Any], args: argparse.Namespace, tasks: Iterable[str]) -> dict[str, dict]:
    """Per study task: the data settings that enter the cells' identity (where, which labels, checksum)."""
    data: dict[str, dict] = {}
    for key in tasks:
        spec = config["tasks"][key]
        if spec["data"] != "mnist_dir":
            raise StudyError(f"study task {key}: unknown data source {spec['data']!r}")
        data_dir = Path(args.mnist_dir).expanduser()
        if not data_dir.is_dir():
            raise StudyError(
                f"--mnist_dir {data_dir} does not exist: the study reads Fashion-MNIST's idx files there; on "
                "Debian/Ubuntu `apt-get install dataset-fashion-mnist` installs them in "
                f"{DEFAULT_MNIST_DIR} (or pass --mnist_dir and --mnist_labels for another copy)"
            )
        data[key] = {
            "source": "mnist_dir",
            "dir": relative_to_repo(data_dir),
            "labels": args.mnist_labels,
            "checksum": data_checksum(data_dir),
            "cache_dir": relative_to_repo(args.work_dir / "datasets-cache"),
        }
    return data


def load_data_once(config: Mapping[str, Any], data: Mapping[str, Mapping[str, Any]], tasks: Iterable[str]) -> None:
    """Prepare each task's `datasets` cache in this process, so that parallel runs only read it; check split sizes."""
    import datasets

    import lra

    datasets.disable_progress_bars()
    for key in tasks:
        spec, where = config["tasks"][key], data[key]
        try:
            splits = lra.load_lra(
                spec["task"],
                REPO_ROOT / where["dir"],
                cache_dir=REPO_ROOT / where["cache_dir"],
                labels=where["labels"],
            )
        except lra.LRADataError as error:
            raise StudyError(str(error).splitlines()[0]) from None
        sizes = {split: len(part) for split, part in splits.items()}
        largest = max(size for phase in config["phases"] if phase["task"] == key for size in phase["train_sizes"])
        if sizes["train"] < largest or sizes["validation"] < config["max_eval_samples"]:
            raise StudyError(
                f"study task {key}: splits {sizes} are smaller than the study asks for (train {largest}, "
                f"validation {config['max_eval_samples']})"
            )


# ---------------------------------------------------------------------------------------------------------------------
# Cell files
# ---------------------------------------------------------------------------------------------------------------------


def validate_record(record: Any, file_name: str) -> str | None:
    """Why a cell file cannot be used (None if it can): shape, identity and the ranges of its results."""
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        return "not a cell record (no settings)"
    identity = settings_hash(record["settings"])
    if record.get("identity") != identity or not file_name.endswith(f"__{identity}.json"):
        return f"its settings hash to {identity}, not the identity in its name or content"
    for key, (low, high) in RESULT_FIELDS.items():
        value = record.get("results", {}).get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            return f"results.{key} = {value!r} is missing or outside [{low}, {high}]"
    return None


def read_cells(cells_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every valid cell record in `cells_dir`, and one message per invalid file (which is moved to `invalid/`)."""
    records, problems = [], []
    for path in sorted(cells_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            reason = validate_record(record, path.name)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            reason = f"unreadable ({type(error).__name__}: {error})"
        if reason is None:
            records.append(record)
            continue
        problems.append(f"{path}: {reason}; moved to {cells_dir / 'invalid'} (the cell runs again)")
        (cells_dir / "invalid").mkdir(exist_ok=True)
        os.replace(path, cells_dir / "invalid" / path.name)
    return records, problems


# ---------------------------------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------------------------------


class Runner:
    """Runs cells as child processes (each in its own process group) and stops them all on SIGTERM / SIGINT."""

    def __init__(self, out: Path, work_dir: Path):
        self.cells_dir = out / "cells"
        self.predictions_dir = out / "predictions"
        self.work_dir = work_dir
        self.children: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def stop(self, signum: int, frame: Any) -> None:
        self.stopping = True
        with self.lock:
            for child in self.children:
                try:
                    os.killpg(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        raise KeyboardInterrupt(f"signal {signum}")

    def run_cell(self, cell: Cell, context: Mapping[str, Any]) -> dict[str, Any]:
        """One cell from scratch; its record is written (atomically) only when the run succeeded."""
        output_dir = self.work_dir / "runs" / cell.name
        if output_dir.exists():  # an interrupted earlier attempt: every cell is one clean run
            shutil.rmtree(output_dir)
        output_dir.mkdir(parents=True)
        command = run_command(cell, relative_to_repo(output_dir))
        argv = ["nice", "-n", "10", *[sys.executable if part == "python" else part for part in command]]
        log = output_dir.parent / f"{cell.name}.log"
        start = time.perf_counter()
        with open(log, "w") as log_file:
            if self.stopping:
                raise KeyboardInterrupt("stopping")
            child = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a stop reaches its workers too
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            )
            with self.lock:
                self.children.add(child)
            try:
                returncode = child.wait()
            finally:
                with self.lock:
                    self.children.discard(child)
        if returncode != 0:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-8:])
            raise RuntimeError(f"{cell.name}: run_lra.py exited with {returncode}; log {log}:\n{tail}")
        results = read_run(output_dir)
        predictions = output_dir / "test_predictions.csv"
        self.predictions_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(
            self.predictions_dir / f"{cell.name}.csv.gz", gzip.compress(predictions.read_bytes(), mtime=0)
        )
        record = {
            "task": cell.task,
            "variant": cell.variant,
            "train_size": cell.train_size,
            "seed": cell.seed,
            "identity": cell.identity,
            "settings": cell.settings,
            "results": results,
            "command": shlex.join(command),
            "predictions": f"predictions/{cell.name}.csv.gz",
            "provenance": {**context, "wall_seconds": round(time.perf_counter() - start, 1)},
        }
        for checkpoint in output_dir.glob("checkpoint-*"):  # not needed once the run is done
            shutil.rmtree(checkpoint)
        write_atomically(self.cells_dir / f"{cell.name}.json", json.dumps(record, indent=2) + "\n")
        return record


def read_run(output_dir: Path) -> dict[str, Any]:
    """Steps, steps to the best validation, accuracies and training time of a finished run_lra.py folder."""
    results = json.loads((output_dir / "all_results.json").read_text())
    state = json.loads((output_dir / "trainer_state.json").read_text())
    validation = [
        (entry["step"], entry["eval_accuracy"]) for entry in state["log_history"] if "eval_accuracy" in entry
    ]
    best_step, best = max(validation, key=lambda point: (point[1], -point[0]))
    return {
        "test_accuracy": results["test_accuracy"],
        "best_validation_accuracy": best,
        "steps": state["global_step"],
        "best_step": state.get("best_global_step") or best_step,
        "epochs": round(state["epoch"], 2),
        "train_seconds": round(results["train_runtime"], 1),
    }


def run_cells(runner: Runner, pending: Sequence[Cell], workers: int, context: Mapping[str, Any]) -> list[str]:
    """Run the pending cells `workers` at a time, printing progress; return the failures' messages."""
    failures: list[str] = []
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(runner.run_cell, cell, context): cell for cell in pending}
        try:
            for finished, future in enumerate(concurrent.futures.as_completed(futures), start=1):
                cell = futures[future]
                elapsed = time.perf_counter() - start
                progress = f"[{finished}/{len(pending)}] {cell.name}"
                try:
                    record = future.result()
                except RuntimeError as error:
                    failures.append(str(error))
                    print(f"{progress} FAILED ({error})", flush=True)
                    continue
                results = record["results"]
                print(
                    f"{progress}: test {results['test_accuracy']:.4f}, best validation "
                    f"{results['best_validation_accuracy']:.4f} at step {results['best_step']} of {results['steps']} "
                    f"(elapsed {elapsed / 60:.1f} min, about "
                    f"{elapsed / finished * (len(pending) - finished) / 60:.0f} min left)",
                    flush=True,
                )
        except KeyboardInterrupt:
            runner.stopping = True
            for future in futures:
                future.cancel()
            raise
    return failures


# ---------------------------------------------------------------------------------------------------------------------
# Analysis (fixed before any cell ran; see README.md)
# ---------------------------------------------------------------------------------------------------------------------


def design_key(record: Mapping[str, Any]) -> str:
    """What must be equal for two cells to be compared (all but the variant and the seed)."""
    return settings_hash(record["settings"], leave_out=("variant", "attention_type", "model", "seed", "training"))


def group_records(records: Sequence[Mapping[str, Any]]) -> dict[tuple, dict[str, dict[int, Mapping[str, Any]]]]:
    """(task, N, design) -> variant -> seed -> record; a seed's training flags are compared apart from the seed."""
    groups: dict[tuple, dict[str, dict[int, Mapping[str, Any]]]] = {}
    for record in records:
        training = {k: v for k, v in record["settings"]["training"].items() if k != "seed"}
        key = (record["task"], record["train_size"], design_key(record), json.dumps(training, sort_keys=True))
        groups.setdefault(key, {}).setdefault(record["variant"], {})[record["seed"]] = record
    return groups


def paired_differences(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per design and comparison: the per-seed differences of test accuracy (points) with their mean and 95% CI."""
    rows = []
    for (task, size, design, _), variants in sorted(group_records(records).items()):
        for variant, baseline in COMPARISONS:
            if variant not in variants or baseline not in variants:
                continue
            seeds = sorted(set(variants[variant]) & set(variants[baseline]))
            differences = [
                100
                * (
                    variants[variant][s]["results"]["test_accuracy"]
                    - variants[baseline][s]["results"]["test_accuracy"]
                )
                for s in seeds
            ]
            if not differences:
                continue
            mean, half, count = mean_interval(differences)
            rows.append(
                {
                    "task": task,
                    "train_size": size,
                    "design": design,
                    "comparison": f"{variant} - {baseline}",
                    "variant": variant,
                    "baseline": baseline,
                    "seeds": seeds,
                    "differences": differences,
                    "mean": mean,
                    "half_width": half,
                    "count": count,
                    "verdict": verdict(mean, half),
                }
            )
    return rows


def gap_contrasts(records: Sequence[Mapping[str, Any]], config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The data-size claim (gap at the smallest N minus gap at the largest N, per task) and the locality check
    (gap on the sequential task minus gap on its permuted control, per N), for every comparison with a baseline."""
    pairs = {(row["task"], row["train_size"], row["comparison"]): row for row in paired_differences(records)}
    rows = []
    comparisons = sorted({key[2] for key in pairs})
    for comparison in comparisons:
        for task in config["tasks"]:
            sizes = sorted(size for t, size, c in pairs if (t, c) == (task, comparison))
            if len(sizes) >= 2:
                small, large = pairs[(task, sizes[0], comparison)], pairs[(task, sizes[-1], comparison)]
                difference, half = welch_interval(small["differences"], large["differences"])
                rows.append(
                    {
                        "contrast": f"data size: gap at N = {sizes[0]:,} minus gap at N = {sizes[-1]:,}",
                        "task": task,
                        "comparison": comparison,
                        "mean": difference,
                        "half_width": half,
                        "verdict": verdict(difference, half),
                    }
                )
        for task, spec in config["tasks"].items():
            control = spec.get("permuted_control_of")
            if not control:
                continue
            for size in sorted({s for t, s, c in pairs if (t, c) == (task, comparison)}):
                if (control, size, comparison) in pairs:
                    sequential, permuted = pairs[(control, size, comparison)], pairs[(task, size, comparison)]
                    difference, half = welch_interval(sequential["differences"], permuted["differences"])
                    rows.append(
                        {
                            "contrast": f"locality: gap on {control} minus gap on {task}, N = {size:,}",
                            "task": control,
                            "comparison": comparison,
                            "mean": difference,
                            "half_width": half,
                            "verdict": verdict(difference, half),
                        }
                    )
    return rows


def write_csv(records: Sequence[Mapping[str, Any]], path: Path) -> None:
    rows = []
    for record in records:
        settings, training = record["settings"], record["settings"]["training"]
        rows.append(
            {
                **{key: record[key] for key in ("task", "variant", "train_size", "seed", "identity", "command")},
                **record["results"],
                "pixel_pool_size": settings["pixel_pool_size"],
                "learning_rate": training.get("learning_rate"),
                "batch_size": training.get("per_device_train_batch_size"),
                "max_epochs": training.get("num_train_epochs"),
                "max_steps": training.get("max_steps"),
                "early_stopping_patience": settings["early_stopping_patience"],
                "eval_steps": training.get("eval_steps"),
                "max_eval_samples": settings["max_eval_samples"],
                "max_test_samples": settings["max_test_samples"],
                "attn_implementation": settings["attn_implementation"],
                "data_checksum": settings["data"]["checksum"],
                "code_version": settings["code_version"],
                "commit": record["provenance"]["commit"],
            }
        )
    rows.sort(key=lambda row: (row["task"], row["train_size"], row["variant"], row["seed"], row["identity"]))
    with open(path.with_suffix(".tmp"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path.with_suffix(".tmp"), path)


def write_markdown(
    records: Sequence[Mapping[str, Any]], config: Mapping[str, Any], baseline: Mapping[str, Any] | None, path: Path
) -> None:
    """Accuracy per cell group, the paired differences with 95% intervals, the contrasts, steps to best."""
    titles = {key: spec["title"] for key, spec in config["tasks"].items()}
    lines = [
        "# Does LaS's locality-and-smoothness bias help? (examples/study)",
        "",
        f"Written by `examples/study/run_study.py` from all {len(records)} valid cell files in `cells/` (one run "
        "each; "
        "every run's settings, command, commit and library versions are in its file and in `results.csv`). Test "
        "accuracy on the full test split, with the checkpoint of the best validation accuracy (early stopping). "
        "Intervals are 95%: t over seeds.",
        "",
        "## Test accuracy (%): mean ± 95% interval (seeds)",
        "",
        "| task | N | " + " | ".join(VARIANTS) + " | steps to best (mean) |",
        "|---|---|" + "---|" * (len(VARIANTS) + 1),
    ]
    for (task, size, _, _), variants in sorted(group_records(records).items()):
        cells = []
        steps = []
        for variant in VARIANTS:
            runs = variants.get(variant, {})
            values = [100 * run["results"]["test_accuracy"] for run in runs.values()]
            steps += [run["results"]["best_step"] for run in runs.values()]
            cells.append(format_interval(*mean_interval(values), signed=False) if values else "")
        lines.append(
            f"| {titles.get(task, task)} | {size:,} | " + " | ".join(cells) + f" | {statistics.fmean(steps):,.0f} |"
        )
    if baseline:
        lines += [
            "",
            "Reference line, multinomial logistic regression on the same pixels (`linear_baseline.py`, standardised "
            "pixels, L2 penalty chosen on the same validation examples): "
            + "; ".join(
                f"N = {int(n):,}: {100 * acc:.2f}%"
                for n, acc in sorted(baseline["test_accuracy"].items(), key=lambda kv: int(kv[0]))
            )
            + f" ({baseline['task']}).",
        ]
    lines += [
        "",
        "## Paired differences of test accuracy (points): same seed = same data order and initial weights",
        "",
        "| task | N | comparison | seeds | mean ± 95% interval | per seed | reading |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in paired_differences(records):
        per_seed = ", ".join(f"{d:+.2f}" for d in row["differences"])
        lines.append(
            f"| {titles.get(row['task'], row['task'])} | {row['train_size']:,} | {row['comparison']} | "
            f"{row['count']} | "
            f"{format_interval(row['mean'], row['half_width'])} | {per_seed} | {row['verdict']} |"
        )
    contrasts = gap_contrasts(records, config)
    if contrasts:
        lines += [
            "",
            "## Contrasts of gaps (points; Welch 95% interval)",
            "",
            "| contrast | comparison | difference | reading |",
            "|---|---|---|---|",
        ]
        for row in contrasts:
            lines.append(
                f"| {row['contrast']} | {row['comparison']} | {format_interval(row['mean'], row['half_width'])} | "
                f"{row['verdict']} |"
            )
    lines += ["", "Variants: " + "; ".join(f"`{name}`: {spec['about']}" for name, spec in VARIANTS.items()) + ".", ""]
    write_atomically(path, "\n".join(lines))


def plot(
    records: Sequence[Mapping[str, Any]], config: Mapping[str, Any], baseline: Mapping[str, Any] | None, path: Path
) -> None:
    """Left: test accuracy against N per variant (mean, 95% interval) with the linear reference; right: the paired
    differences to softmax."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    figure, (accuracy_axis, difference_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    groups = group_records(records)
    tasks = sorted({key[0] for key in groups})
    for task in tasks:
        for variant in VARIANTS:
            points = []
            for (t, size, _, _), variants in groups.items():
                if t == task and variant in variants:
                    values = [100 * run["results"]["test_accuracy"] for run in variants[variant].values()]
                    mean, half, _ = mean_interval(values)
                    points.append((size, mean, 0 if math.isnan(half) else half))
            if points:
                sizes, means, halves = zip(*sorted(points))
                accuracy_axis.errorbar(sizes, means, yerr=halves, marker="o", capsize=3, label=f"{task}: {variant}")
    if baseline:
        sizes = sorted(int(n) for n in baseline["test_accuracy"])
        accuracy_axis.plot(
            sizes, [100 * baseline["test_accuracy"][str(n)] for n in sizes], "k--", label="linear classifier"
        )
    accuracy_axis.set(xscale="log", xlabel="training examples N", ylabel="test accuracy (%)", title="Test accuracy")
    rows = [row for row in paired_differences(records) if row["baseline"] == "softmax"]
    labels = [f"{row['task']}\nN={row['train_size']:,}\n{row['variant']}" for row in rows]
    for index, row in enumerate(rows):
        difference_axis.errorbar(
            index,
            row["mean"],
            yerr=0 if math.isnan(row["half_width"]) else row["half_width"],
            marker="o",
            capsize=4,
            color="C0",
        )
        difference_axis.scatter([index] * len(row["differences"]), row["differences"], s=8, color="C1", alpha=0.6)
    difference_axis.axhline(0, color="k", linewidth=0.8)
    difference_axis.set_xticks(range(len(rows)), labels, fontsize=6)
    difference_axis.set(ylabel="minus softmax (points)", title="Paired differences (mean, 95% CI; dots: seeds)")
    for axis in (accuracy_axis, difference_axis):
        axis.grid(alpha=0.3)
    if accuracy_axis.get_legend_handles_labels()[0]:
        accuracy_axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def collect(out: Path, config: Mapping[str, Any]) -> tuple[int, list[str]]:
    """Rebuild results.csv, results.md and the figure from every valid cell file in `out`."""
    records, problems = read_cells(out / "cells")
    if records:
        baseline_file = out / "linear_baseline.json"
        baseline = json.loads(baseline_file.read_text()) if baseline_file.is_file() else None
        write_csv(records, out / "results.csv")
        write_markdown(records, config, baseline, out / "results.md")
        plot(records, config, baseline, out / "study.png")
    return len(records), problems


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        validate_args(args)
        config = load_config(args)
        out = args.out.expanduser().resolve()
        args.work_dir = args.work_dir.expanduser().resolve()
        (out / "cells").mkdir(parents=True, exist_ok=True)
        with FolderLock(out, ".study.lock"):
            runner = Runner(out, args.work_dir)
            previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, runner.stop)}
            try:
                failures = _run(args, config, out, runner)
            except KeyboardInterrupt as stop:
                print(
                    f"run_study.py: stopped ({stop}); the running cells were stopped and will rerun", file=sys.stderr
                )
                return 130
            finally:
                signal.signal(signal.SIGTERM, previous[signal.SIGTERM])
            count, problems = collect(out, config)
    except (StudyError, FolderBusyError) as error:
        print(f"run_study.py: error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"run_study.py: warning: {problem}", file=sys.stderr)
    print(f"Wrote {out / 'results.csv'}, results.md and study.png from {count} cell files", flush=True)
    if failures:
        print(f"{len(failures)} cell(s) failed; rerun to retry them:\n" + "\n".join(failures), file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace, config: Mapping[str, Any], out: Path, runner: Runner) -> list[str]:
    """Select the cells, skip the finished ones (by identity), run the rest."""
    tasks = sorted({phase["task"] for phase in config["phases"] if not args.tasks or phase["task"] in args.tasks})
    data = prepare_data(config, args, tasks)
    cells = study_cells(config, args, data, code_version())
    records, problems = read_cells(out / "cells")
    for problem in problems:
        print(f"run_study.py: warning: {problem}", file=sys.stderr)
    finished = {record["identity"] for record in records}
    todo = [cell for cell in cells if cell.identity not in finished]
    print(
        f"{len(cells)} cells selected: {len(cells) - len(todo)} finished (skipped), {len(todo)} to run, "
        f"{args.workers} at a time",
        flush=True,
    )
    if args.dry_run:
        for cell in todo:
            print(
                f"{cell.name}: {shlex.join(run_command(cell, relative_to_repo(args.work_dir / 'runs' / cell.name)))}"
            )
        return []
    if not todo:
        return []
    load_data_once(config, data, tasks)
    return run_cells(runner, todo, args.workers, provenance())


if __name__ == "__main__":
    sys.exit(main())

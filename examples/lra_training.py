# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Helpers shared by `run_lra.py`, `compare_runs.py` and the study runner: per-task defaults, config overrides,
number checks (and the TrainingArguments checks built on them), the output-folder lock, learning curves.

Kept out of `run_lra.py` so that the training script reads top to bottom like `run_glue.py`. Standard library only at
import time (`lra.validation` and matplotlib are imported where they are used), so importing it is cheap and needs
no install: `compare_runs.py` runs from a bare checkout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import TrainingArguments

#: The per-task default files, `configs/<task>.json`.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
#: The sections of a config file: LaSConfig fields, DataArguments and TrainingArguments defaults.
CONFIG_SECTIONS = ("model", "data", "training")


class UsageError(Exception):
    """A bad command line or config file: reported as one line on stderr with exit code 2."""


class FolderInUseError(UsageError):
    """Another live process holds the folder's lock (see `lock_folder`)."""


# ---------------------------------------------------------------------------------------------------------------------
# Config files
# ---------------------------------------------------------------------------------------------------------------------


def _public(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the keys starting with `_` (`_comment`, `_our_choice`): documentation, not settings."""
    return {key: value for key, value in mapping.items() if not key.startswith("_")}


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a config file into its three sections.

    A file with none of the section names at its top level is taken as a flat list of LaSConfig fields, so a plain
    `{"hidden_size": 64}` works as `--config` too.
    """
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise UsageError(f"config file {path} is not valid JSON: {error}") from None
    if not isinstance(content, dict):
        raise UsageError(f"config file {path} must hold a JSON object")
    content = _public(content)
    if not set(content) & set(CONFIG_SECTIONS):
        content = {"model": content}
    unknown = sorted(set(content) - set(CONFIG_SECTIONS))
    if unknown:
        raise UsageError(
            f"config file {path}: unknown section(s) {', '.join(unknown)}; use {', '.join(CONFIG_SECTIONS)}"
        )
    return {section: _public(content.get(section, {})) for section in CONFIG_SECTIONS}


def task_defaults(task: str, config_path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The defaults of a task: `configs/<task>.json`, then the fields of `config_path` on top of it."""
    merged: dict[str, dict[str, Any]] = {section: {} for section in CONFIG_SECTIONS}
    sources = [CONFIG_DIR / f"{task}.json"] + ([Path(config_path)] if config_path else [])
    for source in sources:
        if source == sources[0] and not source.is_file():
            continue  # a task without a default file simply has no defaults
        for section, values in read_config_file(source).items():
            merged[section].update(values)
    return merged


def _split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on `separator` outside brackets, so `las_alphas=[0,0.1]` stays one item."""
    items, depth, current = [], 0, []
    for char in text:
        depth += char in "[{("
        depth -= char in "]})"
        if char == separator and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def parse_config_overrides(text: str | None) -> dict[str, Any]:
    """Parse `"las_pool_size=5,hidden_size=64,norm_type=batchnorm,las_alphas=[0,0.1]"` into typed values.

    Values are read as JSON when they parse (numbers, `true`/`false`, `null`, lists), as strings otherwise; Python's
    `True`/`False`/`None` are accepted too since that is what people type.
    """
    overrides: dict[str, Any] = {}
    for item in _split_top_level(text or ""):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--config_overrides expects key=value pairs separated by commas; got {item!r}")
        raw = raw.strip()
        raw = {"True": "true", "False": "false", "None": "null"}.get(raw, raw)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        overrides[key.strip()] = value
    return overrides


# ---------------------------------------------------------------------------------------------------------------------
# Number checks, and the TrainingArguments checked with them
# ---------------------------------------------------------------------------------------------------------------------


def check_number(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    why: str = "",
) -> None:
    """Refuse a flag value that is not a finite number within the bounds, naming the flag: `UsageError`.

    NaN passes every comparison and infinity passes a lower bound, so both are refused before any bound is tested.

    Args:
        name: the flag as the user typed it (`"--adam_beta1"`).
        value: its value.
        minimum, maximum: the bounds (None: none on that side).
        exclusive_minimum, exclusive_maximum: whether the bound itself is refused.
        why: appended to the message (e.g. what the value would do).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, not {value!r}{why}")
    low_ok = minimum is None or (value > minimum if exclusive_minimum else value >= minimum)
    high_ok = maximum is None or (value < maximum if exclusive_maximum else value <= maximum)
    if not (low_ok and high_ok):
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
        if maximum is not None:
            bounds.append(f"{'<' if exclusive_maximum else '<='} {maximum:g}")
        raise UsageError(f"{name} must be a finite number {' and '.join(bounds)}, not {value:g}{why}")


def check_flag(name: str, value: Any, why: str = "") -> None:
    """The package's integer check (`lra.validation.check_int`, >= 1) for the flag `--name`, as a `UsageError`."""
    from lra.validation import check_int  # here: compare_runs.py imports this module without the package on its path

    try:
        check_int(f"--{name}", value, why=why)
    except ValueError as error:
        raise UsageError(str(error)) from None


def validate_training_arguments(training_args: TrainingArguments) -> None:
    """Refuse the TrainingArguments that torch or Trainer would reject only after the data were generated and loaded
    (`--seed -1`, `--adam_beta1 1.5`), or would take and act on wrongly without a word (a NaN weight decay makes
    every weight NaN; a negative `--max_grad_norm` turns clipping off)."""
    # NaN passes every comparison Trainer makes, infinity most: no float setting may be either.
    for setting in dataclasses.fields(training_args):
        value = getattr(training_args, setting.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"--{setting.name} must be a finite number, not {value}")
    check_number("--learning_rate", training_args.learning_rate, minimum=0)
    check_number("--weight_decay", training_args.weight_decay, minimum=0)
    for name in ("adam_beta1", "adam_beta2"):
        check_number(f"--{name}", getattr(training_args, name), minimum=0, maximum=1, exclusive_maximum=True)
    check_number(
        "--adam_epsilon",
        training_args.adam_epsilon,
        minimum=0,
        exclusive_minimum=True,
        why=" (with 0, a weight whose gradient is 0, such as the padding embedding, becomes 0 / 0 = NaN)",
    )
    check_number("--max_grad_norm", training_args.max_grad_norm, minimum=0, why=" (0 turns clipping off)")
    check_number(
        "--label_smoothing_factor", training_args.label_smoothing_factor, minimum=0, maximum=1, exclusive_maximum=True
    )
    check_number("--warmup_steps", training_args.warmup_steps, minimum=0)
    check_number("--eval_delay", training_args.eval_delay, minimum=0)
    if training_args.neftune_noise_alpha is not None:
        check_number("--neftune_noise_alpha", training_args.neftune_noise_alpha, minimum=0)
    for name in ("logging_steps", "save_steps", "eval_steps"):
        if getattr(training_args, name) is not None:
            check_number(f"--{name}", getattr(training_args, name), minimum=0, exclusive_minimum=True)
    # random, numpy and torch all take seeds in [0, 2**32): set_seed fails on others, but only once the data are ready.
    for name in ("seed", "data_seed"):
        if getattr(training_args, name) is not None:
            check_number(f"--{name}", getattr(training_args, name), minimum=0, maximum=2**32 - 1)
    for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        check_flag(name, getattr(training_args, name))
    if training_args.eval_accumulation_steps is not None:
        check_flag("eval_accumulation_steps", training_args.eval_accumulation_steps)
    if training_args.save_total_limit is not None:  # Trainer reads 0 and below as "no limit"
        check_flag("save_total_limit", training_args.save_total_limit, why="; omit it to keep every checkpoint")
    check_number("--dataloader_num_workers", training_args.dataloader_num_workers, minimum=0)
    if training_args.do_train and training_args.max_steps <= 0 and not training_args.num_train_epochs > 0:
        raise UsageError(f"--num_train_epochs must be > 0 (or --max_steps > 0), not {training_args.num_train_epochs}")


# ---------------------------------------------------------------------------------------------------------------------
# Folder lock
# ---------------------------------------------------------------------------------------------------------------------


#: The lock file inside a locked folder. The leading underscore keeps it out of `Trainer.push_to_hub` uploads (which
#: skip `_*`); it exists only while its holder runs.
LOCK_FILE = "_lock.json"


def _lock_holder(handle: int) -> str:
    """Who holds a lock, from the record its holder wrote into the lock file: 'pid 123 on host, since ...'."""
    try:
        record = json.loads(os.pread(handle, 4096, 0).decode())
        return f"pid {record['pid']} on {record['host']}, since {record['since']}: {record['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is starting"  # it holds the lock but has not written its record yet


@contextlib.contextmanager
def lock_folder(folder: str | os.PathLike[str], flag: str = "the folder") -> Iterator[Path]:
    """Hold an exclusive lock on `folder` (created if needed) for the duration of the `with` block.

    A second process asking for the same folder gets a `FolderInUseError` at once, naming the folder and the holder's
    pid, host, start time and command; it never waits. The lock is an advisory `flock` on `LOCK_FILE`, which the
    kernel releases when its holder exits, however it exits: a run killed with SIGKILL leaves no stale lock (the file
    it may leave behind is taken over). Two `with` blocks of one process on one folder exclude each other too.

    Used by `run_lra.py` on its `--output_dir` (two runs writing one folder would mix their weights, config and
    card) and meant for any script that owns a folder while it runs.

    Args:
        folder: the folder to lock.
        flag: how the error message names the folder's setting (e.g. "--output_dir").

    Raises:
        FolderInUseError: another process (or another `with` block) holds the lock.
        UsageError: the folder cannot be created or written.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX (Windows): no advisory locks to rely on
        yield Path(folder)
        return
    folder = Path(folder)
    path = folder / LOCK_FILE
    created = not folder.exists()
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a releasing holder removed the folder it had created between our two calls
            continue
        except OSError as error:
            raise UsageError(f"{flag} {folder}: cannot create its lock file ({error.strerror or error})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(handle)
            os.close(handle)
            raise FolderInUseError(
                f"{flag} {folder} is in use by another run ({holder}); wait for it to end or choose another folder"
            ) from None
        # The holder we waited for may have removed the file on release: our lock would then be on a file nobody
        # else sees. Keep it only if the path is still our file.
        try:
            if os.path.samestat(os.fstat(handle), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(handle)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }
    os.ftruncate(handle, 0)
    os.pwrite(handle, json.dumps(record).encode(), 0)
    try:
        yield folder
    finally:
        # Removed while still locked: a process that opened this file meanwhile finds it gone and starts over.
        path.unlink(missing_ok=True)
        os.close(handle)
        if created:
            with contextlib.suppress(OSError):  # not empty: the run wrote into it, keep it
                folder.rmdir()  # a run refused before writing anything leaves no empty folder behind


# ---------------------------------------------------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------------------------------------------------


def learning_curves(log_history: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """The (step, value) series of a Trainer `log_history`: train loss, eval loss and eval accuracy.

    A step logged twice (the final validation right after the last in-training one) keeps its last value.
    """
    series: dict[str, dict[float, float]] = {"train_loss": {}, "eval_loss": {}, "eval_accuracy": {}}
    for entry in log_history:
        step = entry.get("step")
        if step is None:
            continue
        if "loss" in entry:  # the periodic training log; the end-of-training summary uses "train_loss"
            series["train_loss"][step] = entry["loss"]
        for key in ("eval_loss", "eval_accuracy"):
            if key in entry:
                series[key][step] = entry[key]
    return {name: sorted(points.items()) for name, points in series.items()}


def read_log_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The `log_history` of a finished run (`trainer_state.json` in its output dir)."""
    state_file = Path(run_dir) / "trainer_state.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"{state_file} not found: is {run_dir} the output_dir of a finished run_lra.py run?")
    return json.loads(state_file.read_text())["log_history"]


def plot_learning_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], path: str | Path, title: str = "") -> Path:
    """Plot train loss and validation accuracy against the step for every run; save a PNG at `path`.

    Args:
        runs: run label -> that run's Trainer `log_history`.
        path: where the PNG goes.
        title: the figure title.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, history in runs.items():
        curves = learning_curves(history)
        color = None  # one colour per run across both panels
        if curves["train_loss"]:
            (line,) = loss_axis.plot(*zip(*curves["train_loss"]), label=f"{label} train")
            color = line.get_color()
        if curves["eval_loss"]:
            (line,) = loss_axis.plot(
                *zip(*curves["eval_loss"]), "--", marker="o", color=color, label=f"{label} validation"
            )
            color = line.get_color()
        if curves["eval_accuracy"]:
            accuracy_axis.plot(*zip(*curves["eval_accuracy"]), marker="o", color=color, label=label)
    loss_axis.set(xlabel="step", ylabel="cross-entropy loss", title="Loss")
    accuracy_axis.set(xlabel="step", ylabel="accuracy", title="Validation accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def format_number(value: Any, digits: int = 4) -> str:
    """A table cell: floats rounded, missing values as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)

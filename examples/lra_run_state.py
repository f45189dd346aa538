# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""What a `run_lra.py` run leaves on disk and finds there: run records and checkpoints (for resuming), the cache of
generated data, and the description of the data for the model card.

Kept out of `run_lra.py` so that the script reads like transformers' `run_glue.py` plus our task options, and so that
the tests can exercise this logic without training anything. The functions take the script's `DataArguments` (any
object with its fields works).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence, Sized
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lra_training import UsageError

from lra import listops as listops_generator
from lra import pathfinder as pathfinder_generator
from lra.hub_data import HUB_SOURCES
from lra.tasks import PATHFINDER_DEFAULT_DIFFICULTY, PATHFINDER_DEFAULT_RESOLUTION, TASK_SPECS
from lra.tokenization import pooled_side

if TYPE_CHECKING:
    from run_lra import DataArguments
    from transformers import TrainingArguments

logger = logging.getLogger(__name__)

#: Tasks whose data our own generators produce, so they need no `--data_dir` (the task registry says which).
GENERATED_TASKS = tuple(name for name, spec in TASK_SPECS.items() if spec.generated)
#: Sequential / permuted MNIST: idx files of MNIST or Fashion-MNIST (`--mnist_labels`).
MNIST_TASKS = ("smnist", "pmnist")
#: Tasks whose source is a Hub data set, read with `datasets.load_dataset` when there is no `--data_dir`.
HUB_TASKS = tuple(HUB_SOURCES)

#: Written next to every saved model (each checkpoint and the final one): what a checkpoint must share with the run
#: that resumes it (see `run_record`).
RUN_RECORD = "lra_run.json"
#: LaSConfig / PretrainedConfig keys that are bookkeeping, not the model: they differ between a new config and the
#: same config saved and loaded again, so they are left out of the run record.
UNRECORDED_CONFIG_KEYS = (
    "transformers_version",
    "_name_or_path",
    "architectures",
    "dtype",
    "torch_dtype",
    "_attn_implementation_autoset",
    "auto_map",
    "return_dict",
    "output_attentions",
    "output_hidden_states",
    "use_cache",
)
#: DataArguments that say where files go or how fast they are made, not what the data are: not in the run record.
UNRECORDED_DATA_FIELDS = (
    "cache_dir",
    "generated_data_root",
    "generate_workers",
    "preprocessing_num_workers",
    "overwrite_output_dir",
    "early_stopping_patience",  # when to stop, not what the checkpoint is: a resume may change it
)


# ---------------------------------------------------------------------------------------------------------------------
# Checkpoints and resuming
# ---------------------------------------------------------------------------------------------------------------------


#: The files of a checkpoint that a resume needs to continue exactly where the run stopped, besides the weights:
#: without the optimizer (Adam moments), scheduler or RNG states, Trainer would resume with fresh ones and say nothing.
#: `trainer_state.json` is written last, so a save killed midway leaves it missing (or cut short).
RESUME_STATE_FILES = ("config.json", "optimizer.pt", "scheduler.pt", "rng_state*.pth", "trainer_state.json")
#: The weights of a checkpoint, in any of the layouts `save_pretrained` writes (one of them is enough).
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def _has_file(folder: Path, pattern: str) -> bool:
    """Whether `folder` holds a non-empty file matching `pattern` (an empty one is a save cut short)."""
    return any(path.is_file() and path.stat().st_size > 0 for path in folder.glob(pattern))


def missing_checkpoint_files(checkpoint: str | os.PathLike[str]) -> list[str]:
    """What a checkpoint lacks for an exact resume (empty: complete): its save was interrupted, it was saved with
    `--save_only_model`, or files were removed from it. `rng_state*.pth` covers the per-process files of a
    distributed run."""
    folder = Path(checkpoint)
    missing = [] if any(_has_file(folder, name) for name in WEIGHT_FILES) else [WEIGHT_FILES[0]]
    missing += [pattern for pattern in RESUME_STATE_FILES if not _has_file(folder, pattern)]
    if "trainer_state.json" not in missing:
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            missing.append("trainer_state.json")  # cut short
    return missing


def checkpoint_is_complete(checkpoint: str | os.PathLike[str]) -> bool:
    """Whether a checkpoint holds everything an exact resume needs (`missing_checkpoint_files`)."""
    return not missing_checkpoint_files(checkpoint)


def checkpoint_folders(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The `checkpoint-<step>` folders of output_dir, newest (highest step) first."""
    folders = [path for path in Path(output_dir).glob("checkpoint-*") if path.is_dir() and path.name[11:].isdigit()]
    return sorted(folders, key=lambda path: int(path.name[11:]), reverse=True)


def last_complete_checkpoint(output_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint in output_dir; newer incomplete ones are skipped with a warning."""
    for folder in checkpoint_folders(output_dir):
        missing = missing_checkpoint_files(folder)
        if not missing:
            return folder
        logger.warning(
            f"Skipping {folder}: its save was interrupted, or it was saved without its training state, or files "
            f"were removed (missing: {', '.join(missing)})"
        )
    return None


def resume_requested(value: str | None) -> bool:
    """Whether a `--resume_from_checkpoint` value asks to resume (a path, `True` or `last`), not to start anew."""
    return value is not None and value.strip().lower() not in ("false", "none", "")


def resolve_checkpoint(training_args: TrainingArguments, data_args: DataArguments) -> str | None:
    """The checkpoint to resume from: `--resume_from_checkpoint PATH`, or `True` for the last complete one in
    output_dir. A new training run into an output_dir holding checkpoints is refused unless --overwrite_output_dir:
    its checkpoints would mix with the earlier run's, and a later resume would pick the wrong ones."""
    value = training_args.resume_from_checkpoint
    output_dir = training_args.output_dir
    if not resume_requested(value):
        earlier = checkpoint_folders(output_dir) if os.path.isdir(output_dir) else []
        if earlier and training_args.do_train and not data_args.overwrite_output_dir:
            names = ", ".join(path.name for path in earlier[:3]) + (", ..." if len(earlier) > 3 else "")
            raise UsageError(
                f"{output_dir} holds checkpoints of an earlier run ({names}): pass "
                "--resume_from_checkpoint True to continue it, or --overwrite_output_dir to start over "
                "(deletes them)"
            )
        return None
    if value.lower() in ("true", "last"):
        last = last_complete_checkpoint(output_dir) if os.path.isdir(output_dir) else None
        if last is None:
            raise UsageError(
                f"--resume_from_checkpoint True: no checkpoint to resume in {output_dir} (no "
                "checkpoint-* folder with its weights and training state complete)"
            )
        return str(last)
    if not os.path.isdir(value):
        raise UsageError(f"--resume_from_checkpoint {value}: no such folder")
    missing = missing_checkpoint_files(value)
    if missing:
        raise UsageError(
            f"--resume_from_checkpoint {value}: incomplete checkpoint (missing: {', '.join(missing)}), so the run "
            "would not continue where it stopped; pass a complete one, or start a new run from its weights with "
            "--model_name_or_path"
        )
    return value


def clear_earlier_run(output_dir: str | os.PathLike[str]) -> None:
    """--overwrite_output_dir: delete the checkpoints and run record of the earlier run in output_dir."""
    for folder in checkpoint_folders(output_dir):
        logger.warning(f"--overwrite_output_dir: deleting {folder} of an earlier run")
        shutil.rmtree(folder)
    (Path(output_dir) / RUN_RECORD).unlink(missing_ok=True)


def run_record(data_args: DataArguments, config) -> dict[str, Any]:
    """What a checkpoint must share with the run that resumes it: the task, the model config (attention type
    included) and the data settings; as JSON values, so that it compares equal with the copy read back."""
    model = {key: value for key, value in config.to_dict().items() if key not in UNRECORDED_CONFIG_KEYS}
    data = {key: value for key, value in asdict(data_args).items() if key not in UNRECORDED_DATA_FIELDS}
    if data_args.data_dir is not None:  # generation settings do not apply to a local copy; where it lies does
        data = {key: value for key, value in data.items() if not key.startswith("generate_")}
        data["data_dir"] = str(Path(data_args.data_dir).expanduser().resolve())
    if data_args.task != "pathfinder":
        data = {key: value for key, value in data.items() if not key.startswith("pathfinder_")}
    record = {"task": data_args.task, "attention_type": config.attention_type, "model": model, "data": data}
    return json.loads(json.dumps(record, sort_keys=True, default=str))


def _differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """`name: saved -> current` for each leaf where two run records differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        return [
            line
            for key in sorted(set(saved) | set(current))
            for line in _differences(saved.get(key), current.get(key), f"{prefix}{key}.")
        ]
    return [] if saved == current else [f"{prefix.rstrip('.')}: {saved!r} there, {current!r} here"]


def check_checkpoint_matches(checkpoint: str, record: dict[str, Any], fallback_fields: Sequence[str]) -> None:
    """Refuse to resume `checkpoint` with a run that differs from the one that saved it (one line, exit code 2).

    A checkpoint saved before run records existed is compared on the config fields `fallback_fields` (the model
    card's).
    """
    saved_file = Path(checkpoint) / RUN_RECORD
    if saved_file.is_file():
        saved = json.loads(saved_file.read_text())
        current = record
    else:
        saved_config = json.loads((Path(checkpoint) / "config.json").read_text())
        saved = {name: saved_config.get(name) for name in fallback_fields}
        current = {name: record["model"].get(name) for name in fallback_fields}
    differences = _differences(saved, current)
    if differences:
        shown = "; ".join(differences[:3]) + (f"; and {len(differences) - 3} more" if len(differences) > 3 else "")
        raise UsageError(
            f"--resume_from_checkpoint: {checkpoint} belongs to another run ({shown}); resume with the "
            "same task, attention type, model config and data settings, or start a new run"
        )


# ---------------------------------------------------------------------------------------------------------------------
# Generated data
# ---------------------------------------------------------------------------------------------------------------------


#: The file that marks a folder of generated data as complete and loadable.
GENERATED_MARKER = ".complete"


def generated_data_dir(data_args: DataArguments) -> Path:
    """The cache folder of generated data: one per task and set of generation parameters."""
    root = data_args.generated_data_root or os.path.join(
        os.environ.get("LAS_TRANSFORMERS_CACHE", os.path.join(Path.home(), ".cache", "las-transformers")), "lra"
    )
    if data_args.task == "listops":
        name = (
            f"listops-train{data_args.generate_num_train}-val{data_args.generate_num_val}-test{data_args.generate_num_test}"
            f"-len{data_args.generate_min_length}-{data_args.generate_max_length}-seed{data_args.generate_seed}"
        )
    else:
        name = (
            f"pathfinder{data_args.pathfinder_resolution}-difficulty{data_args.pathfinder_difficulty}"
            f"-n{data_args.generate_num_images}-seed{data_args.generate_seed}"
        )
    return Path(root).expanduser() / name


def generate_data(data_args: DataArguments, folder: Path) -> None:
    """Run the task's generator into `folder` unless an earlier run completed it (a marker file says so).

    The marker is written by `mark_generated_data` once the data loaded, so a folder whose generation or load
    failed is made again (the generators resume or replace what they find there).
    """
    if (folder / GENERATED_MARKER).is_file():
        logger.info(f"Reusing the generated data in {folder}")
        return
    logger.info(f"Generating {data_args.task} data into {folder} (done once; later runs reuse it)")
    if data_args.task == "listops":
        listops_generator.generate_listops(
            folder / "listops-1000",
            num_train=data_args.generate_num_train,
            num_val=data_args.generate_num_val,
            num_test=data_args.generate_num_test,
            seed=data_args.generate_seed,
            min_length=data_args.generate_min_length,
            max_length=data_args.generate_max_length,
            overwrite=True,  # our own cache folder, not marked complete: whatever is there is an unfinished attempt
        )
    else:
        pathfinder_generator.generate_pathfinder(
            folder,
            resolution=data_args.pathfinder_resolution,
            difficulty=data_args.pathfinder_difficulty,
            num_images=data_args.generate_num_images,
            seed=data_args.generate_seed,
            workers=data_args.generate_workers,
        )


def mark_generated_data(data_args: DataArguments, folder: Path) -> None:
    """Record that the generated data in `folder` are complete and load: later runs reuse them."""
    marker = folder / GENERATED_MARKER
    if not marker.is_file():
        marker.write_text(json.dumps(asdict(data_args), indent=2))


# ---------------------------------------------------------------------------------------------------------------------
# The data, described for the model card
# ---------------------------------------------------------------------------------------------------------------------


#: The benchmark's split sizes (train, validation, test) under this package's split conventions (`lra.builders`):
#: the LRA release's files, IMDb and CIFAR-10 as the LRA uses them, MNIST's idx files. A run on fewer examples than
#: these is not the benchmark. Pathfinder and Path-X: 200,000 images split 80/10/10 (the release skips a few empty
#: images, hence the tolerance below).
BENCHMARK_SPLIT_SIZES: dict[str, tuple[int, int, int]] = {
    "listops": (96_000, 2_000, 2_000),
    "text": (25_000, 25_000, 25_000),  # IMDb's test reviews double as validation split (as in S4)
    "retrieval": (147_086, 18_090, 17_437),
    "image": (45_000, 5_000, 10_000),
    "pathfinder": (160_000, 20_000, 20_000),
    "pathx": (160_000, 20_000, 20_000),
    "smnist": (54_000, 6_000, 10_000),
    "pmnist": (54_000, 6_000, 10_000),
}
#: A split with at least this fraction of the benchmark's examples counts as whole (images the release skips).
WHOLE_SPLIT_FRACTION = 0.99
SPLITS = ("train", "validation", "test")


def differences_from_benchmark(data_args: DataArguments, data: Mapping[str, Sized]) -> list[str]:
    """Why this run's numbers cannot be compared with the benchmark's published ones; empty when they can.

    Checked: every split is whole (no `--max_*_samples`, no `--data_dir` copy holding a part of the data, no small
    generated set); token sequences are not cut shorter than the task's length (`--max_length`); Pathfinder is the
    LRA's variant (32x32, contour length 14); generated ListOps keeps the LRA's expression lengths.
    """
    spec = TASK_SPECS[data_args.task]
    reasons = []
    for split, full in zip(SPLITS, BENCHMARK_SPLIT_SIZES[data_args.task]):
        if split in data and len(data[split]) < WHOLE_SPLIT_FRACTION * full:
            reasons.append(f"{split} split of {len(data[split]):,} examples, not {full:,}")
    if spec.input_kind != "pixels" and data_args.max_length is not None and data_args.max_length < spec.default_length:
        reasons.append(f"sequences cut to {data_args.max_length:,} tokens, not {spec.default_length:,}")
    if data_args.task == "pathfinder" and (data_args.pathfinder_resolution, data_args.pathfinder_difficulty) != (
        PATHFINDER_DEFAULT_RESOLUTION,
        PATHFINDER_DEFAULT_DIFFICULTY,
    ):
        reasons.append(
            f"{data_args.pathfinder_resolution}x{data_args.pathfinder_resolution} images of contour length "
            f"{data_args.pathfinder_difficulty}, not the LRA's {PATHFINDER_DEFAULT_RESOLUTION}x"
            f"{PATHFINDER_DEFAULT_RESOLUTION} of length {PATHFINDER_DEFAULT_DIFFICULTY}"
        )
    if data_args.pixel_pool_size > 1:
        side = pooled_side(TASK_SPECS[data_args.task].default_length, data_args.pixel_pool_size)
        reasons.append(
            f"images averaged over {data_args.pixel_pool_size}x{data_args.pixel_pool_size} blocks to {side}x{side}"
        )
    lengths = (data_args.generate_min_length, data_args.generate_max_length)
    lra_lengths = (listops_generator.DEFAULT_MIN_LENGTH, listops_generator.DEFAULT_MAX_LENGTH)
    if data_args.task == "listops" and data_args.data_dir is None and lengths != lra_lengths:
        reasons.append("expressions of {} to {} tokens, not the LRA's {} to {}".format(*lengths, *lra_lengths))
    return reasons


def describe_data(data_args: DataArguments, data: Mapping[str, Sized]) -> str:
    """One paragraph for the model card: where the data came from, the split sizes, and, when the run differs from
    the benchmark (`differences_from_benchmark`), how, and that published accuracies are not comparable."""
    sizes = " / ".join(f"{len(data[split]):,}" for split in SPLITS if split in data)
    if data_args.task in MNIST_TASKS:
        dataset = "Fashion-MNIST" if data_args.mnist_labels == "fashion" else "MNIST"
        order = "in pMNIST's fixed permuted order" if data_args.task == "pmnist" else "row-major"
        source = f"{dataset} from the idx files of a local copy, as sequences of 784 pixels {order}"
    elif data_args.data_dir is not None:
        source = f"the LRA {data_args.task} files of a local copy of the official data"
    elif data_args.task in HUB_TASKS:
        source = f"the Hub data set {HUB_SOURCES[data_args.task].repo_id}, converted as the LRA {data_args.task} task"
    elif data_args.task == "listops":
        source = (
            f"ListOps generated by the las-transformers generator (seed {data_args.generate_seed}), expressions of "
            f"{data_args.generate_min_length} to {data_args.generate_max_length} tokens"
        )
    else:
        source = (
            f"Pathfinder {data_args.pathfinder_resolution}x{data_args.pathfinder_resolution}, contour length "
            f"{data_args.pathfinder_difficulty}, generated by the las-transformers generator "
            f"(seed {data_args.generate_seed}, {data_args.generate_num_images:,} images)"
        )
    text = f"{source}; train / validation / test: {sizes} examples."
    reasons = differences_from_benchmark(data_args, data)
    if reasons:
        text += (
            f" This is not the benchmark's setting ({'; '.join(reasons)}), so published accuracies are not comparable."
        )
    return text

#!/usr/bin/env python
# Copyright 2026 The las-transformers authors. Licensed under the Apache License, Version 2.0.
"""Train, evaluate and share a LaS transformer (or its softmax baseline) on a Long Range Arena task.

In the style of transformers' `run_glue.py`: one `Trainer`, arguments from dataclasses, per-task defaults from
`examples/configs/<task>.json` (command-line flags win). ListOps and Pathfinder need no download: without
`--data_dir` they are generated once into a cache folder and reused.

    python examples/run_lra.py --task listops --output_dir runs/listops-las
    python examples/run_lra.py --task listops --attention_type softmax --output_dir runs/listops-softmax
    python examples/run_lra.py --task text --data_dir ~/data --config_overrides "hidden_size=64,las_pool_size=5"
    python examples/run_lra.py --task listops --output_dir runs/listops-las --resume_from_checkpoint True
    torchrun --nproc_per_node 2 examples/run_lra.py --task listops --ddp_backend gloo --use_cpu ...
    accelerate launch --num_processes 2 examples/run_lra.py --task listops ...

At the end, `output_dir` holds the final model with its remote code (`modeling_las.py`, `configuration_las.py`,
`image_processing_las.py`, `las_attention.py`), the tokenizer (token tasks) or the image processor (pixel tasks),
`{train,eval,test,all}_results.json`, `trainer_state.json`, `learning_curves.png` and a model card (`README.md`)
with the measured test accuracy; `--push_to_hub --hub_model_id user/name` uploads all of it.

Every argument is checked before any data work (a bad one: one line on stderr, exit code 2). A run holds a lock on
its `output_dir` (`lra_training.lock_folder`): a second run into the same folder is refused while the first lives.
A run whose weights, gradients, losses or metrics turn NaN or infinite stops (exit code 1) before it saves that step
or writes a card (`training_checks.StopOnNonFinite`). `--do_train False` evaluates the model of
`--model_name_or_path`, and its card says that this run trained nothing. Resuming and generated data:
`lra_run_state`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import platform
import re
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# A checkout without `pip install -e .`, or an install older than this checkout's modules: use the repository's
# modules.
if any(importlib.util.find_spec(name) is None for name in ("lra", "image_processing_las")):
    sys.path.insert(0, str(REPO_ROOT))

import datasets
import lra_run_state
import numpy as np
import torch
import transformers
from lra_run_state import (
    GENERATED_TASKS,
    HUB_TASKS,
    MNIST_TASKS,
    RUN_RECORD,
    check_checkpoint_matches,
    clear_earlier_run,
    describe_data,
    differences_from_benchmark,
    generate_data,
    generated_data_dir,
    mark_generated_data,
    resolve_checkpoint,
    resume_requested,
    run_record,
)
from lra_training import (
    UsageError,
    check_flag,
    lock_folder,
    parse_config_overrides,
    plot_learning_curves,
    task_defaults,
    validate_training_arguments,
)
from training_checks import NonFiniteError, StopOnNonFinite
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    EarlyStoppingCallback,
    EvalPrediction,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

import lra
import modeling_las  # noqa: F401 - registers LaSConfig / LaSForSequenceClassification with the Auto classes
from configuration_las import ATTENTION_TYPES, LaSConfig
from hub_cards.model_card import render_model_card
from image_processing_las import LaSImageProcessor
from las_attention import LAS_IMPLEMENTATIONS
from lra import listops as listops_generator
from lra import pathfinder as pathfinder_generator
from lra.faults import kill_point
from lra.tasks import (
    PATHFINDER_DEFAULT_DIFFICULTY,
    PATHFINDER_DEFAULT_RESOLUTION,
    PATHFINDER_DIFFICULTIES,
    PATHFINDER_RESOLUTIONS,
    TASK_SPECS,
)
from lra.tokenization import pixel_pool_processor_settings, pooled_side

logger = logging.getLogger(__name__)

#: LaSConfig fields shown on the model card.
CARD_CONFIG_FIELDS = (
    "attention_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "norm_type",
    "position_embedding_type",
    "is_causal",
    "las_alpha_max",
    "las_alphas",
    "las_pool_size",
    "las_pool_mode",
    "las_chunk_size",
    "input_type",
    "dual_encoder",
    "max_position_embeddings",
)
#: Measured values shown on the model card (the accuracies also go into its model-index).
CARD_RESULT_KEYS = ("test_accuracy", "eval_accuracy", "test_loss", "eval_loss")
#: The test split's predictions, one row per example (`save_predictions`).
TEST_PREDICTIONS = "test_predictions.csv"
#: The generators' argument names as they appear in their error messages -> this script's flags.
GENERATE_FLAGS = {
    name: f"--generate_{name}"
    for name in ("num_train", "num_val", "num_test", "min_length", "max_length", "num_images", "workers", "seed")
}
#: TrainingArguments shown on the model card.
CARD_TRAINING_FIELDS = (
    "learning_rate",
    "weight_decay",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_steps",
    "seed",
)


@dataclass
class ModelArguments:
    """Which model to train: a new LaS/softmax transformer, or an existing checkpoint to fine-tune or evaluate."""

    attention_type: str | None = field(
        default=None,
        metadata={"help": f"One of {', '.join(ATTENTION_TYPES)}. Default: 'las', or the checkpoint's own type."},
    )
    config: str | None = field(
        default=None,
        metadata={
            "help": "A JSON file layered over examples/configs/<task>.json: sections 'model' (LaSConfig fields), "
            "'data' and 'training' (flag defaults); a file without sections is read as LaSConfig fields."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "LaSConfig fields to override, e.g. 'las_pool_size=5,hidden_size=64,las_alphas=[0,0.1]'."},
    )
    attn_implementation: str = field(
        default="sdpa",
        metadata={
            "help": "'sdpa' (LaS on torch's scaled_dot_product_attention: fastest, causal; bidirectional runs eager), "
            "'eager' (blocked, materialised scores) or 'flex_attention' (compiled; CPU: inference only)."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A checkpoint (folder or Hub id) to start from instead of a new model."},
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of model_name_or_path."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a Hub checkpoint's own modelling code (not needed for LaS here)."}
    )


@dataclass
class DataArguments:
    """Which LRA task, where its data live (or how to generate them), and how much of it to use."""

    task: str = field(metadata={"help": f"The task: {', '.join(lra.TASKS)} (smnist / pmnist are not LRA tasks)."})
    data_dir: str | None = field(
        default=None,
        metadata={
            "help": "A local copy of the task's data (the LRA archive root, the task folder, or for text / image "
            "the folder holding aclImdb / cifar-10, for smnist / pmnist the folder of the four idx files). Optional "
            f"for {' and '.join(GENERATED_TASKS)} (generated if omitted) and for {' and '.join(HUB_TASKS)} (read "
            f"from the Hub data sets {' and '.join(TASK_SPECS[task].hub_repo for task in HUB_TASKS)} if omitted)."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where `datasets` keeps the prepared Arrow files."})
    generated_data_root: str | None = field(
        default=None,
        metadata={
            "help": "Where generated data go (default: $LAS_TRANSFORMERS_CACHE/lra or ~/.cache/las-transformers/lra); "
            "one folder per set of generation parameters, reused by later runs."
        },
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Tokens per sequence (per document for retrieval), <eos> included. Pixel tasks: fixed."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation examples."})
    max_test_samples: int | None = field(default=None, metadata={"help": "Use only the first N test examples."})
    pathfinder_resolution: int = field(
        default=PATHFINDER_DEFAULT_RESOLUTION,
        metadata={"help": f"Pathfinder image side: {', '.join(map(str, PATHFINDER_RESOLUTIONS))}."},
    )
    pathfinder_difficulty: int = field(
        default=PATHFINDER_DEFAULT_DIFFICULTY,
        metadata={"help": f"Pathfinder contour length: {', '.join(map(str, PATHFINDER_DIFFICULTIES))}."},
    )
    mnist_labels: str = field(
        default="digits",
        metadata={
            "help": "smnist / pmnist: the class names of the idx files, 'digits' (MNIST) or 'fashion' "
            "(Fashion-MNIST); the files do not say which they are."
        },
    )
    # The generation defaults are the generators' own (lra/listops.py, lra/pathfinder.py): the LRA release's sizes.
    generate_seed: int = field(
        default=listops_generator.DEFAULT_SEED, metadata={"help": "Seed of the data generators."}
    )
    generate_num_train: int = field(
        default=listops_generator.DEFAULT_NUM_TRAIN, metadata={"help": "ListOps generation: training samples."}
    )
    generate_num_val: int = field(
        default=listops_generator.DEFAULT_NUM_VAL, metadata={"help": "ListOps generation: validation samples."}
    )
    generate_num_test: int = field(
        default=listops_generator.DEFAULT_NUM_TEST, metadata={"help": "ListOps generation: test samples."}
    )
    generate_min_length: int = field(
        default=listops_generator.DEFAULT_MIN_LENGTH,
        metadata={"help": "ListOps generation: keep expressions longer than this (tokens, no brackets)."},
    )
    generate_max_length: int = field(
        default=listops_generator.DEFAULT_MAX_LENGTH,
        metadata={"help": "ListOps generation: ... and shorter than this."},
    )
    generate_num_images: int = field(
        default=pathfinder_generator.DEFAULT_NUM_IMAGES,
        metadata={"help": "Pathfinder generation: images in all (80/10/10 train/validation/test)."},
    )
    generate_workers: int = field(
        default=pathfinder_generator.DEFAULT_WORKERS, metadata={"help": "Pathfinder generation: worker processes."}
    )
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for tokenization."})
    pixel_pool_size: int = field(
        default=1,
        metadata={
            "help": "Pixel tasks: average every k x k block of the square images (2: sMNIST's 28x28 = 784 pixels "
            "become 14x14 = 196); the saved image processor pools the same way."
        },
    )
    early_stopping_patience: int | None = field(
        default=None,
        metadata={
            "help": "Stop training after this many evaluations without improvement of --metric_for_best_model "
            "(needs --load_best_model_at_end True); the best checkpoint is then tested."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start a new training run in an output_dir that holds checkpoints of an earlier one, deleting "
            "those checkpoints (refused otherwise; --resume_from_checkpoint True continues the earlier run)."
        },
    )


class LRAArgumentParser(HfArgumentParser):
    """Reports a bad argument as a `UsageError` (one line, exit code 2) instead of printing the usage text."""

    def error(self, message: str):
        raise UsageError(message)


# ---------------------------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------------------------


def _peek(argv: Sequence[str], name: str) -> str | None:
    """The value of `--name` in a command line, read before the full parse (which needs the task's defaults)."""
    peek = LRAArgumentParser(add_help=False)
    peek.add_argument(f"--{name}")
    return vars(peek.parse_known_args(argv)[0])[name]


def parse_arguments(argv: Sequence[str]) -> tuple[ModelArguments, DataArguments, TrainingArguments, dict[str, Any]]:
    """Parse the command line over the task's defaults; return the three argument objects and the LaSConfig fields.

    Precedence, lowest first: the dataclass defaults, `configs/<task>.json`, `--config FILE`, the command line (and
    `--config_overrides` for LaSConfig fields).
    """
    task = _peek(argv, "task")
    if task is not None and task not in lra.TASKS:
        raise UsageError(f"unknown task {task!r}; choose one of {', '.join(lra.TASKS)}")
    attention_type = _peek(argv, "attention_type")
    if attention_type is not None and attention_type not in ATTENTION_TYPES:
        raise UsageError(f"unknown attention type {attention_type!r}; choose one of {', '.join(ATTENTION_TYPES)}")

    parser = LRAArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    defaults = task_defaults(task, _peek(argv, "config")) if task else {"model": {}, "data": {}, "training": {}}
    known = {action.dest for action in parser._actions}
    for section in ("data", "training"):
        unknown = sorted(set(defaults[section]) - known)
        if unknown:
            raise UsageError(f"config: unknown {section} field(s) {', '.join(unknown)}")
    run_name = f"{task}-{attention_type or 'las'}" if task else None
    parser.set_defaults(
        do_train=True,
        do_eval=True,
        do_predict=True,
        ddp_find_unused_parameters=False,  # every parameter takes part in every forward: skip DDP's extra graph walk
        output_dir=str(Path("runs") / run_name) if run_name else None,
        **defaults["data"],
        **defaults["training"],
    )
    try:
        model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=list(argv))
    except ValueError as error:  # unknown flags, and TrainingArguments' own consistency checks
        raise UsageError(" ".join(str(error).split())) from None

    if model_args.attn_implementation not in LAS_IMPLEMENTATIONS:
        raise UsageError(
            f"--attn_implementation must be one of {', '.join(LAS_IMPLEMENTATIONS)}, "
            f"not {model_args.attn_implementation!r}"
        )
    if data_args.data_dir is None and data_args.task not in GENERATED_TASKS + HUB_TASKS:
        origin = " ".join(lra.builder_class(data_args.task).ORIGIN.split())
        if data_args.task in MNIST_TASKS:
            origin = origin.replace("labels='fashion'", "--mnist_labels fashion")
        raise UsageError(
            f"--data_dir is required for the task {data_args.task!r}: only {' and '.join(GENERATED_TASKS)} can be "
            f"generated and only {' and '.join(HUB_TASKS)} read from the Hub; point it at a local copy of the data "
            f'(layouts: `python -c "import lra.builders; help(lra.builders)"`). The files come from {origin}'
        )
    if data_args.mnist_labels not in lra.MNIST_LABELS:
        raise UsageError(
            f"--mnist_labels must be one of {', '.join(lra.MNIST_LABELS)}, not {data_args.mnist_labels!r}"
        )
    if data_args.data_dir is not None and not Path(data_args.data_dir).expanduser().exists():
        raise UsageError(f"--data_dir {data_args.data_dir} does not exist")
    validate_training_arguments(training_args)
    validate_data_arguments(data_args)
    if data_args.early_stopping_patience is not None and not (
        training_args.load_best_model_at_end and training_args.metric_for_best_model
    ):
        raise UsageError(
            "--early_stopping_patience needs --load_best_model_at_end True and --metric_for_best_model (e.g. "
            "accuracy), with evaluations during training (--eval_strategy steps or epoch)"
        )
    validate_run_plan(model_args, data_args, training_args)
    return model_args, data_args, training_args, defaults["model"]


def validate_data_arguments(data_args: DataArguments) -> None:
    """Refuse data arguments that would silently mean something else (`--max_length 0`: no truncation), leave a
    split empty, or fail only after minutes of data generation."""
    if data_args.max_length is not None:
        check_flag("max_length", data_args.max_length, why="; omit it for the task's length")
        if TASK_SPECS[data_args.task].input_kind == "pixels":
            raise UsageError(
                f"--max_length applies to token tasks; {data_args.task} images have a fixed number of pixels: omit it"
            )
    for name in ("max_train_samples", "max_eval_samples", "max_test_samples"):
        if getattr(data_args, name) is not None:
            check_flag(
                name, getattr(data_args, name), why=" (it would leave the split empty); omit it to use the whole split"
            )
    if data_args.preprocessing_num_workers is not None:
        check_flag("preprocessing_num_workers", data_args.preprocessing_num_workers)
    check_flag("pixel_pool_size", data_args.pixel_pool_size, why="; 1 keeps the images as they are")
    if data_args.pixel_pool_size > 1:
        info = lra.task_info(data_args.task, **task_options(data_args))
        if info.input_kind != "pixels":
            raise UsageError(f"--pixel_pool_size applies to pixel tasks only, not {data_args.task!r}")
        try:
            pooled_side(info.max_length, data_args.pixel_pool_size)
        except ValueError as error:
            raise UsageError(f"--{error}") from None
    if data_args.early_stopping_patience is not None:
        check_flag("early_stopping_patience", data_args.early_stopping_patience)
    try:
        if data_args.task == "pathfinder":
            lra.resolve_config_name(
                "pathfinder", resolution=data_args.pathfinder_resolution, difficulty=data_args.pathfinder_difficulty
            )
        if data_args.data_dir is None and data_args.task == "listops":
            listops_generator.validate_listops_arguments(
                data_args.generate_num_train,
                data_args.generate_num_val,
                data_args.generate_num_test,
                data_args.generate_seed,
                data_args.generate_min_length,
                data_args.generate_max_length,
                listops_generator.DEFAULT_MAX_DEPTH,
                listops_generator.DEFAULT_MAX_ARGS,
            )
        elif data_args.data_dir is None and data_args.task == "pathfinder":
            pathfinder_generator.validate_pathfinder_arguments(
                data_args.pathfinder_resolution,
                data_args.pathfinder_difficulty,
                data_args.generate_num_images,
                data_args.generate_seed,
                data_args.generate_workers,
            )
    except ValueError as error:
        # The generators name their own arguments: say which flag of this script sets each.
        pattern = r"\b(" + "|".join(GENERATE_FLAGS) + r")\b"
        message = re.sub(pattern, lambda match: GENERATE_FLAGS[match.group(1)], str(error))
        raise UsageError(
            message.replace("resolution=", "--pathfinder_resolution=").replace(
                "difficulty=", "--pathfinder_difficulty="
            )
        ) from None


def validate_run_plan(model_args: ModelArguments, data_args: DataArguments, training_args: TrainingArguments) -> None:
    """Refuse a run that would do nothing, evaluate an untrained model as if it were one, or write into a file."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UsageError("nothing to do: --do_train, --do_eval and --do_predict are all False")
    if not training_args.do_train:
        if resume_requested(training_args.resume_from_checkpoint):
            raise UsageError(
                "--resume_from_checkpoint continues a training run, but --do_train is False; to evaluate a "
                "checkpoint, pass it as --model_name_or_path"
            )
        if not model_args.model_name_or_path:
            raise UsageError(
                "--do_train False evaluates an existing model: pass it with --model_name_or_path (without one the "
                "model would be a new one with random weights, and its card would describe an untrained model)"
            )
    for flag, path in (
        ("--output_dir", training_args.output_dir),
        ("--cache_dir", data_args.cache_dir),
        ("--generated_data_root", data_args.generated_data_root),
    ):
        if path is not None and Path(path).expanduser().exists() and not Path(path).expanduser().is_dir():
            raise UsageError(f"{flag} {path} is a file, not a folder")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def task_options(data_args: DataArguments) -> dict[str, Any]:
    """The options of `lra.load_lra` / `lra.task_info` that the flags set for the task."""
    if data_args.task == "pathfinder":
        return {"resolution": data_args.pathfinder_resolution, "difficulty": data_args.pathfinder_difficulty}
    if data_args.task in MNIST_TASKS:
        return {"labels": data_args.mnist_labels}
    return {}


def load_datasets(data_args: DataArguments, training_args: TrainingArguments, tokenizer) -> datasets.DatasetDict:
    """Generate (if needed), load and encode the task; trim splits to the `max_*_samples` asked for."""
    options = task_options(data_args)
    data_dir = data_args.data_dir
    # Only the main process generates and prepares; the others wait here, then read what it wrote.
    with training_args.main_process_first(desc="preparing the data"):
        if data_dir is None and data_args.task in GENERATED_TASKS:
            data_dir = generated_data_dir(data_args)
            generate_data(data_args, data_dir)
        raw = lra.load_lra(data_args.task, data_dir, cache_dir=data_args.cache_dir, **options)
        if data_args.data_dir is None and training_args.process_index == 0:
            mark_generated_data(data_args, data_dir)  # only now: the data were generated *and* loaded
        limits = {
            "train": data_args.max_train_samples,
            "validation": data_args.max_eval_samples,
            "test": data_args.max_test_samples,
        }
        for split, limit in limits.items():
            if limit is not None:
                raw[split] = raw[split].select(range(min(limit, len(raw[split]))))
        encoded = lra.encode(
            data_args.task,
            raw,
            max_length=data_args.max_length,
            tokenizer=tokenizer,
            num_proc=data_args.preprocessing_num_workers,
            pixel_pool_size=data_args.pixel_pool_size,
        )
    return encoded


# ---------------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------------


def build_config(model_args: ModelArguments, data_args: DataArguments, model_defaults: dict[str, Any], info):
    """The model's config: a new LaSConfig for the task (defaults < config file < overrides), or the checkpoint's.

    Built before any data work, so that a typo in a field is reported at once, not after minutes of generation.
    """
    overrides = parse_config_overrides(model_args.config_overrides)
    if model_args.attention_type is not None:
        overrides["attention_type"] = model_args.attention_type
    try:
        if model_args.model_name_or_path:
            # The checkpoint's architecture is authoritative: only explicit overrides change it.
            config = AutoConfig.from_pretrained(
                model_args.model_name_or_path,
                revision=model_args.model_revision,
                trust_remote_code=model_args.trust_remote_code,
                **overrides,
            )
            if hasattr(config, "validate_las"):
                config.validate_las()
            return config
        fields = {**model_defaults, **overrides}
        unknown = sorted(set(fields) - set(LaSConfig().to_dict()))
        if unknown:
            raise UsageError(f"unknown LaSConfig field(s) {', '.join(unknown)}")
        # Pixel tasks have one length, set by the images; token tasks are cut to --max_length.
        if info.input_kind == "pixels":
            max_length = (
                pooled_side(info.max_length, data_args.pixel_pool_size) ** 2
                if data_args.pixel_pool_size > 1
                else info.max_length
            )
        else:
            max_length = data_args.max_length or info.max_length
        max_position_embeddings = max(fields.pop("max_position_embeddings", 0), max_length)
        return LaSConfig(
            **fields,
            # What the task dictates, whatever the config file says:
            num_labels=info.num_labels,
            id2label=dict(enumerate(info.label_names)),
            label2id={name: index for index, name in enumerate(info.label_names)},
            vocab_size=info.vocab_size,
            pad_token_id=info.pad_token_id,
            input_type="pixels" if info.input_kind == "pixels" else "tokens",
            dual_encoder=info.input_kind == "pair",
            eos_token_id=None if info.input_kind == "pixels" else lra.EOS_TOKEN_ID,
            max_position_embeddings=max_position_embeddings,
        )
    except (ValueError, TypeError) as error:  # LaSConfig names the bad field and the rule
        raise UsageError(" ".join(str(error).split())) from None
    except OSError as error:  # transformers' "not a local folder and not a valid model identifier", on several lines
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(
            f"--model_name_or_path {model_args.model_name_or_path}: cannot load its config ({reason})"
        ) from None


def build_model(model_args: ModelArguments, config):
    """A new model from `config` (seeded by the caller), or the checkpoint `model_name_or_path` with `config`."""
    if model_args.model_name_or_path:
        return AutoModelForSequenceClassification.from_pretrained(
            model_args.model_name_or_path,
            config=config,
            revision=model_args.model_revision,
            trust_remote_code=model_args.trust_remote_code,
            attn_implementation=model_args.attn_implementation,
        )
    return AutoModelForSequenceClassification.from_config(config, attn_implementation=model_args.attn_implementation)


def load_tokenizer(model_args: ModelArguments, task: str):
    """The task's tokenizer (None for pixel tasks); a checkpoint's own tokenizer when it has one."""
    if lra.task_info(task).input_kind == "pixels":
        return None
    if model_args.model_name_or_path:
        try:
            return AutoTokenizer.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
        except (OSError, ValueError):
            logger.info("The checkpoint has no tokenizer: using the task's.")
    return lra.get_tokenizer(task)


def load_image_processor(model_args: ModelArguments, data_args: DataArguments) -> LaSImageProcessor | None:
    """For a pixel task, the image processor saved with every checkpoint (so that `AutoImageProcessor` and
    `pipeline("image-classification")` work on it): the checkpoint's own when it has one, else one for the task's
    image size. None for token tasks."""
    info = lra.task_info(data_args.task, **task_options(data_args))
    if info.input_kind != "pixels":
        return None
    if model_args.model_name_or_path:
        try:
            return AutoImageProcessor.from_pretrained(
                model_args.model_name_or_path,
                revision=model_args.model_revision,
                trust_remote_code=model_args.trust_remote_code,
            )
        except (OSError, ValueError):
            logger.info("The checkpoint has no image processor: using the task's.")
    # The LRA images are square; pooled runs resize with the box filter their data were pooled with.
    return LaSImageProcessor(
        **pixel_pool_processor_settings(data_args.task, info.max_length, data_args.pixel_pool_size)
    )


# ---------------------------------------------------------------------------------------------------------------------
# Trainer with the LaS model card
# ---------------------------------------------------------------------------------------------------------------------


def describe_machine(training_args: TrainingArguments) -> str:
    """The hardware of the run in words, for the model card."""
    if training_args.device.type == "cuda":
        device = torch.cuda.get_device_name(training_args.device)
    else:
        device = f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads per process)"
    processes = f"{training_args.world_size} processes" if training_args.world_size > 1 else "1 process"
    return f"{device}, {processes}, torch {torch.__version__}, transformers {transformers.__version__}"


def describe_command(argv: Sequence[str]) -> str:
    """The command line of the run (from the repository root), with the launcher when it ran distributed."""
    script = Path(__file__).resolve().relative_to(REPO_ROOT).as_posix()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = ["torchrun", "--nproc_per_node", str(world_size)] if world_size > 1 else ["python"]
    return shlex.join([*launcher, script, *argv])


class LRATrainer(Trainer):
    """A `Trainer` whose model card is the LaS card (`hub_cards.model_card`) with the measured accuracy.

    `Trainer.push_to_hub` calls `create_model_card` before uploading output_dir, so overriding it puts our card both
    in output_dir and on the Hub.
    """

    def __init__(
        self,
        *args,
        task: str,
        command: str,
        data_description: str | None = None,
        comparable: bool = True,
        evaluated_model: str | None = None,
        run_record: dict[str, Any] | None = None,
        **kwargs,
    ):
        """Args beyond Trainer's: the `task`, the `command` line and the `data_description` shown on the card;
        `comparable`: whether the data are the benchmark's (else the card quotes no published accuracy beside the
        measured one); `evaluated_model`: the checkpoint an evaluation-only run evaluated (the card then says this
        run trained nothing); `run_record`: written next to every saved model (`RUN_RECORD`)."""
        super().__init__(*args, **kwargs)
        self.task = task
        self.command = command
        self.data_description = data_description
        self.comparable = comparable
        self.evaluated_model = evaluated_model
        self.run_record = run_record

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save as Trainer does, plus the run record (`RUN_RECORD`) that a resume checks the checkpoint against.

        Inside a checkpoint it is written right after the weights, before the optimizer and `trainer_state.json`,
        so every complete checkpoint has it.
        """
        super().save_model(output_dir, _internal_call=_internal_call)
        output_dir = Path(output_dir or self.args.output_dir)
        if self.run_record is not None and self.args.should_save:
            (output_dir / RUN_RECORD).write_text(json.dumps(self.run_record, indent=2, sort_keys=True) + "\n")
        if output_dir.name.startswith("checkpoint-"):
            kill_point("checkpoint-save")  # test hook: a save killed halfway (see lra/faults.py)

    def measured_results(self) -> dict[str, float]:
        """The latest value of every validation/test metric in the log history."""
        results: dict[str, float] = {}
        for entry in self.state.log_history:
            results.update({key: value for key, value in entry.items() if key.startswith(("eval_", "test_"))})
        return results

    def create_model_card(self, **kwargs) -> None:
        if not self.is_world_process_zero():
            return
        config = self.model.config
        model_id = self.args.hub_model_id or Path(self.args.output_dir).name
        card = render_model_card(
            model_id=model_id,
            task=self.task,
            attention_type=config.attention_type,
            results={key: value for key, value in self.measured_results().items() if key in CARD_RESULT_KEYS},
            config={name: getattr(config, name) for name in CARD_CONFIG_FIELDS},
            # An evaluation-only run used none of its training arguments: the card shows none.
            training_args=None
            if self.evaluated_model
            else {name: getattr(self.args, name) for name in CARD_TRAINING_FIELDS},
            machine=describe_machine(self.args),
            command=self.command,
            paper_accuracy=paper_accuracy(self.task, config.attention_type) if self.comparable else None,
            data_description=self.data_description,
            evaluated_model=self.evaluated_model,
        )
        card.save(os.path.join(self.args.output_dir, "README.md"))


def paper_accuracy(task: str, attention_type: str) -> float | None:
    """The LaS paper's accuracy on the task (`lra.tasks.PAPER_ACCURACY`), for the card of a LaS model of an LRA task.

    Not for sMNIST / pMNIST: the paper's numbers are MNIST digits, and these runs may be on Fashion-MNIST.
    """
    spec = TASK_SPECS[task]
    return spec.paper_accuracy if attention_type == "las" and spec.in_lra else None


def accuracy_metric(task: str):
    """`compute_metrics` for Trainer, from the evaluate module shipped in `lra/lra_accuracy` (works offline)."""
    import evaluate  # here, not at the top: it imports transformers.pipelines (seconds) and only training needs it

    # keep_in_memory: no cache files under ~/.cache/huggingface/metrics, which concurrent runs would share; Trainer
    # already gathers the predictions of all processes, so no cross-process evaluate machinery is needed either.
    metric = evaluate.load(lra.LRA_METRIC_PATH, task, keep_in_memory=True)

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return metric.compute(predictions=np.argmax(logits, axis=-1), references=prediction.label_ids)

    return compute_metrics


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------


def early_stopping(data_args: DataArguments) -> list[TrainerCallback]:
    """`EarlyStoppingCallback` when `--early_stopping_patience` is set (its needs are checked with the arguments)."""
    if data_args.early_stopping_patience is None:
        return []
    return [EarlyStoppingCallback(early_stopping_patience=data_args.early_stopping_patience)]


def save_predictions(prediction, path: Path) -> None:
    """One row per test example, in split order: index, label, predicted label (the argmax of the logits)."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    predicted = np.argmax(logits, axis=-1)
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w") as file:
        file.write("index,label,prediction\n")
        file.writelines(
            f"{i},{int(label)},{int(guess)}\n" for i, (label, guess) in enumerate(zip(prediction.label_ids, predicted))
        )
    os.replace(temporary, path)


def run(argv: Sequence[str], callbacks: Sequence[TrainerCallback] = ()) -> dict[str, float]:
    """Train / evaluate / test as the arguments say; return every metric of the run."""
    model_args, data_args, training_args, model_defaults = parse_arguments(argv)
    info = lra.task_info(data_args.task, **task_options(data_args))
    config = build_config(model_args, data_args, model_defaults, info)
    record = run_record(data_args, config)
    # One run per output_dir at a time: two would mix their weights, config and card. The main process holds it for
    # the processes of a distributed run.
    is_main = training_args.process_index == 0
    with lock_folder(training_args.output_dir, "--output_dir") if is_main else contextlib.nullcontext():
        checkpoint = resolve_checkpoint(training_args, data_args)
        if checkpoint is not None:
            check_checkpoint_matches(checkpoint, record, fallback_fields=CARD_CONFIG_FIELDS)
        return train_and_evaluate(
            argv, model_args, data_args, training_args, info, config, record, checkpoint, callbacks
        )


def train_and_evaluate(
    argv: Sequence[str],
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    info: lra.TaskInfo,
    config: LaSConfig,
    record: dict[str, Any],
    checkpoint: str | None,
    callbacks: Sequence[TrainerCallback],
) -> dict[str, float]:
    """The run proper, once its arguments are checked and its output_dir is locked."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    # The libraries log at the level asked with --log_level / --log_level_replica; this script's own progress messages
    # (data generated or reused, model size) are shown by the main process.
    log_level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    for script_logger in (logger, lra_run_state.logger):
        script_logger.setLevel(min(log_level, logging.INFO) if training_args.should_log else log_level)
    logger.debug(f"Training/evaluation parameters {training_args}")

    tokenizer = load_tokenizer(model_args, data_args.task)
    data = load_datasets(data_args, training_args, tokenizer)
    if (
        training_args.do_train
        and checkpoint is None
        and data_args.overwrite_output_dir
        and training_args.process_index == 0
    ):
        clear_earlier_run(training_args.output_dir)  # only now that the arguments and the data proved usable
    set_seed(training_args.seed)  # right before the model is built: its initial weights depend on it
    model = build_model(model_args, config)
    logger.info(f"{model.config.attention_type} model with {model.num_parameters():,} parameters")

    trainer = LRATrainer(
        model=model,
        args=training_args,
        train_dataset=data["train"] if training_args.do_train else None,
        eval_dataset=data["validation"] if training_args.do_eval else None,
        processing_class=tokenizer if tokenizer is not None else load_image_processor(model_args, data_args),
        data_collator=lra.LRADataCollator(pad_token_id=info.pad_token_id or 0),
        compute_metrics=accuracy_metric(data_args.task),
        # A run whose numbers turn NaN or infinite stops with an error before it saves them or writes a card.
        callbacks=[StopOnNonFinite(), *callbacks, *early_stopping(data_args)],
        task=data_args.task,
        command=describe_command(argv),
        data_description=describe_data(data_args, data),
        comparable=not differences_from_benchmark(data_args, data),
        evaluated_model=None if training_args.do_train else model_args.model_name_or_path,
        run_record=record,
    )

    metrics: dict[str, float] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()  # model, remote-code files and tokenizer (or image processor)
        train_metrics = {**train_result.metrics, "train_samples": len(data["train"])}
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        metrics.update(train_metrics)

    for split, prefix, wanted in (
        ("validation", "eval", training_args.do_eval),
        ("test", "test", training_args.do_predict),
    ):
        if wanted and split == "test":
            # predict: the metrics of evaluate, plus every prediction, saved for paired analyses across runs
            prediction = trainer.predict(data[split], metric_key_prefix=prefix)
            split_metrics = dict(prediction.metrics)
            # `evaluate` logs its metrics, `predict` does not: logged, they reach the log history that the card
            # (`measured_results`) and the non-finite check read.
            trainer.log(split_metrics)
            if trainer.is_world_process_zero():
                save_predictions(prediction, Path(training_args.output_dir) / TEST_PREDICTIONS)
        elif wanted:
            split_metrics = trainer.evaluate(data[split], metric_key_prefix=prefix)
        if wanted:
            split_metrics[f"{prefix}_samples"] = len(data[split])
            trainer.log_metrics(prefix, split_metrics)
            trainer.save_metrics(prefix, split_metrics)
            metrics.update(split_metrics)
    if not training_args.do_train:
        trainer.save_model()  # an evaluation-only run leaves the model it evaluated (and found finite) beside its card

    trainer.save_state()
    trainer.create_model_card()
    if trainer.is_world_process_zero():
        label = f"{data_args.task} / {model.config.attention_type}"
        plot_learning_curves(
            {label: trainer.state.log_history},
            Path(training_args.output_dir) / "learning_curves.png",
            title=f"LRA {label}",
        )
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")
    return metrics


def main(argv: Sequence[str] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, float]:
    """Entry point; a bad argument ends the process with one line on stderr and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return run(argv, callbacks)
    except UsageError as error:
        print(f"run_lra.py: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except (lra.LRADataError, NonFiniteError) as error:  # bad data (the message names the file), or a diverged run
        print(f"run_lra.py: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()

"""The Long Range Arena (LRA) for Hugging Face `datasets` and `transformers`, plus sequential and permuted
MNIST (`smnist` / `pmnist`, which the LaS paper also reports).

* `load_lra` prepares a task from a local copy of its data and returns a `DatasetDict`
  (train / validation / test); see `lra.builders` for the layouts and split conventions.
* `get_tokenizer`, `encode` and `LRADataCollator` turn it into model inputs;
  `task_info` says what a model needs to know (classes, length, input kind, vocabulary).
* `python -m lra generate listops|pathfinder` writes the synthetic tasks, `python -m lra export`
  writes a task as Parquet with a dataset card (and pushes it to the Hub).
* `LRA_METRIC_PATH` is the local `evaluate` metric: `evaluate.load(LRA_METRIC_PATH)`.
* `TASK_SPECS` (`lra.tasks`) is the task registry: titles, labels, input kinds, lengths, the paper's
  accuracy, and so on, for each of `TASKS`.

Names are imported lazily, so `python -m lra generate ...` does not pay for importing `datasets`
and `transformers`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The registry imports only the standard library: the command line lists the tasks without importing datasets.
from .tasks import LRA_TASKS, TASK_SPECS, TASKS, TaskSpec

LRA_METRIC_PATH = str(Path(__file__).parent / "lra_accuracy")

_LAZY_NAMES: dict[str, str] = {
    **dict.fromkeys(
        [
            "LRADataError",
            "LRADataNotFoundError",
            "LRAFormatError",
            "LRAReadError",
            "load_lra",
            "load_lra_builder",
            "builder_class",
            "pmnist_permutation",
            "resolve_config_name",
        ],
        "builders",
    ),
    **dict.fromkeys(
        [
            "TaskInfo",
            "task_info",
            "get_tokenizer",
            "encode",
            "LRADataCollator",
            "PAD_TOKEN_ID",
            "UNK_TOKEN_ID",
            "EOS_TOKEN_ID",
        ],
        "tokenization",
    ),
    **dict.fromkeys(["export_lra"], "export"),
    **dict.fromkeys(["CIFAR10_LABELS", "MNIST_LABELS"], "tasks"),
}

__all__ = ["LRA_METRIC_PATH", "LRA_TASKS", "TASKS", "TASK_SPECS", "TaskSpec", *_LAZY_NAMES]

if TYPE_CHECKING:
    from .builders import (
        LRADataError,
        LRADataNotFoundError,
        LRAFormatError,
        LRAReadError,
        builder_class,
        load_lra,
        load_lra_builder,
        pmnist_permutation,
        resolve_config_name,
    )
    from .export import export_lra
    from .tasks import CIFAR10_LABELS, MNIST_LABELS
    from .tokenization import (
        EOS_TOKEN_ID,
        PAD_TOKEN_ID,
        UNK_TOKEN_ID,
        LRADataCollator,
        TaskInfo,
        encode,
        get_tokenizer,
        task_info,
    )


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

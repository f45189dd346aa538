"""Which builder and config serve a task and its options."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..tasks import (
    MNIST_LABELS,
    PATHFINDER_DEFAULT_DIFFICULTY,
    PATHFINDER_DEFAULT_RESOLUTION,
    PATHFINDER_DIFFICULTIES,
    PATHFINDER_RESOLUTIONS,
    TASKS,
)
from .base import _LRABuilder
from .mnist import SequentialMNISTBuilder, mnist_config_name
from .pixels import ImageBuilder, PathfinderBuilder, pathfinder_config_name
from .tokens import ListOpsBuilder, RetrievalBuilder, TextBuilder

# ---------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------

_BUILDERS: Mapping[str, type[_LRABuilder]] = {
    "listops": ListOpsBuilder,
    "text": TextBuilder,
    "retrieval": RetrievalBuilder,
    "image": ImageBuilder,
    "pathfinder": PathfinderBuilder,
    "pathx": PathfinderBuilder,
    "smnist": SequentialMNISTBuilder,
    "pmnist": SequentialMNISTBuilder,
}
_TASK_OPTIONS: Mapping[str, Mapping[str, tuple[Any, ...]]] = {
    "pathfinder": {"resolution": PATHFINDER_RESOLUTIONS, "difficulty": tuple(PATHFINDER_DIFFICULTIES)},
    "smnist": {"labels": tuple(MNIST_LABELS)},
    "pmnist": {"labels": tuple(MNIST_LABELS)},
}


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"Unknown LRA task {task!r}; the tasks are: {', '.join(TASKS)}")


def builder_class(task: str) -> type[_LRABuilder]:
    """The builder class of a task (`pathfinder` and `pathx` share `PathfinderBuilder`, `smnist`
    and `pmnist` `SequentialMNISTBuilder`)."""
    _check_task(task)
    return _BUILDERS[task]


def resolve_config_name(task: str, **options: Any) -> str:
    """Validate a task's options and return the name of the builder config they select.

    `pathfinder` takes `resolution` (32, 64, 128, 256; default 32) and `difficulty` (6, 9, 14;
    default 14); `smnist` and `pmnist` take `labels` (`"digits"`, the default, or
    `"fashion"`); the other tasks take none. Raises `ValueError` listing the valid tasks, options
    or values.
    """
    _check_task(task)
    valid = _TASK_OPTIONS.get(task, {})
    unknown = sorted(set(options) - set(valid))
    if unknown:
        accepted = ", ".join(valid) if valid else "none"
        raise ValueError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for the LRA task {task!r}; valid options: {accepted}"
        )
    for name, value in options.items():
        if value not in valid[name]:
            raise ValueError(
                f"Invalid {name}={value!r} for the LRA task {task!r}; valid values: {', '.join(map(str, valid[name]))}"
            )
    if task == "pathfinder":
        return pathfinder_config_name(
            options.get("resolution", PATHFINDER_DEFAULT_RESOLUTION),
            options.get("difficulty", PATHFINDER_DEFAULT_DIFFICULTY),
        )
    if task in ("smnist", "pmnist"):
        return mnist_config_name(task == "pmnist", options.get("labels", "digits"))
    return task


def load_lra_builder(
    task: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> _LRABuilder:
    """The configured (not yet prepared) builder of an LRA task; see `load_lra`."""
    config_name = resolve_config_name(task, **options)
    return builder_class(task)(
        cache_dir=None if cache_dir is None else str(cache_dir),
        config_name=config_name,
        data_dir=None if data_dir is None else str(Path(data_dir).expanduser()),
    )

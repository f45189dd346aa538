"""The entry point `load_lra`: a task from a local copy of its data, or from the Hub."""

from __future__ import annotations

import os
import re
from typing import Any

import datasets
from datasets.exceptions import DatasetGenerationError

from . import base
from .base import LRADataError, LRAFormatError
from .hub import HUB_SOURCES, load_lra_from_hub
from .registry import load_lra_builder, resolve_config_name


def load_lra(
    task: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    num_proc: int | None = None,
    download_mode: datasets.DownloadMode | str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    **options: Any,
) -> datasets.DatasetDict:
    """Prepare (once; later calls hit the cache) and load an LRA task from a local copy of its data.

    Without `data_dir`, the tasks whose source is published on the Hub (`text`: IMDb, `image`:
    CIFAR-10; see `lra.builders.hub`) read it with `datasets.load_dataset` instead, and give the
    same features, splits and conversions.

    Args:
        task: one of `TASKS`: `listops`, `text`, `retrieval`, `image`, `pathfinder`,
            `pathx`, and (not LRA tasks) `smnist`, `pmnist`.
        data_dir: the archive root, the doubled `lra_release/lra_release`, or the task folder
            (for `text` / `image` the folder holding `aclImdb` / `aclImdb_v1.tar.gz` and
            `cifar-10-batches-py` / `cifar-10-python.tar.gz`; for `smnist` / `pmnist` the
            folder holding the four idx files).
        cache_dir: where the prepared Arrow files go (default: `HF_DATASETS_CACHE`).
        num_proc: processes for the preparation (useful for Pathfinder / Path-X, whose images are
            decoded one by one).
        download_mode: `"force_redownload"` prepares again even if a cache exists.
        repo_id: without `data_dir`, the Hub data set to read instead of the task's default
            (`stanfordnlp/imdb`, `uoft-cs/cifar10`); `revision` its branch, tag or commit.
        **options: `pathfinder`: `resolution` (32, 64, 128, 256) and `difficulty` (6, 9, 14);
            `smnist` / `pmnist`: `labels` (`"digits"` for MNIST, `"fashion"` for Fashion-MNIST).

    Returns:
        A `datasets.DatasetDict` with `train`, `validation` and `test`.

    Raises:
        ValueError: unknown task or option.
        LRADataNotFoundError: missing or incomplete data (a `FileNotFoundError`).
        LRAFormatError: a malformed file, with its path and line (a `ValueError`).
    """
    if data_dir is None:
        if task in HUB_SOURCES:
            resolve_config_name(task, **options)  # the Hub tasks take no options: name a wrong one
            return load_lra_from_hub(
                task, repo_id, revision, cache_dir, num_proc=num_proc, download_mode=download_mode
            )
    if repo_id is not None or revision is not None:
        raise ValueError(
            f"repo_id / revision select a Hub data set, read only without data_dir and only for the "
            f"tasks published there ({', '.join(HUB_SOURCES)}); got the task {task!r} with data_dir={data_dir!r}"
        )
    builder = load_lra_builder(task, data_dir, cache_dir, **options)
    try:
        builder.download_and_prepare(num_proc=num_proc, download_mode=download_mode)
    except DatasetGenerationError as error:
        # datasets wraps every error raised while generating; ours already say which file is wrong.
        cause = _our_cause(error)
        if cause is not None:
            raise cause from None
        raise
    # The builders refuse empty sources where they know the file; this catches what is left (every image of a
    # Pathfinder split unreadable), which datasets would otherwise report as "corresponds to no data".
    for split, info in builder.info.splits.items():
        if info.num_examples == 0:
            raise LRAFormatError(
                f"The {split} split of {builder.config.name} prepared from {data_dir} is empty "
                f"(see the warnings above for skipped files)"
            )
    return builder.as_dataset()


# How a worker's error reaches the parent when num_proc > 1: the pool sends datasets' generic error, whose cause is
# lost on the way, with the worker's traceback text as cause instead. Ours is the first exception printed there.
_WORKER_ERROR = re.compile(
    rf"^{re.escape(base.__name__)}\.(?P<name>LRA\w*Error): (?P<message>.*?)"
    r"\n\n(?:The above exception|During handling)",
    re.MULTILINE | re.DOTALL,
)


def _our_cause(error: DatasetGenerationError) -> LRADataError | None:
    """The `LRADataError` that made the generation fail, raised in this process or in a worker; else None."""
    cause = error.__cause__
    if isinstance(cause, LRADataError):
        return cause
    match = _WORKER_ERROR.search(str(cause or ""))
    error_class = getattr(base, match["name"], None) if match else None
    if isinstance(error_class, type) and issubclass(error_class, LRADataError):
        return error_class(match["message"])
    return None

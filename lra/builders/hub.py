"""LRA tasks whose source data is published on the Hugging Face Hub, read with `datasets.load_dataset`.

When `lra.load_lra` gets no `data_dir`, a task listed in `HUB_SOURCES` reads its source data set from
the Hub (or from the `datasets` cache, offline, once it has been read) and turns it into exactly what the local
builder gives: the same features (`text` / `pixels` and a `ClassLabel` with the same names), the same splits
and the same conversions (the grayscale rule of `image_processing_las`, the validation split cut from the end of
the training split). Only the order of the IMDb reviews may differ from the local `aclImdb` listing: the Hub copy
keeps its own order (`neg` then `pos`), and has no file names to sort by.

| task | default repository (config) | columns | train / validation / test |
|---|---|---|---|
| text | `stanfordnlp/imdb` (plain_text) | text, label | train / **test** / test (as S4) |
| image | `uoft-cs/cifar10` (plain_text) | img, label | first 90% / last 10% of train / test |

Adding a task is one entry of `HUB_SOURCES` (say sMNIST: `HubSource("ylecun/mnist", "mnist", "image",
"image")` with the builder's validation fraction).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, Literal

import datasets
import numpy as np
from datasets.exceptions import DatasetNotFoundError

from image_processing_las import image_to_grayscale

from ..tasks import TASK_SPECS
from .base import LRADataNotFoundError, LRAFormatError, _not_found_message, _split_bounds
from .pixels import ImageBuilder
from .registry import load_lra_builder
from .tokens import TextBuilder

__all__ = ["HUB_SOURCES", "HubSource", "load_lra_from_hub"]


@dataclasses.dataclass(frozen=True)
class HubSource:
    """Where a task's source data lives on the Hub, and how its rows map onto the task's features.

    Attributes:
        repo_id: the default dataset repository.
        config_name: its config (`None`: the repository's default).
        kind: `"text"` (a string column, kept as it is) or `"image"` (an image column, turned into row-major
            grayscale `pixels` by `image_processing_las.image_to_grayscale`).
        column: the text or image column.
        label_column: the column of class indices (a `ClassLabel` whose names must be the task's).
        source_splits: our split -> the Hub split it is read from.
        validation_fraction: when set, `validation` is the last fraction of the Hub's `train` split and
            `train` the rest (as the local builder cuts it).
    """

    repo_id: str
    config_name: str | None
    kind: Literal["text", "image"]
    column: str
    label_column: str = "label"
    source_splits: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"train": "train", "test": "test"})
    validation_fraction: float | None = None


# The registry (lra.tasks) names each task's repository; this table says how to read it (a test checks that both list
# the same tasks).
HUB_SOURCES: Mapping[str, HubSource] = {
    "text": HubSource(
        TASK_SPECS["text"].hub_repo, "plain_text", "text", "text", source_splits=TextBuilder._SOURCE_SPLITS
    ),
    "image": HubSource(
        TASK_SPECS["image"].hub_repo,
        "plain_text",
        "image",
        "img",
        validation_fraction=ImageBuilder._VALIDATION_FRACTION,
    ),
}


def load_lra_from_hub(
    task: str,
    repo_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    num_proc: int | None = None,
    download_mode: datasets.DownloadMode | str | None = None,
) -> datasets.DatasetDict:
    """The task from its Hub data set (`repo_id` defaults to the one of `HUB_SOURCES`); see the module doc.

    Raises:
        ValueError: the task has no Hub source.
        LRADataNotFoundError: the Hub (or its cache, offline) did not give the data set.
        LRAFormatError: the data set lacks a column, has other class names, or an image of another size.
    """
    if task not in HUB_SOURCES:
        raise ValueError(
            f"The LRA task {task!r} has no Hub source: pass data_dir. Tasks read from the Hub without "
            f"data_dir: {', '.join(HUB_SOURCES)}"
        )
    source = HUB_SOURCES[task]
    repo_id = repo_id or source.repo_id
    features = load_lra_builder(task, cache_dir=cache_dir).info.features
    try:
        raw = datasets.load_dataset(
            repo_id,
            source.config_name,
            revision=revision,
            cache_dir=cache_dir,
            num_proc=num_proc,
            download_mode=download_mode,
        )
    except (ConnectionError, FileNotFoundError, OSError, DatasetNotFoundError) as error:
        builder = load_lra_builder(task, cache_dir=cache_dir)
        local = _not_found_message(None, builder._layouts(builder.config), task=task, origin=builder.ORIGIN)
        raise LRADataNotFoundError(
            f"The LRA task {task!r} got no data_dir, and reading the Hub data set {repo_id!r} failed "
            f"(offline? HF_HUB_OFFLINE is honoured): {' '.join(str(error).split())}\n{local}"
        ) from None
    splits = _source_splits(raw, source, repo_id, features)
    return datasets.DatasetDict(
        {
            split: _convert(dataset, source, features, f"{repo_id} ({split} split)", num_proc)
            for split, dataset in splits.items()
        }
    )


def _source_splits(
    raw: datasets.DatasetDict, source: HubSource, repo_id: str, features: datasets.Features
) -> dict[str, datasets.Dataset]:
    """Our train / validation / test, read from the Hub splits as `source` says."""
    missing = sorted(set(source.source_splits.values()) - set(raw))
    if missing:
        raise LRAFormatError(f"{repo_id}: no split {', '.join(missing)} (found {', '.join(raw)})")
    for hub_split in sorted(set(source.source_splits.values())):
        _check_columns(raw[hub_split], source, features["label"], f"{repo_id} ({hub_split} split)")
    splits = {split: raw[hub_split] for split, hub_split in source.source_splits.items()}
    if source.validation_fraction is not None:
        bounds = _split_bounds(len(splits["train"]), {"validation": source.validation_fraction})
        splits.update({split: _rows(splits["train"], bounds[split]) for split in ("train", "validation")})
    return {split: splits[split] for split in ("train", "validation", "test")}


def _rows(dataset: datasets.Dataset, bound: slice) -> datasets.Dataset:
    # An empty range at the end is an IndexError in `Dataset.select` (datasets 5.2): select an empty list instead.
    return dataset.select(range(bound.start, bound.stop) if bound.stop > bound.start else [])


def _check_columns(dataset: datasets.Dataset, source: HubSource, labels: datasets.ClassLabel, where: str) -> None:
    """The Hub's class names must be the task's, in the same order (else every label would mean another class)."""
    for column in (source.column, source.label_column):
        if column not in dataset.column_names:
            raise LRAFormatError(f"{where}: expected a column {column!r}, found {', '.join(dataset.column_names)}")
    hub_labels = dataset.features[source.label_column]
    if isinstance(hub_labels, datasets.ClassLabel) and hub_labels.names != labels.names:
        raise LRAFormatError(f"{where}: the classes are {hub_labels.names}, the task's are {labels.names}")


def _convert(
    dataset: datasets.Dataset, source: HubSource, features: datasets.Features, where: str, num_proc: int | None
) -> datasets.Dataset:
    """Hub rows -> the local builder's features (`text` or `pixels`, and `label`)."""
    num_classes = features["label"].num_classes
    length = features["pixels"].length if source.kind == "image" else None

    def convert(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        labels = batch[source.label_column]
        for index, label in zip(indices, labels):
            if not 0 <= label < num_classes:
                raise LRAFormatError(f"{where}, row {index}: label {label} is out of range 0..{num_classes - 1}")
        if source.kind == "text":
            return {"text": batch[source.column], "label": labels}
        pixels = []
        for index, image in zip(indices, batch[source.column]):
            try:
                gray = image_to_grayscale(image)
            except ValueError as error:
                raise LRAFormatError(f"{where}, row {index}: {error}") from None
            if gray.size != length:
                raise LRAFormatError(
                    f"{where}, row {index}: a {gray.shape[1]}x{gray.shape[0]} image; the task's "
                    f"images have {length} pixels"
                )
            pixels.append(np.asarray(gray).reshape(-1).tolist())
        return {"pixels": pixels, "label": labels}

    return dataset.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        features=features,
        num_proc=num_proc,
        desc=f"LRA rows from {where}",
    )

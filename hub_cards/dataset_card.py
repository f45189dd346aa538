"""Dataset card for Long Range Arena tasks exported as Parquet (`python -m lra export`).

The card is a pure function of its YAML metadata: `configs` (one per task, with its
`data_files`) and `dataset_info` (features and split sizes), exactly what
`DatasetDict.push_to_hub` writes and `datasets.load_dataset` reads. So the same function renders
the card of a local export folder and, after a push, of the Hub repository, and a card that already
lists other tasks keeps them: merge the new task into the metadata, render again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from datasets import ClassLabel, Features
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from lra.tasks import TASK_SPECS

__all__ = ["TEMPLATE_PATH", "default_card_data", "render_dataset_card"]

TEMPLATE_PATH = Path(__file__).with_name("dataset_card_template.md")


@dataclasses.dataclass(frozen=True)
class _Subset:
    """What the template shows of one configuration."""

    name: str
    title: str
    description: str
    splits: dict[str, int]
    features: list[str]
    labels: list[str]


def _task_of(config_name: str) -> str | None:
    """The task of a configuration (its title and description come from the task registry): configurations are
    named after the task, or for Pathfinder variants `pathfinder<R>_<folder>`, so it is the longest task name the
    configuration starts with."""
    matches = [task for task in TASK_SPECS if config_name.startswith(task)]
    return max(matches, key=len) if matches else None


def _describe_features(features: Features | None) -> tuple[list[str], list[str]]:
    """`name: type` strings of the features, and the class names of the `label` feature."""
    if features is None:
        return [], []
    described, labels = [], []
    for name, feature in features.items():
        if isinstance(feature, ClassLabel):
            described.append(f"{name}: ClassLabel({feature.num_classes})")
            labels = list(feature.names)
        elif hasattr(feature, "feature") and hasattr(feature, "length"):  # List / Sequence
            length = f"[{feature.length}]" if feature.length not in (None, -1) else "[]"
            described.append(f"{name}: {getattr(feature.feature, 'dtype', feature.feature)}{length}")
        else:
            described.append(f"{name}: {getattr(feature, 'dtype', feature)}")
    return described, labels


def default_card_data() -> DatasetCardData:
    """Metadata of a fresh LRA card, before any configuration is added."""
    return DatasetCardData(
        pretty_name="Long Range Arena",
        license="other",
        task_categories=["text-classification", "image-classification"],
        tags=["long-range-arena", "lra", "long-context", "efficient-transformers"],
    )


def render_dataset_card(
    card_data: DatasetCardData, *, repo_id: str | None = None, template_path: str | Path = TEMPLATE_PATH
) -> DatasetCard:
    """Render the card of an LRA export from its metadata.

    Args:
        card_data: metadata with `configs` and `dataset_info` as written by `datasets`
            (`MetadataConfigs` / `DatasetInfosDict`); fields of
            `default_card_data` that are missing are added.
        repo_id: the Hub repository, shown in the usage example (a local path otherwise).
        template_path: the Jinja template (default: `dataset_card_template.md` next to this module).

    Raises:
        ValueError: if the metadata lists no configuration.
    """
    for key, value in default_card_data().to_dict().items():
        if card_data.get(key) is None:
            card_data[key] = value
    configs = MetadataConfigs.from_dataset_card_data(card_data)
    if not configs:
        raise ValueError("The dataset card metadata lists no configuration (`configs`) to describe")
    infos = DatasetInfosDict.from_dataset_card_data(card_data)
    subsets = []
    for name in sorted(configs):
        info = infos.get(name)
        task = _task_of(name)
        spec = TASK_SPECS.get(task)
        title, description = (spec.data_title, spec.data_description) if spec else (name, "")
        features, labels = _describe_features(info.features if info else None)
        splits = {split: info.splits[split].num_examples for split in info.splits} if info and info.splits else {}
        subsets.append(
            _Subset(name=name, title=title, description=description, splits=splits, features=features, labels=labels)
        )
    return DatasetCard.from_template(
        card_data,
        template_path=str(template_path),
        subsets=subsets,
        load_path=repo_id or "path/to/export",
    )

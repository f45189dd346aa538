"""Dataset card for Long Range Arena tasks exported as Parquet (``python -m lra export``).

The card is a pure function of its YAML metadata: ``configs`` (one per task, with its
``data_files``) and ``dataset_info`` (features and split sizes), exactly what
``DatasetDict.push_to_hub`` writes and ``datasets.load_dataset`` reads. So the same function renders
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


__all__ = ["TEMPLATE_PATH", "TASK_DESCRIPTIONS", "default_card_data", "render_dataset_card"]

TEMPLATE_PATH = Path(__file__).with_name("dataset_card_template.md")

# task -> (title, description). Configurations are named after the task, or for Pathfinder variants
# "pathfinder<R>_<folder>", so the task is the longest task name the configuration starts with.
TASK_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "listops": (
        "ListOps",
        "Nested expressions of `[MAX`, `[MIN`, `[MED` (median) and `[SM` (sum mod 10) over digits, up to 2,000 "
        "tokens; the label is the value of the expression (10 classes). `text` is the source exactly as released, "
        "parentheses included (LRA's tokenizer drops them). From `listops-1000/basic_{train,val,test}.tsv`.",
    ),
    "text": (
        "Text (IMDb, byte-level)",
        "IMDb movie reviews, read as bytes (LRA uses up to 4,096 bytes); binary sentiment. IMDb has no "
        "validation split: as in S4, `validation` holds the test reviews, the same as `test`.",
    ),
    "retrieval": (
        "Retrieval (AAN, byte-level)",
        "Pairs of papers of the ACL Anthology Network, read as bytes (up to 4,000 per document, two-tower "
        "models); the label says whether one cites the other. From `tsv_data/new_aan_pairs.{train,eval,test}.tsv`; "
        "texts are kept verbatim, quote characters included.",
    ),
    "image": (
        "Image (CIFAR-10, grayscale)",
        "CIFAR-10 images as sequences of 1,024 grayscale pixels, row-major; gray = round(0.299 R + 0.587 G + "
        "0.114 B), halves up. `train` is the first 45,000 training images, `validation` the last 5,000, `test` "
        "the test batch.",
    ),
    "pathfinder": (
        "Pathfinder",
        "Synthetic images of curved dashed paths with two markers; the label says whether the markers are "
        "connected by one path. Pixels row-major, 8-bit grayscale. Images in metadata order (metadata files by "
        "integer name); the first 80% are `train`, the next 10% `validation`, the last 10% `test`.",
    ),
    "pathx": (
        "Path-X",
        "Pathfinder at 128 x 128 = 16,384 pixels with contour length 14, the hardest LRA task. Same format and "
        "80/10/10 split as Pathfinder.",
    ),
    "smnist": (
        "Sequential MNIST (not an LRA task)",
        "MNIST (`smnist`) or Fashion-MNIST (`smnist_fashion`) 28 x 28 images as sequences of 784 pixels, "
        "row-major, from the four idx files. `train` is the first 54,000 training images, `validation` the last "
        "6,000, `test` the 10,000 t10k images.",
    ),
    "pmnist": (
        "Permuted MNIST (not an LRA task)",
        "sMNIST with the 784 pixel positions in one fixed order: position i holds pixel perm[i] of the row-major "
        "image, perm = `numpy.random.RandomState(0).permutation(784)` (NumPy's legacy generator, whose stream is "
        "frozen; it starts 693, 85, 647, 392, 765, 14, 299, 711). Splits as sMNIST.",
    ),
}


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
    matches = [task for task in TASK_DESCRIPTIONS if config_name.startswith(task)]
    return max(matches, key=len) if matches else None


def _describe_features(features: Features | None) -> tuple[list[str], list[str]]:
    """``name: type`` strings of the features, and the class names of the ``label`` feature."""
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


def render_dataset_card(card_data: DatasetCardData, *, repo_id: str | None = None,
                        template_path: str | Path = TEMPLATE_PATH) -> DatasetCard:
    """Render the card of an LRA export from its metadata.

    Args:
        card_data: metadata with ``configs`` and ``dataset_info`` as written by ``datasets``
            (:class:`MetadataConfigs` / :class:`DatasetInfosDict`); fields of
            :func:`default_card_data` that are missing are added.
        repo_id: the Hub repository, shown in the usage example (a local path otherwise).
        template_path: the Jinja template (default: ``dataset_card_template.md`` next to this module).

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
        title, description = TASK_DESCRIPTIONS.get(task, (name, ""))
        features, labels = _describe_features(info.features if info else None)
        splits = {split: info.splits[split].num_examples for split in info.splits} if info and info.splits else {}
        subsets.append(_Subset(name=name, title=title, description=description, splits=splits, features=features,
                               labels=labels))
    return DatasetCard.from_template(
        card_data, template_path=str(template_path), subsets=subsets, load_path=repo_id or "path/to/export",
    )

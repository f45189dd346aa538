"""Export an LRA task as Parquet with a dataset card, locally and optionally to the Hub.

The output is what the Hub serves today (no loading script): ``OUT/<config>/<split>-NNNNN-of-NNNNN.parquet``
and ``OUT/README.md`` whose YAML ``configs`` point at those files, so
``datasets.load_dataset(OUT, config)`` works offline and ``load_dataset(repo_id, config)`` after a
push. Several tasks can share one folder or repository: each export adds or replaces its own
configuration and keeps the others.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from hub_cards.dataset_card import default_card_data, render_dataset_card

from .builders import load_lra, resolve_config_name


__all__ = ["export_config_name", "export_lra"]

_DEFAULT_MAX_SHARD_BYTES = 500 * 2**20


def export_config_name(task: str, **options: Any) -> str:
    """The configuration name of an export: the task, or for Pathfinder variants other than the
    default (32 x 32, contour length 14) the builder's config name, e.g. ``pathfinder64_curv_baseline``."""
    config_name = resolve_config_name(task, **options)
    return task if config_name == resolve_config_name(task) else config_name


def _write_parquet(dataset: datasets.DatasetDict, folder: Path, max_shard_bytes: int) -> None:
    """Write each split as ``<split>-NNNNN-of-NNNNN.parquet`` shards (the names ``push_to_hub`` uses)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, part in dataset.items():
        for stale in folder.glob(f"{split}-*.parquet"):  # an earlier export may have had more shards
            stale.unlink()
        num_shards = max(1, math.ceil(part.data.nbytes / max_shard_bytes))
        for index in range(num_shards):
            shard = part.shard(num_shards=num_shards, index=index, contiguous=True)
            shard.to_parquet(str(folder / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))


def _add_config(card_data: DatasetCardData, config_name: str, dataset: datasets.DatasetDict) -> None:
    """Add (or replace) one configuration in the card metadata, keeping the others."""
    MetadataConfigs({
        config_name: {"data_files": [{"split": split, "path": f"{config_name}/{split}-*"} for split in dataset]},
    }).to_dataset_card_data(card_data)
    splits = datasets.SplitDict()
    for split, part in dataset.items():
        splits.add(datasets.SplitInfo(name=split, num_bytes=part.data.nbytes, num_examples=len(part)))
    info = datasets.DatasetInfo(config_name=config_name, features=next(iter(dataset.values())).features,
                                splits=splits, dataset_size=sum(part.data.nbytes for part in dataset.values()))
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card_data)


def export_lra(task: str, data_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
               cache_dir: str | os.PathLike[str] | None = None, push_to_hub: str | None = None,
               token: str | None = None, max_shard_bytes: int = _DEFAULT_MAX_SHARD_BYTES,
               **options: Any) -> Path:
    """Load an LRA task (see :func:`lra.load_lra`) and write it as Parquet plus a dataset card.

    Args:
        task: one of :data:`lra.TASKS`.
        data_dir: the local copy of the task's data.
        out_dir: the export folder; ``out_dir/README.md`` is created or updated.
        cache_dir: the ``datasets`` cache for the preparation.
        push_to_hub: a dataset repository id: also push the task there as configuration
            ``export_config_name(task)`` and update the repository's card.
        token: Hub token for the push (default: the logged-in one).
        max_shard_bytes: split a split into Parquet files of about this many (uncompressed) bytes.
        **options: task options (``pathfinder``: ``resolution``, ``difficulty``).

    Returns:
        ``out_dir``.
    """
    config_name = export_config_name(task, **options)
    dataset = load_lra(task, data_dir, cache_dir, **options)
    out_dir = Path(out_dir)
    _write_parquet(dataset, out_dir / config_name, max_shard_bytes)

    readme = out_dir / "README.md"
    card_data = DatasetCard.load(readme).data if readme.is_file() else default_card_data()
    _add_config(card_data, config_name, dataset)
    render_dataset_card(card_data).save(readme)

    if push_to_hub is not None:
        # push_to_hub merges this configuration into the repository's metadata (other tasks stay);
        # then the body is rendered again from the merged metadata.
        dataset.push_to_hub(push_to_hub, config_name=config_name, token=token)
        remote = DatasetCard.load(push_to_hub, repo_type="dataset", token=token)
        render_dataset_card(remote.data, repo_id=push_to_hub).push_to_hub(
            push_to_hub, repo_type="dataset", token=token, commit_message=f"Update the dataset card ({config_name})"
        )
    return out_dir

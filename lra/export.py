"""Export an LRA task as Parquet with a dataset card, locally and optionally to the Hub.

The output is what the Hub serves today (no loading script): `OUT/<config>/<split>-NNNNN-of-NNNNN.parquet`
and `OUT/README.md` whose YAML `configs` point at those files, so
`datasets.load_dataset(OUT, config)` works offline and `load_dataset(repo_id, config)` after a
push. Several tasks can share one folder or repository: each export adds or replaces its own
configuration and keeps the others.

A local export never leaves a half-written state behind, even when killed or failing (a full disk): the
existing README is read (and must be valid) before any work, the shards and the new README are written into a
staging folder `OUT/.lra-export-tmp-<config>`, and only then swapped in: the previous `OUT/<config>` is
moved aside to `OUT/.lra-export-old-<config>`, the new one moved in, the README replaced (the commit point),
the old folder deleted. An export that fails removes its staging folder (and undoes a swap it had begun); the
next export into `OUT` finishes or rolls back a swap that was killed, so `OUT` always ends up with the old
or the new export, never a mix. A README that this exporter did not write is never replaced without
`overwrite=True` (`--overwrite`). Only one export should write into a folder at a time.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

import datasets
import yaml
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from hub_cards.dataset_card import default_card_data, render_dataset_card

from .builders import LRAFormatError, load_lra, resolve_config_name
from .faults import kill_point

__all__ = ["export_config_name", "export_lra"]

_DEFAULT_MAX_SHARD_BYTES = 500 * 2**20
_STAGING_PREFIX = ".lra-export-tmp-"
_ASIDE_PREFIX = ".lra-export-old-"
# Every card this exporter renders says so (hub_cards/dataset_card_template.md); a README without it is the user's.
_EXPORTER_MARK = "python -m lra export"

logger = logging.getLogger(__name__)


def export_config_name(task: str, **options: Any) -> str:
    """The configuration name of an export: the task, or for Pathfinder variants other than the
    default (32 x 32, contour length 14) the builder's config name, e.g. `pathfinder64_curv_baseline`."""
    config_name = resolve_config_name(task, **options)
    return task if config_name == resolve_config_name(task) else config_name


def _write_parquet(dataset: datasets.DatasetDict, folder: Path, max_shard_bytes: int) -> None:
    """Write each split as `<split>-NNNNN-of-NNNNN.parquet` shards (the names `push_to_hub` uses)
    into the new folder `folder`."""
    folder.mkdir(parents=True)
    for split, part in dataset.items():
        num_shards = max(1, math.ceil(part.data.nbytes / max_shard_bytes))
        for index in range(num_shards):
            shard = part.shard(num_shards=num_shards, index=index, contiguous=True)
            shard.to_parquet(str(folder / f"{split}-{index:05d}-of-{num_shards:05d}.parquet"))
            kill_point("export-shards")


def _existing_card_data(readme: Path, overwrite: bool) -> DatasetCardData:
    """The metadata of `readme` to add a configuration to; checked before anything is written.

    Raises `LRAFormatError` for a README with unreadable YAML, or one that this exporter did not write
    (unless `overwrite`, which starts a fresh card).
    """
    if not readme.is_file():
        return default_card_data()
    text = readme.read_text(encoding="utf-8", errors="replace")
    if _EXPORTER_MARK not in text:
        if not overwrite:
            raise LRAFormatError(
                f"{readme} was not written by `python -m lra export`; pass --overwrite "
                "(overwrite=True) to replace it, or export into another folder"
            )
        logger.warning("Replacing %s, which was not written by `python -m lra export` (--overwrite)", readme)
        return default_card_data()
    try:
        return DatasetCard.load(readme).data
    except (yaml.YAMLError, ValueError, TypeError) as error:  # the YAML header is broken
        message = " ".join(str(error).split())
        raise LRAFormatError(f"{readme}: its YAML header cannot be read ({message}); fix or remove it") from None


def _recover_interrupted_swaps(out_dir: Path) -> None:
    """Finish or undo the swaps of exports into `out_dir` that were killed (see the module docstring).

    The README replacement is the commit point: while the staging folder still holds the new README, the
    export had not committed, so its configuration folder is rolled back to the one set aside; once the README
    is gone from the staging folder, the export is complete and only the cleanup is finished.
    """
    for staging in sorted(out_dir.glob(f"{_STAGING_PREFIX}*")):
        config_name = staging.name.removeprefix(_STAGING_PREFIX)
        target, aside = out_dir / config_name, out_dir / f"{_ASIDE_PREFIX}{config_name}"
        if (staging / "README.md").exists():  # not committed: back to the previous export
            if not (staging / config_name).exists() and target.exists():  # the new folder was already moved in
                shutil.rmtree(target)
            if aside.exists() and not target.exists():
                os.replace(aside, target)
            logger.warning("Rolled back the interrupted export of %s in %s", config_name, out_dir)
        shutil.rmtree(aside, ignore_errors=True)
        shutil.rmtree(staging)


def _swap_in(staging: Path, out_dir: Path, config_name: str) -> None:
    """Move the staged configuration folder and README into `out_dir`, the README last (the commit)."""
    target, aside = out_dir / config_name, out_dir / f"{_ASIDE_PREFIX}{config_name}"
    if target.exists():
        os.replace(target, aside)
    kill_point("export-swap")
    os.replace(staging / config_name, target)
    os.replace(staging / "README.md", out_dir / "README.md")
    shutil.rmtree(aside, ignore_errors=True)
    shutil.rmtree(staging)


def _add_config(card_data: DatasetCardData, config_name: str, dataset: datasets.DatasetDict) -> None:
    """Add (or replace) one configuration in the card metadata, keeping the others."""
    MetadataConfigs(
        {
            config_name: {"data_files": [{"split": split, "path": f"{config_name}/{split}-*"} for split in dataset]},
        }
    ).to_dataset_card_data(card_data)
    splits = datasets.SplitDict()
    for split, part in dataset.items():
        splits.add(datasets.SplitInfo(name=split, num_bytes=part.data.nbytes, num_examples=len(part)))
    info = datasets.DatasetInfo(
        config_name=config_name,
        features=next(iter(dataset.values())).features,
        splits=splits,
        dataset_size=sum(part.data.nbytes for part in dataset.values()),
    )
    DatasetInfosDict({config_name: info}).to_dataset_card_data(card_data)


def export_lra(
    task: str,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    push_to_hub: str | None = None,
    token: str | None = None,
    max_shard_bytes: int = _DEFAULT_MAX_SHARD_BYTES,
    overwrite: bool = False,
    **options: Any,
) -> Path:
    """Load an LRA task (see `lra.load_lra`) and write it as Parquet plus a dataset card.

    Args:
        task: one of `lra.TASKS`.
        data_dir: the local copy of the task's data.
        out_dir: the export folder; `out_dir/README.md` is created or updated.
        cache_dir: the `datasets` cache for the preparation.
        push_to_hub: a dataset repository id: also push the task there as configuration
            `export_config_name(task)` and update the repository's card.
        token: Hub token for the push (default: the logged-in one).
        max_shard_bytes: split a split into Parquet files of about this many (uncompressed) bytes.
        overwrite: replace an `out_dir/README.md` that this exporter did not write.
        **options: task options (`pathfinder`: `resolution`, `difficulty`).

    Returns:
        `out_dir`.

    Raises:
        LRAFormatError: `out_dir/README.md` has a broken YAML header, or was not written by this exporter
            (without `overwrite`); nothing is written then.
        OSError: `out_dir` cannot be created or written.
    """
    config_name = export_config_name(task, **options)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)  # an output path that cannot be a folder fails here, before any work
    _recover_interrupted_swaps(out_dir)
    card_data = _existing_card_data(out_dir / "README.md", overwrite)
    dataset = load_lra(task, data_dir, cache_dir, **options)

    staging = out_dir / f"{_STAGING_PREFIX}{config_name}"
    staging.mkdir()
    try:
        _write_parquet(dataset, staging / config_name, max_shard_bytes)
        _add_config(card_data, config_name, dataset)
        render_dataset_card(card_data).save(staging / "README.md")
        _swap_in(staging, out_dir, config_name)
    except BaseException:
        # A full disk, say: remove the staging folder now (it may be large), undoing a swap that had begun, as the
        # next export would. A kill (SIGKILL) leaves it to that next export.
        try:
            _recover_interrupted_swaps(out_dir)
        except OSError as error:
            logger.warning("Could not clean up the failed export in %s: %s", out_dir, error)
        raise

    if push_to_hub is not None:
        # push_to_hub merges this configuration into the repository's metadata (other tasks stay);
        # then the body is rendered again from the merged metadata.
        dataset.push_to_hub(push_to_hub, config_name=config_name, token=token)
        remote = DatasetCard.load(push_to_hub, repo_type="dataset", token=token)
        render_dataset_card(remote.data, repo_id=push_to_hub).push_to_hub(
            push_to_hub, repo_type="dataset", token=token, commit_message=f"Update the dataset card ({config_name})"
        )
    return out_dir

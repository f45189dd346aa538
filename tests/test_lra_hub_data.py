"""`load_lra` without `data_dir`: IMDb and CIFAR-10 read from the Hub (the loopback server) with the local features."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from huggingface_hub import HfApi

import lra
from lra.builders import LRADataNotFoundError, LRAFormatError
from tests.support.hub_server import LoopbackHub
from tests.utils import (
    imdb_hub_rows,
    make_image_release,
    make_text_release,
    write_cifar10_hub_repo,
    write_imdb_hub_repo,
)


def _publish(hub: LoopbackHub, repo_id: str, folder: Path) -> None:
    api = HfApi(endpoint=hub.endpoint, token=hub.token)
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")


def test_text_without_data_dir_reads_the_hub_imdb(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    _publish(loopback_hub, "stanfordnlp/imdb", write_imdb_hub_repo(tmp_path / "imdb"))
    dataset = lra.load_lra("text", cache_dir=tmp_path / "cache")
    assert list(dataset) == ["train", "validation", "test"]
    assert dataset["train"].to_list() == imdb_hub_rows("train")  # the unsupervised split is not part of the task
    assert dataset["validation"].to_list() == dataset["test"].to_list() == imdb_hub_rows("test")  # as S4
    local = lra.load_lra("text", make_text_release(tmp_path / "local"), cache_dir=tmp_path / "cache")
    assert dataset["train"].features == local["train"].features
    for split in dataset:  # the same rows; only the order of the reviews within a class may differ
        assert sorted(map(str, dataset[split].to_list())) == sorted(map(str, local[split].to_list()))


def test_image_without_data_dir_matches_the_local_cifar_rows(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    _publish(loopback_hub, "uoft-cs/cifar10", write_cifar10_hub_repo(tmp_path / "cifar10"))
    dataset = lra.load_lra("image", cache_dir=tmp_path / "cache")
    local = lra.load_lra("image", make_image_release(tmp_path / "local"), cache_dir=tmp_path / "cache")
    assert dataset["train"].features == local["train"].features
    for split in ("train", "validation", "test"):  # same grayscale rule, same validation cut, same order
        assert dataset[split].to_list() == local[split].to_list(), split
    assert (len(dataset["train"]), len(dataset["validation"])) == (18, 2)


def test_another_repo_and_bad_layouts_are_named(loopback_hub: LoopbackHub, tmp_path: Path) -> None:
    folder = write_imdb_hub_repo(tmp_path / "imdb")
    _publish(loopback_hub, "me/my-imdb", folder)
    assert lra.load_lra("text", repo_id="me/my-imdb", cache_dir=tmp_path / "cache")["test"].num_rows == 4
    # IMDb's rows where CIFAR-10 is expected: the missing column is named.
    _publish(loopback_hub, "me/not-cifar", folder)
    with pytest.raises(
        LRAFormatError, match=r"me/not-cifar \(test split\): expected a column 'img', found text, label"
    ):
        lra.load_lra("image", repo_id="me/not-cifar", cache_dir=tmp_path / "cache")
    with pytest.raises(LRADataNotFoundError, match="'me/absent' failed"):
        lra.load_lra("text", repo_id="me/absent", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="repo_id / revision select a Hub data set"):
        lra.load_lra("listops", repo_id="me/my-imdb")


def test_local_files_keep_working_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The session runs with HF_HUB_OFFLINE=1 (tests/conftest.py); make sure datasets sees it too.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    dataset = lra.load_lra("image", make_image_release(tmp_path), cache_dir=tmp_path / "cache")
    assert np.asarray(dataset["test"]["pixels"]).shape == (4, 1024)
    with pytest.raises(LRADataNotFoundError, match="got no data_dir"):
        lra.load_lra("image", cache_dir=tmp_path / "cache")  # offline and never read: a named error, not a hang

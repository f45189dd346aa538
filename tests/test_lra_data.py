"""The LRA builders, tokenizers, export and command line, on fixtures laid out like the real data."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from transformers import AutoTokenizer

import lra
from lra.builders import LRADataNotFoundError, LRAFormatError
from tests.support.hub_server import LoopbackHub
from tests.utils import (
    CIFAR10_NAMES,
    IMDB_REVIEWS,
    MNIST_FILES,
    PATHFINDER_EMPTY_IMAGE,
    REPO_ROOT,
    RETRIEVAL_ROWS,
    cifar_batch,
    fail_opening,
    file_hashes,
    idx_bytes,
    listops_generate_flags,
    listops_rows,
    make_all_releases,
    make_image_release,
    make_listops_release,
    make_mnist_release,
    make_pathfinder_release,
    make_pathx_release,
    make_retrieval_release,
    make_text_release,
    mnist_split,
    pathfinder_image,
    pathfinder_label,
)


@pytest.fixture(autouse=True)
def _private_datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing these tests prepare may land in ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets-cache"))


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def _rows(dataset: datasets.Dataset) -> list[dict]:
    return dataset.to_list()


# ---------------------------------------------------------------------------------------------------
# Loading each task
# ---------------------------------------------------------------------------------------------------


def test_listops_rows_and_labels(tmp_path: Path, cache: Path) -> None:
    dataset = lra.load_lra("listops", make_listops_release(tmp_path), cache_dir=cache)
    assert list(dataset) == ["train", "validation", "test"]
    assert dataset["train"].features["label"].names == [str(digit) for digit in range(10)]
    for split, source in (("train", "train"), ("validation", "val"), ("test", "test")):
        assert _rows(dataset[split]) == [{"text": text, "label": label} for text, label in listops_rows(source)]


@pytest.mark.parametrize("as_tarball", [False, True], ids=["folder", "tarball"])
def test_text_reads_aclimdb_folder_and_tarball_alike(tmp_path: Path, cache: Path, as_tarball: bool) -> None:
    dataset = lra.load_lra("text", make_text_release(tmp_path, as_tarball=as_tarball), cache_dir=cache)
    assert dataset["train"].features["label"].names == ["neg", "pos"]

    def expected(split: str) -> list[dict]:  # neg then pos, files in numeric order of their names
        return [
            {"text": reviews[name], "label": label}
            for label, (_, reviews) in enumerate(sorted(IMDB_REVIEWS[split].items()))
            for name in sorted(reviews, key=lambda name: int(name.split("_")[0]))
        ]

    assert _rows(dataset["train"]) == expected("train")  # train/unsup is not part of the task
    assert _rows(dataset["test"]) == expected("test")
    assert _rows(dataset["validation"]) == expected("test")  # S4's convention: no IMDb validation split


def test_retrieval_keeps_quotes_and_reads_float_labels(tmp_path: Path, cache: Path) -> None:
    dataset = lra.load_lra("retrieval", make_retrieval_release(tmp_path), cache_dir=cache)
    assert dataset["train"].features["label"].names == ["unrelated", "related"]
    for split, source in (("train", "train"), ("validation", "eval"), ("test", "test")):
        assert _rows(dataset[split]) == [
            {"text1": text1, "text2": text2, "label": int(float(label))}
            for label, _, _, text1, text2 in RETRIEVAL_ROWS[source]
        ]
    assert dataset["train"][1]["text1"] == '"Unbalanced quote at the start'
    assert dataset["train"][2]["text2"] == 'He said ""twice"" here.'


@pytest.mark.parametrize("as_tarball", [True, False], ids=["tarball", "folder"])
def test_image_is_rounded_luma_with_last_tenth_as_validation(tmp_path: Path, cache: Path, as_tarball: bool) -> None:
    dataset = lra.load_lra("image", make_image_release(tmp_path, as_tarball=as_tarball), cache_dir=cache)
    assert dataset["train"].features["label"].names == list(CIFAR10_NAMES)

    def luma_and_labels(names: list[str]) -> tuple[np.ndarray, list[int]]:
        batches = [cifar_batch(name) for name in names]
        rgb = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 1024).astype(np.float64)
        return rgb[:, 0] * 0.299 + rgb[:, 1] * 0.587 + rgb[:, 2] * 0.114, sum((labels for _, labels in batches), [])

    luma, labels = luma_and_labels([f"data_batch_{index}" for index in range(1, 6)])
    test_luma, test_labels = luma_and_labels(["test_batch"])
    expected = {
        "train": (luma[:18], labels[:18]),
        "validation": (luma[18:], labels[18:]),
        "test": (test_luma, test_labels),
    }
    for split, (split_luma, split_labels) in expected.items():
        pixels = np.asarray(dataset[split]["pixels"])
        assert pixels.shape == (len(split_labels), 1024)
        assert np.abs(pixels - split_luma).max() <= 0.5 + 1e-9  # rounded to nearest
        assert np.array_equal(pixels, np.floor(split_luma + 0.5 + 1e-9))  # halves up
        assert dataset[split]["label"] == split_labels


def _expected_pathfinder(indices: range, resolution: int) -> list[dict]:
    return [
        {"pixels": pathfinder_image(index, resolution).reshape(-1).tolist(), "label": pathfinder_label(index)}
        for index in indices
    ]


def test_pathfinder_follows_integer_metadata_order_and_splits_80_10_10(tmp_path: Path, cache: Path) -> None:
    data_dir = make_pathfinder_release(tmp_path)  # 22 images in metadata/0.npy .. metadata/10.npy
    dataset = lra.load_lra("pathfinder", data_dir, cache_dir=cache)
    assert dataset["train"].features["label"].names == ["disconnected", "connected"]
    assert {split: len(part) for split, part in dataset.items()} == {"train": 18, "validation": 2, "test": 2}
    assert _rows(dataset["train"]) == _expected_pathfinder(range(0, 18), 32)
    assert _rows(dataset["validation"]) == _expected_pathfinder(range(18, 20), 32)
    assert _rows(dataset["test"]) == _expected_pathfinder(range(20, 22), 32)


def test_pathfinder_options_select_the_release_folder(tmp_path: Path, cache: Path) -> None:
    data_dir = make_pathfinder_release(tmp_path, resolution=64, difficulty=6, n=10, images_per_folder=5)
    dataset = lra.load_lra("pathfinder", data_dir, cache_dir=cache, resolution=64, difficulty=6)
    assert _rows(dataset["test"]) == _expected_pathfinder(range(9, 10), 64)
    with pytest.raises(LRADataNotFoundError, match="pathfinder32/curv_contour_length_14"):
        lra.load_lra("pathfinder", data_dir, cache_dir=cache)  # the default variant is not there


def test_pathx_is_pathfinder128(tmp_path: Path, cache: Path) -> None:
    dataset = lra.load_lra("pathx", make_pathx_release(tmp_path), cache_dir=cache)
    assert {split: len(part) for split, part in dataset.items()} == {"train": 8, "validation": 1, "test": 1}
    assert dataset["train"].features["pixels"].length == 128 * 128
    assert _rows(dataset["test"]) == _expected_pathfinder(range(9, 10), 128)


@pytest.mark.parametrize(
    ("task", "make", "levels"),
    [
        ("retrieval", make_retrieval_release, ["", "lra_release", "lra_release/tsv_data"]),
        ("listops", make_listops_release, ["", "listops-1000"]),
        (
            "pathfinder",
            make_pathfinder_release,
            ["", "lra_release", "lra_release/pathfinder32", "lra_release/pathfinder32/curv_contour_length_14"],
        ),
    ],
)
def test_data_dir_may_be_archive_root_doubled_root_or_task_folder(
    tmp_path: Path, cache: Path, task, make, levels
) -> None:
    archive = make(tmp_path)  # <tmp>/lra_release
    reference = None
    for level in [".."] + levels:  # ".." is the folder holding the archive
        rows = {split: _rows(part) for split, part in lra.load_lra(task, archive / level, cache_dir=cache).items()}
        reference = reference or rows
        assert rows == reference, level


def test_all_fixtures_load(tmp_path: Path, cache: Path) -> None:
    data_dirs = make_all_releases(tmp_path)
    assert set(data_dirs) == set(lra.TASKS)
    sizes = {
        task: {split: len(part) for split, part in lra.load_lra(task, data_dirs[task], cache_dir=cache).items()}
        for task in lra.TASKS
    }
    assert sizes == {
        "listops": {"train": 20, "validation": 5, "test": 5},
        "text": {"train": 6, "validation": 4, "test": 4},
        "retrieval": {"train": 8, "validation": 3, "test": 3},
        "image": {"train": 18, "validation": 2, "test": 4},
        "pathfinder": {"train": 18, "validation": 2, "test": 2},
        "pathx": {"train": 8, "validation": 1, "test": 1},
        "smnist": {"train": 18, "validation": 2, "test": 5},
        "pmnist": {"train": 18, "validation": 2, "test": 5},
    }


def test_regenerated_data_is_not_served_from_the_cache(tmp_path: Path, cache: Path) -> None:
    data_dir = make_listops_release(tmp_path, sizes=(3, 2, 2))
    assert len(lra.load_lra("listops", data_dir, cache_dir=cache)["train"]) == 3
    make_listops_release(tmp_path, sizes=(4, 2, 2))  # same folder, new content
    assert len(lra.load_lra("listops", data_dir, cache_dir=cache)["train"]) == 4


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


def test_unknown_task_or_option_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="listops, text, retrieval, image, pathfinder, pathx"):
        lra.load_lra("cifar", tmp_path)
    with pytest.raises(ValueError, match="valid options: resolution, difficulty"):
        lra.load_lra("pathfinder", tmp_path, size=32)
    with pytest.raises(ValueError, match="valid values: 32, 64, 128, 256"):
        lra.load_lra("pathfinder", tmp_path, resolution=48)
    with pytest.raises(ValueError, match="valid options: none"):
        lra.load_lra("listops", tmp_path, resolution=32)


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (
            "listops",
            ["listops-1000/basic_train.tsv", "basic_test.tsv", "lra_release.gz", "python -m lra generate listops"],
        ),
        ("text", ["aclImdb/train/pos", "aclImdb_v1.tar.gz", "ai.stanford.edu"]),
        ("retrieval", ["tsv_data/new_aan_pairs.train.tsv", "lra_release.gz"]),
        ("image", ["cifar-10-batches-py/data_batch_1", "cifar-10-python.tar.gz", "cs.toronto.edu"]),
        ("pathx", ["pathfinder128/curv_contour_length_14/metadata", "python -m lra generate pathfinder"]),
        (
            "pmnist",
            [
                "train-images-idx3-ubyte.gz",
                "t10k-labels-idx1-ubyte",
                "apt-get install dataset-fashion-mnist",
                "/usr/share/datasets/fashion-mnist",
            ],
        ),
    ],
)
def test_missing_data_lists_expected_files_and_their_origin(tmp_path: Path, task: str, expected: list[str]) -> None:
    for data_dir in (tmp_path / "does-not-exist", tmp_path, None):
        with pytest.raises(FileNotFoundError) as raised:
            lra.load_lra(task, data_dir, cache_dir=tmp_path / "cache")
        for text in expected:
            assert text in str(raised.value)


def test_incomplete_data_names_the_missing_file(tmp_path: Path) -> None:
    archive = make_listops_release(tmp_path)
    (archive / "listops-1000" / "basic_test.tsv").unlink()
    with pytest.raises(LRADataNotFoundError, match=r"Incomplete copy in .*listops-1000.*: missing basic_test\.tsv"):
        lra.load_lra("listops", archive, cache_dir=tmp_path / "cache")


def _replace_line(path: Path, line_number: int, new_line: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[line_number - 1] = new_line + "\n"
    path.write_text("".join(lines), encoding="utf-8")


@pytest.mark.parametrize(
    ("task", "file", "line", "content", "message"),
    [
        ("listops", "listops-1000/basic_val.tsv", 3, "( [MAX 1 ] )", "expected 2 tab-separated columns, found 1"),
        ("listops", "listops-1000/basic_train.tsv", 2, "( [MAX 1 ] )\t12", "label 12 is out of range"),
        ("listops", "listops-1000/basic_test.tsv", 1, "Text\tLabel", "expected the header"),
        ("retrieval", "lra_release/tsv_data/new_aan_pairs.eval.tsv", 2, "yes\ta\tb\tc\td", "'yes' is not an integer"),
        ("retrieval", "lra_release/tsv_data/new_aan_pairs.test.tsv", 3, "0.5\ta\tb\tc\td", "'0.5' is not an integer"),
        ("retrieval", "lra_release/tsv_data/new_aan_pairs.train.tsv", 4, "1\ta\tb\tc", "found 4"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, task, file, line, content, message) -> None:
    archive = make_listops_release(tmp_path) if task == "listops" else make_retrieval_release(tmp_path)
    _replace_line(archive / file, line, content)
    with pytest.raises(LRAFormatError) as raised:
        lra.load_lra(task, archive, cache_dir=tmp_path / "cache")
    assert f"{archive / file}:{line}: " in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("( ( [max 2 ) 9 ] )", "token 1, '[max', is not in ListOps' vocabulary"),
        ("( ( [MAXX 2 ) 9 ] )", "token 1, '[MAXX', is not in ListOps' vocabulary"),
        ("( ( [SM \u0663 ) 9 ] )", "token 2, '\u0663', is not in ListOps' vocabulary"),  # ARABIC-INDIC DIGIT THREE
        ("( ( [MIN \uff12 ) 9 ] )", "token 2, '\uff12', is not in ListOps' vocabulary"),  # FULLWIDTH DIGIT TWO
        ("( ( [MED 12 ) 9 ] )", "token 2, '12', is not in ListOps' vocabulary"),
        ("", "the source '' has no token"),
        ("( )", "the source '( )' has no token"),
        ("( ( [MAX 2\x00 ) 9 ] )", "a NUL byte at column 11"),
    ],
    ids=["lowercase", "misspelt", "arabic-indic", "fullwidth", "two-digits", "empty", "parens-only", "nul"],
)
def test_listops_source_outside_the_closed_vocabulary_names_file_and_line(
    tmp_path: Path, cache: Path, source: str, message: str
) -> None:
    """Each of these would otherwise be read as <unk> tokens, silently."""
    archive = make_listops_release(tmp_path)
    _replace_line(archive / "listops-1000/basic_train.tsv", 4, f"{source}\t2")
    with pytest.raises(LRAFormatError) as raised:
        lra.load_lra("listops", archive, cache_dir=cache)
    assert str(raised.value).startswith(f"{archive / 'listops-1000/basic_train.tsv'}:4: {message}")


def test_malformed_pathfinder_metadata_names_file_and_line(tmp_path: Path) -> None:
    archive = make_pathfinder_release(tmp_path)
    metadata = archive / "lra_release/pathfinder32/curv_contour_length_14/metadata/3.npy"
    _replace_line(metadata, 2, "imgs/3 sample_1.png 1 7")
    with pytest.raises(LRAFormatError, match=rf"{metadata}:2: label 7 is out of range"):
        lra.load_lra("pathfinder", archive, cache_dir=tmp_path / "cache")


def test_unreadable_png_is_skipped_with_warnings_naming_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    archive = make_pathfinder_release(tmp_path, empty_png=True)
    empty = archive / "lra_release/pathfinder32/curv_contour_length_14" / PATHFINDER_EMPTY_IMAGE
    with caplog.at_level(logging.WARNING, logger="lra.builders"), pytest.warns(UserWarning) as recorded:
        dataset = lra.load_lra("pathfinder", archive, cache_dir=tmp_path / "cache")
    summaries = [str(warning.message) for warning in recorded if "skipped" in str(warning.message)]
    assert summaries == [
        f"pathfinder32_curv_contour_length_14 train split: skipped 1 unreadable image(s) of 18: {empty}"
    ]
    assert str(empty) in caplog.text
    assert len(dataset["train"]) == 17  # image 1 of 0..17 is gone, the others stay in order
    expected = _expected_pathfinder(range(0, 18), 32)
    assert _rows(dataset["train"]) == expected[:1] + expected[2:]


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO, errno.EMFILE], ids=["EACCES", "EIO", "EMFILE"])
def test_pathfinder_image_that_cannot_be_read_fails_naming_it_and_is_not_cached(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """Only the release's empty file is skipped: a fault of the moment must not be prepared, cached, as a gap."""
    archive = make_pathfinder_release(tmp_path)
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/3/sample_1.png"
    with monkeypatch.context() as fault:
        fail_opening(fault, image, OSError(code, os.strerror(code), str(image)))
        with pytest.raises(lra.LRAReadError) as raised:
            lra.load_lra("pathfinder", archive, cache_dir=cache)
    assert str(raised.value).startswith(
        f"{image} (listed at {image.parents[2] / 'metadata/3.npy'}:2) cannot be read: "
        f"{os.strerror(code)} ({errno.errorcode[code]})"
    )
    # The cause gone, the next load reads every image (7 of train is imgs/3/sample_1.png).
    train = lra.load_lra("pathfinder", archive, cache_dir=cache)["train"]
    assert _rows(train) == _expected_pathfinder(range(0, 18), 32)


@pytest.mark.slow  # worker processes
def test_error_in_a_worker_process_reaches_the_user_as_ours(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With num_proc > 1 datasets' pool loses the cause of its generic error: the file must still be named."""
    archive = make_pathfinder_release(tmp_path)
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/3/sample_1.png"
    fail_opening(monkeypatch, image, OSError(errno.EIO, os.strerror(errno.EIO), str(image)))  # forked workers too
    with pytest.raises(lra.LRAReadError, match=rf"^{image} \(listed at .*3.npy:2\) cannot be read: .* \(EIO\)"):
        lra.load_lra("pathfinder", archive, cache_dir=cache, num_proc=2)


def test_damaged_pathfinder_png_is_an_error_not_a_skip(tmp_path: Path, cache: Path) -> None:
    archive = make_pathfinder_release(tmp_path)
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/2/sample_0.png"
    image.write_bytes(image.read_bytes()[:60])  # cut inside the pixel data: not empty, not the release's case
    with pytest.raises(LRAFormatError, match=rf"{image} \(listed at .*metadata/2.npy:1\): not a readable PNG"):
        lra.load_lra("pathfinder", archive, cache_dir=cache)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that announces `width` x `height` 8-bit gray pixels and holds none: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_decompression_bomb_png_is_an_error_naming_it(tmp_path: Path, cache: Path) -> None:
    archive = make_pathfinder_release(tmp_path)
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/5/sample_1.png"
    image.write_bytes(_png_header_only(50_000, 50_000))  # 2.5 billion pixels
    with pytest.raises(LRAFormatError, match=rf"^{image} \(listed at .*metadata/5.npy:2\): not a readable PNG"):
        lra.load_lra("pathfinder", archive, cache_dir=cache)


# A source file of each task, by the data dir the fixture returns.
_SOURCE_FILES = {
    "listops": (make_listops_release, "listops-1000/basic_val.tsv"),
    "retrieval": (make_retrieval_release, "lra_release/tsv_data/new_aan_pairs.test.tsv"),
    "text": (make_text_release, "aclImdb/test/pos/5_10.txt"),
    "image": (lambda root: make_image_release(root, as_tarball=False), "cifar-10-batches-py/data_batch_3"),
    "pathfinder": (make_pathfinder_release, "lra_release/pathfinder32/curv_contour_length_14/imgs/6/sample_0.png"),
    "smnist": (make_mnist_release, "t10k-labels-idx1-ubyte.gz"),
}


@pytest.mark.parametrize("fault", ["directory", "EACCES"])
@pytest.mark.parametrize("task", list(_SOURCE_FILES))
def test_source_that_cannot_be_read_is_named_on_the_last_line(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, task: str, fault: str
) -> None:
    """Not datasets' "An error occurred while generating the dataset": the error the user reads names the file."""
    make, name = _SOURCE_FILES[task]
    data_dir = make(tmp_path / "data")
    source = data_dir / name
    if fault == "directory":
        source.unlink()
        source.mkdir()
        reason = "Is a directory (EISDIR)"
    else:
        fail_opening(monkeypatch, source, PermissionError(errno.EACCES, "Permission denied", str(source)))
        reason = "Permission denied (EACCES)"
    with pytest.raises(lra.LRAReadError) as raised:
        lra.load_lra(task, data_dir, cache_dir=cache)
    assert str(raised.value).startswith(str(source)) and f"cannot be read: {reason}" in str(raised.value)


def test_idx_file_without_images_is_an_error_naming_it(tmp_path: Path, cache: Path) -> None:
    folder = make_mnist_release(tmp_path, sizes=(20, 0))
    images = folder / "t10k-images-idx3-ubyte.gz"
    with pytest.raises(LRAFormatError, match=rf"^{images}: the header announces 0 images"):
        lra.load_lra("smnist", folder, cache_dir=cache)


@pytest.mark.parametrize(
    ("size", "mode", "message"),
    [((16, 16), "L", "expected a 32x32 grayscale"), ((32, 32), "I;16", "more than 8 bits per pixel")],
)
def test_wrong_image_size_or_mode_is_an_error_naming_the_file(tmp_path: Path, size, mode, message) -> None:
    archive = make_pathfinder_release(tmp_path)
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/4/sample_0.png"
    Image.new(mode, size).save(image)
    with pytest.raises(LRAFormatError, match=rf"{image} .*{message}"):
        lra.load_lra("pathfinder", archive, cache_dir=tmp_path / "cache")


def test_missing_pathfinder_image_is_an_error(tmp_path: Path) -> None:
    archive = make_pathfinder_release(tmp_path)
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/10/sample_1.png"
    image.unlink()
    with pytest.raises(LRADataNotFoundError, match=rf"{image} \(listed at .*metadata/10.npy:2\) is missing"):
        lra.load_lra("pathfinder", archive, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------
# Sequential and permuted MNIST
# ---------------------------------------------------------------------------------------------------

#: The first pixels of pMNIST's order: pinned here, so that a change of the permutation fails a test.
PMNIST_PREFIX = [693, 85, 647, 392, 765, 14, 299, 711]


def _expected_mnist(split: str, rows: slice, permuted: bool) -> list[dict]:
    images, labels = mnist_split(split)
    pixels = images.reshape(len(images), 784)[rows]  # row-major
    if permuted:
        pixels = pixels[:, lra.pmnist_permutation()]
    return [{"pixels": row.tolist(), "label": int(label)} for row, label in zip(pixels, labels[rows])]


@pytest.mark.parametrize("task", ["smnist", "pmnist"])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_mnist_reads_idx_files_with_last_tenth_of_train_as_validation(
    tmp_path: Path, cache: Path, task: str, gz: bool
) -> None:
    dataset = lra.load_lra(task, make_mnist_release(tmp_path, gz=gz), cache_dir=cache)
    assert {split: len(part) for split, part in dataset.items()} == {"train": 18, "validation": 2, "test": 5}
    assert dataset["train"].features["label"].names == [str(digit) for digit in range(10)]
    assert dataset["train"].features["pixels"].length == 784
    permuted = task == "pmnist"
    assert _rows(dataset["train"]) == _expected_mnist("train", slice(0, 18), permuted)
    assert _rows(dataset["validation"]) == _expected_mnist("train", slice(18, 20), permuted)
    assert _rows(dataset["test"]) == _expected_mnist("t10k", slice(0, 5), permuted)


def test_pmnist_permutation_is_fixed_and_the_same_in_every_load(tmp_path: Path) -> None:
    permutation = lra.pmnist_permutation()
    assert sorted(permutation.tolist()) == list(range(784)) and permutation[:8].tolist() == PMNIST_PREFIX
    assert not permutation.flags.writeable
    data_dir = make_mnist_release(tmp_path / "data")
    first = lra.load_lra("pmnist", data_dir, cache_dir=tmp_path / "cache-a")
    second = lra.load_lra("pmnist", data_dir, cache_dir=tmp_path / "cache-b")  # prepared again from the files
    assert _rows(first["train"]) == _rows(second["train"])
    plain = np.asarray(lra.load_lra("smnist", data_dir, cache_dir=tmp_path / "cache-a")["train"]["pixels"])
    np.testing.assert_array_equal(np.asarray(first["train"]["pixels"]), plain[:, permutation])
    # The order travels with the data: in the info of the prepared set and in the export's dataset card.
    assert str(permutation.tolist()) in first["train"].info.description
    lra.export_lra("pmnist", data_dir, tmp_path / "export", cache_dir=tmp_path / "cache-a")
    card = (tmp_path / "export" / "README.md").read_text(encoding="utf-8")
    assert "RandomState(0).permutation(784)" in card and ", ".join(map(str, PMNIST_PREFIX)) in card


def test_mnist_labels_option_names_the_classes(tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    fashion_dir = make_mnist_release(tmp_path / "fashion-mnist")
    dataset = lra.load_lra("smnist", fashion_dir, cache_dir=cache, labels="fashion")
    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert dataset["test"].features["label"].names == names
    assert _rows(dataset["test"]) == _expected_mnist("t10k", slice(0, 5), permuted=False)  # same rows, other names
    assert lra.task_info("pmnist", labels="fashion").label_names == tuple(names)
    assert lra.task_info("smnist") == lra.TaskInfo("smnist", 10, tuple("0123456789"), "pixels", 784, 256, None)
    with caplog.at_level(logging.WARNING, logger="lra.builders"):
        lra.load_lra("smnist", fashion_dir, cache_dir=cache)  # the folder's name says fashion
    assert "pass labels='fashion'" in caplog.text
    with pytest.raises(ValueError, match="valid values: digits, fashion"):
        lra.load_lra("pmnist", fashion_dir, cache_dir=cache, labels="letters")


def _rewrite_idx(path: Path, change) -> None:
    """Apply `change` to the uncompressed bytes of a gzipped idx file."""
    import gzip

    path.write_bytes(gzip.compress(change(gzip.decompress(path.read_bytes()))))


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (
            "train-images-idx3-ubyte.gz",
            lambda data: b"\x00\x00\x08\x01" + data[4:],
            "wrong magic number 0x00000801, expected 0x00000803 (an idx file of images",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            lambda data: b"\x00\x00\x08\x03" + data[4:],
            "wrong magic number 0x00000803, expected 0x00000801",
        ),
        (
            "train-images-idx3-ubyte.gz",
            lambda data: data[:-100],
            "truncated: the header announces 20 images of 28x28 pixels (15,696 bytes), the file has 15,596 bytes",
        ),
        ("t10k-labels-idx1-ubyte.gz", lambda data: data[:6], "truncated: 6 bytes, shorter than the 8-byte header"),
        (
            "train-labels-idx1-ubyte.gz",
            lambda data: data + b"\x01",
            "1 bytes after the 20 labels the header announces",
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            lambda data: idx_bytes(mnist_split("t10k")[1][:4]),
            "4 labels for the 5 images of",
        ),
        (
            "train-labels-idx1-ubyte.gz",
            lambda data: data[:10] + b"\x0a" + data[11:],
            "label 10 of image 2 is out of range, expected 0..9",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            lambda data: idx_bytes(np.zeros((5, 32, 32), np.uint8)),
            "expected 28x28 images, found 32x32",
        ),
    ],
    ids=[
        "images-magic",
        "labels-magic",
        "truncated-images",
        "truncated-header",
        "trailing-bytes",
        "count-mismatch",
        "label-range",
        "image-size",
    ],
)
def test_bad_idx_files_name_the_file_and_the_problem(tmp_path: Path, file: str, change, message: str) -> None:
    data_dir = make_mnist_release(tmp_path)
    _rewrite_idx(data_dir / file, change)
    with pytest.raises(LRAFormatError) as raised:
        lra.load_lra("smnist", data_dir, cache_dir=tmp_path / "cache")
    assert str(raised.value).startswith(str(data_dir / file) + ": ")
    assert message in str(raised.value)


def test_damaged_gzip_and_plain_truncated_file(tmp_path: Path) -> None:
    data_dir = make_mnist_release(tmp_path / "gz")
    images = data_dir / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:200])  # a cut download
    with pytest.raises(LRAFormatError, match=rf"^{images}: not a readable gzip file"):
        lra.load_lra("smnist", data_dir, cache_dir=tmp_path / "cache")
    plain_dir = make_mnist_release(tmp_path / "plain", gz=False)
    labels = plain_dir / MNIST_FILES["t10k"][1]
    labels.write_bytes(labels.read_bytes()[:-2])
    with pytest.raises(LRAFormatError, match=rf"^{labels}: truncated: the header announces 5 labels \(13 bytes\)"):
        lra.load_lra("pmnist", plain_dir, cache_dir=tmp_path / "cache")


def test_mixed_gz_and_plain_copy_names_the_missing_files(tmp_path: Path) -> None:
    data_dir = make_mnist_release(tmp_path)
    (data_dir / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(LRADataNotFoundError, match=r"missing t10k-images-idx3-ubyte\.gz"):
        lra.load_lra("smnist", data_dir, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------
# Tokenizers and model inputs
# ---------------------------------------------------------------------------------------------------


def test_task_info() -> None:
    assert lra.task_info("listops") == lra.TaskInfo("listops", 10, tuple("0123456789"), "tokens", 2048, 18, 0)
    assert lra.task_info("retrieval").input_kind == "pair"
    assert lra.task_info("text").max_length == 4096 and lra.task_info("text").vocab_size == 259
    assert lra.task_info("image").label_names == CIFAR10_NAMES
    assert lra.task_info("pathx").max_length == 16384
    assert lra.task_info("pathfinder", resolution=64).max_length == 4096


def test_listops_tokenizer_ids_survive_save_and_auto_load(tmp_path: Path) -> None:
    tokenizer = lra.get_tokenizer("listops")
    source = "( ( ( [MAX 2 ) 9 ) ] )"
    # pad 0, unk 1, eos 2, digits 3..12, [MAX 13, [MIN 14, [MED 15, [SM 16, ] 17; parentheses dropped
    assert tokenizer(source)["input_ids"] == [13, 5, 12, 17, 2]
    assert tokenizer("[MIN 0 [MED 1 [SM 9 ] ] ] [FOO")["input_ids"] == [14, 3, 15, 4, 16, 12, 17, 17, 17, 1, 2]
    assert tokenizer("[MAX 2)(3 ]")["input_ids"] == [13, 5, 6, 17, 2]
    assert tokenizer.decode([13, 5, 12, 17, 2], skip_special_tokens=True) == "[MAX 2 9 ]"
    assert (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert len(tokenizer) == 18

    tokenizer.save_pretrained(tmp_path / "listops-tokenizer")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "listops-tokenizer")
    texts = [row for row, _ in listops_rows("train")]
    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]


@pytest.mark.parametrize("task", ["text", "retrieval"])
def test_byte_tokenizer_is_exact_and_survives_save_and_auto_load(tmp_path: Path, task: str) -> None:
    tokenizer = lra.get_tokenizer(task)
    texts = [
        "plain ASCII, with  spaces\tand\nnewlines",
        "naïve café – 日本語 🎬",
        "\x00\x7f",
        "",
        "quotes \" and ' and <br /> and a literal <eos> or <pad>",
    ]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert ids == [3 + byte for byte in text.encode("utf-8")] + [2]  # byte b -> 3 + b, then <eos>
        assert tokenizer.decode(ids, skip_special_tokens=True) == text

    tokenizer.save_pretrained(tmp_path / "bytes")
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "bytes")
    assert reloaded(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert [reloaded.decode(ids, skip_special_tokens=True) for ids in reloaded(texts)["input_ids"]] == texts
    assert len(reloaded) == 259


@pytest.mark.parametrize("task", ["image", "pathfinder", "pathx", "smnist", "pmnist"])
def test_pixel_tasks_have_no_tokenizer(task: str) -> None:
    with pytest.raises(ValueError, match="pixels are used directly"):
        lra.get_tokenizer(task)


def test_encode_listops(tmp_path: Path, cache: Path) -> None:
    encoded = lra.encode("listops", lra.load_lra("listops", make_listops_release(tmp_path), cache_dir=cache))
    tokenizer = lra.get_tokenizer("listops")
    first_text, first_label = listops_rows("train")[0]
    example = encoded["train"][0]
    assert set(example) == {"input_ids", "attention_mask", "labels"}
    assert example["input_ids"] == tokenizer(first_text)["input_ids"]
    assert example["input_ids"][-1] == 2 and example["attention_mask"] == [1] * len(example["input_ids"])
    assert example["labels"] == first_label


def test_encode_text_truncates_explicitly_and_says_so(
    tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = lra.load_lra("text", make_text_release(tmp_path), cache_dir=cache)["train"]
    with caplog.at_level(logging.WARNING, logger="lra.tokenization"):
        encoded = lra.encode("text", dataset, max_length=20)
    lengths = [len(ids) for ids in encoded["input_ids"]]
    long_texts = sum(len(text.encode()) + 1 > 20 for text in dataset["text"])
    assert long_texts > 0 and f"truncated {long_texts} of 6 sequences to max_length=20" in caplog.text
    assert max(lengths) == 20
    cut = next(index for index, text in enumerate(dataset["text"]) if len(text.encode()) + 1 > 20)
    assert encoded[cut]["input_ids"] == [3 + byte for byte in dataset[cut]["text"].encode()[:19]] + [2]
    with pytest.raises(ValueError, match="longer than max_length=20"):
        lra.encode("text", dataset, max_length=20, truncation=False)


def test_encode_retrieval_gives_two_documents_per_example(tmp_path: Path, cache: Path) -> None:
    dataset = lra.load_lra("retrieval", make_retrieval_release(tmp_path), cache_dir=cache)["train"]
    example = lra.encode("retrieval", dataset, max_length=30)[5]  # text1 is empty
    text1, text2 = dataset[5]["text1"], dataset[5]["text2"]
    assert (text1, text2) == ("", "an empty first document")
    length = len(text2.encode()) + 1
    assert example["input_ids"] == [[2] + [0] * (length - 1), [3 + byte for byte in text2.encode()] + [2]]
    assert example["attention_mask"] == [[1] + [0] * (length - 1), [1] * length]

    batch = lra.LRADataCollator()([lra.encode("retrieval", dataset, max_length=30)[index] for index in range(3)])
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (3, 2, 30)
    assert batch["labels"].tolist() == [1, 0, 1]


def test_encode_pixels_as_values_or_ids(tmp_path: Path, cache: Path) -> None:
    dataset = lra.load_lra("pathfinder", make_pathfinder_release(tmp_path), cache_dir=cache)["train"]
    values = lra.encode("pathfinder", dataset)
    assert values.column_names == ["pixel_values", "labels"]
    example = values[3]
    assert example["pixel_values"].dtype == np.float32
    np.testing.assert_allclose(example["pixel_values"], pathfinder_image(3, 32).reshape(-1) / 255.0, rtol=1e-6)
    assert example["labels"] == pathfinder_label(3)

    ids = lra.encode("pathfinder", dataset, pixels_as="ids")
    assert ids[3]["input_ids"] == pathfinder_image(3, 32).reshape(-1).tolist()
    batch = lra.LRADataCollator()([values[index] for index in range(4)])
    assert batch["pixel_values"].shape == (4, 1024) and str(batch["pixel_values"].dtype) == "torch.float32"


def test_collator_pads_token_sequences(tmp_path: Path, cache: Path) -> None:
    encoded = lra.encode("listops", lra.load_lra("listops", make_listops_release(tmp_path), cache_dir=cache))
    features = [encoded["train"][index] for index in range(4)]
    batch = lra.LRADataCollator(pad_to_multiple_of=8)(features)
    longest = max(len(feature["input_ids"]) for feature in features)
    assert batch["input_ids"].shape[1] == -(-longest // 8) * 8
    for row, feature in zip(batch["input_ids"].tolist(), features):
        assert row == feature["input_ids"] + [0] * (len(row) - len(feature["input_ids"]))
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(feature["input_ids"]) for feature in features]


# ---------------------------------------------------------------------------------------------------
# Export, Hub and command line
# ---------------------------------------------------------------------------------------------------


def test_export_writes_parquet_and_a_card_that_load_dataset_reads(tmp_path: Path, cache: Path) -> None:
    data_dirs = make_all_releases(tmp_path / "data")
    out = tmp_path / "export"
    for task in ("listops", "retrieval", "pathfinder", "listops"):  # listops twice: replaced, not duplicated
        lra.export_lra(task, data_dirs[task], out, cache_dir=cache)

    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.count("config_name: listops") == 2  # in `configs` and in `dataset_info`
    assert "config_name: retrieval" in card and "config_name: pathfinder" in card
    for task in ("listops", "retrieval", "pathfinder"):
        exported = datasets.load_dataset(str(out), task, cache_dir=str(tmp_path / "load-cache"))
        original = lra.load_lra(task, data_dirs[task], cache_dir=cache)
        assert list(exported) == ["train", "validation", "test"]
        assert exported["train"].features == original["train"].features
        for split in original:
            assert _rows(exported[split]) == _rows(original[split])


@pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")  # httpx, inside huggingface_hub
def test_failed_export_removes_its_staging_folder_and_keeps_the_previous_export(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "export"
    lra.export_lra("listops", make_listops_release(tmp_path / "old"), out, cache_dir=cache)
    before = file_hashes(out)

    def disk_full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1")  # a shard begun, then the disk is full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(datasets.Dataset, "to_parquet", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        lra.export_lra("listops", make_listops_release(tmp_path / "new", sizes=(6, 3, 3)), out, cache_dir=cache)
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "listops"]  # no staging folder left
    assert file_hashes(out) == before


def test_cli_export_smnist_takes_labels(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lra.__main__ import main

    folder = make_mnist_release(tmp_path)
    out = tmp_path / "export"
    assert (
        main(
            [
                "export",
                "smnist",
                "--data-dir",
                str(folder),
                "--out",
                str(out),
                "--cache-dir",
                str(cache),
                "--labels",
                "fashion",
            ]
        )
        == 0
    )
    exported = datasets.load_dataset(str(out), "smnist_fashion", cache_dir=str(tmp_path / "load-cache"))
    assert exported["train"].features["label"].names == list(lra.MNIST_LABELS["fashion"])
    with pytest.raises(SystemExit) as raised:  # an option of another task: a usage error, as --resolution is
        main(["export", "listops", "--data-dir", str(folder), "--out", str(out), "--labels", "fashion"])
    assert (
        raised.value.code == 2 and "Unknown option(s) 'labels' for the LRA task 'listops'" in capsys.readouterr().err
    )


def test_export_pushes_to_the_hub(tmp_path: Path, cache: Path, loopback_hub: LoopbackHub) -> None:
    data_dirs = make_all_releases(tmp_path / "data")
    repo_id = f"{loopback_hub.user}/lra"
    lra.export_lra("listops", data_dirs["listops"], tmp_path / "a", cache_dir=cache, push_to_hub=repo_id)
    lra.export_lra("image", data_dirs["image"], tmp_path / "b", cache_dir=cache, push_to_hub=repo_id)

    card = loopback_hub.files(repo_id, repo_type="dataset")["README.md"].decode()
    assert "config_name: listops" in card and "config_name: image" in card  # the second push kept the first
    assert f'load_dataset("{repo_id}"' in card
    for task in ("listops", "image"):
        pulled = datasets.load_dataset(repo_id, task, cache_dir=str(tmp_path / "pull-cache"))
        original = lra.load_lra(task, data_dirs[task], cache_dir=cache)
        assert _rows(pulled["validation"]) == _rows(original["validation"])
        assert pulled["train"].features == original["train"].features


def _run_cli(*args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    """`python -m lra ARGS`; `kill_at` names the kill point (lra.faults) where the process SIGKILLs itself."""
    env = {**os.environ, **({"LAS_KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run(
        [sys.executable, "-m", "lra", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def _generate_listops(out: str) -> list[str]:
    """`python -m lra` arguments that generate a tiny ListOps into `out`."""
    return ["generate", "listops", "--out", out, *listops_generate_flags()]


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize(
    "args",
    [
        [],
        ["export"],
        ["export", "cifar", "--data-dir", ".", "--out", "x"],
        ["export", "listops", "--data-dir", ".", "--out", "x", "--resolution", "64"],
        ["generate", "sudoku"],
        ["generate", "listops", "--out", "x", "--num-train", "many"],
    ],
    ids=[
        "nothing",
        "export-without-arguments",
        "unknown-task",
        "option-of-another-task",
        "unknown-generator",
        "not-a-number",
    ],
)
def test_cli_bad_arguments_give_one_line_and_status_2(args: list[str]) -> None:
    result = _run_cli(*args)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "error:" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # subprocesses
def test_cli_export_and_missing_data(tmp_path: Path) -> None:
    archive = make_listops_release(tmp_path / "data")
    export = ("export", "listops", "--data-dir", str(archive), "--out", str(tmp_path / "out"))
    result = _run_cli(*export, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "listops" / "train-00000-of-00001.parquet").is_file()

    shutil.rmtree(archive / "listops-1000")
    result = _run_cli(*export, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert "basic_train.tsv" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow  # subprocesses
def test_cli_export_names_a_source_that_cannot_be_read_on_its_last_line(tmp_path: Path) -> None:
    archive = make_listops_release(tmp_path / "data")
    source = archive / "listops-1000/basic_val.tsv"
    source.unlink()
    source.mkdir()  # a folder where the file belongs
    result = _run_cli("export", "listops", "--data-dir", str(archive), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{source} cannot be read: Is a directory" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out" / ".lra-export-tmp-listops").exists()


@pytest.mark.slow  # subprocesses
def test_cli_generated_synthetic_tasks_load(tmp_path: Path, cache: Path) -> None:
    archive = tmp_path / "lra_release"
    listops = _run_cli(
        "generate",
        "listops",
        "--out",
        str(archive / "listops-1000"),
        *listops_generate_flags(num_train=8, num_val=2, num_test=2, min_length=10, max_length=60),
    )
    pathfinder = _run_cli(
        "generate", "pathfinder", "--out", str(archive), "--num", "10", "--images-per-folder", "4", "--no-progress"
    )
    assert listops.returncode == 0 and pathfinder.returncode == 0, listops.stderr + pathfinder.stderr
    assert {split: len(part) for split, part in lra.load_lra("listops", archive, cache_dir=cache).items()} == {
        "train": 8,
        "validation": 2,
        "test": 2,
    }
    assert {split: len(part) for split, part in lra.load_lra("pathfinder", tmp_path, cache_dir=cache).items()} == {
        "train": 8,
        "validation": 1,
        "test": 1,
    }


def test_builders_are_layered_without_import_circles() -> None:
    """Each module of lra.builders imports only those below it (the package docstring's order), and none imports
    lra.hub_data, which re-exports lra.builders.hub; the Pathfinder rasteriser knows nothing of the writer."""
    import ast

    layers = ["base", "tokens", "pixels", "mnist", "registry", "hub", "loading"]
    package = REPO_ROOT / "lra"

    def relative_imports(path: Path) -> set[tuple[int, str]]:
        """(level, module) of each relative import; `from . import base` counts as (1, "base")."""
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                modules = [node.module] if node.module else [alias.name for alias in node.names]
                found.update((node.level, module) for module in modules)
        return found

    for index, layer in enumerate(layers):
        imports = relative_imports(package / "builders" / f"{layer}.py")
        siblings = {module.split(".")[0] for level, module in imports if level == 1}
        assert siblings <= set(layers[:index]), (layer, siblings)
        assert not {module for level, module in imports if level == 2} & {"hub_data", "builders"}, layer
    assert {module for _, module in relative_imports(package / "pathfinder_draw.py")} <= {"tasks", "validation"}


@pytest.mark.slow  # subprocesses
def test_import_lra_is_light() -> None:
    """`python -m lra generate ...` must not import datasets or transformers just to parse arguments."""
    code = "import sys, lra, lra.__main__; print(sorted(m for m in ('datasets', 'transformers') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


# ---------------------------------------------------------------------------------------------------
# Faults: changed sources, incomplete or empty data, killed generation and export
# ---------------------------------------------------------------------------------------------------


def _split_sizes(dataset: datasets.DatasetDict) -> dict[str, int]:
    return {split: len(part) for split, part in dataset.items()}


def test_changed_pathfinder_image_is_seen_by_the_next_load(tmp_path: Path, cache: Path) -> None:
    archive = make_pathfinder_release(tmp_path)
    assert (
        _rows(lra.load_lra("pathfinder", archive, cache_dir=cache)["train"])[0]["pixels"]
        == pathfinder_image(0, 32).reshape(-1).tolist()
    )
    # A repaired image: other pixels in a folder whose listing did not change (imgs/0 keeps its two files).
    image = archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/0/sample_0.png"
    replacement = pathfinder_image(99, 32)
    Image.fromarray(replacement, mode="L").save(image)
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later mtime, whatever the clock's grain
    assert (
        _rows(lra.load_lra("pathfinder", archive, cache_dir=cache)["train"])[0]["pixels"]
        == replacement.reshape(-1).tolist()
    )


def test_text_split_without_one_class_is_refused(tmp_path: Path, cache: Path) -> None:
    root = make_text_release(tmp_path)
    for review in (root / "aclImdb/test/pos").iterdir():
        review.unlink()
    with pytest.raises(LRADataNotFoundError, match=rf"{root / 'aclImdb/test/pos'} holds no review .*both classes"):
        lra.load_lra("text", root, cache_dir=cache)


@pytest.mark.parametrize("fraction", [0.9, 0.99], ids=["cut-at-90%", "cut-in-gzip-trailer"])
def test_cut_imdb_tarball_is_an_error_naming_it(tmp_path: Path, cache: Path, fraction: float) -> None:
    """tar alone reads a cut stream as a shorter archive: the gzip stream's end must be checked."""
    tarball = make_text_release(tmp_path, as_tarball=True) / "aclImdb_v1.tar.gz"
    data = tarball.read_bytes()
    tarball.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(LRAFormatError, match=rf"^{tarball}: not a complete \.tar\.gz \(.*\); a cut download"):
        lra.load_lra("text", tarball.parent, cache_dir=cache)


def test_partly_extracted_imdb_folder_is_refused_by_its_review_lists(tmp_path: Path, cache: Path) -> None:
    root = make_text_release(tmp_path)
    (root / "aclImdb/train/pos/3_8.txt").unlink()
    with pytest.raises(
        LRADataNotFoundError,
        match=rf"^{root / 'aclImdb/train/pos'} holds 2 reviews, but {root / 'aclImdb/train/urls_pos.txt'} lists 3: "
        r"the copy is incomplete",
    ):
        lra.load_lra("text", root, cache_dir=cache)


def test_imdb_tarball_is_checked_against_its_review_lists(tmp_path: Path, cache: Path) -> None:
    folder = make_text_release(tmp_path / "folder")
    (folder / "aclImdb/test/neg/1_2.txt").unlink()
    tarball = tmp_path / "tarball" / "aclImdb_v1.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:  # complete as a tar.gz, short of one review
        tar.add(folder / "aclImdb", arcname="aclImdb")
    with pytest.raises(LRADataNotFoundError, match=rf"^{tarball}:aclImdb/test/neg holds 1 reviews, but .* lists 2"):
        lra.load_lra("text", tarball.parent, cache_dir=cache)


def test_imdb_folder_without_review_lists_must_be_balanced(tmp_path: Path, cache: Path) -> None:
    root = make_text_release(tmp_path)
    for urls in root.glob("aclImdb/*/urls_*.txt"):
        urls.unlink()
    dataset = lra.load_lra("text", root, cache_dir=cache)  # a balanced copy without lists loads
    assert {split: len(part) for split, part in dataset.items()} == {"train": 6, "validation": 4, "test": 4}
    (root / "aclImdb/train/neg/7_2.txt").unlink()  # as a partly extracted folder
    with pytest.raises(LRADataNotFoundError, match=r"^The train reviews are unbalanced \(2 in .*neg, 3 in .*pos\)"):
        lra.load_lra("text", root, cache_dir=cache)


def _empty_listops_val(archive: Path) -> str:
    (archive / "listops-1000/basic_val.tsv").write_text("Source\tTarget\n")
    return f"{archive / 'listops-1000/basic_val.tsv'}: only the header, no example"


def _zero_byte_retrieval_test(archive: Path) -> str:
    (archive / "lra_release/tsv_data/new_aan_pairs.test.tsv").write_bytes(b"")
    return f"{archive / 'lra_release/tsv_data/new_aan_pairs.test.tsv'}: no rows, no example"


def _unreadable_pathfinder_validation(archive: Path) -> str:
    for name in ("sample_0.png", "sample_1.png"):  # images 18 and 19: the whole validation split
        (archive / "lra_release/pathfinder32/curv_contour_length_14/imgs/9" / name).write_bytes(b"")
    return "The validation split of pathfinder32_curv_contour_length_14 prepared from .* is empty"


@pytest.mark.filterwarnings("ignore:pathfinder32_curv_contour_length_14 validation split")
@pytest.mark.parametrize(
    ("task", "make", "damage"),
    [
        ("listops", make_listops_release, _empty_listops_val),
        ("retrieval", make_retrieval_release, _zero_byte_retrieval_test),
        ("pathfinder", make_pathfinder_release, _unreadable_pathfinder_validation),
        (
            "pathfinder",
            lambda root: make_pathfinder_release(root, n=9),
            lambda archive: r"metadata lists 9 image\(s\): the validation split \(10%\) would be empty",
        ),
    ],
    ids=["header-only-tsv", "zero-byte-tsv", "all-images-unreadable", "fewer-than-10-images"],
)
def test_empty_split_is_refused_naming_split_or_file(tmp_path: Path, cache: Path, task, make, damage) -> None:
    archive = make(tmp_path)
    with pytest.raises(lra.LRADataError, match=damage(archive)):
        lra.load_lra(task, archive, cache_dir=cache)


def _generate_pathfinder_cli(out: Path, num: int, kill_at: str | None = None) -> subprocess.CompletedProcess:
    return _run_cli(
        *("generate", "pathfinder", "--out", str(out), "--num", str(num), "--images-per-folder", "4"),
        *("--difficulty", "6", "--no-progress"),
        kill_at=kill_at,
    )


@pytest.mark.slow  # subprocesses
def test_killed_or_shrunk_pathfinder_generation_never_loads_silently(tmp_path: Path, cache: Path) -> None:
    task_dir = tmp_path / "pathfinder32" / "curv_baseline"
    killed = _generate_pathfinder_cli(tmp_path, 40, kill_at="pathfinder-batch@3")  # SIGKILL after 3 of 10 batches
    assert killed.returncode == -9, killed.stderr
    assert sorted(path.name for path in (task_dir / "metadata").iterdir()) == ["0.npy", "1.npy", "2.npy"]
    with pytest.raises(LRADataNotFoundError, match="generation did not finish .*12 image"):
        lra.load_lra("pathfinder", tmp_path, cache_dir=cache, difficulty=6)
    first_batches = file_hashes(task_dir / "imgs")

    finished = _generate_pathfinder_cli(tmp_path, 40)  # the same command again completes it
    assert finished.returncode == 0, finished.stderr
    assert {
        name: digest for name, digest in file_hashes(task_dir / "imgs").items() if name in first_batches
    } == first_batches  # the batches written before the kill were kept as they were
    assert _split_sizes(lra.load_lra("pathfinder", tmp_path, cache_dir=cache, difficulty=6)) == {
        "train": 32,
        "validation": 4,
        "test": 4,
    }

    shrunk = _generate_pathfinder_cli(tmp_path, 20)  # a smaller rerun removes the batches beyond 20 images
    assert shrunk.returncode == 0, shrunk.stderr
    assert len(list((task_dir / "metadata").iterdir())) == len(list((task_dir / "imgs").iterdir())) == 5
    assert _split_sizes(lra.load_lra("pathfinder", tmp_path, cache_dir=cache, difficulty=6)) == {
        "train": 16,
        "validation": 2,
        "test": 2,
    }

    (task_dir / "metadata" / "4.npy").unlink()  # a batch lost after the generation
    with pytest.raises(LRADataNotFoundError, match="list 16 image.*recorded 20"):
        lra.load_lra("pathfinder", tmp_path, cache_dir=cache, difficulty=6)


def _export_cli(
    data_dir: Path, out: Path, cache: Path, *extra: str, task: str = "listops", kill_at: str | None = None
) -> subprocess.CompletedProcess:
    return _run_cli(
        *("export", task, "--data-dir", str(data_dir), "--out", str(out), "--cache-dir", str(cache)),
        *extra,
        kill_at=kill_at,
    )


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("kill_at", ["export-shards", "export-swap"])
def test_killed_reexport_keeps_the_previous_export(tmp_path: Path, cache: Path, kill_at: str) -> None:
    old_data = make_listops_release(tmp_path / "old")
    new_data = make_listops_release(tmp_path / "new", sizes=(6, 3, 3))
    out = tmp_path / "export"
    lra.export_lra("listops", old_data, out, cache_dir=cache)
    before = file_hashes(out)

    killed = _export_cli(new_data, out, cache, kill_at=kill_at)
    assert killed.returncode == -9, killed.stderr
    # The next export (another task into the same folder) finds the interrupted one and rolls it back.
    retrieval = make_retrieval_release(tmp_path / "retrieval")
    lra.export_lra("retrieval", retrieval, out, cache_dir=cache)
    after = file_hashes(out)
    assert {name: digest for name, digest in after.items() if name.startswith("listops/")} == {
        name: digest for name, digest in before.items() if name.startswith("listops/")
    }
    assert sorted(path.name for path in out.iterdir()) == ["README.md", "listops", "retrieval"]
    exported = datasets.load_dataset(str(out), "listops", cache_dir=str(tmp_path / "load-cache"))
    assert _split_sizes(exported) == {"train": 20, "validation": 5, "test": 5}

    assert _export_cli(new_data, out, cache).returncode == 0  # and a re-export that runs to its end replaces it
    exported = datasets.load_dataset(str(out), "listops", cache_dir=str(tmp_path / "load-cache-2"))
    assert _split_sizes(exported) == {"train": 6, "validation": 3, "test": 3}
    assert "config_name: retrieval" in (out / "README.md").read_text()


@pytest.mark.slow  # subprocesses
def test_export_checks_the_readme_before_writing(tmp_path: Path, cache: Path) -> None:
    archive = make_listops_release(tmp_path / "data")
    out = tmp_path / "export"
    out.mkdir()
    readme = out / "README.md"
    readme.write_text("# My own notes about these data\n")
    result = _export_cli(archive, out, cache)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "was not written by `python -m lra export`; pass --overwrite" in result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["README.md"]  # nothing written, README kept
    assert readme.read_text() == "# My own notes about these data\n"

    assert _export_cli(archive, out, cache, "--overwrite").returncode == 0
    assert "config_name: listops" in readme.read_text()

    text = readme.read_text()
    readme.write_text(text.replace("configs:", "configs: [unclosed", 1))  # broken YAML in the exporter's README
    shards = file_hashes(out / "listops")
    result = _export_cli(archive, out, cache)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "its YAML header cannot be read" in result.stderr
    assert file_hashes(out / "listops") == shards  # validated before any shard was written


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize(
    "command",
    [
        _generate_listops("{file}/listops-1000"),
        ["generate", "pathfinder", "--out", "{file}", "--num", "10", "--no-progress"],
        ["export", "listops", "--data-dir", "{data}", "--out", "{file}", "--cache-dir", "{cache}"],
    ],
    ids=["generate-listops", "generate-pathfinder", "export"],
)
def test_cli_output_path_that_is_a_file_gives_one_line(tmp_path: Path, command: list[str]) -> None:
    file = tmp_path / "a-file"
    file.write_text("not a folder\n")
    data = make_listops_release(tmp_path / "data")
    result = _run_cli(*(part.format(file=file, data=data, cache=tmp_path / "cache") for part in command))
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "cannot write the output" in result.stderr and str(file) in result.stderr


def _listops_set(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ("basic_train.tsv", "basic_val.tsv", "basic_test.tsv")}


@pytest.mark.slow  # subprocesses
def test_cli_listops_overwrite_killed_between_renames_never_loads_mixed(tmp_path: Path, cache: Path) -> None:
    out = tmp_path / "listops-1000"
    assert _run_cli(*_generate_listops(str(out))).returncode == 0
    old = _listops_set(out)
    killed = _run_cli(
        *_generate_listops(str(out)),
        "--overwrite",
        "--seed",
        "1",
        kill_at="listops-swap",
    )
    assert killed.returncode == -9, killed.stderr
    with pytest.raises(LRADataNotFoundError):  # no folder at all rather than two seeds' files
        lra.load_lra("listops", tmp_path, cache_dir=cache)
    refused = _run_cli(*_generate_listops(str(out)))  # the next run first puts the old set back
    assert refused.returncode == 2 and "already holds basic_train.tsv" in refused.stderr, refused.stderr
    assert _listops_set(out) == old
    assert sorted(path.name for path in tmp_path.iterdir()) == ["listops-1000"]
    assert _run_cli(*_generate_listops(str(out)), "--overwrite", "--seed", "1").returncode == 0
    assert _listops_set(out) != old and len(lra.load_lra("listops", tmp_path, cache_dir=cache)["train"]) == 2


@pytest.mark.slow  # subprocesses
@pytest.mark.parametrize("overwrite", [False, True], ids=["refuse", "overwrite"])
def test_cli_concurrent_listops_generations_into_one_folder(tmp_path: Path, overwrite: bool) -> None:
    """Two runs at once: neither deletes the other's staging folder, and the folder ends up one seed's set."""
    out = tmp_path / "listops-1000"
    expected = {}
    for seed in ("1", "2"):
        expected[seed] = tmp_path / f"seed-{seed}"
        assert (
            _run_cli(
                *_generate_listops(str(expected[seed])),
                "--num-train",
                "400",
                "--seed",
                seed,
            ).returncode
            == 0
        )
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lra",
                *_generate_listops(str(out)),
                "--num-train",
                "400",
                "--seed",
                seed,
            ]
            + (["--overwrite"] if overwrite else []),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("1", "2")
    ]
    results = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    if overwrite:
        assert [code for code, _ in results] == [0, 0], results
    else:  # the later run finds the earlier one's files and refuses them, in one line
        assert sorted(code for code, _ in results) == [0, 2], results
        assert "already holds basic_train.tsv" in next(stderr for code, stderr in results if code == 2)
    assert _listops_set(out) in (_listops_set(expected["1"]), _listops_set(expected["2"]))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["listops-1000", "seed-1", "seed-2"]


@pytest.mark.slow  # subprocesses
def test_cli_listops_generator_refuses_existing_data(tmp_path: Path) -> None:
    archive = make_listops_release(tmp_path)
    before = file_hashes(archive)
    result = _run_cli("generate", "listops", "--out", str(archive / "listops-1000"), *listops_generate_flags())
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "already holds basic_train.tsv" in result.stderr and "--overwrite" in result.stderr
    assert file_hashes(archive) == before

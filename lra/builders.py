"""The six Long Range Arena tasks, and sequential / permuted MNIST, as `datasets` builders that read a local
copy of the data.

The builders download nothing: the official archive (`lra_release.gz`) is no longer served, and
IMDb and CIFAR-10 were never part of it. Each builder reads a user's local copy in its official
layout and turns it into a `datasets.DatasetDict` with the splits `train`, `validation`
and `test`. Without `data_dir`, `load_lra` reads the tasks whose source is on the Hub
(IMDb, CIFAR-10) with `datasets.load_dataset` instead (`lra.hub_data`).
`load_lra` is the entry point:

    >>> from lra import load_lra
    >>> listops = load_lra("listops", data_dir="~/data/lra_release")
    >>> pathx = load_lra("pathx", data_dir="~/data/lra_release")

`data_dir` may be the archive root (`lra_release/`), the doubled `lra_release/lra_release/`
that the archive unpacks to, a folder holding either of them, or the task folder itself.

Task, source layout and splits:

| task | files read | train / validation / test |
|---|---|---|
| listops | `listops-1000/basic_{train,val,test}.tsv` (`Source\\tTarget`) | the three files |
| text | `aclImdb/{train,test}/{neg,pos}/*.txt` or `aclImdb_v1.tar.gz` | train / **test** / test |
| retrieval | `tsv_data/new_aan_pairs.{train,eval,test}.tsv` (5 columns) | the three files |
| image | `cifar-10-batches-py/` or `cifar-10-python.tar.gz` | 45k / last 5k of train / test |
| pathfinder | `pathfinder{32,64,128,256}/curv_*/metadata/<k>.npy` + `imgs/` | 80% / 10% / 10%, in order |
| pathx | `pathfinder128/curv_contour_length_14/` | 80% / 10% / 10%, in order |
| smnist | `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (MNIST idx) | 54k / last 6k of train / t10k |
| pmnist | the same files, pixels in one fixed seeded order | as smnist |

Conventions (each one deliberate; the docstrings of the builders give the details):

* Text: IMDb has no validation split; like S4 we use the test reviews as validation split too. The
  unlabelled `train/unsup` reviews are not part of the task and are not read.
* Image: grayscale is the luma `0.299 R + 0.587 G + 0.114 B` rounded to the nearest integer, halves
  up, computed exactly in integers: `(299 R + 587 G + 114 B + 500) // 1000`.
* Pathfinder: the metadata files are sorted by their integer stem and their lines are taken in
  order; the first 80% of the images are train, the next 10% validation, the last 10% test
  (`n // 10` images each for validation and test).
* Sequential MNIST (`smnist`, not an LRA task; the LaS paper reports it): the 28x28 images as 784
  pixels, row-major; validation is the last 10% of the training file (6,000 of 60,000). `pmnist`
  reorders the 784 positions by `pmnist_permutation`, the same for everyone. The files may be
  MNIST or Fashion-MNIST (same format): the option `labels="digits"` (default) or `"fashion"`
  names the classes.
* Labels are `datasets.ClassLabel`: ListOps `"0"`..`"9"`, Text `neg`/`pos` (the
  aclImdb folder names, as in the Hub's `imdb` data set), Retrieval `unrelated`/`related`
  (whether the two papers are linked by a citation), Image the CIFAR-10 class names, Pathfinder
  `disconnected`/`connected` (whether the two markers lie on the same path), sMNIST / pMNIST
  `"0"`..`"9"` or the Fashion-MNIST class names (`MNIST_LABELS`).

Bad input never passes silently: a missing or incomplete data dir raises
`LRADataNotFoundError` naming the files expected and where they come from, a malformed row
raises `LRAFormatError` with its file and line (an idx file: wrong magic number, truncated,
or image and label counts that differ), and a Pathfinder image that cannot be decoded
(the release ships an empty `pathfinder32/curv_baseline/imgs/0/sample_172.png`) is skipped with a
warning that names it, plus one summary warning per split.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import logging
import os
import pickle
import re
import tarfile
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import datasets
import numpy as np
import PIL.Image
from datasets.exceptions import DatasetGenerationError
from PIL import UnidentifiedImageError

import image_processing_las
from image_processing_las import image_to_grayscale, rgb_to_grayscale

from .pathfinder import incomplete_generation
from .tasks import (
    CIFAR10_LABELS,
    MNIST_LABELS,
    PATHFINDER_DEFAULT_DIFFICULTY,
    PATHFINDER_DEFAULT_RESOLUTION,
    PATHFINDER_DIFFICULTIES,
    PATHFINDER_RESOLUTIONS,
    PATHX_RESOLUTION,
    TASK_SPECS,
    TASKS,
)

__all__ = [
    "TASKS",
    "LRADataError",
    "LRADataNotFoundError",
    "LRAFormatError",
    "ListOpsBuilder",
    "TextBuilder",
    "RetrievalBuilder",
    "ImageBuilder",
    "PathfinderBuilder",
    "PathfinderConfig",
    "SequentialMNISTBuilder",
    "MNISTConfig",
    "CIFAR10_LABELS",
    "MNIST_LABELS",
    "PATHFINDER_DIFFICULTIES",
    "PATHFINDER_RESOLUTIONS",
    "builder_class",
    "load_lra",
    "load_lra_builder",
    "mnist_config_name",
    "pathfinder_config_name",
    "pmnist_permutation",
    "resolve_config_name",
]

logger = logging.getLogger(__name__)

# Where a task folder may sit below the data dir: the archive root, or the doubled folder the archive
# unpacks to (the release keeps listops-1000 at the top and tsv_data, pathfinder* one level down).
_ARCHIVE_PREFIXES: tuple[str, ...] = ("", "lra_release", "lra_release/lra_release")

_LRA_RELEASE = (
    "the LRA release (lra_release.gz, https://storage.googleapis.com/long-range-arena/lra_release.gz, unpacked)"
)


class LRADataError(Exception):
    """Base class of the errors raised for unusable LRA source data."""


class LRADataNotFoundError(LRADataError, FileNotFoundError):
    """The data dir is missing, or lacks files a task needs; the message lists them and their origin."""


class LRAFormatError(LRADataError, ValueError):
    """A source file is malformed; the message names the file (and line, where there is one)."""


# ---------------------------------------------------------------------------------------------------
# Locating the source files
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Layout:
    """One way a task's data can be laid out: a `folder` holding all of `entries`.

    `folder` is a relative path such as `"listops-1000"` or `"pathfinder32/curv_baseline"`
    (`""` for files that sit directly in an archive root, like a tarball); `entries` are files or
    directories inside it.
    """

    folder: str
    entries: tuple[str, ...]

    def describe(self) -> str:
        prefix = f"{self.folder}/" if self.folder else ""
        return ", ".join(prefix + entry for entry in self.entries)


@dataclasses.dataclass(frozen=True)
class _Source:
    """The layout that was found, and the folder that holds its entries."""

    layout: _Layout
    root: Path

    def path(self, entry: str) -> Path:
        return self.root / entry


def _candidate_roots(data_dir: Path, folder: str) -> list[Path]:
    """Folders that may be `folder` of the release, given what `data_dir` may point at.

    `data_dir` can be above the archive (prefixes) or inside the task folder's path (every tail of
    `folder`, down to `data_dir` itself being the task folder).
    """
    parts = PurePosixPath(folder).parts if folder else ()
    candidates: list[Path] = []
    for prefix in _ARCHIVE_PREFIXES:
        for start in range(len(parts) + 1):
            candidate = data_dir.joinpath(prefix, *parts[start:])
            if candidate not in candidates:
                candidates.append(candidate)
    return candidates


def _locate(data_dir: str | os.PathLike[str] | None, layouts: Sequence[_Layout], *, task: str, origin: str) -> _Source:
    """Find the first layout whose entries all exist, or raise an error that says what is expected."""
    if data_dir is None:
        raise LRADataNotFoundError(_not_found_message(None, layouts, task=task, origin=origin))
    data_dir = Path(data_dir).expanduser()
    best_partial: tuple[int, Path, _Layout] | None = None
    if data_dir.is_dir():
        for layout in layouts:
            for root in _candidate_roots(data_dir, layout.folder):
                present = sum((root / entry).exists() for entry in layout.entries)
                if present == len(layout.entries):
                    return _Source(layout, root)
                if present and (best_partial is None or present > best_partial[0]):
                    best_partial = (present, root, layout)
    raise LRADataNotFoundError(_not_found_message(data_dir, layouts, task=task, origin=origin, partial=best_partial))


def _not_found_message(
    data_dir: Path | None,
    layouts: Sequence[_Layout],
    *,
    task: str,
    origin: str,
    partial: tuple[int, Path, _Layout] | None = None,
) -> str:
    if data_dir is None:
        head = f"The LRA task {task!r} reads a local copy of its data: pass data_dir."
    elif not data_dir.is_dir():
        head = f"The data dir {str(data_dir)!r} for the LRA task {task!r} does not exist."
    else:
        head = f"The LRA task {task!r} found no complete copy of its data under {str(data_dir)!r}."
    lines = [head, "Expected one of:"]
    lines += [f"  {layout.describe()}" for layout in layouts]
    lines.append(
        "in DATA_DIR, DATA_DIR/lra_release or DATA_DIR/lra_release/lra_release "
        "(DATA_DIR may also be the task folder itself)."
    )
    if partial is not None:
        _, root, layout = partial
        missing = [entry for entry in layout.entries if not (root / entry).exists()]
        lines.append(f"Incomplete copy in {str(root)!r}: missing {', '.join(missing)}.")
    lines.append(f"These files come from {origin}.")
    return "\n".join(lines)


def _files_below(path: Path) -> list[Path]:
    """`path` itself if it is a file, else every file below it, at any depth, in a fixed order."""
    if not path.is_dir():
        return [path]
    files = []
    for folder, subfolders, names in os.walk(path):
        subfolders.sort()  # os.walk descends in this order
        files.extend(Path(folder) / name for name in sorted(names))
    return files


def _fingerprint(source: _Source) -> str:
    """A short hash of the path, size and modification time of every source file.

    It goes into the cache path, so data changed in the same folder (regenerated with another seed,
    a repaired or replaced Pathfinder image, a review added) is prepared again instead of being
    served stale from the cache. The rule: every file the builder may read counts, i.e. each file
    entry of the layout and every file below each directory entry, recursively (the Pathfinder
    metadata files and images, the IMDb reviews), by relative path, size and mtime in nanoseconds.
    A file rewritten with the same size and an mtime set back to its old value is not noticed.
    """
    stats = []
    for entry in source.layout.entries:
        for item in _files_below(source.path(entry)):
            stat = item.stat()
            stats.append(f"{item.relative_to(source.root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]


@functools.cache
def _code_hash() -> str:
    """Hash of this module's source and of the image rules it uses: any change to the parsing code
    (or to the grayscale conversion) gives a fresh cache."""
    sources = Path(__file__).read_bytes() + Path(image_processing_las.__file__).read_bytes()
    return hashlib.sha256(sources).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# Parsing helpers shared by the builders
# ---------------------------------------------------------------------------------------------------

_INTEGER_LABEL = re.compile(r"[0-9]+(?:\.0*)?")  # "1" or "1.0": the AAN files write floats


def _parse_label(raw: str, num_classes: int, where: str) -> int:
    """Read a class index written as an integer (`"3"`) or an integral float (`"3.0"`)."""
    if not _INTEGER_LABEL.fullmatch(raw):
        raise LRAFormatError(f"{where}: label {raw!r} is not an integer")
    label = int(float(raw))
    if label >= num_classes:
        raise LRAFormatError(f"{where}: label {label} is out of range, expected 0..{num_classes - 1}")
    return label


def _read_tsv(path: Path, num_columns: int, header: Sequence[str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield `(line number, fields)` for each row of a tab-separated UTF-8 file.

    Rows are split on tabs and nothing else: quote characters are part of the text (a CSV reader
    would swallow the unbalanced quotes of the AAN documents), and only `\\n` ends a line (a stray
    `\\r` inside a document stays). `header`, when given, must be the first line. A file without
    a data row (zero bytes, or the header only) is an error: it would leave its split empty.
    """
    rows = 0
    with open(path, "rb") as file:
        for line_number, raw_line in enumerate(file, start=1):
            where = f"{path}:{line_number}"
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise LRAFormatError(f"{where}: not valid UTF-8 ({error.reason})") from None
            fields = line.removesuffix("\n").removesuffix("\r").split("\t")
            if line_number == 1 and header is not None:
                if fields != list(header):
                    expected = "\t".join(header)
                    raise LRAFormatError(f"{where}: expected the header {expected!r}, found {line!r}")
                continue
            if len(fields) != num_columns:
                raise LRAFormatError(f"{where}: expected {num_columns} tab-separated columns, found {len(fields)}")
            rows += 1
            yield line_number, fields
    if rows == 0:
        content = "only the header" if header is not None and path.stat().st_size else "no rows"
        raise LRAFormatError(f"{path}: {content}, no example; every split needs at least one")


def _natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders embedded numbers by value: `2_7.txt` before `10_1.txt`."""
    return tuple(int(part) if index % 2 else part for index, part in enumerate(re.split(r"(\d+)", name)))


def _stream_tarball(
    tarball: Path, wanted: Callable[[tuple[str, ...]], bool]
) -> Iterator[tuple[tuple[str, ...], bytes]]:
    """Yield `(path parts, contents)` of the regular files of a `.tar.gz` that `wanted` accepts.

    The tarball is read as a forward-only stream: nothing is extracted to disk, and the members are
    seen in the archive's order.
    """
    try:
        with tarfile.open(tarball, mode="r|gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if member.isfile() and wanted(parts):
                    yield parts, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:  # truncated or not a .tar.gz
        raise LRAFormatError(f"{tarball}: not a readable .tar.gz ({error})") from None


def _split_bounds(num_examples: int, fractions: Mapping[str, float]) -> dict[str, slice]:
    """Contiguous slices for the splits: the later splits get `int(fraction * n)`, train the rest."""
    sizes = {split: int(fraction * num_examples) for split, fraction in fractions.items()}
    sizes["train"] = num_examples - sum(sizes.values())
    bounds, start = {}, 0
    for split in ("train", *fractions):
        bounds[split] = slice(start, start + sizes[split])
        start += sizes[split]
    return bounds


# ---------------------------------------------------------------------------------------------------
# Base builder
# ---------------------------------------------------------------------------------------------------


class _LRABuilder(datasets.GeneratorBasedBuilder):
    """What the LRA builders share.

    * The dataset name defaults to `lra_<task>` (datasets would name every builder of this module
      `builders`), so each task gets its own cache folder.
    * `hash` defaults to a hash of this module's code, and the config id carries a fingerprint of
      the source files: a cached preparation is reused only for the same code and the same files.
    * `_locate` finds the source files below `config.data_dir`.

    Subclasses set `TASK`, `ORIGIN` (where the files come from, for error messages) and implement
    `_layouts`; `LABEL_NAMES` comes from the task registry (`lra.tasks.TASK_SPECS`).
    """

    VERSION = datasets.Version("1.0.0")
    TASK: ClassVar[str]
    LABEL_NAMES: ClassVar[tuple[str, ...]]
    ORIGIN: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TASK" in vars(cls):  # a task's builder, not an intermediate base such as _TsvBuilder
            cls.LABEL_NAMES = TASK_SPECS[cls.TASK].labels

    def __init__(self, *args: Any, dataset_name: str | None = None, hash: str | None = None, **kwargs: Any):
        super().__init__(*args, dataset_name=dataset_name or f"lra_{self.TASK}", hash=hash or _code_hash(), **kwargs)

    def _create_builder_config(
        self,
        config_name: str | None = None,
        custom_features: datasets.Features | None = None,
        config_id: str | None = None,
        **config_kwargs: Any,
    ) -> tuple[datasets.BuilderConfig, str]:
        builder_config, config_id = super()._create_builder_config(
            config_name=config_name, custom_features=custom_features, config_id=config_id, **config_kwargs
        )
        if builder_config.data_dir is not None:
            config_id = f"{config_id}-{_fingerprint(self._locate(builder_config))}"
        return builder_config, config_id

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        raise NotImplementedError

    def _locate(self, config: datasets.BuilderConfig | None = None) -> _Source:
        config = config or self.config
        return _locate(config.data_dir, self._layouts(config), task=self.TASK, origin=self.ORIGIN)

    @classmethod
    def label_names(cls, config_name: str) -> tuple[str, ...]:
        """The class names of a config: `LABEL_NAMES`, except where a config option chooses them (MNIST)."""
        return cls.LABEL_NAMES

    def _label_feature(self) -> datasets.ClassLabel:
        return datasets.ClassLabel(names=list(self.label_names(self.config.name)))

    def _dataset_info(
        self,
        features: Mapping[str, Any],
        *,
        description: str | None = None,
        homepage: str = "https://github.com/google-research/long-range-arena",
        citation: str | None = None,
    ) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description=description if description is not None else self.config.description or "",
            features=datasets.Features(features),
            supervised_keys=None,
            homepage=homepage,
            citation=citation if citation is not None else _LRA_CITATION,
        )


_LRA_CITATION = """\
@inproceedings{tay2021long,
  title     = {Long Range Arena: A Benchmark for Efficient Transformers},
  author    = {Yi Tay and Mostafa Dehghani and Samira Abnar and Yikang Shen and Dara Bahri and Philip Pham
               and Jinfeng Rao and Liu Yang and Sebastian Ruder and Donald Metzler},
  booktitle = {International Conference on Learning Representations},
  year      = {2021},
  url       = {https://openreview.net/forum?id=qVyeW-grC2k}
}
"""


# ---------------------------------------------------------------------------------------------------
# ListOps and Retrieval: one TSV file per split
# ---------------------------------------------------------------------------------------------------


class _TsvBuilder(_LRABuilder):
    """A task stored as one tab-separated file per split, all in `FOLDER`."""

    FOLDER: ClassVar[str]
    FILES: ClassVar[Mapping[str, str]]  # split -> file name

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        return (_Layout(self.FOLDER, tuple(self.FILES.values())),)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        source = self._locate()
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"path": source.path(name)})
            for split, name in self.FILES.items()
        ]


class ListOpsBuilder(_TsvBuilder):
    """ListOps: nested `MAX`/`MIN`/`MED`/`SM` expressions over digits; the label is the value.

    Reads `listops-1000/basic_{train,val,test}.tsv` (header `Source\\tTarget`). `text` is the
    source exactly as written, parentheses included; the tokenizer drops them.
    Features: `text` (string), `label` (ClassLabel `"0"`..`"9"`).
    """

    TASK = "listops"
    ORIGIN = f"{_LRA_RELEASE}, or `python -m lra generate listops --out DATA_DIR/listops-1000`"
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(
            name="listops", version=_LRABuilder.VERSION, description="ListOps (LRA), 96k/2k/2k expressions."
        )
    ]
    FOLDER = "listops-1000"
    FILES = {"train": "basic_train.tsv", "validation": "basic_val.tsv", "test": "basic_test.tsv"}

    def _info(self) -> datasets.DatasetInfo:
        return self._dataset_info({"text": datasets.Value("string"), "label": self._label_feature()})

    def _generate_examples(self, path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
        for line_number, (text, target) in _read_tsv(path, num_columns=2, header=("Source", "Target")):
            label = _parse_label(target, len(self.LABEL_NAMES), f"{path}:{line_number}")
            yield line_number, {"text": text, "label": label}


class RetrievalBuilder(_TsvBuilder):
    """Retrieval: do two papers of the ACL Anthology Network cite each other? (byte-level, two towers)

    Reads `tsv_data/new_aan_pairs.{train,eval,test}.tsv`: no header, five tab-separated columns
    `label, id1, id2, text1, text2`; the label may be written `0`/`1` or `0.0`/`1.0`.
    Texts are kept exactly, quote characters included; the paper ids are not kept.
    Features: `text1`, `text2` (string), `label` (ClassLabel `unrelated`/`related`).
    """

    TASK = "retrieval"
    ORIGIN = _LRA_RELEASE
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(
            name="retrieval", version=_LRABuilder.VERSION, description="AAN document retrieval (LRA)."
        )
    ]
    FOLDER = "tsv_data"
    FILES = {
        "train": "new_aan_pairs.train.tsv",
        "validation": "new_aan_pairs.eval.tsv",
        "test": "new_aan_pairs.test.tsv",
    }

    def _info(self) -> datasets.DatasetInfo:
        return self._dataset_info(
            {"text1": datasets.Value("string"), "text2": datasets.Value("string"), "label": self._label_feature()}
        )

    def _generate_examples(self, path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
        for line_number, (label, _id1, _id2, text1, text2) in _read_tsv(path, num_columns=5):
            label = _parse_label(label, len(self.LABEL_NAMES), f"{path}:{line_number}")
            yield line_number, {"text1": text1, "text2": text2, "label": label}


# ---------------------------------------------------------------------------------------------------
# Text (IMDb)
# ---------------------------------------------------------------------------------------------------


class TextBuilder(_LRABuilder):
    """Text: IMDb movie review sentiment, byte-level.

    Reads the Large Movie Review Dataset: the extracted `aclImdb/{train,test}/{neg,pos}/*.txt` or
    the tarball `aclImdb_v1.tar.gz` itself (members are streamed, nothing is extracted). Both give
    the same rows in the same order: `neg` then `pos`, files in natural order of their names
    (`<id>_<rating>.txt`). From the tarball one split's reviews (about 33 MB) are buffered to sort
    them. Splits follow S4: train = `train`, validation = `test`, test = `test`.
    Features: `text` (string, the review as written, HTML line breaks included), `label`
    (ClassLabel `neg`/`pos`).
    """

    TASK = "text"
    ORIGIN = (
        "the Large Movie Review Dataset, aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/ "
        "(the tarball itself or its extracted aclImdb/ folder)"
    )
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(
            name="text", version=_LRABuilder.VERSION, description="IMDb reviews, byte-level (LRA Text)."
        )
    ]
    _TARBALL = "aclImdb_v1.tar.gz"
    _SOURCE_SPLITS = {"train": "train", "validation": "test", "test": "test"}

    def _info(self) -> datasets.DatasetInfo:
        return self._dataset_info({"text": datasets.Value("string"), "label": self._label_feature()})

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        folders = tuple(f"{split}/{label}" for split in ("train", "test") for label in self.LABEL_NAMES)
        return _Layout("aclImdb", folders), _Layout("", (self._TARBALL,))

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        source = self._locate()
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"source": source, "source_split": source_split})
            for split, source_split in self._SOURCE_SPLITS.items()
        ]

    def _generate_examples(self, source: _Source, source_split: str) -> Iterator[tuple[Any, dict[str, Any]]]:
        if source.layout.entries == (self._TARBALL,):
            reviews = self._reviews_from_tarball(source.path(self._TARBALL), source_split)
        else:
            reviews = self._reviews_from_folder(source.root, source_split)
        counts = [0] * len(self.LABEL_NAMES)
        for label, name, data, where in reviews:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise LRAFormatError(f"{where}: not valid UTF-8 ({error.reason})") from None
            counts[label] += 1
            yield f"{self.LABEL_NAMES[label]}/{name}", {"text": text, "label": label}
        # A split with one class only trains or scores a constant classifier: refuse it.
        for label_name, count in zip(self.LABEL_NAMES, counts):
            if count == 0:
                from_tarball = source.layout.entries == (self._TARBALL,)
                folder = (
                    f"{source.path(self._TARBALL)}:aclImdb/{source_split}/{label_name}"
                    if from_tarball
                    else str(source.root / source_split / label_name)
                )
                raise LRADataNotFoundError(
                    f"{folder} holds no review (*.txt): the {source_split} reviews must have "
                    f"both classes ({' and '.join(self.LABEL_NAMES)}); expected {self.ORIGIN}"
                )

    def _reviews_from_folder(self, root: Path, split: str) -> Iterator[tuple[int, str, bytes, str]]:
        """Yield `(label, file name, contents, path)` of a split's reviews, in row order."""
        for label, label_name in enumerate(self.LABEL_NAMES):
            paths = sorted((root / split / label_name).glob("*.txt"), key=lambda path: _natural_key(path.name))
            for path in paths:
                yield label, path.name, path.read_bytes(), str(path)

    def _reviews_from_tarball(self, tarball: Path, split: str) -> Iterator[tuple[int, str, bytes, str]]:
        """Same as `_reviews_from_folder`, read from the tarball."""

        def wanted(parts: tuple[str, ...]) -> bool:  # aclImdb/<split>/<neg|pos>/<name>.txt
            return (
                len(parts) >= 4
                and parts[-4:-2] == ("aclImdb", split)
                and parts[-2] in self.LABEL_NAMES
                and parts[-1].endswith(".txt")
            )

        reviews = [
            (self.LABEL_NAMES.index(parts[-2]), parts[-1], data, f"{tarball}:{'/'.join(parts)}")
            for parts, data in _stream_tarball(tarball, wanted)
        ]
        # A tarball's member order is arbitrary: sort like the folder listing.
        reviews.sort(key=lambda review: (review[0], _natural_key(review[1])))
        return iter(reviews)


# ---------------------------------------------------------------------------------------------------
# Image (CIFAR-10)
# ---------------------------------------------------------------------------------------------------


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 batches that only rebuilds numpy arrays.

    The batches are pickles: refusing every other global means a tampered file cannot run code.
    The batches were written with numpy 1 (`numpy.core`); numpy 2 calls that module `numpy._core`.
    `_codecs.encode` is how Python 3 writes bytes in pickle protocols up to 2 (copies re-pickled
    with Python 3 use it).
    """

    _ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        module = module.replace("numpy.core.", "numpy._core.")
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which is not a numpy array")
        return super().find_class(module, name)


def _grayscale(rgb_planes: np.ndarray) -> np.ndarray:
    """Luma of CIFAR rows (`n x 3072`: the R, G and B planes), as `n x 1024` uint8.

    The rule of `image_processing_las.rgb_to_grayscale`, which the model's image processor applies too.
    """
    return rgb_to_grayscale(rgb_planes.reshape(len(rgb_planes), 3, -1), channel_axis=1)


def _read_cifar_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled CIFAR-10 batch into (grayscale pixels `n x 1024`, labels `n`)."""
    try:
        # encoding="bytes" is the official recipe for these Python 2 pickles.
        batch = _NumpyArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
        pixels = batch.get(b"data", batch.get("data"))
        labels = batch.get(b"labels", batch.get("labels"))
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as error:
        raise LRAFormatError(f"{where}: not a CIFAR-10 python batch ({error})") from None
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3072:
        raise LRAFormatError(f"{where}: 'data' must be a uint8 array of shape (n, 3072)")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(pixels),):
        raise LRAFormatError(f"{where}: {len(labels)} labels for {len(pixels)} images")
    if len(labels) and not (0 <= labels.min() and labels.max() < len(CIFAR10_LABELS)):
        raise LRAFormatError(f"{where}: labels out of range, expected 0..{len(CIFAR10_LABELS) - 1}")
    return _grayscale(pixels), labels


class ImageBuilder(_LRABuilder):
    """Image: CIFAR-10 as sequences of 1,024 grayscale pixels.

    Reads the CIFAR-10 python version: the tarball `cifar-10-python.tar.gz` (streamed) or its
    extracted `cifar-10-batches-py/` folder (`data_batch_1` .. `data_batch_5`, `test_batch`).
    train = the first 90% of the 50,000 training images in batch order (45,000), validation = the last
    10% (5,000), test = `test_batch`. Pixels are the rounded luma, row-major (see the module doc).
    Features: `pixels` (1,024 uint8), `label` (ClassLabel, the CIFAR-10 class names).
    """

    TASK = "image"
    ORIGIN = (
        "CIFAR-10 (python version), cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
        "(the tarball itself or its extracted cifar-10-batches-py/ folder)"
    )
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(
            name="image", version=_LRABuilder.VERSION, description="CIFAR-10, grayscale pixel sequences (LRA Image)."
        )
    ]
    _TARBALL = "cifar-10-python.tar.gz"
    _FOLDER = "cifar-10-batches-py"
    _TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
    _TEST_BATCH = "test_batch"
    _VALIDATION_FRACTION = 0.1

    def _info(self) -> datasets.DatasetInfo:
        return self._dataset_info(
            {
                "pixels": datasets.List(datasets.Value("uint8"), length=TASK_SPECS[self.TASK].default_length),
                "label": self._label_feature(),
            }
        )

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        return _Layout(self._FOLDER, (*self._TRAIN_BATCHES, self._TEST_BATCH)), _Layout("", (self._TARBALL,))

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        # All of CIFAR-10 in grayscale is 60 MB: read it once, then slice the splits.
        batches = self._read_batches(self._locate())
        train_pixels = np.concatenate([batches[name][0] for name in self._TRAIN_BATCHES])
        train_labels = np.concatenate([batches[name][1] for name in self._TRAIN_BATCHES])
        bounds = _split_bounds(len(train_labels), {"validation": self._VALIDATION_FRACTION})
        splits = {split: (train_pixels[bound], train_labels[bound]) for split, bound in bounds.items()}
        splits["test"] = batches[self._TEST_BATCH]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"pixels": pixels, "labels": labels})
            for split, (pixels, labels) in splits.items()
        ]

    def _read_batches(self, source: _Source) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        names = (*self._TRAIN_BATCHES, self._TEST_BATCH)
        if source.layout.folder == self._FOLDER:
            return {name: _read_cifar_batch(source.path(name).read_bytes(), str(source.path(name))) for name in names}
        tarball = source.path(self._TARBALL)
        members = _stream_tarball(tarball, lambda parts: parts[-2:-1] == (self._FOLDER,) and parts[-1] in names)
        batches = {parts[-1]: _read_cifar_batch(data, f"{tarball}:{'/'.join(parts)}") for parts, data in members}
        missing = [name for name in names if name not in batches]
        if missing:
            raise LRADataNotFoundError(
                f"{tarball} lacks {', '.join(f'{self._FOLDER}/{name}' for name in missing)}; expected {self.ORIGIN}"
            )
        return batches

    def _generate_examples(self, pixels: np.ndarray, labels: np.ndarray) -> Iterator[tuple[Any, dict[str, Any]]]:
        for index, (row, label) in enumerate(zip(pixels, labels)):
            yield index, {"pixels": row.tolist(), "label": int(label)}  # Python ints: see PathfinderBuilder


# ---------------------------------------------------------------------------------------------------
# Pathfinder and Path-X
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PathfinderConfig(datasets.BuilderConfig):
    """A Pathfinder variant: image side `resolution` (32, 64, 128, 256) and contour length
    `difficulty` (6, 9, 14). LRA's Pathfinder is 32 / 14; Path-X is 128 / 14."""

    resolution: int = PATHFINDER_DEFAULT_RESOLUTION
    difficulty: int = PATHFINDER_DEFAULT_DIFFICULTY

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution not in PATHFINDER_RESOLUTIONS:
            raise ValueError(f"resolution must be one of {list(PATHFINDER_RESOLUTIONS)}, got {self.resolution!r}")
        if self.difficulty not in PATHFINDER_DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {list(PATHFINDER_DIFFICULTIES)}, got {self.difficulty!r}")

    @property
    def folder(self) -> str:
        return f"pathfinder{self.resolution}/{PATHFINDER_DIFFICULTIES[self.difficulty]}"


def pathfinder_config_name(resolution: int, difficulty: int) -> str:
    """Name of the predefined config, e.g. `pathfinder32_curv_contour_length_14`."""
    return f"pathfinder{resolution}_{PATHFINDER_DIFFICULTIES[difficulty]}"


@dataclasses.dataclass(frozen=True)
class _ImageRecord:
    """One line of a Pathfinder metadata file."""

    path: str  # relative to the difficulty folder, e.g. "imgs/0/sample_3.png"
    label: int
    where: str  # "<metadata file>:<line>", for error messages


class _UnreadableImage(Exception):
    """An image file that exists but cannot be decoded (empty or truncated)."""


def _read_grayscale_png(path: Path, resolution: int, where: str) -> np.ndarray:
    """Pixels of a `resolution` x `resolution` image in grayscale, row-major, as uint8.

    The release's images are 8-bit grayscale and are kept as they are; any other 8-bit mode goes
    through `image_processing_las.image_to_grayscale`, the rule of the model's image processor.
    Raises `_UnreadableImage` for a file that cannot be decoded, and `LRAFormatError`
    for one of another size or of a mode with more than 8 bits (that is a wrong data set, not a
    damaged file).
    """
    try:
        with PIL.Image.open(path) as image:
            image.load()
            if image.size != (resolution, resolution):
                raise LRAFormatError(
                    f"{path} (listed at {where}): expected a {resolution}x{resolution} grayscale "
                    f"image, found {image.size[0]}x{image.size[1]} mode {image.mode}"
                )
            try:
                return image_to_grayscale(image).reshape(-1)
            except ValueError as error:
                raise LRAFormatError(f"{path} (listed at {where}): {error}") from None
    except FileNotFoundError:
        raise LRADataNotFoundError(
            f"{path} (listed at {where}) is missing: the Pathfinder data is incomplete"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:  # PIL reports damaged PNGs in all three ways
        raise _UnreadableImage(f"{path}: {error}") from None


class PathfinderBuilder(_LRABuilder):
    """Pathfinder and Path-X: are the two marked dots connected by a path? (sequences of pixels)

    Reads `pathfinder{R}/{curv_baseline|curv_contour_length_9|curv_contour_length_14}/`: the
    metadata files `metadata/<k>.npy` are text despite their name, one line per image
    (`imgs/<k> sample_<i>.png <i> <label>`); the images are `imgs/<k>/sample_<i>.png`, 8-bit
    grayscale. Metadata files are taken in order of their integer stem, lines in file order; the
    first 80% of images are train, the next 10% validation, the last 10% test.

    Images are read one at a time with Pillow and written as uint8, so even Path-X (200k x 16,384
    pixels) is prepared in constant memory. An image that cannot be decoded is skipped with a warning
    naming it, and each split ends with one warning counting the skipped images.
    Features: `pixels` (R*R uint8), `label` (ClassLabel `disconnected`/`connected`).
    """

    TASK = "pathfinder"
    ORIGIN = (
        f"{_LRA_RELEASE}, or `python -m lra generate pathfinder --out DATA_DIR --num N "
        f"[--resolution R] [--difficulty D]`"
    )
    BUILDER_CONFIG_CLASS = PathfinderConfig
    BUILDER_CONFIGS = [
        PathfinderConfig(
            name=pathfinder_config_name(resolution, difficulty),
            version=_LRABuilder.VERSION,
            resolution=resolution,
            difficulty=difficulty,
            description=f"Pathfinder {resolution}x{resolution}, contour length {difficulty}.",
        )
        for resolution in PATHFINDER_RESOLUTIONS
        for difficulty in PATHFINDER_DIFFICULTIES
    ] + [
        PathfinderConfig(
            name="pathx",
            version=_LRABuilder.VERSION,
            resolution=PATHX_RESOLUTION,
            difficulty=PATHFINDER_DEFAULT_DIFFICULTY,
            description=f"Path-X: Pathfinder {PATHX_RESOLUTION}x{PATHX_RESOLUTION}, contour length "
            f"{PATHFINDER_DEFAULT_DIFFICULTY} (LRA).",
        ),
    ]
    DEFAULT_CONFIG_NAME = pathfinder_config_name(PATHFINDER_DEFAULT_RESOLUTION, PATHFINDER_DEFAULT_DIFFICULTY)
    _SPLIT_FRACTIONS = {"validation": 0.1, "test": 0.1}

    def _info(self) -> datasets.DatasetInfo:
        length = self.config.resolution**2
        return self._dataset_info(
            {"pixels": datasets.List(datasets.Value("uint8"), length=length), "label": self._label_feature()}
        )

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        return (_Layout(config.folder, ("metadata", "imgs")),)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        source = self._locate()
        records = self._read_metadata(source.path("metadata"))
        problem = incomplete_generation(source.root, len(records))
        if problem:
            raise LRADataNotFoundError(problem)
        bounds = _split_bounds(len(records), self._SPLIT_FRACTIONS)
        for split, bound in bounds.items():
            if bound.start == bound.stop:
                raise LRADataNotFoundError(
                    f"{source.path('metadata')} lists {len(records)} image(s): the {split} split (10%) would be "
                    f"empty; Pathfinder needs at least 10 images"
                )
        # Lists in gen_kwargs are what datasets shards across processes when num_proc > 1.
        return [
            datasets.SplitGenerator(
                name=split, gen_kwargs={"root": source.root, "records": records[bound], "split": split}
            )
            for split, bound in bounds.items()
        ]

    def _read_metadata(self, metadata_dir: Path) -> list[_ImageRecord]:
        """All metadata lines, files in order of their integer stem (`2.npy` before `10.npy`)."""
        files = []
        for path in metadata_dir.glob("*.npy"):
            if not path.stem.isdigit():
                raise LRAFormatError(f"{path}: Pathfinder metadata files are named <integer>.npy")
            files.append(path)
        records = []
        for path in sorted(files, key=lambda path: int(path.stem)):
            records.extend(self._read_metadata_file(path))
        if not records:
            raise LRADataNotFoundError(f"{metadata_dir} lists no images; expected {self.ORIGIN}")
        return records

    def _read_metadata_file(self, path: Path) -> Iterator[_ImageRecord]:
        try:
            lines = path.read_text(encoding="ascii").splitlines()
        except UnicodeDecodeError:
            raise LRAFormatError(f"{path}: not a Pathfinder metadata file (text lines expected)") from None
        for line_number, line in enumerate(lines, start=1):
            where = f"{path}:{line_number}"
            fields = line.split()
            if len(fields) < 4:
                raise LRAFormatError(
                    f"{where}: expected at least 4 space-separated fields "
                    f"(imgs/<k> sample_<i>.png <i> <label>), found {len(fields)}"
                )
            label = _parse_label(fields[3], len(self.LABEL_NAMES), where)
            yield _ImageRecord(f"{fields[0]}/{fields[1]}", label, where)

    def _generate_examples(
        self, root: Path, records: Sequence[_ImageRecord], split: str
    ) -> Iterator[tuple[Any, dict[str, Any]]]:
        skipped = []
        for record in records:
            try:
                pixels = _read_grayscale_png(root / record.path, self.config.resolution, record.where)
            except _UnreadableImage as error:
                logger.warning("Skipping unreadable Pathfinder image %s", error)
                skipped.append(str(root / record.path))
                continue
            # A list of Python ints: datasets turns it into Arrow about twice as fast as a numpy array
            # (which it would split into numpy scalars).
            yield record.path, {"pixels": pixels.tolist(), "label": record.label}
        if skipped:
            shown = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if len(skipped) > 10 else "")
            warnings.warn(
                f"{self.config.name} {split} split: skipped {len(skipped)} unreadable image(s) of "
                f"{len(records)}: {shown}",
                stacklevel=2,
            )


# ---------------------------------------------------------------------------------------------------
# Sequential and permuted MNIST (idx files)
# ---------------------------------------------------------------------------------------------------

_MNIST_SIDE = 28
#: Seed of the pMNIST pixel order (our choice; any fixed value would do, this one is everyone's).
PMNIST_SEED = 0

_MNIST_CITATIONS: Mapping[str, str] = {
    "digits": """\\
@article{lecun1998gradient,
  title   = {Gradient-based learning applied to document recognition},
  author  = {LeCun, Yann and Bottou, L{\\'e}on and Bengio, Yoshua and Haffner, Patrick},
  journal = {Proceedings of the IEEE},
  volume  = {86},
  number  = {11},
  pages   = {2278--2324},
  year    = {1998}
}
""",
    "fashion": """\\
@article{xiao2017fashion,
  title   = {Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms},
  author  = {Xiao, Han and Rasul, Kashif and Vollgraf, Roland},
  journal = {arXiv preprint arXiv:1708.07747},
  year    = {2017}
}
""",
}
_MNIST_HOMEPAGES: Mapping[str, str] = {
    "digits": "http://yann.lecun.com/exdb/mnist/",
    "fashion": "https://github.com/zalandoresearch/fashion-mnist",
}


@functools.cache
def _pmnist_permutation(num_pixels: int) -> np.ndarray:
    permutation = np.random.RandomState(PMNIST_SEED).permutation(num_pixels)
    permutation.flags.writeable = False  # cached and shared: nobody may change it
    return permutation


def pmnist_permutation(num_pixels: int = _MNIST_SIDE**2) -> np.ndarray:
    """The fixed pixel order of pMNIST: position `i` of a sequence holds pixel `perm[i]` of the
    row-major 28x28 image (`num_pixels=196`: of the 14x14 image of `encode(..., pixel_pool_size=2)`, with
    `RandomState(PMNIST_SEED).permutation(196)`).

    `perm = numpy.random.RandomState(PMNIST_SEED).permutation(784)`: NumPy's legacy `RandomState`
    stream is frozen (NEP 19), so every NumPy version gives the same array. It starts
    `[693, 85, 647, 392, 765, ...]`; the full list is also in the prepared data set's
    `info.description`.
    """
    return _pmnist_permutation(num_pixels)


@dataclasses.dataclass
class MNISTConfig(datasets.BuilderConfig):
    """Sequential MNIST: `permuted` selects pMNIST, `labels` the class names (`"digits"` for
    MNIST, `"fashion"` for Fashion-MNIST; the files have the same format, so the data cannot say)."""

    permuted: bool = False
    labels: str = "digits"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.labels not in MNIST_LABELS:
            raise ValueError(f"labels must be one of {list(MNIST_LABELS)}, got {self.labels!r}")


def mnist_config_name(permuted: bool, labels: str) -> str:
    """Name of the predefined config: `smnist`, `pmnist`, `smnist_fashion`, `pmnist_fashion`."""
    task = "pmnist" if permuted else "smnist"
    return task if labels == "digits" else f"{task}_{labels}"


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """The array stored in an idx file of unsigned bytes (plain or gzipped), checked against its header.

    `kind` is `"images"` (magic `0x00000803`: n x rows x cols) or `"labels"` (`0x00000801`:
    n). A wrong magic number, a file shorter or longer than its header announces, and a damaged gzip
    stream are `LRAFormatError`\\ s naming the file.
    """
    ndim = 3 if kind == "images" else 1
    expected_magic = 0x0800 + ndim  # 0x08: unsigned byte, then the number of dimensions
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise LRAFormatError(f"{path}: not a readable gzip file ({error})") from None
    header_size = 4 * (1 + ndim)
    if len(data) < 4:
        raise LRAFormatError(f"{path}: truncated: {len(data)} bytes, not even an idx magic number")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise LRAFormatError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(an idx file of {kind}, unsigned bytes)"
        )
    if len(data) < header_size:
        raise LRAFormatError(f"{path}: truncated: {len(data)} bytes, shorter than the {header_size}-byte header")
    shape = tuple(int.from_bytes(data[start : start + 4], "big") for start in range(4, header_size, 4))
    size = header_size + int(np.prod(shape))
    announced = f"{shape[0]:,} {kind}" + (f" of {shape[1]}x{shape[2]} pixels" if kind == "images" else "")
    if len(data) < size:
        raise LRAFormatError(
            f"{path}: truncated: the header announces {announced} ({size:,} bytes), the file has {len(data):,} bytes"
        )
    if len(data) > size:
        raise LRAFormatError(f"{path}: {len(data) - size:,} bytes after the {announced} the header announces")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _read_mnist_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n x 784, row-major) and labels (n) of one idx pair, with the checks that span both files."""
    images = _read_idx(images_path, "images")
    labels = _read_idx(labels_path, "labels")
    if images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise LRAFormatError(
            f"{images_path}: expected {_MNIST_SIDE}x{_MNIST_SIDE} images, found {images.shape[1]}x{images.shape[2]}"
        )
    if len(labels) != len(images):
        raise LRAFormatError(f"{labels_path}: {len(labels):,} labels for the {len(images):,} images of {images_path}")
    out_of_range = np.flatnonzero(labels >= len(MNIST_LABELS["digits"]))
    if len(out_of_range):
        index = int(out_of_range[0])
        raise LRAFormatError(f"{labels_path}: label {labels[index]} of image {index} is out of range, expected 0..9")
    return images.reshape(len(images), -1), labels


class SequentialMNISTBuilder(_LRABuilder):
    """Sequential MNIST (sMNIST) and permuted MNIST (pMNIST): classify a 28x28 image read pixel by pixel.

    Not an LRA task; the LaS paper reports both. Reads the four idx files of MNIST or of
    Fashion-MNIST (same format), all gzipped or all plain, in `data_dir` itself:
    `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
    `t10k-labels-idx1-ubyte` (each with or without `.gz`). train = the first 90% of the training
    file (54,000 of 60,000), validation = its last 10% (6,000), test = the t10k files (10,000).
    `pmnist` reorders every sequence by `pmnist_permutation`.

    Which classes the labels 0..9 stand for is not in the files: the config option `labels`
    (`"digits"`, the default, or `"fashion"`) says it. A data dir whose path names
    `fashion` loaded with `labels="digits"` gets a warning.
    Features: `pixels` (784 uint8), `label` (ClassLabel, `MNIST_LABELS`).
    """

    TASK = "smnist"
    ORIGIN = (
        "MNIST (http://yann.lecun.com/exdb/mnist/) or Fashion-MNIST "
        "(https://github.com/zalandoresearch/fashion-mnist; on Debian and Ubuntu `apt-get install "
        "dataset-fashion-mnist` installs it in /usr/share/datasets/fashion-mnist; load it with "
        "labels='fashion'), the four idx files as distributed"
    )
    BUILDER_CONFIG_CLASS = MNISTConfig
    BUILDER_CONFIGS = [
        MNISTConfig(
            name=mnist_config_name(permuted, labels),
            version=_LRABuilder.VERSION,
            permuted=permuted,
            labels=labels,
            description=f"{'Permuted' if permuted else 'Sequential'} "
            f"{'Fashion-MNIST' if labels == 'fashion' else 'MNIST'}: 28x28 images as sequences "
            f"of 784 pixels{', in a fixed permuted order' if permuted else ', row-major'}.",
        )
        for permuted in (False, True)
        for labels in MNIST_LABELS
    ]
    DEFAULT_CONFIG_NAME = "smnist"
    _FILES: Mapping[str, tuple[str, str]] = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
    _VALIDATION_FRACTION = 0.1

    @classmethod
    def label_names(cls, config_name: str) -> tuple[str, ...]:
        return MNIST_LABELS[cls.builder_configs[config_name].labels]

    def _label_feature(self) -> datasets.ClassLabel:
        return datasets.ClassLabel(names=list(MNIST_LABELS[self.config.labels]))

    def _info(self) -> datasets.DatasetInfo:
        description = self.config.description or ""
        if self.config.permuted:
            # Stored with the data, so that a prepared copy says which order it uses.
            description += (
                f" Position i holds pixel perm[i] of the row-major image, perm = "
                f"numpy.random.RandomState({PMNIST_SEED}).permutation(784) = "
                f"{pmnist_permutation().tolist()}."
            )
        return self._dataset_info(
            {"pixels": datasets.List(datasets.Value("uint8"), length=_MNIST_SIDE**2), "label": self._label_feature()},
            description=description,
            homepage=_MNIST_HOMEPAGES[self.config.labels],
            citation=_MNIST_CITATIONS[self.config.labels],
        )

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        names = tuple(name for pair in self._FILES.values() for name in pair)
        return _Layout("", tuple(f"{name}.gz" for name in names)), _Layout("", names)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        source = self._locate()
        if self.config.labels == "digits" and "fashion" in str(source.root).lower():
            logger.warning(
                "Reading %s with labels='digits' (MNIST's class names): pass labels='fashion' if these "
                "are the Fashion-MNIST files",
                source.root,
            )
        suffix = ".gz" if source.layout.entries[0].endswith(".gz") else ""
        pairs = {
            split: _read_mnist_pair(source.path(images + suffix), source.path(labels + suffix))
            for split, (images, labels) in self._FILES.items()
        }
        train_pixels, train_labels = pairs["train"]
        bounds = _split_bounds(len(train_labels), {"validation": self._VALIDATION_FRACTION})
        splits = {split: (train_pixels[bound], train_labels[bound]) for split, bound in bounds.items()}
        splits["test"] = pairs["test"]
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"pixels": pixels, "labels": labels})
            for split, (pixels, labels) in splits.items()
        ]

    def _generate_examples(self, pixels: np.ndarray, labels: np.ndarray) -> Iterator[tuple[Any, dict[str, Any]]]:
        if self.config.permuted:
            pixels = pixels[:, pmnist_permutation()]
        for index, (row, label) in enumerate(zip(pixels, labels)):
            yield index, {"pixels": row.tolist(), "label": int(label)}  # Python ints: see PathfinderBuilder


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
    CIFAR-10; see `lra.hub_data`) read it with `datasets.load_dataset` instead, and give the
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
    from .hub_data import HUB_SOURCES, load_lra_from_hub  # here: lra.hub_data imports this module

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
        if isinstance(error.__cause__, LRADataError):
            raise error.__cause__ from None
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

"""The LRA tasks read from text files: ListOps and Retrieval (one TSV file per split) and Text (IMDb reviews)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import datasets

from .base import (
    _LRA_RELEASE,
    LRADataNotFoundError,
    LRAFormatError,
    _Layout,
    _LRABuilder,
    _natural_key,
    _parse_label,
    _read_tsv,
    _Source,
    _stream_tarball,
)

# ---------------------------------------------------------------------------------------------------
# ListOps and Retrieval: one TSV file per split
# ---------------------------------------------------------------------------------------------------


class _TsvBuilder(_LRABuilder):
    """A task stored as one tab-separated file per split, all in ``FOLDER``."""

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
    """ListOps: nested ``MAX``/``MIN``/``MED``/``SM`` expressions over digits; the label is the value.

    Reads ``listops-1000/basic_{train,val,test}.tsv`` (header ``Source\\tTarget``). ``text`` is the
    source exactly as written, parentheses included; the tokenizer drops them.
    Features: ``text`` (string), ``label`` (ClassLabel ``"0"``..``"9"``).
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

    Reads ``tsv_data/new_aan_pairs.{train,eval,test}.tsv``: no header, five tab-separated columns
    ``label, id1, id2, text1, text2``; the label may be written ``0``/``1`` or ``0.0``/``1.0``.
    Texts are kept exactly, quote characters included; the paper ids are not kept.
    Features: ``text1``, ``text2`` (string), ``label`` (ClassLabel ``unrelated``/``related``).
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

    Reads the Large Movie Review Dataset: the extracted ``aclImdb/{train,test}/{neg,pos}/*.txt`` or
    the tarball ``aclImdb_v1.tar.gz`` itself (members are streamed, nothing is extracted). Both give
    the same rows in the same order: ``neg`` then ``pos``, files in natural order of their names
    (``<id>_<rating>.txt``). From the tarball one split's reviews (about 33 MB) are buffered to sort
    them. Splits follow S4: train = ``train``, validation = ``test``, test = ``test``.
    Features: ``text`` (string, the review as written, HTML line breaks included), ``label``
    (ClassLabel ``neg``/``pos``).
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
        """Yield ``(label, file name, contents, path)`` of a split's reviews, in row order."""
        for label, label_name in enumerate(self.LABEL_NAMES):
            paths = sorted((root / split / label_name).glob("*.txt"), key=lambda path: _natural_key(path.name))
            for path in paths:
                yield label, path.name, path.read_bytes(), str(path)

    def _reviews_from_tarball(self, tarball: Path, split: str) -> Iterator[tuple[int, str, bytes, str]]:
        """Same as :meth:`_reviews_from_folder`, read from the tarball."""

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

"""The LRA tasks read from text files: ListOps and Retrieval (one TSV file per split) and Text (IMDb reviews)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import datasets

from ..tasks import LISTOPS_SYMBOLS
from .base import (
    _LRA_RELEASE,
    LRADataNotFoundError,
    LRAFormatError,
    _Layout,
    _LRABuilder,
    _natural_key,
    _parse_label,
    _read_tsv,
    _reading,
    _Source,
    _stream_tarball,
)

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


_LISTOPS_VOCABULARY = frozenset(LISTOPS_SYMBOLS)
# Control characters: str.split and the tokenizer disagree on some (U+001C..U+001F), and none belongs in a source.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _listops_problem(text: str) -> str | None:
    """Why a ListOps source is not made of the task's closed vocabulary (`lra.tasks.LISTOPS_SYMBOLS`), or None.

    Anything else would reach the model as `<unk>`, silently: `[max`, `[MAXX`, `12`, a digit of another
    script, a NUL byte, an empty source. Tokens are split as the tokenizer splits them: parentheses and white
    space separate them. (About 0.1 ms for a row of 2,000 tokens.)
    """
    control = _CONTROL_CHARACTER.search(text)
    if control:
        character = "a NUL byte" if control.group() == "\0" else f"the control character U+{ord(control.group()):04X}"
        return f"{character} at column {control.start() + 1} (a binary or damaged file?)"
    tokens = text.replace("(", " ").replace(")", " ").split()
    if not tokens:
        return f"the source {text!r} has no token"
    if _LISTOPS_VOCABULARY.issuperset(tokens):
        return None
    position, token = next(
        (index, token) for index, token in enumerate(tokens, start=1) if token not in _LISTOPS_VOCABULARY
    )
    return (
        f"token {position}, {token!r}, is not in ListOps' vocabulary ({' '.join(LISTOPS_SYMBOLS)}, and the "
        "parentheses)"
    )


class ListOpsBuilder(_TsvBuilder):
    """ListOps: nested `MAX`/`MIN`/`MED`/`SM` expressions over digits; the label is the value.

    Reads `listops-1000/basic_{train,val,test}.tsv` (header `Source\\tTarget`). `text` is the
    source exactly as written, parentheses included; the tokenizer drops them. The vocabulary is closed: a
    source with anything but its tokens, parentheses and white space (`[max`, `[MAXX`, `١`, a NUL byte,
    nothing at all) is an `LRAFormatError` naming the file and line, not a row of `<unk>`.
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
            problem = _listops_problem(text)
            if problem:
                raise LRAFormatError(f"{path}:{line_number}: {problem}")
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

    A copy that would load short is refused, not read: a tarball whose gzip stream ends early or fails its
    checksum (a cut download), and a folder or tarball whose review counts are not what it declares. The
    release declares them itself: `aclImdb/<split>/urls_<label>.txt` lists one URL per review (12,500 in each of
    the four), and the count of `*.txt` reviews must match it. A copy without these lists (a hand-made subset,
    a test fixture) must hold as many `neg` as `pos` reviews in each split, as the release does (a partly
    extracted folder seldom does); a subset that is unbalanced on purpose declares its counts with the lists.
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
    #: Reviews per class and split in the release (and lines of each urls_<label>.txt).
    RELEASE_REVIEWS_PER_CLASS = 12_500

    def _info(self) -> datasets.DatasetInfo:
        return self._dataset_info({"text": datasets.Value("string"), "label": self._label_feature()})

    def _layouts(self, config: datasets.BuilderConfig) -> tuple[_Layout, ...]:
        folders = tuple(f"{split}/{label}" for split in ("train", "test") for label in self.LABEL_NAMES)
        lists = tuple(f"{split}/urls_{label}.txt" for split in ("train", "test") for label in self.LABEL_NAMES)
        return _Layout("aclImdb", folders, optional=lists), _Layout("", (self._TARBALL,))

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        source = self._locate()
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"source": source, "source_split": source_split})
            for split, source_split in self._SOURCE_SPLITS.items()
        ]

    def _generate_examples(self, source: _Source, source_split: str) -> Iterator[tuple[Any, dict[str, Any]]]:
        if self._from_tarball(source):
            reviews, listed = self._read_tarball(source.path(self._TARBALL), source_split)
        else:
            reviews = self._reviews_from_folder(source.root, source_split)
            listed = self._listed_in_folder(source.root, source_split)
        counts = [0] * len(self.LABEL_NAMES)
        for label, name, data, where in reviews:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                raise LRAFormatError(f"{where}: not valid UTF-8 ({error.reason})") from None
            counts[label] += 1
            yield f"{self.LABEL_NAMES[label]}/{name}", {"text": text, "label": label}
        self._check_counts(source, source_split, counts, listed)

    def _from_tarball(self, source: _Source) -> bool:
        return source.layout.entries == (self._TARBALL,)

    def _folder(self, source: _Source, split: str, name: str) -> str:
        """How messages name `aclImdb/<split>/<name>`: a path, or a member of the tarball."""
        if self._from_tarball(source):
            return f"{source.path(self._TARBALL)}:aclImdb/{split}/{name}"
        return str(source.root / split / name)

    def _check_counts(self, source: _Source, split: str, counts: list[int], listed: Mapping[str, int]) -> None:
        """Refuse a split that lacks a class, or whose review counts differ from the copy's own (see the class doc)."""
        folders = {label: self._folder(source, split, label) for label in self.LABEL_NAMES}
        # A split with one class only trains or scores a constant classifier.
        for label, count in zip(self.LABEL_NAMES, counts):
            if count == 0:
                raise LRADataNotFoundError(
                    f"{folders[label]} holds no review (*.txt): the {split} reviews must have "
                    f"both classes ({' and '.join(self.LABEL_NAMES)}); expected {self.ORIGIN}"
                )
        for label, count in zip(self.LABEL_NAMES, counts):
            if label in listed and count != listed[label]:
                manifest = self._folder(source, split, f"urls_{label}.txt")
                raise LRADataNotFoundError(
                    f"{folders[label]} holds {count:,} reviews, but {manifest} lists {listed[label]:,}: the copy "
                    f"is incomplete (a partly extracted or cut {self._TARBALL}?); extract the tarball again, or "
                    "read the tarball itself"
                )
        if not listed and len(set(counts)) > 1:
            found = ", ".join(f"{count:,} in {folders[label]}" for label, count in zip(self.LABEL_NAMES, counts))
            raise LRADataNotFoundError(
                f"The {split} reviews are unbalanced ({found}); the release has "
                f"{self.RELEASE_REVIEWS_PER_CLASS:,} of each, so the copy is probably incomplete (a partly extracted "
                f"{self._TARBALL}?). Extract it again; a subset unbalanced on purpose declares its counts as the "
                f"release does, with aclImdb/{split}/urls_<label>.txt listing one line per review"
            )

    def _listed_in_folder(self, root: Path, split: str) -> dict[str, int]:
        """Label -> number of reviews `aclImdb/<split>/urls_<label>.txt` lists, for the lists that exist."""
        listed = {}
        for label in self.LABEL_NAMES:
            path = root / split / f"urls_{label}.txt"
            if path.exists():
                with _reading(path):
                    listed[label] = len(path.read_bytes().splitlines())
        return listed

    def _reviews_from_folder(self, root: Path, split: str) -> Iterator[tuple[int, str, bytes, str]]:
        """Yield `(label, file name, contents, path)` of a split's reviews, in row order."""
        for label, label_name in enumerate(self.LABEL_NAMES):
            paths = sorted((root / split / label_name).glob("*.txt"), key=lambda path: _natural_key(path.name))
            for path in paths:
                with _reading(path):
                    data = path.read_bytes()
                yield label, path.name, data, str(path)

    def _read_tarball(self, tarball: Path, split: str) -> tuple[Iterator[tuple[int, str, bytes, str]], dict[str, int]]:
        """The reviews of `_reviews_from_folder` and the lists of `_listed_in_folder`, from the tarball."""
        lists = {f"urls_{label}.txt": label for label in self.LABEL_NAMES}

        def wanted(parts: tuple[str, ...]) -> bool:  # aclImdb/<split>/<neg|pos>/<name>.txt or aclImdb/<split>/urls_*
            if len(parts) >= 3 and parts[-3:-1] == ("aclImdb", split) and parts[-1] in lists:
                return True
            return (
                len(parts) >= 4
                and parts[-4:-2] == ("aclImdb", split)
                and parts[-2] in self.LABEL_NAMES
                and parts[-1].endswith(".txt")
            )

        reviews, listed = [], {}
        for parts, data in _stream_tarball(tarball, wanted):
            if parts[-2] == split:
                listed[lists[parts[-1]]] = len(data.splitlines())
            else:
                reviews.append((self.LABEL_NAMES.index(parts[-2]), parts[-1], data, f"{tarball}:{'/'.join(parts)}"))
        # A tarball's member order is arbitrary: sort like the folder listing.
        reviews.sort(key=lambda review: (review[0], _natural_key(review[1])))
        return iter(reviews), listed

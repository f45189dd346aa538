"""What the LRA builders share: finding a task's source files, the errors, reading helpers and the base builder.

Every module of `lra.builders` builds on this one; it imports no builder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import gzip
import hashlib
import os
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import datasets

import image_processing_las

from ..tasks import TASK_SPECS

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


class LRAReadError(LRADataError, OSError):
    """A source file exists but cannot be read (permission denied, an I/O error, too many open files, a folder where
    a file belongs); the message names it. Nothing is prepared or cached: fix the cause and load again."""


def _os_error_reason(error: OSError) -> str:
    """`"Permission denied (EACCES)"`: the system's words and the errno name, which users search for."""
    reason = error.strerror or str(error) or type(error).__name__
    name = errno.errorcode.get(error.errno) if error.errno is not None else None
    return f"{reason} ({name})" if name else reason


@contextlib.contextmanager
def _reading(path: Path | str, *, listed_at: str | None = None, missing_hint: str | None = None) -> Iterator[None]:
    """Turn an `OSError` raised while reading `path` into an `LRADataError` that names it.

    Where the error would otherwise surface matters: `datasets` wraps whatever a generator raises in its
    generic "An error occurred while generating the dataset", and `lra.load_lra` unwraps only our errors,
    so that the last line a user reads names the file. A missing file is `LRADataNotFoundError`, any
    other failure `LRAReadError`. Wrap only the reading itself, not the decoding: a damaged gzip or
    PNG is a format error, which the caller reports as such.
    """
    name = f"{path} (listed at {listed_at})" if listed_at else str(path)
    try:
        yield
    except LRADataError:
        raise
    except FileNotFoundError:
        raise LRADataNotFoundError(f"{name} is missing" + (f": {missing_hint}" if missing_hint else "")) from None
    except OSError as error:
        raise LRAReadError(
            f"{name} cannot be read: {_os_error_reason(error)}; nothing was prepared or cached: fix the cause "
            "and load again"
        ) from None


# ---------------------------------------------------------------------------------------------------
# Locating the source files
# ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Layout:
    """One way a task's data can be laid out: a `folder` holding all of `entries`.

    `folder` is a relative path such as `"listops-1000"` or `"pathfinder32/curv_baseline"`
    (`""` for files that sit directly in an archive root, like a tarball); `entries` are files or
    directories inside it. `optional` entries are read where they exist (IMDb's lists of reviews): they do not
    select a layout, but they count in the fingerprint.
    """

    folder: str
    entries: tuple[str, ...]
    optional: tuple[str, ...] = ()

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
    optional = [entry for entry in source.layout.optional if source.path(entry).exists()]
    for entry in (*source.layout.entries, *optional):
        for item in _files_below(source.path(entry)):
            stat = item.stat()
            stats.append(f"{item.relative_to(source.root)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(stats).encode()).hexdigest()[:16]


@functools.cache
def _code_hash() -> str:
    """Hash of the builders' source (every module of this package) and of the image rules they use: any change to
    the parsing code (or to the grayscale conversion) gives a fresh cache."""
    modules = sorted(Path(__file__).parent.glob("*.py")) + [Path(image_processing_las.__file__)]
    return hashlib.sha256(b"".join(module.read_bytes() for module in modules)).hexdigest()[:16]


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
    with _reading(path), open(path, "rb") as file:
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
    seen in the archive's order. The whole gzip stream is read, to its end, so that gzip checks its
    length and checksum: a cut download is an error even where the cut falls between two members (tar
    itself would then just see fewer members).
    """
    with _reading(tarball):  # outside: gzip reports a damaged stream as an OSError too, which is a format error
        try:
            with gzip.open(tarball, "rb") as stream:
                with tarfile.open(fileobj=stream, mode="r|") as tar:
                    for member in tar:
                        parts = PurePosixPath(member.name).parts
                        if member.isfile() and wanted(parts):
                            yield parts, tar.extractfile(member).read()
                while stream.read(1 << 20):  # tar stops at its end-of-archive blocks; gzip checks the stream's end
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise LRAFormatError(
                f"{tarball}: not a complete .tar.gz ({error}); a cut download or copy? Fetch or copy it again"
            ) from None


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

    * The dataset name defaults to `lra_<task>` (datasets would name the builders after their module),
      so each task gets its own cache folder.
    * `hash` defaults to a hash of the builders' code, and the config id carries a fingerprint of
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

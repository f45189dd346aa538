"""The LRA tasks read from images: Image (CIFAR-10 python batches) and Pathfinder / Path-X (PNG files)."""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import PIL.Image

from image_processing_las import image_to_grayscale, rgb_to_grayscale

from ..pathfinder import incomplete_generation
from ..tasks import (
    CIFAR10_LABELS,
    PATHFINDER_DEFAULT_DIFFICULTY,
    PATHFINDER_DEFAULT_RESOLUTION,
    PATHFINDER_DIFFICULTIES,
    PATHFINDER_RESOLUTIONS,
    PATHX_RESOLUTION,
    TASK_SPECS,
)
from .base import (
    _LRA_RELEASE,
    LRADataError,
    LRADataNotFoundError,
    LRAFormatError,
    _Layout,
    _LRABuilder,
    _parse_label,
    _reading,
    _Source,
    _split_bounds,
    _stream_tarball,
)

logger = logging.getLogger(__name__)

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
            batches = {}
            for name in names:
                with _reading(source.path(name)):
                    data = source.path(name).read_bytes()
                batches[name] = _read_cifar_batch(data, str(source.path(name)))
            return batches
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


def _read_grayscale_png(path: Path, resolution: int, where: str) -> np.ndarray | None:
    """Pixels of a `resolution` x `resolution` image in grayscale, row-major, as uint8; None for an empty file.

    The release's images are 8-bit grayscale and are kept as they are; any other 8-bit mode goes
    through `image_processing_las.image_to_grayscale`, the rule of the model's image processor.

    An empty file is the one fault the release itself has (`pathfinder32/curv_baseline/imgs/0/sample_172.png`),
    and the only one skipped: it stays what it is until the file is replaced, which changes the cache key. Every
    other failure is an error naming the file, so that a fault of the moment (permission denied, an I/O error,
    too many open files) is never prepared and cached as a missing image: `LRAReadError` when the file
    cannot be read, `LRADataNotFoundError` when it is missing, and `LRAFormatError` when it is
    not a PNG of this size with at most 8 bits per pixel (a damaged file, a wrong data set, a decompression bomb:
    the size is checked from the header, before the pixels are decoded).
    """
    listed = f"{path} (listed at {where})"
    with _reading(path, listed_at=where, missing_hint="the Pathfinder data is incomplete"):
        data = path.read_bytes()  # read apart from decoding: an OSError here is the file system's, not the PNG's
    if not data:
        return None
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            if image.size != (resolution, resolution):
                raise LRAFormatError(
                    f"{listed}: expected a {resolution}x{resolution} grayscale image, found "
                    f"{image.size[0]}x{image.size[1]} mode {image.mode}"
                )
            image.load()
            gray = image_to_grayscale(image)
    except LRADataError:
        raise
    except ValueError as error:  # image_to_grayscale's refusal of a mode (PIL's own are OSErrors)
        raise LRAFormatError(f"{listed}: {error}") from None
    except Exception as error:  # PIL reports damaged files, and decompression bombs, in many ways
        raise LRAFormatError(
            f"{listed}: not a readable PNG ({type(error).__name__}: {error}); only empty files, as the release "
            "has, are skipped"
        ) from None
    return gray.reshape(-1)


class PathfinderBuilder(_LRABuilder):
    """Pathfinder and Path-X: are the two marked dots connected by a path? (sequences of pixels)

    Reads `pathfinder{R}/{curv_baseline|curv_contour_length_9|curv_contour_length_14}/`: the
    metadata files `metadata/<k>.npy` are text despite their name, one line per image
    (`imgs/<k> sample_<i>.png <i> <label>`); the images are `imgs/<k>/sample_<i>.png`, 8-bit
    grayscale. Metadata files are taken in order of their integer stem, lines in file order; the
    first 80% of images are train, the next 10% validation, the last 10% test.

    Images are read one at a time with Pillow and written as uint8, so even Path-X (200k x 16,384
    pixels) is prepared in constant memory. An empty image (the release has one) is skipped with a warning
    naming it, and each split ends with one warning counting the skipped images; any other image that cannot be
    read or decoded is an error naming it (see `_read_grayscale_png`).
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
            with _reading(path):
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
            path = root / record.path
            pixels = _read_grayscale_png(path, self.config.resolution, record.where)
            if pixels is None:
                logger.warning("Skipping the empty Pathfinder image %s (listed at %s)", path, record.where)
                skipped.append(str(path))
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

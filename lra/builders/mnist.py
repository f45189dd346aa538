"""Sequential and permuted MNIST (not LRA tasks; the LaS paper reports them), read from the MNIST idx files."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import logging
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..tasks import MNIST_LABELS
from .base import LRAFormatError, _Layout, _LRABuilder, _reading, _split_bounds

logger = logging.getLogger(__name__)

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
    with _reading(path):
        data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
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
    if shape[0] == 0:
        raise LRAFormatError(f"{path}: the header announces 0 {kind}; a split needs at least one")
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

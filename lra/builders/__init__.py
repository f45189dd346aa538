"""The six Long Range Arena tasks, and sequential / permuted MNIST, as `datasets` builders that read a local
copy of the data.

The builders download nothing: the official archive (`lra_release.gz`) is no longer served, and
IMDb and CIFAR-10 were never part of it. Each builder reads a user's local copy in its official
layout and turns it into a `datasets.DatasetDict` with the splits `train`, `validation`
and `test`. Without `data_dir`, `load_lra` reads the tasks whose source is on the Hub
(IMDb, CIFAR-10) with `datasets.load_dataset` instead (`lra.builders.hub`).
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
or image and label counts that differ), and a file that exists but cannot be read (permission denied, an I/O
error, a folder where a file belongs) raises `LRAReadError` naming it; nothing is cached then. The one
exception is the release's own fault: an empty Pathfinder image (the release ships an empty
`pathfinder32/curv_baseline/imgs/0/sample_172.png`) is skipped with a warning that names it, plus one summary
warning per split.

The package is split by source, as S4 splits its data loaders; each module imports only those above it here:

* `lra.builders.base`: finding the source files, the errors, shared readers, the base builder;
* `lra.builders.tokens`: text files (ListOps, Retrieval, Text);
* `lra.builders.pixels`: images (Image, Pathfinder / Path-X);
* `lra.builders.mnist`: MNIST idx files (sMNIST / pMNIST);
* `lra.builders.registry`: which builder and config serve a task and its options;
* `lra.builders.hub`: the Hub data sets read without `data_dir`;
* `lra.builders.loading`: `load_lra`.
"""

from ..tasks import CIFAR10_LABELS, MNIST_LABELS, PATHFINDER_DIFFICULTIES, PATHFINDER_RESOLUTIONS, TASKS
from .base import LRADataError, LRADataNotFoundError, LRAFormatError, LRAReadError
from .loading import load_lra
from .mnist import PMNIST_SEED, MNISTConfig, SequentialMNISTBuilder, mnist_config_name, pmnist_permutation
from .pixels import ImageBuilder, PathfinderBuilder, PathfinderConfig, pathfinder_config_name
from .registry import builder_class, load_lra_builder, resolve_config_name
from .tokens import ListOpsBuilder, RetrievalBuilder, TextBuilder

__all__ = [
    "TASKS",
    "LRADataError",
    "LRADataNotFoundError",
    "LRAFormatError",
    "LRAReadError",
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
    "PMNIST_SEED",
    "builder_class",
    "load_lra",
    "load_lra_builder",
    "mnist_config_name",
    "pathfinder_config_name",
    "pmnist_permutation",
    "resolve_config_name",
]

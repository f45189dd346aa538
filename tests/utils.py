"""Helpers shared by the test modules: tiny copies of the LRA data, and tiny `run_lra.py` runs.

No test module imports another: what two of them need lives here (the loopback Hub is in `tests/support/`).

Tiny copies of the Long Range Arena data, laid out exactly like the real sources.

Every `make_*` function writes into a given folder (use pytest's `tmp_path`) and returns the
folder to pass as `data_dir` to `lra.load_lra`. The content is deterministic, and the
`*_rows` / `*_image` helpers give the values that were written, so tests can compare values.

Layouts, as in the originals:

* the LRA archive: `lra_release/listops-1000/basic_{train,val,test}.tsv` at the top and, in the
  doubled folder, `lra_release/lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv` and
  `lra_release/lra_release/pathfinder{32,128}/curv_*/{metadata/<k>.npy, imgs/<k>/sample_<i>.png}`;
  the functions return the archive root `<root>/lra_release`;
* IMDb: `aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt` and the lists `aclImdb/{train,test}/urls_*.txt`
  (one line per review; plus `train/unsup`, which the task ignores) or the tarball `aclImdb_v1.tar.gz` holding
  that folder; returns `<root>`;
* CIFAR-10: `cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}` (pickles) or the
  tarball `cifar-10-python.tar.gz` holding that folder; returns `<root>`;
* MNIST / Fashion-MNIST: `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` (idx files, big-endian
  header) in `<root>/mnist`; returns that folder.

Sizes (kept tiny; all splits non-empty): ListOps 20/5/5 rows; Retrieval 8/3/3 pairs; Text 6 train and
4 test reviews; Image 5 batches of 4 training images (18 train / 2 validation) and 4 test images;
Pathfinder 22 images of 32x32 in 11 metadata files (18/2/2); Path-X 10 images of 128x128 (8/1/1);
MNIST 20 training images (18 train / 2 validation) and 5 test images.

Example:

    from tests.utils import make_all_releases

    def test_training_smoke(tmp_path):
        data_dirs = make_all_releases(tmp_path / "data")
        dataset = lra.load_lra("listops", data_dirs["listops"], cache_dir=tmp_path / "cache")
"""

from __future__ import annotations

import builtins
import gzip
import hashlib
import importlib
import io
import json
import os
import pickle
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

from lra.tasks import TASK_SPECS

__all__ = [
    "EXAMPLES",
    "REPO_ROOT",
    "SUBPROCESS_ENV",
    "TASK_FLAGS",
    "TINY_MODEL",
    "file_hashes",
    "import_example",
    "fail_opening",
    "tiny_run_args",
    "training_logs",
    "ARCHIVE",
    "CIFAR10_NAMES",
    "IMDB_REVIEWS",
    "MNIST_FILES",
    "PATHFINDER_EMPTY_IMAGE",
    "RETRIEVAL_ROWS",
    "cifar_batch",
    "listops_generate_flags",
    "listops_rows",
    "mnist_split",
    "make_all_releases",
    "make_image_release",
    "idx_bytes",
    "make_listops_release",
    "make_mnist_release",
    "make_pathfinder_release",
    "make_pathx_release",
    "make_retrieval_release",
    "make_text_release",
    "pathfinder_image",
    "pathfinder_label",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
#: Subprocesses import this checkout's modules, even where the interpreter has another copy installed (editable).
SUBPROCESS_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
}

ARCHIVE = "lra_release"
# The release keeps tsv_data and pathfinder* one level further down, in lra_release/lra_release.
_DOUBLED = f"{ARCHIVE}/{ARCHIVE}"


# ---------------------------------------------------------------------------------------------------
# ListOps
# ---------------------------------------------------------------------------------------------------

_OPERATORS = ("MAX", "MIN", "MED", "SM")


def _listops_expression(seed: int, depth: int = 0) -> tuple[list[str], int]:
    """A deterministic ListOps expression in the release's token form, and its value."""
    operator = _OPERATORS[seed % 4]
    values, children = [], []
    for position in range(2 + seed % 3):
        child_seed = seed * 7 + position * 3 + 1
        if depth < 2 and child_seed % 3 == 0:
            tokens, value = _listops_expression(child_seed, depth + 1)
        else:
            tokens, value = [str(child_seed % 10)], child_seed % 10
        children.append(tokens)
        values.append(value)
    result = {"MAX": max, "MIN": min, "MED": lambda v: int(np.median(v)), "SM": lambda v: sum(v) % 10}[operator](
        values
    )
    # A node with n children is written as n + 1 "(", then "[OP c0 )", then "ci )", then "] )".
    tokens = ["("] * (len(children) + 1) + [f"[{operator}"] + children[0] + [")"]
    for child in children[1:]:
        tokens += child + [")"]
    return tokens + ["]", ")"], int(result)


def listops_rows(split: str, sizes: tuple[int, int, int] = (20, 5, 5)) -> list[tuple[str, int]]:
    """`(source, target)` rows of a fixture split (`"train"`, `"val"`, `"test"`)."""
    offset = {"train": 0, "val": sizes[0], "test": sizes[0] + sizes[1]}[split]
    count = dict(zip(("train", "val", "test"), sizes))[split]
    rows = []
    for index in range(offset, offset + count):
        tokens, value = _listops_expression(index + 1)
        rows.append((" ".join(tokens), value))
    return rows


def listops_generate_flags(
    num_train: int = 2, num_val: int = 1, num_test: int = 1, min_length: int = 3, max_length: int = 30
) -> list[str]:
    """The size flags of a small `python -m lra generate listops` run (after `--out`), without a progress bar."""
    sizes = {
        "--num-train": num_train,
        "--num-val": num_val,
        "--num-test": num_test,
        "--min-length": min_length,
        "--max-length": max_length,
    }
    return [*(part for flag, value in sizes.items() for part in (flag, str(value))), "--no-progress"]


def make_listops_release(root: Path, sizes: tuple[int, int, int] = (20, 5, 5)) -> Path:
    """Write `lra_release/listops-1000/basic_{train,val,test}.tsv`; return the archive root."""
    folder = Path(root) / ARCHIVE / "listops-1000"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        lines = ["Source\tTarget\n"] + [f"{source}\t{target}\n" for source, target in listops_rows(split, sizes)]
        (folder / f"basic_{split}.tsv").write_text("".join(lines), encoding="ascii", newline="")
    return Path(root) / ARCHIVE


# ---------------------------------------------------------------------------------------------------
# Retrieval (AAN)
# ---------------------------------------------------------------------------------------------------

# (label as written, id1, id2, text1, text2). Quotes are literal, some unbalanced, as in the AAN dump;
# labels are written both as integers and as floats.
RETRIEVAL_ROWS: dict[str, list[tuple[str, str, str, str, str]]] = {
    "train": [
        ("1", "P98-1046", "J93-2004", 'We present a "statistical" parser.', "The Penn Treebank: it's annotated."),
        ("0", "W02-1001", "P05-1012", '"Unbalanced quote at the start', "ends with a quote'"),
        ("1.0", "N03-1033", "P02-1040", "BLEU: a method for 'automatic' evaluation", 'He said ""twice"" here.'),
        ("0.0", "C00-2137", "E06-1015", "Ünïcödé text – with dashes…", "plain ascii text"),
        ("1", "P07-2045", "J03-1002", "Moses: open source toolkit", "A systematic comparison"),
        ("0", "D07-1096", "P96-1041", "", "an empty first document"),
        ("1", "J96-1002", "P03-1054", "Maximum entropy models", "Accurate unlexicalized parsing"),
        ("0", "A00-2018", "N06-1020", "A maximum-entropy-inspired parser", "Prototype-driven learning"),
    ],
    "eval": [
        ("1", "P04-1035", "H05-1044", 'Sentiment analysis "in" context', "Recognizing contextual polarity"),
        ("0", "W04-1013", "P11-1015", "ROUGE", "Learning word vectors"),
        ("1.0", "D13-1170", "P14-1062", "Recursive deep models", "A convolutional network"),
    ],
    "test": [
        ("0", "N19-1423", "P02-1040", "BERT: pre-training 'deep' bidirectional", "BLEU"),
        ("1", "D14-1162", "N13-1090", "GloVe: global vectors", "Linguistic regularities"),
        ("0.0", "P16-1162", "Q17-1010", "Neural machine translation of rare words", "Enriching word vectors"),
    ],
}


def make_retrieval_release(root: Path) -> Path:
    """Write `lra_release/lra_release/tsv_data/new_aan_pairs.{train,eval,test}.tsv`; return the archive root."""
    folder = Path(root) / _DOUBLED / "tsv_data"
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in RETRIEVAL_ROWS.items():
        text = "".join("\t".join(row) + "\n" for row in rows)
        (folder / f"new_aan_pairs.{split}.tsv").write_text(text, encoding="utf-8", newline="")
    return Path(root) / ARCHIVE


# ---------------------------------------------------------------------------------------------------
# Text (IMDb)
# ---------------------------------------------------------------------------------------------------

# split -> label folder -> {file name: review}. Names sort differently as text ("10_1" < "2_3") and as
# numbers; reviews carry HTML breaks, quotes and non-ASCII characters like the real ones.
IMDB_REVIEWS: dict[str, dict[str, dict[str, str]]] = {
    "train": {
        "neg": {
            "10_1.txt": 'Dreadful.<br /><br />Avoid "at all costs".',
            "2_3.txt": "Meh – not great.",
            "7_2.txt": "I'd rather watch paint dry.",
        },
        "pos": {
            "0_9.txt": "A masterpiece! 🎬",
            "11_10.txt": "Loved it, café scene included.",
            "3_8.txt": "Great 'fun' for everyone.",
        },
    },
    "test": {
        "neg": {"1_2.txt": "Boring plot.", "12_4.txt": "Too long; too loud."},
        "pos": {"4_7.txt": "Charming and witty.", "5_10.txt": "Best film of the year — naïve but sweet."},
    },
}
_IMDB_UNSUP = {"0_0.txt": "Unlabelled review: not part of the task.", "1_0.txt": "Another unlabelled one."}


def _imdb_files() -> Iterator[tuple[str, bytes]]:
    """`(path inside the archive, contents)` of the fixture's aclImdb folder."""
    yield "aclImdb/README", b"Large Movie Review Dataset v1.0 (fixture)\n"
    yield "aclImdb/imdb.vocab", b"the\nand\n"
    for split, labels in IMDB_REVIEWS.items():
        for label, reviews in labels.items():
            for name, text in reviews.items():
                yield f"aclImdb/{split}/{label}/{name}", text.encode("utf-8")
            # The release's list of the reviews' pages, one line per review: how a copy says how many it holds.
            urls = "".join(f"http://www.imdb.com/title/tt{index:07d}/usercomments\n" for index in range(len(reviews)))
            yield f"aclImdb/{split}/urls_{label}.txt", urls.encode("ascii")
    for name, text in _IMDB_UNSUP.items():
        yield f"aclImdb/train/unsup/{name}", text.encode("utf-8")


def make_text_release(root: Path, as_tarball: bool = False) -> Path:
    """Write `aclImdb/` or `aclImdb_v1.tar.gz`; return `root`, the folder holding it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    # Reversed member order: the builder must not depend on the order of a tarball's members.
    _write_tree(root, reversed(list(_imdb_files())), tarball="aclImdb_v1.tar.gz" if as_tarball else None)
    return root


# ---------------------------------------------------------------------------------------------------
# Image (CIFAR-10)
# ---------------------------------------------------------------------------------------------------

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_BATCH_SIZE = 4


def cifar_batch(name: str) -> tuple[np.ndarray, list[int]]:
    """The `(data, labels)` of a fixture batch: `data` is `n x 3072` uint8 (R, G, B planes)."""
    seed = 6 if name == "test_batch" else int(name.rsplit("_", 1)[1])
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(_CIFAR_BATCH_SIZE, 3072), dtype=np.uint8)
    labels = [int(label) for label in rng.integers(0, 10, size=_CIFAR_BATCH_SIZE)]
    return data, labels


def _cifar_files() -> Iterator[tuple[str, bytes]]:
    folder = "cifar-10-batches-py"
    meta = {
        b"label_names": [name.encode() for name in CIFAR10_NAMES],
        b"num_cases_per_batch": _CIFAR_BATCH_SIZE,
        b"num_vis": 3072,
    }
    yield f"{folder}/batches.meta", pickle.dumps(meta, protocol=2)
    for name in [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]:
        data, labels = cifar_batch(name)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"{name}_{index}.png".encode() for index in range(len(labels))],
        }
        yield f"{folder}/{name}", pickle.dumps(batch, protocol=2)
    yield f"{folder}/readme.html", b"<html>CIFAR-10 fixture</html>\n"


def make_image_release(root: Path, as_tarball: bool = True) -> Path:
    """Write `cifar-10-python.tar.gz` or `cifar-10-batches-py/`; return `root`, the folder holding it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_tree(root, _cifar_files(), tarball="cifar-10-python.tar.gz" if as_tarball else None)
    return root


# ---------------------------------------------------------------------------------------------------
# Pathfinder and Path-X
# ---------------------------------------------------------------------------------------------------

# The release's folder names, written here on purpose rather than read from lra.tasks: a fixture that followed the
# package would not notice a wrong folder name in it.
_DIFFICULTY_FOLDERS = {6: "curv_baseline", 9: "curv_contour_length_9", 14: "curv_contour_length_14"}
# The image the release ships empty is curv_baseline/imgs/0/sample_172.png; ours is this one.
PATHFINDER_EMPTY_IMAGE = "imgs/0/sample_1.png"


def pathfinder_image(index: int, resolution: int) -> np.ndarray:
    """Pixels (`resolution x resolution` uint8) of fixture image number `index`."""
    return np.random.default_rng(1000 + index).integers(0, 256, size=(resolution, resolution), dtype=np.uint8)


def pathfinder_label(index: int) -> int:
    return (index * 5 + 1) % 3 % 2


def make_pathfinder_release(
    root: Path,
    resolution: int = 32,
    difficulty: int = 14,
    n: int = 22,
    images_per_folder: int = 2,
    empty_png: bool = False,
) -> Path:
    """Write `lra_release/lra_release/pathfinder{R}/{curv_...}/`; return the archive root.

    Image number `k * images_per_folder + i` is `imgs/<k>/sample_<i>.png` and is listed on line
    `i + 1` of `metadata/<k>.npy` as `imgs/<k> sample_<i>.png <i> <label>`. The default gives
    11 metadata files, so sorting them as text (`10` before `2`) would give another order.
    `empty_png=True` truncates `PATHFINDER_EMPTY_IMAGE` to 0 bytes, like the release's
    broken image.
    """
    folder = Path(root) / _DOUBLED / f"pathfinder{resolution}" / _DIFFICULTY_FOLDERS[difficulty]
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    for batch, start in enumerate(range(0, n, images_per_folder)):
        (folder / "imgs" / str(batch)).mkdir(parents=True, exist_ok=True)
        lines = []
        for position, index in enumerate(range(start, min(start + images_per_folder, n))):
            name = f"sample_{position}.png"
            Image.fromarray(pathfinder_image(index, resolution), mode="L").save(folder / "imgs" / str(batch) / name)
            lines.append(f"imgs/{batch} {name} {position} {pathfinder_label(index)}\n")
        (folder / "metadata" / f"{batch}.npy").write_text("".join(lines), encoding="ascii", newline="")
    if empty_png:
        (folder / PATHFINDER_EMPTY_IMAGE).write_bytes(b"")
    return Path(root) / ARCHIVE


def make_pathx_release(root: Path, n: int = 10) -> Path:
    """Write Path-X (`pathfinder128/curv_contour_length_14`, 128x128 images); return the archive root."""
    return make_pathfinder_release(root, resolution=128, difficulty=14, n=n, images_per_folder=5)


# ---------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST (idx files)
# ---------------------------------------------------------------------------------------------------

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "t10k": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def mnist_split(split: str, sizes: tuple[int, int] = (20, 5)) -> tuple[np.ndarray, np.ndarray]:
    """`(images n x 28 x 28 uint8, labels n uint8)` of a fixture file pair (`"train"` or `"t10k"`)."""
    count = sizes[0] if split == "train" else sizes[1]
    rng = np.random.default_rng(7 if split == "train" else 8)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    images[:, 0, 0] = np.arange(count)  # every image is told apart by its first pixel, so order is visible
    labels = (np.arange(count) * 3 + (split == "t10k")) % 10
    return images, labels.astype(np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: magic `0x00000800 + ndim`, the dimensions (big-endian int32), the data."""
    header = (0x0800 + array.ndim).to_bytes(4, "big") + b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def make_mnist_release(root: Path, gz: bool = True, sizes: tuple[int, int] = (20, 5)) -> Path:
    """Write the four idx files (gzipped like the originals, or plain) into `root/mnist`; return that folder."""
    folder = Path(root) / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images_name, labels_name) in MNIST_FILES.items():
        images, labels = mnist_split(split, sizes)
        for name, array in ((images_name, images), (labels_name, labels)):
            data = idx_bytes(array)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
    return folder


# ---------------------------------------------------------------------------------------------------
# Everything
# ---------------------------------------------------------------------------------------------------


def make_all_releases(root: Path) -> dict[str, Path]:
    """Write every fixture under `root` and return `{task: data_dir}` for every task of `lra.TASKS`.

    The LRA archive is `root/lra_release`; IMDb (extracted folder) and CIFAR-10 (tarball) sit in
    `root` next to it, where the other tasks' data dir would also find them.
    """
    root = Path(root)
    archive = make_listops_release(root)
    make_retrieval_release(root)
    make_pathfinder_release(root)
    make_pathx_release(root)
    make_text_release(root, as_tarball=False)
    make_image_release(root, as_tarball=True)
    mnist = make_mnist_release(root)
    return {
        "listops": archive,
        "text": root,
        "retrieval": archive,
        "image": root,
        "pathfinder": archive,
        "pathx": archive,
        "smnist": mnist,
        "pmnist": mnist,
    }


def _write_tree(root: Path, files: Iterator[tuple[str, bytes]], tarball: str | None) -> None:
    """Write `files` (relative path, contents) under `root`, or into `root/tarball` (gzip)."""
    if tarball is None:
        for name, data in files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return
    with tarfile.open(root / tarball, "w:gz") as tar:
        for name, data in files:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mtime = 1_300_000_000  # fixed: the same listing on every run
            tar.addfile(member, io.BytesIO(data))


# ---------------------------------------------------------------------------------------------------
# The Hub copies of IMDb and CIFAR-10 (Parquet + README configs, as in their repositories)
# ---------------------------------------------------------------------------------------------------

#: ``stanfordnlp/imdb`` and ``uoft-cs/cifar10``: one config ``plain_text``, one Parquet file per split.
_HUB_README = """---
configs:
- config_name: plain_text
  data_files:
{data_files}
  default: true
---
# {title} (test fixture, laid out like the Hub repository)
"""


def _write_hub_layout(folder: Path, splits: dict[str, object], title: str) -> Path:
    """`plain_text/<split>-00000-of-00001.parquet` for each `datasets.Dataset` and the README's configs."""
    folder = Path(folder)
    (folder / "plain_text").mkdir(parents=True, exist_ok=True)
    for split, dataset in splits.items():
        dataset.to_parquet(str(folder / "plain_text" / f"{split}-00000-of-00001.parquet"))
    data_files = "\n".join(f"  - split: {split}\n    path: plain_text/{split}-*" for split in splits)
    (folder / "README.md").write_text(_HUB_README.format(data_files=data_files, title=title))
    return folder


def imdb_hub_rows(split: str) -> list[dict]:
    """The fixture's IMDb rows as the Hub copy orders them: `neg` then `pos`."""
    return [
        {"text": text, "label": label}
        for label, name in enumerate(("neg", "pos"))
        for text in IMDB_REVIEWS[split][name].values()
    ]


def write_imdb_hub_repo(folder: Path) -> Path:
    """`stanfordnlp/imdb`'s layout: columns `text` (string), `label` (ClassLabel neg/pos); splits train, test
    and unsupervised (label -1, not part of the task)."""
    import datasets

    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    rows = {split: imdb_hub_rows(split) for split in ("train", "test")}
    rows["unsupervised"] = [{"text": text, "label": -1} for text in _IMDB_UNSUP.values()]
    splits = {split: datasets.Dataset.from_list(split_rows, features=features) for split, split_rows in rows.items()}
    return _write_hub_layout(folder, splits, "IMDb")


def cifar_images(name: str) -> tuple[list[Image.Image], list[int]]:
    """A fixture batch as 32x32 RGB images (what the Hub copy stores, as PNG)."""
    data, labels = cifar_batch(name)
    images = [Image.fromarray(np.ascontiguousarray(row.reshape(3, 32, 32).transpose(1, 2, 0))) for row in data]
    return images, labels


def write_cifar10_hub_repo(folder: Path) -> Path:
    """`uoft-cs/cifar10`'s layout: columns `img` (Image), `label` (ClassLabel, the CIFAR-10 names); the train
    split holds the five training batches in order, test the test batch."""
    import datasets

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=list(CIFAR10_NAMES))})
    splits = {}
    for split, names in (("train", [f"data_batch_{index}" for index in range(1, 6)]), ("test", ["test_batch"])):
        images, labels = [], []
        for name in names:
            batch_images, batch_labels = cifar_images(name)
            images += batch_images
            labels += batch_labels
        splits[split] = datasets.Dataset.from_dict({"img": images, "label": labels}, features=features)
    return _write_hub_layout(folder, splits, "CIFAR-10")


# ---------------------------------------------------------------------------------------------------
# examples/run_lra.py
# ---------------------------------------------------------------------------------------------------

#: A model small enough for a CPU step in well under a second on every task.
TINY_MODEL = "hidden_size=16,num_hidden_layers=1,num_attention_heads=2,intermediate_size=32"
#: Path-X is 16,384 pixels: full attention would take minutes on CPU, LaS-chunk takes seconds.
TASK_FLAGS = {"pathx": ["--attention_type", "las_chunk", "--config_overrides", TINY_MODEL + ",las_chunk_size=128"]}


def import_example(name: str) -> ModuleType:
    """Import a script of `examples/` (`"run_lra"`) or of a folder below it (`"study/run_study"`) as a module."""
    folder = EXAMPLES / Path(name).parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module(Path(name).name)


def training_logs(output_dir: Path) -> list[dict]:
    """The training-loss entries of a run's `trainer_state.json` (what two runs that should match compare)."""
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [entry for entry in history if "loss" in entry]


def file_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below `folder`: to prove that a refused command wrote nothing."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def tiny_run_args(task: str, data_dir: Path, output_dir: Path, cache_dir: Path, *extra: str) -> list[str]:
    """A short CPU run: no evaluation during training (the fixtures' splits are a few examples), a checkpoint every
    2 steps, a log line every step. Flags in `extra` come last, so they win."""
    return [
        "--task",
        task,
        "--data_dir",
        str(data_dir),
        "--cache_dir",
        str(cache_dir),
        "--output_dir",
        str(output_dir),
        "--config_overrides",
        TINY_MODEL,
        *(["--max_length", "128"] if TASK_SPECS[task].input_kind != "pixels" else []),  # pixel tasks: fixed length
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--per_device_eval_batch_size",
        "2",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "steps",
        "--save_steps",
        "2",
        "--load_best_model_at_end",
        "False",
        "--logging_steps",
        "1",
        "--seed",
        "7",
        "--use_cpu",
        "--disable_tqdm",
        "True",
        *TASK_FLAGS.get(task, []),
        *extra,
    ]


# ---------------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------------


def fail_opening(monkeypatch, path: Path, error: OSError) -> None:
    """Make every `open` of `path` in this process raise `error`.

    A file the process cannot read, whatever reads it (Pillow opens with `builtins.open`, pathlib with
    `io.open`), and whoever runs the tests: `chmod 000` stops no root user. Pass `monkeypatch` (or one of its
    contexts, to lift the fault within a test).
    """
    real_open = builtins.open
    path = Path(path)

    def failing_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == path:
            raise error
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    monkeypatch.setattr(io, "open", failing_open)
